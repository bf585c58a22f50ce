//! Who is who (docs/design-notes.md, "Who is who"): the citizen is the `From` address, an address
//! from mail is one valid addr-spec or nothing, and no mail makes the comune write to people
//! who never wrote to it — end to end through a private Dovecot + Postfix and the real
//! `ticketgate serve`. Hostile header bytes go in by IMAP APPEND, exactly as an Internet sender
//! writes them (the private Postfix rewrites some headers of mail from loopback).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);
const ATTACKER: &str = "mallory@attacker.test";

/// `n` stranger addresses, none of whom ever wrote to the comune.
fn strangers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("victim{i}@strangers.test"))
        .collect()
}

/// A mail as an Internet sender writes it, with any header lines given verbatim.
fn hostile_mail(headers: &str, to: &str, subject: &str, body: &str) -> (String, Vec<u8>) {
    let id = unique_id();
    let raw = format!(
        "{headers}To: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    );
    (id, raw.into_bytes())
}

fn mails_for(stack: &MailStack, user: &str, needle: &str) -> Vec<String> {
    fetch_all(stack, user)
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains(needle))
        .collect()
}

/// Sends one more report and waits for its acknowledgment: the outbox has then sent what
/// was queued before it, so a mail that has not arrived was never sent.
fn outbox_has_run(stack: &MailStack, probe: &str) {
    let (_, raw) = citizen_mail(CITIZEN2, AMBIENTE, probe, "ordine");
    send(stack, CITIZEN2, &[AMBIENTE], &raw);
    wait_for_mail(stack, CITIZEN2, WAIT, |m| m.contains(probe));
}

/// A citizen report through the whole gateway: (reference, staff notification).
fn report(stack: &MailStack, subject: &str) -> (String, String) {
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, subject, "Buca profonda al civico 12.");
    send(stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(stack, CITIZEN, WAIT, |m| {
        m.contains(&id) && m.contains("[Ticket #")
    });
    let reference = subject_and_text(&ack)
        .0
        .split('#')
        .nth(1)
        .and_then(|r| r.get(..11))
        .expect("reference in the ack subject")
        .to_owned();
    let note = wait_for_mail(stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    (reference, note)
}

fn inbound_count(shown: &Value) -> usize {
    shown["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["direction"] == "in").count())
        .unwrap_or(0)
}

#[test]
fn a_reply_to_listing_many_addresses_sends_nothing_to_any_of_them() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let victims = strangers(20);
    let list = victims.join(",");
    let (_, raw) = hostile_mail(
        &format!("From: Dear friend <{ATTACKER}>\r\nReply-To: <{list}>\r\n"),
        LAVORI,
        "Claim your refund at http://refund.attacker.test",
        "Dear friend, claim your refund at http://refund.attacker.test",
    );
    append(&stack, LAVORI, &raw);
    // The ticket is made, and acknowledged to its From only.
    let ack = wait_for_mail(&stack, ATTACKER, WAIT, |m| m.contains("[Ticket #"));
    assert_eq!(
        header(&ack, "To").map(|t| address_in(&t)).as_deref(),
        Some(ATTACKER)
    );
    let tickets = gw.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["citizen"], ATTACKER);
    outbox_has_run(&stack, "Sonda uno");
    for victim in &victims {
        assert!(
            fetch_all(&stack, victim).is_empty(),
            "{victim} got mail from the comune"
        );
    }
    // The outbox holds nothing for them either.
    let shown = gw.show(tickets[0]["ref"].as_str().expect("ref"));
    for m in shown["messages"].as_array().expect("messages") {
        let to = m["to"].as_str().unwrap_or("");
        assert!(!to.contains("strangers.test"), "a message to {to}");
    }

    // A From that is a list is no sender at all: kept for an operator, nobody mailed.
    let (_, raw) = hostile_mail(
        &format!("From: <{list}>\r\n"),
        LAVORI,
        "Second try",
        "Dear friend",
    );
    append(&stack, LAVORI, &raw);
    let q = gw.wait_for("the list-From mail quarantined", WAIT, || {
        let q = gw.quarantine();
        (!q.is_empty()).then_some(q)
    });
    assert!(q[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("no usable sender"));
    outbox_has_run(&stack, "Sonda due");
    for victim in &victims {
        assert!(fetch_all(&stack, victim).is_empty(), "{victim} got mail");
    }
}

#[test]
fn the_acknowledgment_limit_counts_the_real_recipient_whatever_the_reply_to() {
    let stack = MailStack::start();
    let gw = Gateway::start_with(
        &stack,
        "acks_per_sender_per_hour = 2",
        "retry_initial_seconds = 1",
    );
    // One sender, a different Reply-To on each mail: the old limit keyed on Reply-To and
    // let every one of them through.
    for (i, victim) in strangers(4).iter().enumerate() {
        let (_, raw) = hostile_mail(
            &format!("From: {ATTACKER}\r\nReply-To: {victim}\r\n"),
            LAVORI,
            &format!("Offerta {i}"),
            "Testo",
        );
        append(&stack, LAVORI, &raw);
    }
    gw.wait_for("four tickets", WAIT, || {
        (gw.tickets().len() == 4).then_some(())
    });
    outbox_has_run(&stack, "Sonda");
    let acks = mails_for(&stack, ATTACKER, "[Ticket #");
    assert_eq!(acks.len(), 2, "two acknowledgments, then the limit");
    for victim in strangers(4) {
        assert!(fetch_all(&stack, &victim).is_empty(), "{victim} got mail");
    }
    let withheld = gw
        .tickets()
        .iter()
        .filter(|t| {
            events(&gw.show(t["ref"].as_str().unwrap_or(""))).contains(&"ack_withheld".to_owned())
        })
        .count();
    assert_eq!(withheld, 2);
}

#[test]
fn a_stranger_with_the_victims_reply_to_and_tag_gets_a_linked_ticket_of_their_own() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (reference, note) = report(&stack, "Buca in via Roma");
    // The office closes the victim's ticket.
    let (_, close) = reply_to_mail(&note, STAFF_LAVORI, "#chiudi Riparata.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &close);
    gw.wait_for("the ticket resolved", WAIT, || {
        (gw.show(&reference)["ticket"]["status"] == "resolved").then_some(())
    });

    let (_, raw) = hostile_mail(
        &format!("From: Anna Verdi <{ATTACKER}>\r\nReply-To: <{CITIZEN}>\r\n"),
        LAVORI,
        &format!("Re: [Ticket #{reference}] Buca in via Roma"),
        "Ho cambiato IBAN: http://iban.attacker.test",
    );
    append(&stack, LAVORI, &raw);
    let theirs = gw.wait_for("the stranger's own ticket", WAIT, || {
        gw.tickets().into_iter().find(|t| t["citizen"] == ATTACKER)
    });
    let their_ref = theirs["ref"].as_str().expect("ref").to_owned();
    let shown = gw.show(&their_ref);
    assert!(events(&shown).contains(&"linked".to_owned()));
    assert_eq!(shown["ticket"]["reply_to_asked"], CITIZEN);
    assert_eq!(shown["ticket"]["reply_to"], Value::Null);

    // Staff are told of a new ticket from the real From, with the Reply-To shown as a wish.
    let told = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&their_ref));
    let text = subject_and_text(&told).1;
    assert!(text.contains(&format!("Da:       {ATTACKER}")), "{text}");
    assert!(
        text.contains(&format!(
            "Chiede risposta a / asks for answers at: {CITIZEN}"
        )),
        "{text}"
    );

    // The victim's ticket is untouched, and the victim gets nothing.
    let victims = gw.show(&reference);
    assert_eq!(victims["ticket"]["status"], "resolved");
    assert!(
        victims["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .all(|m| m["from"] != ATTACKER),
        "nothing of the stranger's on the victim's ticket"
    );
    assert!(!events(&victims).contains(&"reopened".to_owned()));
    outbox_has_run(&stack, "Sonda");
    assert!(mails_for(&stack, CITIZEN, "iban.attacker.test").is_empty());
    assert!(mails_for(&stack, CITIZEN, &their_ref).is_empty());
}

#[test]
fn a_follow_up_failing_dmarc_for_its_from_is_not_the_citizen_speaking() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.authserv_id = Some("mx.comune.test".to_owned());
    });
    let (reference, _) = report(&stack, "Lampione spento");
    // A forged From: the comune's MTA found DMARC failing for citizen.test.
    let (_, forged) = hostile_mail(
        &format!(
            "Authentication-Results: mx.comune.test; spf=fail smtp.mailfrom=attacker.test;\r\n\
             \tdmarc=fail (p=reject) header.from=citizen.test\r\nFrom: Anna Verdi <{CITIZEN}>\r\n"
        ),
        LAVORI,
        &format!("Re: [Ticket #{reference}] Lampione spento"),
        "Testo falso: http://forged.attacker.test",
    );
    append(&stack, LAVORI, &forged);
    let q = gw.wait_for("the forged follow-up quarantined", WAIT, || {
        let q = gw.quarantine();
        (!q.is_empty()).then_some(q)
    });
    let reason = q[0]["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("dmarc=fail"), "{reason}");
    assert!(reason.contains(&reference), "{reason}");
    let shown = gw.show(&reference);
    assert_eq!(inbound_count(&shown), 1, "nothing recorded on the ticket");
    assert_eq!(
        gw.tickets().len(),
        1,
        "no ticket for the forged From either"
    );

    // The same citizen with DMARC passing is a follow-up, threaded as ever.
    let (_, genuine) = hostile_mail(
        &format!(
            "Authentication-Results: mx.comune.test; spf=pass; dkim=pass;\r\n\
             \tdmarc=pass header.from=citizen.test\r\nFrom: Anna Verdi <{CITIZEN}>\r\n"
        ),
        LAVORI,
        &format!("Re: [Ticket #{reference}] Lampione spento"),
        "Ancora spento stasera.",
    );
    append(&stack, LAVORI, &genuine);
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        m.contains("Ancora spento stasera")
    });
    assert!(subject_and_text(&note)
        .1
        .contains(&format!("Da:       {CITIZEN}")));
    assert_eq!(inbound_count(&gw.show(&reference)), 2);
    outbox_has_run(&stack, "Sonda");
    assert!(mails_for(&stack, STAFF_LAVORI, "forged.attacker.test").is_empty());
}

#[test]
fn answers_go_to_from_until_staff_choose_the_reply_to_the_citizen_asked_for() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (id, raw) = hostile_mail(
        &format!("From: Anna Verdi <{CITIZEN}>\r\nReply-To: Luca Neri <{CITIZEN2}>\r\n"),
        LAVORI,
        "Marciapiede rotto",
        "Il marciapiede è rotto.",
    );
    append(&stack, LAVORI, &raw);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&id));
    let reference = subject_and_text(&ack)
        .0
        .split('#')
        .nth(1)
        .and_then(|r| r.get(..11))
        .expect("reference")
        .to_owned();
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    assert!(subject_and_text(&note).1.contains(&format!(
        "Chiede risposta a / asks for answers at: {CITIZEN2}"
    )));

    // A plain answer goes to From.
    let (_, answer) = reply_to_mail(&note, STAFF_LAVORI, "Prima risposta.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &answer);
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("Prima risposta"));
    // Staff choose the Reply-To: from now on answers go there.
    let (_, chosen) = reply_to_mail(&note, STAFF_LAVORI, "#rispondi-a\r\nSeconda risposta.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &chosen);
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("Seconda risposta"));
    let shown = gw.show(&reference);
    assert_eq!(shown["ticket"]["reply_to"], CITIZEN2);
    assert!(events(&shown).contains(&"reply_to_chosen".to_owned()));
    assert!(mails_for(&stack, CITIZEN2, "Prima risposta").is_empty());
    assert_eq!(
        fetch_all(&stack, CITIZEN2).len(),
        1,
        "only the answer staff chose to send there: no acknowledgment, no first answer"
    );
}

#[test]
fn the_too_large_notice_goes_to_from_only_within_the_limit_and_without_the_subject() {
    let stack = MailStack::start();
    let gw = Gateway::start_with(
        &stack,
        "max_message_bytes = 50000\nacks_per_sender_per_hour = 1",
        "retry_initial_seconds = 1",
    );
    let victims = strangers(10);
    let big = "x".repeat(120_000);
    for i in 0..3 {
        let (_, raw) = hostile_mail(
            &format!(
                "From: Dear friend <{ATTACKER}>\r\nReply-To: <{}>\r\n",
                victims.join(",")
            ),
            LAVORI,
            &format!("Claim your refund {i} at http://refund.attacker.test"),
            &big,
        );
        append(&stack, LAVORI, &raw);
    }
    gw.wait_for("three oversize mails quarantined", WAIT, || {
        (gw.quarantine().len() == 3).then_some(())
    });
    let notice = wait_for_mail(&stack, ATTACKER, WAIT, |m| m.contains("too large"));
    let (subject, text) = subject_and_text(&notice);
    assert!(
        !subject.contains("refund") && !text.contains("refund"),
        "{notice}"
    );
    assert!(text.contains("48 kB"), "{text}");
    outbox_has_run(&stack, "Sonda");
    assert_eq!(
        mails_for(&stack, ATTACKER, "too large").len(),
        1,
        "one notice, then the limit"
    );
    for victim in &victims {
        assert!(fetch_all(&stack, victim).is_empty(), "{victim} got mail");
    }
}
