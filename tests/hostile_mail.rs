//! Hostile mail against the real binary on a private Dovecot + Postfix: mail that crashed the
//! process, mail with thousands of attachments, a Message-ID taken in advance, and the modes
//! of the files the gateway creates (docs/design-notes.md, "Hostile mail").

mod support;

use std::time::Duration;

use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(60);

/// A mail whose body is `levels` nested `message/rfc822` parts, each level only the
/// Content-Type line and a blank line (what an attacker sent: docs/design-notes.md, "Hostile
/// mail").
fn nested_rfc822(levels: usize) -> Vec<u8> {
    let id = unique_id();
    let mut raw = format!(
        "From: <{CITIZEN2}>\r\nTo: {LAVORI}\r\nSubject: annidato\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
    )
    .into_bytes();
    for _ in 0..levels {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"From: x@example.test\r\n\r\nfondo\r\n");
    raw
}

fn quarantined_with(gw: &Gateway, words: &str) -> Option<Vec<Value>> {
    let q = gw.quarantine();
    q.iter()
        .any(|m| m["reason"].as_str().unwrap_or("").contains(words))
        .then_some(q)
}

fn ticket_with_subject(gw: &Gateway, subject: &str) -> Option<Value> {
    gw.tickets().into_iter().find(|t| t["subject"] == subject)
}

#[test]
fn ingest_quarantines_a_mail_nested_two_hundred_thousand_levels_deep_instead_of_aborting() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    // 6.6 MB: the size at which `ingest` aborted with a stack overflow (exit 134).
    let out = gw.ingest("lavori-pubblici", &nested_rfc822(220_000));
    assert!(
        out.status.success(),
        "ingest ended with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let q = quarantined_with(&gw, "nests MIME parts").unwrap_or_else(|| {
        panic!("not quarantined for its nesting: {:?}", gw.quarantine());
    });
    assert_eq!(q.len(), 1, "{q:?}");
}

#[test]
fn a_mail_nested_forty_thousand_levels_deep_is_quarantined_and_the_mail_behind_it_gets_its_ticket()
{
    let stack = MailStack::start();
    let mut gw = Gateway::start(&stack);
    append(&stack, LAVORI, &nested_rfc822(40_000));
    let (_, genuine) = citizen_mail(CITIZEN, LAVORI, "Lampione spento", "In via Garibaldi.");
    append(&stack, LAVORI, &genuine);

    gw.wait_for("the nested mail in quarantine", WAIT, || {
        quarantined_with(&gw, "nests MIME parts")
    });
    gw.wait_for("the ticket of the mail behind it", WAIT, || {
        ticket_with_subject(&gw, "Lampione spento")
    });
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("Lampione spento"));
    assert!(gw.stop(), "serve did not stop cleanly:\n{}", gw.log());
}

#[test]
fn a_mail_that_crashes_the_gateway_twice_is_quarantined_at_the_next_start_and_the_rest_goes_on() {
    let stack = MailStack::start();
    let marker = format!("crash-marker-{}", unique_id());
    let mut gw = Gateway::start_with_env(&stack, &[("TICKETGATE_TEST_CRASH_MARKER", &marker)]);
    let (_, poison) = citizen_mail(CITIZEN2, LAVORI, "Veleno", &format!("testo {marker}"));
    let (_, genuine) = citizen_mail(CITIZEN, LAVORI, "Buca in via Dante", "Profonda.");
    append(&stack, LAVORI, &poison);
    append(&stack, LAVORI, &genuine);

    // First crash: while processing the new mail. Second: processing it again, alone,
    // at the next start.
    for start in 1..=2 {
        let status = gw.wait_exit(WAIT);
        assert!(!status.success(), "start {start} ended with {status:?}");
        gw.relaunch();
    }
    // Third start: quarantined unread; the genuine mail gets its ticket and acknowledgment.
    gw.wait_for("the crashing mail in quarantine", WAIT, || {
        quarantined_with(&gw, "crashed the gateway while being processed")
    });
    gw.wait_for("the ticket of the genuine mail", WAIT, || {
        ticket_with_subject(&gw, "Buca in via Dante")
    });
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("Buca in via Dante"));
    assert!(ticket_with_subject(&gw, "Veleno").is_none());
    assert!(gw.stop(), "serve did not stop cleanly:\n{}", gw.log());
}

/// A mail with `count` small attachments (each its own part), a unique Message-ID.
fn mail_with_attachments(from: &str, subject: &str, count: usize) -> Vec<u8> {
    let id = unique_id();
    let mut raw = format!(
        "From: <{from}>\r\nTo: {LAVORI}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIn allegato.\r\n"
    );
    for i in 0..count {
        raw.push_str(&format!(
            "--b\r\nContent-Type: text/plain; name=\"f{i}.txt\"\r\n\
             Content-Disposition: attachment; filename=\"f{i}.txt\"\r\n\r\n{i}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

#[test]
fn the_database_and_the_attachment_files_are_private_to_the_gateway_user() {
    use std::os::unix::fs::PermissionsExt;
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_attachments(CITIZEN, "Foto della buca", 1),
    );
    gw.wait_for("the ticket", WAIT, || {
        ticket_with_subject(&gw, "Foto della buca")
    });
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    if !test_backend_is_postgres() {
        for name in ["ticketgate.db", "ticketgate.db-wal", "ticketgate.db-shm"] {
            let path = gw.dir.join(name);
            if path.exists() || name == "ticketgate.db" {
                assert_eq!(mode(&path), 0o600, "{name}");
            }
        }
    }
    let root = gw.dir.join("attachments");
    assert_eq!(mode(&root), 0o700);
    let mut files = 0;
    let mut stack_dirs = vec![root];
    while let Some(dir) = stack_dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read storage dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                stack_dirs.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files >= 1, "no attachment file written");
}

#[test]
fn a_mail_with_twenty_thousand_attachments_gets_a_ticket_with_the_capped_number_and_a_count_of_the_rest(
) {
    let stack = MailStack::start();
    let gw = Gateway::start_with(
        &stack,
        "max_attachments = 100",
        "retry_initial_seconds = 1\nretry_max_seconds = 2",
    );
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_attachments(CITIZEN, "Ventimila allegati", 20_000),
    );
    let t = gw.wait_for("the ticket", Duration::from_secs(300), || {
        ticket_with_subject(&gw, "Ventimila allegati")
    });
    let reference = t["ref"].as_str().expect("ref");
    let shown = gw.show(reference);
    let attachments = shown["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 100);
    let events = shown["events"].as_array().expect("events");
    let skipped = events
        .iter()
        .find(|e| e["kind"] == "attachments_not_extracted")
        .unwrap_or_else(|| panic!("no not-extracted event: {events:?}"));
    assert_eq!(skipped["details"]["not_extracted"], 19_900, "{skipped}");
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains("Ventimila"));
    assert!(
        note.contains("altri 19900 allegati non estratti"),
        "{}",
        &note[..note.len().min(3000)]
    );
}

#[test]
fn a_mail_that_takes_the_message_id_of_a_later_genuine_mail_does_not_swallow_it() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let predicted = unique_id();
    let with_id = |from: &str, subject: &str, body: &str| {
        format!(
            "From: <{from}>\r\nTo: {LAVORI}\r\nSubject: {subject}\r\nMessage-ID: <{predicted}>\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    send(
        &stack,
        CITIZEN2,
        &[LAVORI],
        &with_id(CITIZEN2, "Primo arrivato", "Testo dell'intruso."),
    );
    gw.wait_for("the first ticket", WAIT, || {
        ticket_with_subject(&gw, "Primo arrivato")
    });
    let genuine = with_id(CITIZEN, "Segnalazione vera", "Il semaforo è guasto.");
    send(&stack, CITIZEN, &[LAVORI], &genuine);
    let t = gw.wait_for("the genuine ticket", WAIT, || {
        ticket_with_subject(&gw, "Segnalazione vera")
    });
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("Segnalazione vera"));
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("Primo arrivato"));
    let shown = gw.show(t["ref"].as_str().expect("ref"));
    let events = shown["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["kind"] == "message_id_reused"),
        "not flagged: {events:?}"
    );

    // The genuine mail delivered again by pipe (other line ends, other trace fields) is
    // still the same message.
    let out = gw.ingest("lavori-pubblici", &lf_line_ends(&genuine));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("duplicate"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gw.tickets().len(), 2);
}

#[test]
fn a_mail_delivered_by_imap_and_by_pipe_is_still_one_ticket() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Due volte", "Consegnata due volte.");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    gw.wait_for("the ticket", WAIT, || ticket_with_subject(&gw, "Due volte"));
    let piped = [
        b"Return-Path: <anna.verdi@citizen.test>\nDelivered-To: lavori-pubblici@comune.test\n"
            .as_slice(),
        &lf_line_ends(&raw),
    ]
    .concat();
    let out = gw.ingest("lavori-pubblici", &piped);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("duplicate"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(gw.tickets().len(), 1);
}

/// CRLF line ends to LF, as a pipe delivery gives them.
fn lf_line_ends(raw: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .into_bytes()
}

#[test]
fn ingest_run_again_by_the_mta_after_two_crashes_quarantines_the_mail_and_succeeds() {
    let stack = MailStack::start();
    let marker = format!("crash-marker-{}", unique_id());
    let gw = Gateway::start_with_env(&stack, &[("TICKETGATE_TEST_CRASH_MARKER", &marker)]);
    let (_, poison) = citizen_mail(CITIZEN2, LAVORI, "Veleno", &format!("testo {marker}"));
    for run in 1..=2 {
        let out = gw.ingest("lavori-pubblici", &poison);
        assert!(
            !out.status.success(),
            "run {run} ended with {:?}",
            out.status
        );
    }
    let out = gw.ingest("lavori-pubblici", &poison);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("crashed the gateway while being processed"),
        "{said}"
    );
    assert_eq!(gw.quarantine().len(), 1, "one stored copy, not three");
}
