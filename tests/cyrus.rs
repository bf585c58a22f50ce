//! The end-to-end core cases against a second IMAP server: Cyrus IMAP 3.6 from Debian's
//! packages (`MailStack::start_cyrus`), where everything else in the suite runs against
//! Dovecot. Mail in over SMTP (Postfix → Cyrus's lmtpd), the real `ticketgate serve` reading
//! Cyrus over IMAP, answers out over SMTP and read back from Cyrus.
//!
//! What differs from Dovecot and matters here: Cyrus checks passwords (every user a test logs
//! in as is registered at start), a user's folders live under `INBOX/` (creating a top-level
//! `Processed` is refused with `NO Permission denied`), and its IDLE reports new mail only
//! every 60 s (`imapidlepoll`, left at Debian's default). The gateway polls while idling only
//! from h/imap on, so every test here but the IDLE one turns IDLE off and polls each second:
//! they check the gateway against Cyrus, not Cyrus's IDLE latency.

mod support;

use std::time::Duration;

use support::config::TestConfig;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);

/// Every address a test sends as, reads or is answered at.
const USERS: &[&str] = &[
    LAVORI,
    AMBIENTE,
    "reclami@comune.test",
    STAFF_LAVORI,
    STAFF_AMBIENTE,
    CITIZEN,
    CITIZEN2,
];

fn cyrus() -> MailStack {
    MailStack::start_cyrus(USERS)
}

/// IDLE off and `processed_folder = folder` on the lavori-pubblici box.
fn polling_with_processed_folder(folder: &str) -> impl FnOnce(&mut TestConfig) + '_ {
    move |c| {
        c.polling();
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.mailbox("lavori-pubblici").processed_folder = Some(folder.to_owned());
    }
}

/// The test config with IDLE off: both mailboxes polled every second.
fn start_gateway(stack: &MailStack) -> Gateway {
    Gateway::start_configured(stack, |c| {
        c.polling();
    })
}

/// The reference in an acknowledgment's subject (`[Ticket #REF] …`).
fn reference_in(ack: &str) -> String {
    let (subject, _) = subject_and_text(ack);
    subject
        .split('#')
        .nth(1)
        .and_then(|r| r.split(']').next())
        .expect("reference in the ack subject")
        .to_owned()
}

#[test]
fn on_cyrus_a_citizens_mail_becomes_a_ticket_acknowledged_and_notified_to_staff() {
    let stack = cyrus();
    let gw = start_gateway(&stack);
    let (id, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        "Buca in via Roma",
        "C'è una buca profonda davanti al civico 12.",
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);

    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("[Ticket #"));
    let tickets = wait_tickets(&gw, 1);
    let t = &tickets[0];
    let reference = t["ref"].as_str().expect("ref");
    assert_eq!(reference_in(&ack), reference);
    assert_eq!(t["area"], "lavori-pubblici");
    assert_eq!(t["citizen"], CITIZEN);
    assert_eq!(t["subject"], "Buca in via Roma");
    assert!(t["text"].as_str().unwrap_or("").contains("buca profonda"));
    assert_eq!(
        header(&ack, "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    assert!(header(&ack, "From").unwrap_or_default().contains(LAVORI));

    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(reference));
    assert!(subject_and_text(&note).1.contains("buca profonda"));

    // What is stored is what Cyrus served, byte for byte (Cyrus adds its own Received and
    // X-Cyrus-Session-Id headers on delivery, so compare with its copy, not what we sent).
    let shown = gw.show(reference);
    let inbound = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["direction"] == "in")
        .cloned()
        .expect("inbound message");
    let served = fetch_all(&stack, LAVORI);
    assert_eq!(served.len(), 1, "the mail stays on the server");
    assert!(
        String::from_utf8_lossy(&served[0]).contains("Cyrus"),
        "served by Cyrus"
    );
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&served[0]))
    };
    assert_eq!(inbound["sha256"], sha.as_str());
    gw.wait_for("the mail flagged Seen on Cyrus", WAIT, || {
        all_seen(&stack, LAVORI, 1).then_some(())
    });
}

#[test]
fn on_cyrus_a_staff_reply_threads_back_and_reaches_the_citizen() {
    let stack = cyrus();
    let gw = start_gateway(&stack);
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, "Lampione spento", "In via Po, da ieri.");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("[Ticket #"));
    let reference = reference_in(&ack);
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));

    let (to, reply) = reply_to_mail(&note, STAFF_LAVORI, "Lo ripariamo domani mattina.");
    assert_eq!(
        to, LAVORI,
        "the notification's Reply-To is the area address"
    );
    send(&stack, STAFF_LAVORI, &[LAVORI], &reply);

    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("Lo ripariamo domani mattina")
    });
    let (subject, text) = subject_and_text(&answer);
    assert!(
        subject.contains(&format!("[Ticket #{reference}]")),
        "{subject}"
    );
    assert!(
        !text.contains("ha scritto"),
        "the quote is stripped: {text}"
    );
    assert!(header(&answer, "From").unwrap_or_default().contains(LAVORI));
    assert!(
        !answer.contains(STAFF_LAVORI),
        "the staff member's address never reaches the citizen"
    );
    assert_eq!(
        header(&answer, "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    let shown = gw.show(&reference);
    assert_eq!(shown["ticket"]["status"], "answered");
    assert_eq!(
        gw.tickets().len(),
        1,
        "the staff reply joined the ticket, no new one"
    );
}

#[test]
fn on_cyrus_the_same_mail_delivered_twice_is_one_ticket_and_one_acknowledgment() {
    let stack = cyrus();
    let gw = start_gateway(&stack);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Rami caduti", "In via Dante.");
    // Cyrus's lmtpd drops a second delivery of the same Message-ID to the same mailbox
    // (duplicate suppression, on by default), so a second SMTP send would never reach the
    // INBOX: the second copy goes in by IMAP APPEND, as a client or a migration would.
    send(&stack, CITIZEN, &[LAVORI], &raw);
    append(&stack, LAVORI, &raw);
    gw.wait_for("both copies handled", WAIT, || {
        all_seen(&stack, LAVORI, 2).then_some(())
    });
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("[Ticket #"));
    // A probe from another citizen, sent after: once its ack is there, a wrongly made
    // second ack for the first mail would have been sent too.
    let (_, probe) = citizen_mail(CITIZEN2, LAVORI, "Sonda", "ordine di arrivo");
    send(&stack, CITIZEN2, &[LAVORI], &probe);
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("[Ticket #"));
    assert_eq!(gw.tickets().len(), 2, "one ticket per distinct mail");
    assert_eq!(
        fetch_all(&stack, CITIZEN).len(),
        1,
        "one acknowledgment for one mail delivered twice"
    );
}

#[test]
fn on_cyrus_serve_killed_and_restarted_loses_nothing_and_doubles_nothing() {
    let stack = cyrus();
    // A short lease: on PostgreSQL, mail claimed by the killed process goes out in the test.
    let mut gw = Gateway::start_configured(&stack, |c| {
        c.polling();
        c.tickets = "acks_per_sender_per_hour = 1000".to_owned();
        c.outbox = "retry_initial_seconds = 1\nlease_seconds = 12".to_owned();
    });
    let n = 20;
    for i in 0..n {
        let (_, raw) = citizen_mail(CITIZEN, LAVORI, &format!("Report {i}"), "testo");
        send(&stack, CITIZEN, &[LAVORI], &raw);
        if i == n / 2 {
            gw.kill();
            gw.restart();
        }
    }
    gw.kill();
    gw.restart();
    let tickets = wait_tickets(&gw, n);
    assert_eq!(tickets.len(), n, "one ticket per message");
    let mut subjects: Vec<&str> = tickets
        .iter()
        .filter_map(|t| t["subject"].as_str())
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(subjects.len(), n, "no ticket made twice");
    // A crash between the SMTP server's 250 and our record of it sends that ack again with
    // the same bytes, so the same Message-ID: count distinct ids.
    let ids = gw.wait_for("an acknowledgment for every ticket", WAIT, || {
        let mut ids: Vec<String> = fetch_all(&stack, CITIZEN)
            .iter()
            .filter_map(|m| header(&String::from_utf8_lossy(m), "Message-ID"))
            .collect();
        ids.sort();
        ids.dedup();
        (ids.len() >= n).then_some(ids)
    });
    assert_eq!(ids.len(), n, "one distinct acknowledgment per ticket");
    for t in &tickets {
        let r = t["ref"].as_str().unwrap_or("");
        assert!(
            ids.iter().any(|id| id.starts_with(&format!("<t{r}.m"))),
            "ack for {r}"
        );
    }
    assert!(gw.stop(), "SIGTERM ends serve with success");
}

#[test]
fn on_cyrus_a_mail_queued_while_cyrus_was_down_becomes_a_ticket_once_it_is_back() {
    let stack = cyrus();
    let gw = start_gateway(&stack);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Prima", "prima");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    // The gateway's connections get Cyrus's BYE; Postfix keeps the next mail queued.
    stack.stop_imap();
    let (_, raw) = citizen_mail(CITIZEN2, LAVORI, "Durante il fermo", "dopo");
    send(&stack, CITIZEN2, &[LAVORI], &raw);
    stack.start_imap();
    let tickets = wait_tickets(&gw, 2);
    assert!(
        tickets.iter().any(|t| t["subject"] == "Durante il fermo"),
        "{tickets:?}"
    );
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("[Ticket #"));
    assert_eq!(
        gw.tickets().len(),
        2,
        "the first mail was not made a ticket again"
    );
}

#[test]
fn on_cyrus_handled_mail_is_moved_to_a_processed_folder_under_inbox() {
    let stack = cyrus();
    let gw = Gateway::start_configured(&stack, polling_with_processed_folder("INBOX/Processed"));
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, "Da spostare", "testo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    let moved = gw.wait_for("the message in INBOX/Processed", WAIT, || {
        let m = fetch_folder(&stack, LAVORI, "INBOX/Processed");
        (m.len() == 1).then_some(m)
    });
    assert!(String::from_utf8_lossy(&moved[0]).contains(&id));
    assert!(
        fetch_all(&stack, LAVORI).is_empty(),
        "the inbox keeps only unhandled mail"
    );
}

/// The example's `processed_folder = "Processed"` cannot be created on Cyrus (a top-level
/// folder: `NO Permission denied`). Before the folder fix the first mail became a ticket, its MOVE
/// failed, and every reconnect retried that MOVE before fetching anything new: the second
/// mail never became a ticket.
#[test]
fn on_cyrus_a_processed_folder_that_cannot_be_created_never_blocks_new_mail() {
    let stack = cyrus();
    let gw = Gateway::start_configured(&stack, polling_with_processed_folder("Processed"));
    for (i, citizen) in [CITIZEN, CITIZEN2].into_iter().enumerate() {
        let (_, raw) = citizen_mail(citizen, LAVORI, &format!("Segnalazione {i}"), "testo");
        send(&stack, citizen, &[LAVORI], &raw);
        // One after the other: the second arrives once the first one's MOVE has failed.
        wait_tickets(&gw, i + 1);
        wait_for_mail(&stack, citizen, WAIT, |m| m.contains("[Ticket #"));
    }
    assert_eq!(gw.tickets().len(), 2);
    assert_eq!(
        fetch_all(&stack, LAVORI).len(),
        2,
        "both mails are still in the INBOX: nothing lost on the server"
    );
}

/// Cyrus's IDLE announces new mail only every `imapidlepoll` (60 s): with IDLE on, the
/// gateway's poll every `poll_seconds` while idling must find it first.
#[test]
fn on_cyrus_with_idle_on_new_mail_becomes_a_ticket_before_cyrus_announces_it() {
    let stack = cyrus();
    let gw = Gateway::start(&stack); // IDLE on, poll_seconds = 1
    let (_, first) = citizen_mail(CITIZEN, LAVORI, "Prima", "testo");
    send(&stack, CITIZEN, &[LAVORI], &first);
    // The first may wait for one IDLE round of Cyrus; after it the gateway is idling.
    gw.wait_for("the first ticket", Duration::from_secs(90), || {
        (!gw.tickets().is_empty()).then_some(())
    });
    let (_, second) = citizen_mail(CITIZEN2, LAVORI, "Seconda", "testo");
    send(&stack, CITIZEN2, &[LAVORI], &second);
    // Well under the 60 s after which Cyrus itself would announce it.
    gw.wait_for("the second ticket", Duration::from_secs(20), || {
        (gw.tickets().len() == 2).then_some(())
    });
}
