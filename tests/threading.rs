//! Staff answer from their own mail client: threading, proven staff replies, commands,
//! reassignment, citizen follow-ups, strangers and bounces — end to end through a private
//! Dovecot + Postfix and the real `ticketgate serve`.

mod support;

use std::time::Duration;

use mail_parser::MimeHeaders;

use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);

/// A citizen report through the whole gateway: returns (reference, citizen's Message-ID,
/// the staff notification, the acknowledgment).
fn report(stack: &MailStack, subject: &str) -> (String, String, String, String) {
    let (id, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        subject,
        "C'è una buca profonda davanti al civico 12.",
    );
    send(stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(stack, CITIZEN, WAIT, |m| {
        m.contains(&id) && m.contains("[Ticket #")
    });
    let (ack_subject, _) = subject_and_text(&ack);
    let reference = ack_subject
        .split("#")
        .nth(1)
        .and_then(|r| r.get(..11))
        .expect("reference in the ack subject")
        .to_owned();
    let note = wait_for_mail(stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    (reference, id, note, ack)
}

/// Sends one more report and waits for its acknowledgment: the outbox has then sent
/// everything queued before it, so a mail that has not arrived was never sent.
fn outbox_has_run(stack: &MailStack) {
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Sonda", "ordine");
    send(stack, CITIZEN, &[LAVORI], &raw);
    wait_for_mail(stack, CITIZEN, WAIT, |m| m.contains("Sonda"));
}

fn show(gw: &Gateway, reference: &str) -> Value {
    gw.show(reference)
}

fn mails_for(stack: &MailStack, user: &str, needle: &str) -> Vec<String> {
    fetch_all(stack, user)
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains(needle))
        .collect()
}

#[test]
fn a_staff_reply_reaches_the_citizen_stripped_threaded_and_from_the_area_address() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, citizen_id, note, _) = report(&stack, "Buca in via Roma");
    let (to, reply) = reply_to_mail(
        &note,
        STAFF_LAVORI,
        "Buongiorno, abbiamo inviato una squadra.\r\nCordiali saluti",
    );
    assert_eq!(
        to, LAVORI,
        "the notification's Reply-To is the area address"
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &reply);

    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("abbiamo inviato una squadra")
    });
    let (subject, text) = subject_and_text(&answer);
    assert_eq!(
        text.replace("\r\n", "\n").trim(),
        "Buongiorno, abbiamo inviato una squadra.\nCordiali saluti"
    );
    assert!(!text.contains("ha scritto"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with('>')), "{text}");
    assert!(
        subject.contains(&format!("[Ticket #{reference}]")),
        "{subject}"
    );
    assert!(header(&answer, "From").unwrap_or_default().contains(LAVORI));
    assert!(
        !answer.contains(STAFF_LAVORI),
        "the staff member's address never reaches the citizen"
    );
    assert_eq!(
        header(&answer, "In-Reply-To").as_deref(),
        Some(format!("<{citizen_id}>").as_str())
    );

    let shown = show(&gw, &reference);
    assert_eq!(shown["ticket"]["status"], "answered");
    let ev = events(&shown);
    assert!(
        ev.contains(&"taken".to_owned()) && ev.contains(&"answered".to_owned()),
        "{ev:?}"
    );
    let kinds: Vec<&str> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"staff_reply") && kinds.contains(&"answer"),
        "{kinds:?}"
    );
    let roles: Vec<&str> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    for role in [
        "citizen",
        "ack",
        "notification",
        "staff verified",
        "forwarded answer",
    ] {
        assert!(roles.contains(&role), "{role} in {roles:?}");
    }
}

#[test]
fn a_citizen_follow_up_reaches_the_office_and_reopens_a_resolved_ticket() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, ack) = report(&stack, "Lampione");
    let (_, close) = reply_to_mail(&note, STAFF_LAVORI, "#chiudi Il lampione è stato riparato.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &close);
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("stato riparato"));
    gw.wait_for("ticket resolved", WAIT, || {
        (show(&gw, &reference)["ticket"]["status"] == "resolved").then_some(())
    });

    let (_, follow) = reply_to_mail(&ack, CITIZEN, "Veramente è ancora spento stasera.");
    send(&stack, CITIZEN, &[LAVORI], &follow);
    let staff_mail = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains("ancora spento"));
    assert!(subject_and_text(&staff_mail).0.contains(&reference));
    let shown = show(&gw, &reference);
    assert_eq!(shown["ticket"]["status"], "taken", "reopened");
    assert!(events(&shown).contains(&"reopened".to_owned()));
    assert_eq!(gw.tickets().len(), 1, "a follow-up is no new ticket");
}

#[test]
fn assign_moves_the_ticket_the_new_office_is_notified_and_replies_to_the_old_address_still_thread()
{
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, ack) = report(&stack, "Rifiuti abbandonati");
    let (_, assign) = reply_to_mail(&note, STAFF_LAVORI, "#assegna ambiente");
    send(&stack, STAFF_LAVORI, &[LAVORI], &assign);

    let new_note = wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| m.contains(&reference));
    let (_, new_text) = subject_and_text(&new_note);
    assert!(
        new_text.contains("buca profonda"),
        "the whole history goes to the new office: {new_text}"
    );
    let told = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("Ambiente") && m.contains(&reference) && !m.contains("Numero della pratica")
    });
    assert!(subject_and_text(&told)
        .1
        .contains("ora seguita dall'ufficio"));
    let shown = show(&gw, &reference);
    assert_eq!(shown["ticket"]["area"], "ambiente");
    assert!(events(&shown).contains(&"reassigned".to_owned()));

    // The old office can no longer speak for the ticket…
    let (_, late) = reply_to_mail(&note, STAFF_LAVORI, "Risposta tardiva del vecchio ufficio.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &late);
    wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).0.contains("Not forwarded")
    });
    // …the new one can, from the notification it got.
    let (_, answer) = reply_to_mail(&new_note, STAFF_AMBIENTE, "Passeremo domani a rimuoverli.");
    send(&stack, STAFF_AMBIENTE, &[AMBIENTE], &answer);
    let got = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("Passeremo domani"));
    assert!(header(&got, "From").unwrap_or_default().contains(AMBIENTE));
    // The citizen answers the acknowledgment that came from the old area's address.
    let (to, follow) = reply_to_mail(&ack, CITIZEN, "Grazie, aspetto.");
    assert_eq!(to, LAVORI);
    send(&stack, CITIZEN, &[LAVORI], &follow);
    wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| {
        m.contains("Grazie, aspetto")
    });
    assert_eq!(gw.tickets().len(), 1);
    assert!(mails_for(&stack, CITIZEN, "Risposta tardiva").is_empty());
}

#[test]
fn a_note_never_reaches_the_citizen_and_take_marks_the_ticket_taken() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Marciapiede");
    let (_, take) = reply_to_mail(
        &note,
        STAFF_LAVORI,
        "#presa\r\n#nota chiamare la ditta Rossi, preventivo 1200 euro",
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &take);
    let shown = gw.wait_for("note recorded", WAIT, || {
        let s = show(&gw, &reference);
        events(&s).contains(&"note".to_owned()).then_some(s)
    });
    assert_eq!(shown["ticket"]["status"], "taken");
    assert!(events(&shown).contains(&"taken".to_owned()));
    // Another report afterwards proves the outbox ran past the note; nothing about it left.
    outbox_has_run(&stack);
    assert!(
        mails_for(&stack, CITIZEN, "preventivo").is_empty(),
        "an internal note is never sent"
    );
}

#[test]
fn a_forged_staff_mail_with_the_right_from_and_tag_never_reaches_the_citizen() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, _, _) = report(&stack, "Semaforo");
    let forged = format!(
        "From: <{STAFF_LAVORI}>\r\nTo: <{LAVORI}>\r\nSubject: Re: [Ticket #{reference}] Semaforo\r\n\
         Message-ID: <{}>\r\n\r\nPaghi 50 euro sul conto IT00X per la riparazione.\r\n",
        unique_id()
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], forged.as_bytes());
    let told = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).0.contains("Not forwarded")
    });
    assert!(subject_and_text(&told).1.contains("Rispondi"));
    let shown = show(&gw, &reference);
    assert!(events(&shown).contains(&"staff_unverified".to_owned()));
    assert_eq!(shown["ticket"]["status"], "received");
    outbox_has_run(&stack);
    assert!(
        mails_for(&stack, CITIZEN, "IT00X").is_empty(),
        "the forged text never reaches the citizen"
    );
}

#[test]
fn a_stranger_writing_with_a_ticket_tag_gets_a_new_linked_ticket() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, _, _) = report(&stack, "Albero pericolante");
    let (_, raw) = citizen_mail(
        CITIZEN2,
        LAVORI,
        &format!("Re: [Ticket #{reference}] Albero pericolante"),
        "Anche io ho visto l'albero.",
    );
    send(&stack, CITIZEN2, &[LAVORI], &raw);
    let tickets = gw.wait_for("a second ticket", WAIT, || {
        let t = gw.tickets();
        (t.len() == 2).then_some(t)
    });
    let theirs = tickets
        .iter()
        .find(|t| t["citizen"] == CITIZEN2)
        .expect("stranger's ticket");
    let shown = show(&gw, theirs["ref"].as_str().expect("ref"));
    let linked = shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "linked")
        .cloned();
    assert_eq!(
        linked.expect("linked event")["details"]["ticket"],
        reference.as_str()
    );
    let original = show(&gw, &reference);
    assert_eq!(
        original["messages"]
            .as_array()
            .expect("m")
            .iter()
            .filter(|m| m["direction"] == "in")
            .count(),
        1
    );
}

#[test]
fn a_bounce_of_the_acknowledgment_marks_it_failed_and_tells_the_office() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, _, ack) = report(&stack, "Tombino");
    let ack_id = header(&ack, "Message-ID").expect("ack id");
    let dsn = dsn(LAVORI, CITIZEN, &ack_id);
    send(&stack, "", &[LAVORI], dsn.as_bytes());
    let told = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).0.contains("Undelivered")
    });
    assert!(subject_and_text(&told).1.contains(CITIZEN));
    let shown = show(&gw, &reference);
    let ack_row = shown["messages"]
        .as_array()
        .expect("m")
        .iter()
        .find(|m| m["kind"] == "ack")
        .cloned()
        .expect("ack");
    assert_eq!(ack_row["delivery"]["state"], "failed");
    assert!(ack_row["delivery"]["smtp_reply"]
        .as_str()
        .unwrap_or("")
        .contains("5.1.1"));
    assert_eq!(gw.tickets().len(), 1, "a bounce is never a ticket");
}

#[test]
fn an_unknown_command_is_reported_to_the_staff_and_nothing_reaches_the_citizen() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Panchina");
    let (_, bad) = reply_to_mail(
        &note,
        STAFF_LAVORI,
        "#assegna ufficio-inesistente\r\nTesto per il cittadino.",
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &bad);
    let told = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).0.contains("Command not executed")
    });
    assert!(subject_and_text(&told).1.contains("ufficio-inesistente"));
    let shown = show(&gw, &reference);
    assert_eq!(shown["ticket"]["area"], "lavori-pubblici");
    assert_eq!(shown["ticket"]["status"], "received");
    assert!(mails_for(&stack, CITIZEN, "Testo per il cittadino").is_empty());
}

#[test]
fn the_signed_link_in_a_notification_takes_the_ticket_only_by_post() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Fontana rotta");
    let (_, text) = subject_and_text(&note);
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/staff/take/"))
        .expect("a take link in the notification")
        .to_owned();
    let path = &link[link.find("/staff/take/").expect("path")..];
    // GET, as a mail scanner would: a page with a button, nothing changes.
    let (code, page) = gw.http("GET", path, None);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert_eq!(show(&gw, &reference)["ticket"]["status"], "received");
    // A tampered signature is refused.
    let forged = path.replace("sig=", "sig=0");
    assert_eq!(gw.http("GET", &forged, None).0, 403);
    // The button: POST the signed fields.
    let (base, query) = path.split_once('?').expect("query");
    let (code, page) = gw.http("POST", base, Some(query));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("presa in carico"), "{page}");
    let shown = show(&gw, &reference);
    assert_eq!(shown["ticket"]["status"], "taken");
    let taken = shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "taken")
        .cloned()
        .expect("taken event");
    assert_eq!(taken["actor"], STAFF_LAVORI);
    assert_eq!(taken["details"]["via"], "web");
    // Taking twice records one event.
    gw.http("POST", base, Some(query));
    assert_eq!(
        events(&show(&gw, &reference))
            .iter()
            .filter(|e| *e == "taken")
            .count(),
        1
    );
}

#[test]
fn a_staff_reply_failing_our_mta_authentication_is_not_forwarded() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.authserv_id = Some("mx.comune.test".to_owned());
    });
    let (reference, _, note, _) = report(&stack, "Parcheggio");
    let (_, reply) = reply_to_mail(&note, STAFF_LAVORI, "Risposta con DKIM fallito.");
    let mut forged =
        b"Authentication-Results: mx.comune.test; dkim=fail header.d=comune.test; spf=pass\r\n"
            .to_vec();
    forged.extend_from_slice(&reply);
    send(&stack, STAFF_LAVORI, &[LAVORI], &forged);
    let told = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).0.contains("Not forwarded")
    });
    assert!(subject_and_text(&told).1.contains("dkim=fail"));
    // The same reply with passing results is the office's answer.
    let (_, good) = reply_to_mail(
        &note,
        STAFF_LAVORI,
        "#tipo reclamo\r\nRisposta autenticata.",
    );
    let mut ok =
        b"Authentication-Results: mx.comune.test; dkim=pass; spf=pass; dmarc=pass\r\n".to_vec();
    ok.extend_from_slice(&good);
    send(&stack, STAFF_LAVORI, &[LAVORI], &ok);
    wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("Risposta autenticata")
    });
    assert!(mails_for(&stack, CITIZEN, "DKIM fallito").is_empty());
    let shown = show(&gw, &reference);
    assert_eq!(shown["ticket"]["kind"], "reclamo", "#tipo changed the kind");
    assert!(events(&shown).contains(&"kind_changed".to_owned()));
}

#[test]
fn a_read_receipt_for_our_answer_is_recorded_and_never_answered() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, _, ack) = report(&stack, "Cestino pieno");
    let ack_id = header(&ack, "Message-ID").expect("ack id");
    let mdn = format!(
        "From: <{CITIZEN}>\r\nTo: <{LAVORI}>\r\nSubject: Letto: [Ticket #{reference}] Cestino pieno\r\n\
         Message-ID: <{}>\r\nIn-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nIl messaggio è stato letto.\r\n\
         --R\r\nContent-Type: message/disposition-notification\r\n\r\n\
         Final-Recipient: rfc822; {CITIZEN}\r\nOriginal-Message-ID: {ack_id}\r\n\
         Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--R--\r\n",
        unique_id()
    );
    send(&stack, CITIZEN, &[LAVORI], mdn.as_bytes());
    let shown = gw.wait_for("receipt recorded", WAIT, || {
        let s = show(&gw, &reference);
        events(&s).contains(&"receipt".to_owned()).then_some(s)
    });
    assert_eq!(
        shown["ticket"]["status"], "received",
        "a receipt changes nothing"
    );
    assert_eq!(gw.tickets().len(), 1);
    let roles: Vec<&str> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert!(roles.contains(&"receipt"), "{roles:?}");
    // No notification to staff about it either: only the first one is there.
    assert_eq!(mails_for(&stack, STAFF_LAVORI, &reference).len(), 1);
}

#[test]
fn staff_attachments_reach_the_citizen_with_the_answer() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Buca riparata");
    let id = header(&note, "Message-ID").expect("notification id");
    let raw = format!(
        "From: <{STAFF_LAVORI}>\r\nTo: <{LAVORI}>\r\nSubject: Re: [Ticket #{reference}] Buca riparata\r\n\
         In-Reply-To: {id}\r\nReferences: {id}\r\nMessage-ID: <{}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"S\"\r\n\r\n\
         --S\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nEcco la foto del lavoro finito.\r\n\
         --S\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"lavoro.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==\r\n--S--\r\n",
        unique_id()
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], raw.as_bytes());
    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("lavoro.png"));
    let parsed = mail_parser::MessageParser::default()
        .parse(answer.as_bytes())
        .expect("answer parses");
    let att = parsed.attachments().next().expect("an attachment");
    assert_eq!(att.attachment_name(), Some("lavoro.png"));
    assert_eq!(att.contents().len(), 70);
    let shown = show(&gw, &reference);
    let files: Vec<&str> = shown["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter_map(|a| a["filename"].as_str())
        .collect();
    assert_eq!(
        files,
        vec!["lavoro.png", "lavoro.png"],
        "received from staff, sent to the citizen"
    );
}

/// The decoded text of every mail in `user`'s mailbox (raw mail may be base64 or
/// quoted-printable, where a substring search finds nothing).
fn texts_for(stack: &MailStack, user: &str) -> Vec<String> {
    fetch_all(stack, user)
        .iter()
        .map(|m| subject_and_text(&String::from_utf8_lossy(m)).1)
        .collect()
}

/// A reply to `original` from `from` whose whole body is `body` (threaded like a mail client's).
fn reply_with_body(original: &str, from: &str, body: &str) -> Vec<u8> {
    let id = header(original, "Message-ID").expect("original has a Message-ID");
    let to = header(original, "Reply-To")
        .or_else(|| header(original, "From"))
        .map(|v| address_in(&v))
        .expect("original has a sender");
    let (subject, _) = subject_and_text(original);
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Re: {subject}\r\nIn-Reply-To: {id}\r\n\
         References: {id}\r\nMessage-ID: <{}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        unique_id()
    )
    .into_bytes()
}

#[test]
fn a_reply_that_is_only_the_quoted_notification_is_held_and_the_staff_member_is_told() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Tombino rotto");
    assert!(
        note.contains("/staff/take/"),
        "the notification has a take link"
    );
    // Sent by mistake: nothing but the client's attribution and the `>` quote.
    let (_, reply) = reply_to_mail(&note, STAFF_LAVORI, "");
    send(&stack, STAFF_LAVORI, &[LAVORI], &reply);

    let told = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        subject_and_text(m).0.contains("Not sent")
    });
    assert!(
        subject_and_text(&told)
            .1
            .contains("al cittadino non è stato inviato nulla"),
        "{told}"
    );
    let shown = show(&gw, &reference);
    assert!(
        events(&shown).contains(&"answer_held".to_owned()),
        "{shown}"
    );
    assert!(!events(&shown).contains(&"answered".to_owned()));
    // The office sees it on the staff page too, opened by the signed link of the notification.
    let (_, text) = subject_and_text(&note);
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/staff/take/"))
        .expect("a take link in the notification");
    let path = &link[link.find("/staff/take/").expect("path")..];
    let (code, page) = gw.http("GET", path, None);
    assert_eq!(code, 200, "{page}");
    for said in [
        "Risposta non inviata al cittadino",
        "Reply not sent to the citizen",
        STAFF_LAVORI,
        "the reply contained only the quoted notification",
    ] {
        assert!(
            page.contains(said),
            "{said:?} not on the staff page: {page}"
        );
    }
    outbox_has_run(&stack);
    for ours in [
        "/staff/take/",
        "Per rispondere al cittadino",
        "Nuova pratica",
    ] {
        assert!(
            !texts_for(&stack, CITIZEN).iter().any(|t| t.contains(ours)),
            "{ours:?} reached the citizen"
        );
    }
}

#[test]
fn an_outlook_style_reply_sends_only_the_new_text_and_never_the_take_link() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Panchina divelta");
    let (subject, text) = subject_and_text(&note);
    // Outlook quotes without `>`, under its header block.
    let body = format!(
        "La panchina sarà sostituita entro venerdì.\r\n\r\n\
         -----Original Message-----\r\nDa: Lavori pubblici <{LAVORI}>\r\n\
         Inviato: lunedì 7 dicembre 2026 10:00\r\nA: {STAFF_LAVORI}\r\nOggetto: {subject}\r\n\r\n{}",
        text.replace('\n', "\r\n")
    );
    send(
        &stack,
        STAFF_LAVORI,
        &[LAVORI],
        &reply_with_body(&note, STAFF_LAVORI, &body),
    );
    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("sostituita entro"));
    assert_eq!(
        subject_and_text(&answer).1.replace("\r\n", "\n").trim(),
        "La panchina sarà sostituita entro venerdì."
    );
    assert!(!answer.contains("/staff/take/"));
    assert!(events(&show(&gw, &reference)).contains(&"answered".to_owned()));

    // The same from an Outlook set to German: a header block the quote stripper cannot read.
    let body = format!(
        "Ci scusiamo per il ritardo.\r\n\r\n\
         Von: Lavori pubblici <{LAVORI}>\r\nGesendet: Montag, 7. Dezember 2026 10:00\r\n\
         An: {STAFF_LAVORI}\r\nBetreff: {subject}\r\n\r\n{}",
        text.replace('\n', "\r\n")
    );
    send(
        &stack,
        STAFF_LAVORI,
        &[LAVORI],
        &reply_with_body(&note, STAFF_LAVORI, &body),
    );
    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("per il ritardo"));
    assert_eq!(
        subject_and_text(&answer).1.replace("\r\n", "\n").trim(),
        "Ci scusiamo per il ritardo."
    );
    assert!(!texts_for(&stack, CITIZEN)
        .iter()
        .any(|t| t.contains("/staff/take/")));
}

#[test]
fn after_a_reassignment_with_a_note_a_reply_quoting_the_history_never_carries_the_note() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, _, note, _) = report(&stack, "Alberi pericolanti");
    let (_, with_note) = reply_to_mail(
        &note,
        STAFF_LAVORI,
        "#nota il geometra Bianchi dice che il preventivo interno è di 4800 euro",
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &with_note);
    gw.wait_for("note recorded", WAIT, || {
        events(&show(&gw, &reference))
            .contains(&"note".to_owned())
            .then_some(())
    });
    let (_, assign) = reply_to_mail(&note, STAFF_LAVORI, "#assegna ambiente");
    send(&stack, STAFF_LAVORI, &[LAVORI], &assign);
    let history = wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| m.contains(&reference));
    let (_, history_text) = subject_and_text(&history);
    assert!(
        history_text.contains("preventivo interno"),
        "the new office sees the note: {history_text}"
    );

    // An HTML-only reply, converted to text: no `>` marks, under an attribution line the
    // quote stripper does not know (a French client).
    let body = format!(
        "Passeremo domani con il cestello.\r\n\r\n\
         Le lun. 7 déc. 2026 à 10:00, Ambiente a écrit :\r\n\r\n{}",
        history_text.replace('\n', "\r\n")
    );
    send(
        &stack,
        STAFF_AMBIENTE,
        &[AMBIENTE],
        &reply_with_body(&history, STAFF_AMBIENTE, &body),
    );
    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("cestello"));
    assert_eq!(
        subject_and_text(&answer).1.replace("\r\n", "\n").trim(),
        "Passeremo domani con il cestello."
    );
    outbox_has_run(&stack);
    for internal in [
        "preventivo interno",
        "4800 euro",
        "/staff/take/",
        "nota interna",
    ] {
        assert!(
            !texts_for(&stack, CITIZEN)
                .iter()
                .any(|t| t.contains(internal)),
            "{internal:?} reached the citizen"
        );
    }
}
