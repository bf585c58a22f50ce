//! Each office's daily digest (issue 14) through a real `ticketgate serve` with its private
//! Dovecot and Postfix: tickets in several states — waiting, taken, answered, overdue on a
//! later `--as-of` day — and `ticketgate digest --send`; each staff mailbox gets one digest
//! listing exactly its area's open tickets, each with a staff page link that opens; a
//! second run the same day sends nothing; a reply to the digest is no ticket; on PostgreSQL
//! two runs at once send one digest.

mod support;

use std::time::Duration;

use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use ticketgate::domain::calendar::is_working_day;
use ticketgate::domain::Holidays;

const WAIT: Duration = Duration::from_secs(30);
const DIGEST_SUBJECT: &str = "Riepilogo pratiche";

/// A citizen report to `area_addr`; returns its reference and the staff notification.
fn report(stack: &MailStack, area_addr: &str, staff: &str, subject: &str) -> (String, String) {
    let (id, raw) = citizen_mail(CITIZEN, area_addr, subject, "Vi segnalo il problema.");
    send(stack, CITIZEN, &[area_addr], &raw);
    let ack = wait_for_mail(stack, CITIZEN, WAIT, |m| {
        m.contains(&id) && m.contains("[Ticket #")
    });
    let (ack_subject, _) = subject_and_text(&ack);
    let reference = ack_subject
        .split('#')
        .nth(1)
        .and_then(|r| r.get(..11))
        .expect("reference in the ack subject")
        .to_owned();
    let note = wait_for_mail(stack, staff, WAIT, |m| m.contains(&reference));
    (reference, note)
}

/// The digests in `user`'s mailbox: (plain text, HTML) of each.
fn digests(stack: &MailStack, user: &str) -> Vec<(String, String)> {
    fetch_all(stack, user)
        .iter()
        .filter_map(|raw| {
            let msg = mail_parser::MessageParser::default().parse(raw)?;
            msg.subject()?.contains(DIGEST_SUBJECT).then(|| {
                (
                    msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                    msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// The references of `text` (a digest's plain text): the `YYYY-NNNNNN` starting each line.
fn references(text: &str) -> Vec<String> {
    let mut refs: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|l| l.get(..11))
        .map(str::to_owned)
        .collect();
    refs.sort();
    refs
}

/// The lines of the digest's group whose heading starts with `heading`.
fn group(text: &str, heading: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with(heading) {
            inside = true;
        } else if inside && !l.is_empty() && !l.starts_with(' ') && !l.starts_with("- ") {
            inside = false;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The staff page path of `reference` in `text`, as linked for `staff`.
fn staff_link(text: &str, base: &str, reference: &str) -> String {
    let start = format!("{base}/staff/tickets/{reference}?");
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no staff link for {reference} in:\n{text}"));
    let rest = text.get(at + base.len()..).expect("link");
    rest.split_whitespace().next().expect("link").to_owned()
}

/// The first working day (the gateway's calendar) at least `days` days from today.
fn working_day_after(days: i64) -> time::Date {
    let mut d = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    while !is_working_day(d, &Holidays::none()) {
        d = d.next_day().expect("date");
    }
    d
}

/// Sends one more report and waits for its acknowledgment: the outbox has then sent what
/// was queued before it.
fn outbox_has_run(stack: &MailStack) {
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, "Sonda", "ordine");
    send(stack, CITIZEN, &[LAVORI], &raw);
    wait_for_mail(stack, CITIZEN, WAIT, |m| m.contains(&id));
}

#[test]
fn each_office_gets_one_digest_of_exactly_its_open_tickets_with_links_and_only_once_a_day() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        // Lavori pubblici answers within 2 working days: a week later its unanswered tickets
        // are overdue; Ambiente's 20 days are not over.
        c.area("lavori-pubblici").response_days = 2;
        // The scheduler of `serve` stays out of the way: this test runs the command.
        c.digest = false;
    });
    let base = format!("http://127.0.0.1:{}", gw.web_port);

    let (waiting, _) = report(&stack, LAVORI, STAFF_LAVORI, "Buca in via Roma");
    let (answered, note) = report(&stack, LAVORI, STAFF_LAVORI, "Lampione spento");
    let (_, reply) = reply_to_mail(&note, STAFF_LAVORI, "Lo ripariamo domani.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &reply);
    let (closed, note) = report(&stack, LAVORI, STAFF_LAVORI, "Panchina rotta");
    let (_, reply) = reply_to_mail(&note, STAFF_LAVORI, "#chiudi\r\nRiparata.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &reply);
    let (new, _) = report(&stack, AMBIENTE, STAFF_AMBIENTE, "Rifiuti abbandonati");
    let (taken, note) = report(&stack, AMBIENTE, STAFF_AMBIENTE, "Alberi da potare");
    let (_, reply) = reply_to_mail(&note, STAFF_AMBIENTE, "#presa");
    send(&stack, STAFF_AMBIENTE, &[AMBIENTE], &reply);
    gw.wait_for("the states", WAIT, || {
        let status = |r: &str| gw.show(r)["ticket"]["status"].as_str().map(str::to_owned);
        (status(&answered).as_deref() == Some("answered")
            && status(&closed).as_deref() == Some("resolved")
            && status(&taken).as_deref() == Some("taken"))
        .then_some(())
    });

    let day = working_day_after(7);
    let as_of = format!("{day} 09:00");
    let printed = gw.cli(&["digest", "--area", "ambiente", "--as-of", &as_of]);
    assert!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(
        printed.contains(&new) && printed.contains(&taken),
        "{printed}"
    );
    assert!(
        !printed.contains(&waiting),
        "only the area asked for: {printed}"
    );
    assert!(
        digests(&stack, STAFF_AMBIENTE).is_empty(),
        "printing sends nothing"
    );

    let sent = gw.cli(&["digest", "--as-of", &as_of, "--send"]);
    assert!(sent.status.success(), "{sent:?}");
    let lavori = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(DIGEST_SUBJECT));
    wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| m.contains(DIGEST_SUBJECT));
    assert_eq!(
        header(&lavori, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );

    let (text, html) = digests(&stack, STAFF_LAVORI).remove(0);
    let mut expected = vec![waiting.clone(), answered.clone()];
    expected.sort();
    assert_eq!(references(&text), expected, "{text}");
    assert!(
        !text.contains(&closed),
        "a resolved ticket is not listed: {text}"
    );
    let overdue = group(&text, "Scadute");
    assert!(
        overdue.contains(&waiting) && overdue.contains("SCADUTA DA"),
        "{text}"
    );
    assert!(group(&text, "Con risposta").contains(&answered), "{text}");
    assert!(
        text.contains("Anna Verdi") && !text.contains(CITIZEN),
        "{text}"
    );
    assert!(
        html.contains("<a href=") && html.contains(&waiting),
        "{html}"
    );
    for reference in [&waiting, &answered] {
        let (status, page) = gw.http("GET", &staff_link(&text, &base, reference), None);
        assert_eq!(
            status, 200,
            "the digest's link opens the staff page: {page}"
        );
        assert!(page.contains(reference.as_str()));
    }

    let (text, _) = digests(&stack, STAFF_AMBIENTE).remove(0);
    let mut expected = vec![new.clone(), taken.clone()];
    expected.sort();
    assert_eq!(references(&text), expected, "{text}");
    assert!(group(&text, "Nuove").contains(&new), "{text}");
    assert!(group(&text, "Prese in carico").contains(&taken), "{text}");
    assert!(!text.contains("Scadute"), "{text}");
    assert!(staff_link(&text, &base, &new).contains("staff=giulia.bianchi"));

    // The same day again (a restart at 08:31, an operator): nothing more.
    let again = gw.cli(&["digest", "--as-of", &format!("{day} 10:00"), "--send"]);
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already sent"));
    outbox_has_run(&stack);
    assert_eq!(digests(&stack, STAFF_LAVORI).len(), 1);
    assert_eq!(digests(&stack, STAFF_AMBIENTE).len(), 1);

    // Staff answering the digest itself: kept aside for an operator, never a ticket.
    let tickets = gw.tickets().len();
    let (to, reply) = reply_to_mail(&lavori, STAFF_LAVORI, "Grazie del riepilogo.");
    assert_eq!(to, LAVORI);
    send(&stack, STAFF_LAVORI, &[LAVORI], &reply);
    let kept = gw.wait_for("the reply quarantined", WAIT, || {
        let q = gw.quarantine();
        (!q.is_empty()).then_some(q)
    });
    assert!(kept[0].to_string().contains("daily digest"), "{kept:?}");
    assert_eq!(gw.tickets().len(), tickets);

    if !test_backend_is_postgres() {
        return;
    }
    // The next working day, two runs at once on PostgreSQL: one digest per office.
    let next = working_day_after((day - time::OffsetDateTime::now_utc().date()).whole_days() + 1);
    let as_of = format!("{next} 08:30");
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| gw.cli(&["digest", "--as-of", &as_of, "--send"])))
            .collect();
        for r in runs {
            let out = r.join().expect("run");
            assert!(out.status.success(), "{out:?}");
        }
    });
    wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| {
        m.contains(DIGEST_SUBJECT)
            && m.contains(&format!(
                "del {:02}/{:02}/{}",
                next.day(),
                u8::from(next.month()),
                next.year()
            ))
    });
    outbox_has_run(&stack);
    let ambiente = digests(&stack, STAFF_AMBIENTE);
    assert_eq!(ambiente.len(), 2, "one digest a day");
    assert_eq!(digests(&stack, STAFF_LAVORI).len(), 2, "one digest a day");
    // Yesterday's new ticket, still not taken, is now waiting.
    let latest = ambiente
        .iter()
        .map(|(t, _)| t)
        .find(|t| group(t, "In attesa").contains(&new))
        .unwrap_or_else(|| panic!("{ambiente:?}"));
    assert!(!group(latest, "Nuove").contains(&new));
}
