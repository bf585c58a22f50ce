//! The citizen web page in a real browser (headless Chromium over WebDriver), against a real
//! `ticketgate serve` and its private Dovecot + Postfix: a citizen's whole journey, axe-core
//! (WCAG 2.1 AA) on every page including error states, a hostile HTML mail shown without
//! anything running, a report from the web acknowledged by mail, and screenshots of the
//! main pages at phone and desktop width under `target/screenshots/`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::browser::{Browser, Method};
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use support::web::{cf, link_in, mail_with_photo_and_html, photo};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "una-password-lunga-42";
const PHONE: (u32, u32) = (360, 740);
const DESKTOP: (u32, u32) = (1280, 900);

/// axe on the current page, then screenshots at phone and desktop width (axe again on the
/// phone layout: reflow at 320–360 px is part of WCAG 2.1).
fn check_page(b: &Browser, name: &str, shots: bool) {
    b.assert_no_axe_violations(name);
    if shots {
        b.set_viewport_size(PHONE.0, PHONE.1);
        b.assert_no_axe_violations(&format!("{name} (phone)"));
        b.screenshot_to_target(&format!("{name}-phone"));
        b.set_viewport_size(DESKTOP.0, DESKTOP.1);
        b.screenshot_to_target(&format!("{name}-desktop"));
    }
}

fn fill(b: &Browser, css: &str, text: &str) {
    let e = b.find(css);
    e.clear();
    e.send_keys(text);
}

/// Submits the form and waits until the next page has loaded (a click returns before the
/// navigation it starts).
fn submit(b: &Browser, form_action: &str) {
    b.execute("window.__tgOldPage = true;", &[]);
    b.find(&format!(
        "form[action=\"{form_action}\"] button[type=submit]"
    ))
    .click();
    let loaded = b.wait_until(WAIT, || {
        b.execute(
            "return window.__tgOldPage === undefined && document.readyState === 'complete';",
            &[],
        ) == json!(true)
    });
    assert!(loaded, "no new page after submitting {form_action}");
}

/// Clicks a link and waits until the next page has loaded.
fn follow(b: &Browser, css: &str) {
    b.execute("window.__tgOldPage = true;", &[]);
    b.find(css).click();
    let loaded = b.wait_until(WAIT, || {
        b.execute(
            "return window.__tgOldPage === undefined && document.readyState === 'complete';",
            &[],
        ) == json!(true)
    });
    assert!(loaded, "no new page after clicking {css}");
}

#[test]
fn a_citizen_registers_confirms_signs_in_and_follows_a_ticket_in_a_real_browser() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
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

    let b = Browser::start();
    b.goto(&format!("{base}/"));
    assert_eq!(b.find("html").attr("lang").as_deref(), Some("it"));
    check_page(&b, "home", true);

    // Registration: first with every mistake, then right.
    b.goto(&format!("{base}/register"));
    check_page(&b, "register", true);
    fill(&b, "#first_name", "Anna");
    fill(&b, "#email", "anna@");
    fill(&b, "#fiscal_code", "RSSMRA85T10A562X");
    fill(&b, "#password", "corta");
    submit(&b, "/register");
    assert!(b.try_find(".error-summary").is_some(), "{}", b.source());
    assert!(b.try_find("#fiscal_code-error").is_some());
    assert_eq!(b.find("#first_name").property("value"), json!("Anna"));
    assert_eq!(b.find("#password").property("value"), json!(""));
    check_page(&b, "register-errors", true);

    fill(&b, "#last_name", "Verdi");
    fill(&b, "#email", CITIZEN);
    fill(&b, "#fiscal_code", &cf("RSSMRA85T10A562"));
    fill(&b, "#password", PASSWORD);
    fill(&b, "#password_confirm", PASSWORD);
    b.find("#privacy").click();
    submit(&b, "/register");
    assert!(b.source().contains("Controlli la posta"), "{}", b.source());
    check_page(&b, "register-done", false);

    // The confirmation link, read from the real mailbox over IMAP.
    let mail = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("/verify?token="));
    b.goto(&link_in(&mail, "/verify?token="));
    check_page(&b, "verify", false);
    submit(&b, "/verify");
    assert!(
        b.current_url().contains("/login?verified=1"),
        "{}",
        b.current_url()
    );
    check_page(&b, "login", true);

    // A wrong password first (error state), then the right one.
    fill(&b, "#email", CITIZEN);
    fill(&b, "#password", "sbagliata-davvero-1");
    submit(&b, "/login");
    assert!(b.try_find(".error-summary").is_some());
    check_page(&b, "login-error", false);
    fill(&b, "#password", PASSWORD);
    submit(&b, "/login");
    assert!(b.current_url().ends_with("/tickets"), "{}", b.current_url());
    assert!(b.source().contains(&reference));
    check_page(&b, "tickets", true);

    // The timeline of the ticket sent by mail before registering.
    follow(&b, &format!("a[href=\"/tickets/{reference}\"]"));
    assert!(b.current_url().ends_with(&reference));
    assert!(b.source().contains("Buca profonda, vedi foto."));
    // The HTML part: expanding it runs nothing (sanitised, and no script is allowed).
    b.find("details summary").click();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.alert_text(), None, "a script from the mail ran");
    let html = b
        .find("details .html")
        .attr("innerHTML")
        .unwrap_or_default();
    assert!(
        !html.contains("onerror") && !html.contains("<script"),
        "{html}"
    );
    check_page(&b, "ticket", true);

    // Download the photo: the browser saves it as a file.
    let downloads = tempfile::tempdir().unwrap();
    b.command(
        Method::Post,
        "/goog/cdp/execute",
        Some(&json!({
            "cmd": "Browser.setDownloadBehavior",
            "params": { "behavior": "allow", "downloadPath": downloads.path().to_str().unwrap() }
        })),
    );
    b.find("a[href*=\"/attachments/\"]").click();
    let saved = downloads.path().join("buca.jpg");
    assert!(
        b.wait_until(WAIT, || saved.exists()
            && std::fs::read(&saved).map(|d| d.len()).unwrap_or(0) == jpeg.len()),
        "the photo was not downloaded"
    );
    assert_eq!(std::fs::read(&saved).unwrap(), jpeg);

    // A report from the web, with a photo; the acknowledgment arrives by mail.
    b.goto(&format!("{base}/tickets/new"));
    check_page(&b, "new-ticket", true);
    submit(&b, "/tickets/new");
    assert!(b.try_find(".error-summary").is_some());
    check_page(&b, "new-ticket-errors", false);
    let upload = downloads.path().join("lampione.jpg");
    std::fs::write(&upload, &jpeg).unwrap();
    b.find("#area option[value=\"ambiente\"]").click();
    b.find("#kind-suggerimento").click();
    fill(&b, "#subject", "Più alberi in piazza");
    fill(
        &b,
        "#text",
        "Propongo di piantare alberi in piazza Garibaldi.",
    );
    b.find("#files").upload(&upload);
    submit(&b, "/tickets/new");
    let url = b.current_url();
    assert!(url.contains("/tickets/") && url.contains("new=1"), "{url}");
    let new_ref = url
        .rsplit("/tickets/")
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert!(b.source().contains("Propongo di piantare alberi"));
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&new_ref));
    let shown = gw.show(&new_ref);
    assert_eq!(shown["ticket"]["channel"], "web");
    assert_eq!(shown["ticket"]["kind"], "suggerimento");
    assert_eq!(shown["attachments"][0]["size"], jpeg.len());

    // English, through the visible switch.
    follow(&b, "a[hreflang=\"en\"]");
    assert_eq!(b.find("html").attr("lang").as_deref(), Some("en"));
    check_page(&b, "ticket-en", false);
    b.goto(&format!("{base}/password/forgot"));
    check_page(&b, "forgot", false);
    // The remaining pages and states, in Italian again.
    follow(&b, "a[hreflang=\"it\"]");
    b.goto(&format!("{base}/verify/resend"));
    check_page(&b, "verify-resend", false);
    submit(&b, "/verify/resend");
    assert!(
        b.try_find(".error-summary").is_some(),
        "an empty address is named"
    );
    check_page(&b, "verify-resend-error", false);
    b.goto(&format!("{base}/password/reset?token=scaduto"));
    assert!(b.source().contains("Collegamento non valido"));
    check_page(&b, "expired-link", false);
    b.goto(&format!("{base}/tickets/2099-000001"));
    assert!(b.source().contains("Pagina non trovata"));
    check_page(&b, "not-found", false);
    // The password reset form, from its mailed link, with an error and then right.
    b.goto(&format!("{base}/password/forgot"));
    fill(&b, "#email", CITIZEN);
    submit(&b, "/password/forgot");
    check_page(&b, "forgot-sent", false);
    let mail = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("/password/reset?token=")
    });
    b.goto(&link_in(&mail, "/password/reset?token="));
    check_page(&b, "reset", false);
    fill(&b, "#password", "corta");
    submit(&b, "/password/reset");
    assert!(b.try_find("#password-error").is_some());
    check_page(&b, "reset-error", false);
    fill(&b, "#password", "nuova-password-sicura-7");
    fill(&b, "#password_confirm", "nuova-password-sicura-7");
    submit(&b, "/password/reset");
    assert!(
        b.current_url().contains("/login?reset=1"),
        "{}",
        b.current_url()
    );
}

#[test]
fn the_public_figures_page_shows_this_month_s_reports_in_a_table_and_a_chart_without_axe_violations(
) {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    for subject in ["Buca in via Roma", "Lampione spento"] {
        let (_, raw) = citizen_mail(CITIZEN, LAVORI, subject, "Da sistemare, grazie.");
        let out = gw.ingest("lavori-pubblici", &raw);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let base = format!("http://127.0.0.1:{}", gw.web_port);
    let b = Browser::start();
    b.goto(&format!("{base}/"));
    follow(&b, "a[href='/statistiche']");
    assert!(
        b.current_url().ends_with("/statistiche"),
        "{}",
        b.current_url()
    );
    assert_eq!(b.find("h1").text(), "Statistiche degli ultimi 12 mesi");
    // This month is the last row of the table of all offices: both reports, no answer yet.
    let rows = b.find_all("table tbody tr");
    assert!(rows.len() >= 12, "12 months per table");
    let this_month = rows[11].text();
    assert!(this_month.contains(" 2 0 "), "{this_month}");
    // The same figures as `ticketgate stats`: taken, resolved, reopened, open and overdue
    // now, median / p90 / max to the first answer, median to resolution, within the due date.
    let tables = b.find_all("table").len();
    assert_eq!(
        b.find_all("thead th").len(),
        13 * tables,
        "13 columns per table"
    );
    let mix = b.find("main").text();
    assert!(mix.contains("per tipo: segnalazione 2"), "{mix}");
    assert!(mix.contains("per canale: e-mail 2"), "{mix}");
    let desc = b.find("svg desc").text();
    assert!(
        desc.contains(": 2."),
        "the chart's text alternative: {desc}"
    );
    assert!(!b.source().contains(CITIZEN), "no personal data");
    assert!(b.find_all("script").is_empty());
    check_page(&b, "statistiche", true);
    follow(&b, "a[hreflang='en']");
    assert_eq!(b.find("h1").text(), "Figures of the last 12 months");
    check_page(&b, "statistiche (English)", false);

    // The comune turns it off: 404, and no link on the front page.
    let off = Gateway::start_edited(&stack, "", "", |t| {
        format!("{t}\n[web]\npublic_stats = false\n")
    });
    let base = format!("http://127.0.0.1:{}", off.web_port);
    let status = ureq::get(&format!("{base}/statistiche"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("answer")
        .status();
    assert_eq!(status.as_u16(), 404);
    b.goto(&format!("{base}/"));
    assert!(b.try_find("a[href='/statistiche']").is_none());
}
