//! Reports received by phone, at the counter or by letter, registered by staff with
//! `#registra` (issue 13, point 5), end to end through real servers: the staff member's mail
//! in over SMTP (Postfix → Dovecot LMTP), the real `ticketgate serve` polling Dovecot, the
//! acknowledgment, the staff confirmation and the notifications read back over IMAP.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use support::web::{signed_in_citizen, Client};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "una-password-lunga-42";

/// The citizen makes a web account for `email`, confirms it from the mailed link and signs
/// in, as tests/web.rs does.
fn signed_in(stack: &MailStack, gw: &Gateway, email: &str) -> Client {
    signed_in_citizen(stack, gw, email, "VRDNNA85T50A562", PASSWORD)
}

/// The comune's MTA, as the gateway knows it: registrations need its `dmarc=pass`.
const AUTHSERV_ID: &str = "mx.comune.test";

/// A gateway that trusts the Authentication-Results of [`AUTHSERV_ID`].
fn start(stack: &MailStack) -> Gateway {
    Gateway::start_configured(stack, |c| c.authserv_id = Some(AUTHSERV_ID.to_owned()))
}

/// What the comune's MTA prepends to a mail whose From domain passed DMARC.
fn dmarc_pass(from: &str) -> String {
    let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
    format!("Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}\r\n")
}

/// A new mail (not a reply) from `from` to the office, its body as given, with the comune's
/// MTA's DMARC pass for the From domain on top.
fn new_mail(from: &str, subject: &str, body: &str) -> Vec<u8> {
    let id = unique_id();
    let pass = dmarc_pass(from);
    format!(
        "{pass}From: <{from}>\r\nTo: <{LAVORI}>\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The ticket whose subject is `subject`, once there.
fn ticket_with_subject(gw: &Gateway, subject: &str) -> Value {
    gw.wait_for(&format!("a ticket {subject:?}"), WAIT, || {
        gw.tickets().into_iter().find(|t| t["subject"] == subject)
    })
}

/// True when the decoded subject or text of `m` contains every one of `what`.
fn says(m: &str, what: &[&str]) -> bool {
    let (subject, text) = subject_and_text(m);
    what.iter().all(|w| subject.contains(w) || text.contains(w))
}

/// The details of the ticket's `received` event.
fn received(shown: &Value) -> Value {
    shown["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "received"))
        .map(|e| e["details"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn a_report_registered_by_phone_or_letter_is_the_citizens_ticket_acknowledged_to_them_and_confirmed_to_staff(
) {
    let stack = MailStack::start();
    let gw = start(&stack);

    // By phone, with the citizen's address.
    let raw = new_mail(
        STAFF_LAVORI,
        "Buca in via Roma",
        &format!(
            "#registra telefono {CITIZEN} Anna Verdi\r\n\r\nBuca profonda davanti al civico 3."
        ),
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &raw);
    let t = ticket_with_subject(&gw, "Buca in via Roma");
    let reference = t["ref"].as_str().expect("ref").to_owned();
    assert_eq!(t["citizen"], CITIZEN, "{t}");
    assert_eq!(t["citizen_name"], "Anna Verdi", "{t}");
    assert_eq!(t["channel"], "phone", "{t}");
    assert_eq!(t["text"], "Buca profonda davanti al civico 3.", "{t}");
    let shown = gw.show(&reference);
    let details = received(&shown);
    assert_eq!(details["registered_by"], STAFF_LAVORI, "{shown}");

    // The citizen gets the usual acknowledgment, greeted by name, not threaded under the
    // staff member's mail they never saw.
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&reference));
    let (subject, text) = subject_and_text(&ack);
    assert!(subject.contains(&reference), "{subject}");
    assert!(text.contains("Gentile Anna Verdi"), "{text}");
    assert!(
        text.contains(&format!("Numero della pratica: {reference}")),
        "{text}"
    );
    assert_eq!(header(&ack, "In-Reply-To"), None);

    // The staff member gets the reference, and the office the usual notification.
    let confirmation = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Pratica registrata", &reference])
    });
    let (_, text) = subject_and_text(&confirmation);
    assert!(
        text.contains("telefono") && text.contains("Anna Verdi"),
        "{text}"
    );
    assert!(text.contains("conferma di ricezione"), "{text}");
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Nuova pratica", &reference])
    });
    let (_, text) = subject_and_text(&note);
    assert!(text.contains("Buca profonda"), "{text}");
    assert!(text.contains("registrata da"), "{text}");

    // By letter, the scanned letter attached: kept on the ticket, sent with nothing lost.
    let pdf: Vec<u8> = b"%PDF-1.4\n"
        .iter()
        .copied()
        .chain((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8))
        .collect();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&pdf))
    };
    let id = unique_id();
    let b64 = support::base64::encode_lines(&pdf);
    let pass = dmarc_pass(STAFF_LAVORI);
    let raw = format!(
        "{pass}From: <{STAFF_LAVORI}>\r\nTo: <{LAVORI}>\r\nSubject: Lettera sul parco\r\n\
         Message-ID: <{id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
         --XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         #record letter {CITIZEN2} Luca Neri\r\n\r\nVedi la lettera allegata.\r\n\
         --XYZ\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"lettera.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--XYZ--\r\n"
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], raw.as_bytes());
    let t = ticket_with_subject(&gw, "Lettera sul parco");
    let letter = t["ref"].as_str().expect("ref").to_owned();
    assert_eq!(t["channel"], "letter", "{t}");
    assert_eq!(t["citizen"], CITIZEN2, "{t}");
    let shown = gw.show(&letter);
    let atts = shown["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 1, "{shown}");
    assert_eq!(atts[0]["filename"], "lettera.pdf");
    assert_eq!(atts[0]["content_type"], "application/pdf");
    assert_eq!(atts[0]["sha256"], sha.as_str());
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains(&letter));
    wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Pratica registrata", &letter])
    });

    // The citizen's later web account sees the phone report like any ticket of theirs, and
    // how it reached the office; not the letter of someone else.
    let client = signed_in(&stack, &gw, CITIZEN);
    let list = client.get("/tickets");
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&reference), "{}", list.body);
    assert!(!list.body.contains(&letter), "{}", list.body);
    let detail = client.get(&format!("/tickets/{reference}"));
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("Telefono"), "{}", detail.body);
    assert!(
        detail.body.contains("Buca profonda davanti al civico 3."),
        "{}",
        detail.body
    );
}

#[test]
fn a_counter_report_without_an_address_mails_no_citizen_and_anyone_elses_registra_is_an_ordinary_report(
) {
    let stack = MailStack::start();
    let gw = start(&stack);

    // At the counter, no address: the name is kept, nothing is ever queued for the citizen.
    let raw = new_mail(
        STAFF_LAVORI,
        "Lampione spento",
        "#registra sportello - Mario Bianchi\r\n\r\nIl lampione di via Po è spento.",
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &raw);
    let t = ticket_with_subject(&gw, "Lampione spento");
    let reference = t["ref"].as_str().expect("ref").to_owned();
    assert_eq!(t["channel"], "counter", "{t}");
    assert_eq!(t["citizen_name"], "Mario Bianchi", "{t}");
    assert!(
        t["citizen"].as_str().unwrap_or("").ends_with(".invalid"),
        "{t}"
    );
    let confirmation = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Pratica registrata", &reference])
    });
    assert!(
        subject_and_text(&confirmation)
            .1
            .contains("non ha dato un indirizzo"),
        "{confirmation}"
    );
    let shown = gw.show(&reference);
    assert_eq!(received(&shown)["registered_by"], STAFF_LAVORI, "{shown}");
    assert!(
        events(&shown).contains(&"ack_withheld".to_owned()),
        "{shown}"
    );

    // A staff answer is recorded, not sent, and its author is told so.
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Nuova pratica", &reference])
    });
    let (_, answer) = reply_to_mail(&note, STAFF_LAVORI, "Sostituito il lampione oggi.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &answer);
    wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Risposta non inviata", &reference])
    });
    let shown = gw.show(&reference);
    let messages = shown["messages"].as_array().expect("messages");
    let recorded = messages
        .iter()
        .find(|m| m["direction"] == "out" && m["kind"] == "answer")
        .unwrap_or_else(|| panic!("answer not recorded: {shown}"));
    assert!(recorded["text"]
        .as_str()
        .unwrap_or("")
        .contains("Sostituito il lampione"));
    assert_eq!(recorded["delivery"], Value::Null, "{recorded}");
    assert_eq!(recorded["to"], "", "{recorded}");
    for m in messages.iter().filter(|m| m["direction"] == "out") {
        assert!(
            !m["to"].as_str().unwrap_or("").contains(".invalid"),
            "mail queued to the made-up address: {m}"
        );
    }
    assert_eq!(shown["ticket"]["status"], "answered", "{shown}");

    // A citizen's `#registra` is their own ordinary report, the line kept in its text.
    let raw = new_mail(
        CITIZEN,
        "Anche io registro",
        &format!("#registra telefono {CITIZEN2} Luca Neri\r\n\r\nUn albero caduto."),
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let t = ticket_with_subject(&gw, "Anche io registro");
    assert_eq!(t["citizen"], CITIZEN, "{t}");
    assert_eq!(t["channel"], "email", "{t}");
    assert!(
        t["text"]
            .as_str()
            .unwrap_or("")
            .contains("#registra telefono"),
        "{t}"
    );
    wait_for_mail(&stack, CITIZEN, WAIT, |m| says(m, &["Anche io registro"]));
    let shown = gw.show(t["ref"].as_str().expect("ref"));
    assert_eq!(received(&shown).get("registered_by"), None, "{shown}");

    // The office's own staff without the comune's MTA vouching for their From (no DMARC
    // result: a forged From looks exactly so): no registration, an ordinary report.
    let unproven = String::from_utf8(new_mail(
        STAFF_LAVORI,
        "Registrazione senza prova",
        &format!("#registra telefono {CITIZEN2} Luca Neri\r\n\r\nUn ramo caduto."),
    ))
    .expect("utf-8");
    let unproven = unproven
        .split_once("\r\n")
        .map(|(_, rest)| rest.to_owned())
        .expect("the pass header");
    send(&stack, STAFF_LAVORI, &[LAVORI], unproven.as_bytes());
    let t = ticket_with_subject(&gw, "Registrazione senza prova");
    assert_eq!(t["citizen"], STAFF_LAVORI, "{t}");
    assert_eq!(t["channel"], "email", "{t}");
    assert!(
        t["text"]
            .as_str()
            .unwrap_or("")
            .contains("#registra telefono"),
        "{t}"
    );

    // A staff member's line written wrong: no ticket, the mail kept, the problem named.
    let raw = new_mail(
        STAFF_LAVORI,
        "Segnalazione via fax",
        "#registra fax - Mario Bianchi\r\n\r\nTesto.",
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &raw);
    let refused = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        says(m, &["Pratica NON registrata"])
    });
    assert!(
        subject_and_text(&refused).1.contains("\"fax\""),
        "{refused}"
    );
    let kept = gw.quarantine();
    assert!(
        kept.iter().any(|q| q["reason"]
            .as_str()
            .unwrap_or("")
            .contains("#registra line refused")),
        "{kept:?}"
    );
    assert!(gw
        .tickets()
        .iter()
        .all(|t| t["subject"] != "Segnalazione via fax"));
    // Nothing was ever handed to the MTA for a made-up address.
    assert!(fetch_all(&stack, CITIZEN2).is_empty());
}
