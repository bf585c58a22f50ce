//! The staff ticket page (issue 13) against a real `ticketgate serve` with its private
//! Dovecot and Postfix, in headless Chromium: the signed link read from a real notification in the
//! staff mailbox opens the whole timeline; a tampered or expired link is a 404; a GET changes
//! nothing; take and close with a final answer from the page reach the citizen by mail and
//! their web page says the case is resolved; axe-core finds nothing on the page (also with a
//! refused form); a note and a reassignment from the page; notices carry the link only to
//! staff of the ticket's office; a staff member removed from the area's staff list is refused.

mod support;

use std::time::Duration;

use serde_json::json;
use support::browser::Browser;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use support::web::{link_in, mail_with_photo_and_html, photo, signed_in_citizen, Client};
use ticketgate::domain::SignedIds;
use ticketgate::tickets::{staff_page_link, take_link};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "una-password-lunga-42";
const ANSWER: &str = "Gentile signora, la buca di via Roma è stata chiusa stamattina.";

/// Submits the form whose action ends with `action` and waits for the next page.
fn submit(b: &Browser, action: &str) {
    b.execute("window.__tgOldPage = true;", &[]);
    b.find(&format!("form[action$=\"{action}\"] button[type=submit]"))
        .click();
    let loaded = b.wait_until(WAIT, || {
        b.execute(
            "return window.__tgOldPage === undefined && document.readyState === 'complete';",
            &[],
        ) == json!(true)
    });
    assert!(loaded, "no new page after submitting {action}");
}

/// Registers the citizen, confirms from the mailed link and signs in (HTTP level).
fn citizen_signed_in(stack: &MailStack, gw: &Gateway) -> Client {
    signed_in_citizen(stack, gw, CITIZEN, "RSSMRA85T10A562", PASSWORD)
}

#[test]
fn staff_open_the_ticket_from_the_notification_take_it_and_close_it_with_an_answer_the_citizen_receives(
) {
    let stack = MailStack::start();
    let mut gw = Gateway::start(&stack);
    let base = format!("http://127.0.0.1:{}", gw.web_port);
    let jpeg = photo();
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_photo_and_html(CITIZEN, LAVORI, "Buca in via Roma", &jpeg),
    );
    let reference = gw.wait_for("the ticket", WAIT, || {
        gw.tickets()
            .first()
            .and_then(|t| t["ref"].as_str().map(str::to_owned))
    });

    // The link, from the real notification in the staff member's mailbox.
    let notification = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).1.contains("/staff/tickets/")
    });
    let link = link_in(&notification, "/staff/tickets/");
    assert!(
        link.starts_with(&format!("{base}/staff/tickets/{reference}?staff=")),
        "{link}"
    );

    // Only GETs so far: the ticket is unchanged, however often the page is opened.
    let http = Client::new(&gw);
    let page = http.get(&link);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(gw.show(&reference)["ticket"]["status"], "received");
    // The menu names the staff member, not the citizens' account links.
    assert!(
        page.body.contains("Personale dell&#39;ufficio")
            || page.body.contains("Personale dell'ufficio"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("href=\"/register\""), "{}", page.body);
    // The due date (issue 14), as `ticket show` gives it, and not overdue.
    let due = gw.show(&reference)["ticket"]["due_date"]
        .as_str()
        .unwrap_or("")
        .split('-')
        .rev()
        .collect::<Vec<_>>()
        .join("/");
    assert!(
        page.body
            .contains(&format!("Risposta dovuta entro</dt><dd>{due}</dd>")),
        "{due}: {}",
        page.body
    );

    // Every attachment downloads with the citizen page's safe headers, the stored bytes.
    let href = page
        .body
        .split("href=\"")
        .find(|s| s.starts_with(&format!("/staff/tickets/{reference}/attachments/")))
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no attachment link:\n{}", page.body))
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let file = http.get(&href);
    assert_eq!(file.status, 200, "{href}: {}", file.body);
    assert_eq!(file.bytes, jpeg);
    assert!(file
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment;") && d.contains("buca.jpg")));
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));

    // A tampered link, an expired one and a take link's signature: 404, like no ticket.
    let tampered = with_last_digit_changed(&link);
    assert_eq!(http.get(&tampered).status, 404);
    let ids = SignedIds::new(SECRET.as_bytes());
    let expired = staff_page_link(&ids, &base, &reference, STAFF_LAVORI, 1_000);
    assert_eq!(http.get(&expired).status, 404);
    let far = 4_000_000_000_000;
    let take = take_link(&ids, &base, &reference, STAFF_LAVORI, far);
    let take_sig = take.split("sig=").nth(1).unwrap();
    let page_with_take_sig = format!(
        "{}sig={take_sig}",
        staff_page_link(&ids, &base, &reference, STAFF_LAVORI, far)
            .split("sig=")
            .next()
            .unwrap()
    );
    assert_eq!(http.get(&page_with_take_sig).status, 404);
    let other_staff = staff_page_link(&ids, &base, &reference, STAFF_AMBIENTE, far);
    assert_eq!(http.get(&other_staff).status, 403, "not staff of the area");
    // A form without the CSRF token changes nothing.
    let (path, query) = link.split_once('?').unwrap();
    let mut fields: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.replace("%40", "@"))
        })
        .collect();
    fields.push(("text".into(), "senza token".into()));
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let refused = http.post(&format!("{path}/note"), &borrowed);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("senza token"), "text kept");
    assert!(!gw.show(&reference).to_string().contains("senza token"));

    // In the browser: the timeline, then take, a refused note, and the final answer.
    let b = Browser::start();
    b.goto(&link);
    let source = b.source();
    assert!(source.contains(&reference), "{source}");
    assert!(source.contains("Buca profonda, vedi foto."), "{source}");
    assert!(source.contains("Notifica all'ufficio"), "{source}");
    assert!(
        b.try_find("main script").is_none(),
        "the mail's HTML runs nothing"
    );
    b.assert_no_axe_violations("staff page");

    submit(&b, "/take");
    assert!(b.find("#confirmation").text().contains("presa in carico"));
    assert!(b.current_url().contains("done=take"), "{}", b.current_url());
    assert_eq!(gw.show(&reference)["ticket"]["status"], "taken");

    submit(&b, "/note");
    assert!(b.try_find(".error-summary").is_some(), "{}", b.source());
    assert!(b.try_find("#note-error").is_some());
    b.assert_no_axe_violations("staff page with a refused note");

    let note = b.find("#note");
    note.clear();
    note.send_keys("Sopralluogo fatto, squadra avvisata.");
    submit(&b, "/note");
    assert!(b
        .find("#confirmation")
        .text()
        .contains("Nota interna registrata"));
    assert!(b.source().contains("Sopralluogo fatto, squadra avvisata."));

    let answer = b.find("#answer");
    answer.clear();
    answer.send_keys(ANSWER);
    assert_eq!(b.find("#close").property("checked"), json!(true));
    submit(&b, "/answer");
    assert!(
        b.find("#confirmation").text().contains("risolta"),
        "{}",
        b.source()
    );
    b.assert_no_axe_violations("staff page after closing");
    b.screenshot_to_target("staff-page-desktop");
    let shown = gw.show(&reference);
    assert_eq!(shown["ticket"]["status"], "resolved");
    let kinds = events(&shown);
    for kind in ["taken", "note", "staff_reply", "answered", "resolved"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind}: {kinds:?}");
    }

    // The citizen gets the answer by mail, and their web page says resolved.
    let mail = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        subject_and_text(m)
            .1
            .contains("la buca di via Roma è stata chiusa")
    });
    assert!(
        !mail.contains("/staff/"),
        "no staff link reaches the citizen"
    );
    let citizen = citizen_signed_in(&stack, &gw);
    let their_page = citizen.get(&format!("/tickets/{reference}"));
    assert_eq!(their_page.status, 200);
    assert!(their_page.body.contains("Risolta"), "{}", their_page.body);

    // A second ticket moved to another office from the page: the new office is notified (with
    // its own link), the citizen told, and the link of the old office no longer opens it.
    let (_, raw) = citizen_mail(CITIZEN2, LAVORI, "Rifiuti abbandonati", "Sacchi in via Po.");
    send(&stack, CITIZEN2, &[LAVORI], &raw);
    let second = gw.wait_for("the second ticket", WAIT, || {
        gw.tickets()
            .into_iter()
            .find(|t| t["subject"] == "Rifiuti abbandonati")
            .and_then(|t| t["ref"].as_str().map(str::to_owned))
    });
    let second_link = staff_page_link(&ids, &base, &second, STAFF_LAVORI, far);
    b.goto(&second_link);
    b.find("#area option[value=\"ambiente\"]").click();
    submit(&b, "/reassign");
    assert!(b.source().contains("Ambiente"), "{}", b.source());
    b.assert_no_axe_violations("staff page after a reassignment");
    let moved = gw.show(&second);
    assert_eq!(moved["ticket"]["area"], "ambiente");
    assert!(events(&moved).contains(&"reassigned".to_owned()));
    let theirs = wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| {
        let text = subject_and_text(m).1;
        text.contains(&second) && text.contains("/staff/tickets/")
    });
    assert!(link_in(&theirs, "/staff/tickets/").contains("giulia.bianchi%40comune.test"));
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| {
        let (subject, text) = subject_and_text(m);
        subject.contains(&second) && text.contains("ora seguita") && text.contains("Ambiente")
    });
    assert_eq!(http.get(&second_link).status, 403);

    // Notices to staff carry the link too, but only to staff of the ticket's office: mail with
    // the tag and no signed reference gets each sender a "not forwarded" notice.
    for (from, to) in [(STAFF_AMBIENTE, AMBIENTE), (STAFF_LAVORI, LAVORI)] {
        let raw = format!(
            "From: <{from}>\r\nTo: <{to}>\r\nSubject: Re: [Ticket #{second}] Rifiuti abbandonati\r\n\
             Message-ID: <{}>\r\n\r\nVisto.\r\n",
            unique_id()
        );
        send(&stack, from, &[to], raw.as_bytes());
    }
    let not_forwarded = |m: &str| subject_and_text(m).0.contains("Not forwarded");
    let theirs = wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, not_forwarded);
    assert!(subject_and_text(&theirs).1.contains("/staff/tickets/"));
    let former = wait_for_mail(&stack, STAFF_LAVORI, WAIT, not_forwarded);
    assert!(!subject_and_text(&former).1.contains("/staff/tickets/"));

    // The staff member leaves the area: restarted with another staff list, the link is refused.
    gw.config.area("lavori-pubblici").staff = vec!["altro@comune.test".to_owned()];
    std::fs::write(&gw.config_path, gw.config.to_toml()).expect("write config");
    gw.restart();
    let after = Client::new(&gw).get(&link);
    assert_eq!(after.status, 403, "{}", after.body);
    assert!(!after.body.contains("Buca profonda"));
}

/// The link with the last hex digit of its signature changed.
fn with_last_digit_changed(link: &str) -> String {
    let mut s = link.to_owned();
    let last = s.pop().expect("a link");
    s.push(if last == '0' { '1' } else { '0' });
    s
}
