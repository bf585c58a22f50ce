//! End to end through real servers: mail in over SMTP (Postfix → Dovecot LMTP), the real
//! `ticketgate serve` polling Dovecot over IMAP, acknowledgments and notifications out over
//! SMTP and read back over IMAP. Each test has its own mail stack and gateway.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::config::TestConfig;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);

fn tag_of(reference: &str) -> String {
    format!("[Ticket #{reference}]")
}

fn ticket_count(gw: &Gateway) -> usize {
    gw.tickets().len()
}

#[test]
fn a_mail_to_an_area_becomes_a_ticket_acknowledged_to_the_citizen_and_notified_to_staff() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
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
    assert_eq!(t["area"], "lavori-pubblici");
    assert_eq!(t["kind"], "segnalazione");
    assert_eq!(t["status"], "received");
    assert_eq!(t["citizen"], CITIZEN);
    assert_eq!(t["channel"], "email");
    assert_eq!(t["subject"], "Buca in via Roma");
    assert!(t["text"].as_str().unwrap_or("").contains("buca profonda"));

    let (subject, text) = subject_and_text(&ack);
    assert_eq!(subject, format!("{} Buca in via Roma", tag_of(reference)));
    assert!(
        text.contains(&format!("Numero della pratica: {reference}")),
        "{text}"
    );
    assert!(text.contains("Lavori pubblici"), "{text}");
    assert!(
        text.contains("entro 30 giorni lavorativi, cioè entro "),
        "{text}"
    );
    // The ack gives the same due date (issue 14) as `ticket list`, in words.
    let due: Vec<u16> = t["due_date"]
        .as_str()
        .unwrap_or("")
        .split('-')
        .filter_map(|n| n.parse().ok())
        .collect();
    let [year, month, day] = due[..] else {
        panic!("due_date is not YYYY-MM-DD: {t}")
    };
    let due = time::Date::from_calendar_date(
        i32::from(year),
        time::Month::try_from(u8::try_from(month).expect("month")).expect("month"),
        u8::try_from(day).expect("day"),
    )
    .expect("due_date is a date");
    assert!(
        text.contains(&ticketgate::domain::calendar::long_date_it(due)),
        "{text}"
    );
    assert_eq!(t["overdue"], false);
    assert_eq!(
        header(&ack, "In-Reply-To").as_deref(),
        Some(format!("<{id}>").as_str())
    );
    assert_eq!(
        header(&ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    let from = header(&ack, "From").unwrap_or_default();
    assert!(from.contains(LAVORI), "{from}");
    let ack_id = header(&ack, "Message-ID").unwrap_or_default();
    assert!(ack_id.starts_with(&format!("<t{reference}.m")), "{ack_id}");

    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(reference));
    let (nsubject, ntext) = subject_and_text(&note);
    assert!(nsubject.contains(&tag_of(reference)), "{nsubject}");
    assert!(ntext.contains("buca profonda"), "{ntext}");
    assert!(header(&note, "Reply-To")
        .unwrap_or_default()
        .contains(LAVORI));

    // Everything is on record: the inbound raw's sha256, both outbound messages sent.
    let shown = gw.wait_for("both outbound mails recorded as sent", WAIT, || {
        let s = gw.ticket(reference);
        let sent = s
            .messages
            .iter()
            .filter(|m| {
                m.direction == "out" && m.delivery.as_ref().is_some_and(|d| d.state == "sent")
            })
            .count();
        (sent == 2).then_some(s)
    });
    let inbound = shown
        .messages
        .iter()
        .find(|m| m.direction == "in")
        .expect("inbound");
    let expected_sha = {
        use sha2::Digest;
        // Dovecot adds Return-Path/Delivered-To on delivery: the stored bytes are what IMAP
        // served, so compare with the copy in the area mailbox.
        let served = fetch_all(&stack, LAVORI);
        hex::encode(sha2::Sha256::digest(&served[0]))
    };
    assert_eq!(inbound.sha256, expected_sha);
    assert_eq!(inbound.message_id.as_deref(), Some(id.as_str()));
    let out_ack = shown
        .messages
        .iter()
        .find(|m| m.kind == "ack")
        .expect("ack row");
    assert!(out_ack
        .delivery
        .as_ref()
        .and_then(|d| d.smtp_reply.as_deref())
        .unwrap_or("")
        .starts_with("250"));
    assert_eq!(shown.events[0].kind, "received");

    // The message was flagged \Seen on the server only after it was stored.
    gw.wait_for("message flagged Seen", WAIT, || {
        all_seen(&stack, LAVORI, 1).then_some(())
    });
}

#[test]
fn a_5_mb_photo_is_stored_with_its_sha256_and_listed() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let photo: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&photo))
    };
    let id = unique_id();
    let b64 = support::base64::encode_lines(&photo);
    let raw = format!(
        "From: <{CITIZEN}>\r\nTo: <{LAVORI}>\r\nSubject: Foto della buca\r\nMessage-ID: <{id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
         --XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nEcco la foto.\r\n\
         --XYZ\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"buca.jpg\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--XYZ--\r\n"
    );
    send(&stack, CITIZEN, &[LAVORI], raw.as_bytes());
    let t = wait_tickets(&gw, 1);
    let reference = t[0]["ref"].as_str().expect("ref").to_owned();
    let shown = gw.show(&reference);
    let atts = shown["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 1, "{shown}");
    assert_eq!(atts[0]["filename"], "buca.jpg");
    assert_eq!(atts[0]["content_type"], "image/jpeg");
    assert_eq!(atts[0]["size"], photo.len());
    assert_eq!(atts[0]["sha256"], sha.as_str());
    let stored = gw
        .dir
        .join("attachments")
        .join(&sha[0..2])
        .join(&sha[2..4])
        .join(&sha);
    assert_eq!(std::fs::read(&stored).expect("attachment file"), photo);
    // The staff notification lists it.
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    assert!(subject_and_text(&note).1.contains("buca.jpg"));
}

#[test]
fn the_same_message_delivered_twice_makes_one_ticket_and_one_acknowledgment() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (_, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        "Lampione spento",
        "Il lampione di via Po è spento.",
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);
    send(&stack, CITIZEN, &[LAVORI], &raw);
    gw.wait_for("both copies handled", WAIT, || {
        all_seen(&stack, LAVORI, 2).then_some(())
    });
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("[Ticket #"));
    // Give a wrongly made second ack the time to arrive before counting.
    let (_, probe) = citizen_mail(CITIZEN2, LAVORI, "Sonda", "ordine di arrivo");
    send(&stack, CITIZEN2, &[LAVORI], &probe);
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("[Ticket #"));
    assert_eq!(ticket_count(&gw), 2);
    let acks = fetch_all(&stack, CITIZEN);
    assert_eq!(
        acks.len(),
        1,
        "one acknowledgment for one message delivered twice"
    );
}

#[test]
fn a_mail_to_two_areas_is_one_ticket_and_both_offices_are_notified() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let id = unique_id();
    let raw = format!(
        "From: <{CITIZEN}>\r\nTo: <{LAVORI}>\r\nCc: <{AMBIENTE}>\r\nSubject: Rifiuti sulla strada\r\n\
         Message-ID: <{id}>\r\n\r\nCi sono rifiuti abbandonati in strada.\r\n"
    );
    send(&stack, CITIZEN, &[LAVORI, AMBIENTE], raw.as_bytes());
    let t = wait_tickets(&gw, 1);
    let reference = t[0]["ref"].as_str().expect("ref").to_owned();
    assert_eq!(t[0]["area"], "lavori-pubblici");
    wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    let other = wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| m.contains(&reference));
    assert!(subject_and_text(&other).1.contains("Lavori pubblici"));
    // Both mailboxes got a copy; both are handled, still one ticket and one ack.
    gw.wait_for("both copies Seen", WAIT, || {
        (all_seen(&stack, LAVORI, 1) && all_seen(&stack, AMBIENTE, 1)).then_some(())
    });
    assert_eq!(ticket_count(&gw), 1);
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&reference));
    assert_eq!(fetch_all(&stack, CITIZEN).len(), 1);
    let shown = gw.show(&reference);
    assert_eq!(
        shown["events"][0]["details"]["also_addressed"][0],
        "ambiente"
    );
}

#[test]
fn auto_replies_and_bounces_get_no_acknowledgment_but_are_kept() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    // A normal report, to have an ack of ours to bounce.
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Semaforo guasto", "Il semaforo lampeggia.");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("[Ticket #"));
    let ack_id = header(&ack, "Message-ID").expect("ack id");
    let reference = wait_tickets(&gw, 1)[0]["ref"]
        .as_str()
        .expect("ref")
        .to_owned();

    // An out-of-office from someone: a ticket, but no acknowledgment.
    let ooo = format!(
        "From: <{CITIZEN2}>\r\nTo: <{LAVORI}>\r\nSubject: Fuori sede\r\nAuto-Submitted: auto-replied\r\n\
         Message-ID: <{}>\r\n\r\nSono fuori sede fino a lunedì.\r\n",
        unique_id()
    );
    send(&stack, CITIZEN2, &[LAVORI], ooo.as_bytes());
    // A DSN for our ack: recorded on the ticket as a bounce.
    let dsn = dsn(LAVORI, CITIZEN, &ack_id);
    send(&stack, "", &[LAVORI], dsn.as_bytes());
    // A DSN for nothing of ours: quarantined with its reason.
    let stray = dsn
        .replace(&ack_id, "<unknown@elsewhere.test>")
        .replace("Message-ID: <", "Message-ID: <stray.");
    send(&stack, "", &[LAVORI], stray.as_bytes());

    gw.wait_for("all four messages handled", WAIT, || {
        all_seen(&stack, LAVORI, 4).then_some(())
    });
    let tickets = gw.tickets();
    assert_eq!(
        tickets.len(),
        2,
        "report + out-of-office; the DSNs are not tickets"
    );
    let ooo_ticket = tickets
        .iter()
        .find(|t| t["citizen"] == CITIZEN2)
        .expect("ooo ticket");
    let shown = gw.show(ooo_ticket["ref"].as_str().expect("ref"));
    assert!(shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["kind"] == "ack_withheld"));
    assert!(
        fetch_all(&stack, CITIZEN2).is_empty(),
        "no acknowledgment to an auto-reply"
    );

    let shown = gw.show(&reference);
    let bounce = shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "bounce")
        .cloned();
    let bounce = bounce.unwrap_or_else(|| panic!("bounce event on {reference}: {shown}"));
    assert_eq!(bounce["details"]["status"], "5.1.1");

    let q = gw.quarantine();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("matches none of our messages"));
    // Still exactly one mail (the first ack) for the citizen: nothing answered a bounce.
    assert_eq!(fetch_all(&stack, CITIZEN).len(), 1);
}

#[test]
fn html_only_latin1_quoted_printable_and_base64_italian_mail_is_read_correctly() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let mails = [
        (
            "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Il marciapiede &egrave; rotto <b>in via Verdi</b>.</p></body></html>\r\n",
            "Il marciapiede è rotto",
        ),
        (
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nLa citt=E0 =E8 sporca, perch=E9 nessuno pulisce? Costo: 5=80\r\n",
            "La città è sporca, perché nessuno pulisce?",
        ),
        (
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nUGVyY2jDqSBsJ2FjcXVhIMOoIG1hcnJvbmU/IMOAIG1lesOgIHN0cmFkYS4=\r\n",
            "Perché l'acqua è marrone? À mezà strada.",
        ),
    ];
    for (i, (body, _)) in mails.iter().enumerate() {
        let raw = format!(
            "From: <{CITIZEN}>\r\nTo: <{LAVORI}>\r\nSubject: =?utf-8?q?Segnalazione_n=C2=B0_{i}?=\r\n\
             Message-ID: <{}>\r\nMIME-Version: 1.0\r\n{body}",
            unique_id()
        );
        send(&stack, CITIZEN, &[LAVORI], raw.as_bytes());
    }
    let tickets = wait_tickets(&gw, 3);
    for (i, (_, expected)) in mails.iter().enumerate() {
        let subject = format!("Segnalazione n° {i}");
        let t = tickets
            .iter()
            .find(|t| t["subject"] == subject.as_str())
            .unwrap_or_else(|| panic!("ticket {subject:?} in {tickets:?}"));
        let text = t["text"].as_str().unwrap_or("");
        assert!(
            text.contains(expected),
            "{subject}: {text:?} should contain {expected:?}"
        );
    }
}

#[test]
fn over_limit_mail_is_quarantined_and_its_sender_told_the_limit() {
    let stack = MailStack::start();
    let gw = Gateway::start_with(
        &stack,
        "max_message_bytes = 50000",
        "retry_initial_seconds = 1",
    );
    let big = "x".repeat(120_000);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Troppo grande", &big);
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let notice = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("troppo grande") || m.contains("too large")
    });
    // The sizes, each with its unit once (the limit of 50000 bytes is 48 kB).
    assert!(subject_and_text(&notice).1.contains("il limite è di 48 kB"));
    let q = gw.quarantine();
    assert_eq!(q.len(), 1);
    assert!(q[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("max_message_bytes"));
    assert_eq!(ticket_count(&gw), 0);
    gw.wait_for("oversize message flagged Seen", WAIT, || {
        all_seen(&stack, LAVORI, 1).then_some(())
    });
    // Still on the server, whole: nothing is lost.
    assert!(fetch_all(&stack, LAVORI)[0].len() > 120_000);
}

#[test]
fn acknowledgments_per_sender_are_rate_limited_but_every_ticket_is_made() {
    let stack = MailStack::start();
    let gw = Gateway::start_with(
        &stack,
        "acks_per_sender_per_hour = 2",
        "retry_initial_seconds = 1",
    );
    for i in 0..3 {
        let (_, raw) = citizen_mail(CITIZEN, LAVORI, &format!("Segnalazione {i}"), "testo");
        send(&stack, CITIZEN, &[LAVORI], &raw);
    }
    let tickets = wait_tickets(&gw, 3);
    assert_eq!(tickets.len(), 3);
    gw.wait_for("two acks", WAIT, || {
        (fetch_all(&stack, CITIZEN).len() == 2).then_some(())
    });
    let withheld = tickets
        .iter()
        .filter(|t| {
            let s = gw.show(t["ref"].as_str().unwrap_or(""));
            s["events"]
                .as_array()
                .map(|e| e.iter().any(|e| e["kind"] == "ack_withheld"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(withheld, 1);
}

#[test]
fn serve_killed_and_restarted_loses_nothing_and_doubles_nothing() {
    let stack = MailStack::start();
    // On PostgreSQL leases are not dropped at start (another instance may hold them): a
    // short lease lets the mail claimed by the killed process go out within the test.
    let mut gw = Gateway::start_with(
        &stack,
        "acks_per_sender_per_hour = 1000",
        "retry_initial_seconds = 1\nlease_seconds = 12",
    );
    let n = 30;
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
    // Every ack arrives. A crash between the SMTP server's 250 and our record of it sends
    // that ack again with the same bytes, so the same Message-ID: count distinct ids.
    let distinct_ack_ids = || {
        let mut ids: Vec<String> = fetch_all(&stack, CITIZEN)
            .iter()
            .filter_map(|m| header(&String::from_utf8_lossy(m), "Message-ID"))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let ids = gw.wait_for("an acknowledgment for every ticket", WAIT, || {
        let ids = distinct_ack_ids();
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
fn dovecot_restarted_under_a_running_gateway_is_reconnected() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Prima", "prima");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    stack.stop_imap();
    std::thread::sleep(Duration::from_millis(500));
    stack.start_imap();
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Dopo il riavvio", "dopo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let t = wait_tickets(&gw, 2);
    assert!(t.iter().any(|t| t["subject"] == "Dopo il riavvio"));
}

#[test]
fn acknowledgments_go_out_once_the_smtp_server_is_back() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    stack.stop_smtp();
    // With the MTA down mail reaches us by pipe delivery instead.
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Con SMTP giù", "testo");
    let out = gw.ingest("lavori-pubblici", &raw);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        reference.parse::<ticketgate::domain::TicketRef>().is_ok(),
        "ingest prints the reference: {reference:?}"
    );
    gw.wait_for("a failed attempt recorded", WAIT, || {
        let s = gw.show(&reference);
        let ack = s["messages"]
            .as_array()?
            .iter()
            .find(|m| m["kind"] == "ack")?
            .clone();
        (ack["delivery"]["state"] == "queued" && ack["delivery"]["attempts"].as_i64()? >= 1)
            .then_some(())
    });
    stack.start_smtp();
    let ack = wait_for_mail(&stack, CITIZEN, Duration::from_secs(60), |m| {
        m.contains(&reference)
    });
    assert!(subject_and_text(&ack).0.contains(&tag_of(&reference)));
}

#[test]
fn ingest_exits_75_when_the_message_cannot_be_stored() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    // Point the database somewhere that cannot be created.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(&gw.config_path)
        .args(["ingest", "--mailbox", "lavori-pubblici"])
        .env(
            "TICKETGATE__DATABASE__URL",
            "sqlite:///proc/no/such/dir/x.db",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ingest");
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_connect_names_the_mailbox_that_fails() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let ok = gw.cli(&["check-config", "--connect"]);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = std::fs::read_to_string(&gw.config_path).expect("config");
    let broken = text.replacen(
        &format!("password = \"{}\"", stack.password),
        "password = \"wrong\"",
        1,
    );
    let path = gw.dir.join("broken.toml");
    std::fs::write(&path, broken).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(&path)
        .args(["check-config", "--connect"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("FAIL: mailbox \"lavori-pubblici\""),
        "{stdout}"
    );
    assert!(stdout.contains("ok: mailbox \"ambiente\""), "{stdout}");
}

#[test]
fn handled_mail_is_moved_to_the_processed_folder_and_never_deleted() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, processed_folder("Processed"));
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, "Da spostare", "testo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    let moved = gw.wait_for("the message in Processed", WAIT, || {
        let m = fetch_folder(&stack, LAVORI, "Processed");
        (m.len() == 1).then_some(m)
    });
    assert!(String::from_utf8_lossy(&moved[0]).contains(&id));
    assert!(
        fetch_all(&stack, LAVORI).is_empty(),
        "the inbox keeps only unhandled mail"
    );
}

#[test]
fn a_uidvalidity_change_resyncs_without_making_tickets_twice() {
    let stack = MailStack::start();
    let mut gw = Gateway::start(&stack);
    for i in 0..3 {
        let (_, raw) = citizen_mail(CITIZEN, LAVORI, &format!("Prima del cambio {i}"), "testo");
        send(&stack, CITIZEN, &[LAVORI], &raw);
    }
    wait_tickets(&gw, 3);
    gw.wait_for("all handled", WAIT, || {
        all_seen(&stack, LAVORI, 3).then_some(())
    });
    assert!(gw.stop());
    // Make Dovecot renumber the mailbox for real: without its UID list and indexes it
    // assigns a new UIDVALIDITY and new UIDs to the same messages.
    stack.stop_imap();
    // Dovecot's new UIDVALIDITY is the current time in seconds: within the second the
    // mailbox was created it would be the same number, and nothing would have changed.
    std::thread::sleep(Duration::from_millis(1100));
    let maildir = stack.dir.join("mail").join(LAVORI).join("Maildir");
    for entry in std::fs::read_dir(&maildir).expect("maildir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if name.starts_with("dovecot") {
            std::fs::remove_file(&path).expect("remove dovecot index file");
        }
    }
    stack.start_imap();
    gw.restart();
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Dopo il cambio", "testo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let tickets = wait_tickets(&gw, 4);
    // The three old messages were fetched again and recognised as duplicates.
    gw.wait_for("old messages re-read as duplicates", WAIT, || {
        (gw.metric("ticketgate_raw_messages{state=\"duplicate\"}") == Some(3.0)).then_some(())
    });
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("Dopo il cambio"));
    assert_eq!(tickets.len(), 4);
    assert_eq!(
        fetch_all(&stack, CITIZEN).len(),
        4,
        "no second acknowledgment"
    );
}

#[test]
fn an_out_of_office_answer_to_our_acknowledgment_is_recorded_on_its_ticket() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (_, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        "Panchina rotta",
        "La panchina del parco è rotta.",
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("[Ticket #"));
    let ack_id = header(&ack, "Message-ID").expect("ack id");
    let reference = wait_tickets(&gw, 1)[0]["ref"]
        .as_str()
        .expect("ref")
        .to_owned();
    let ooo = format!(
        "From: <{CITIZEN}>\r\nTo: <{LAVORI}>\r\nSubject: Fuori ufficio: [Ticket #{reference}] Panchina rotta\r\n\
         Auto-Submitted: auto-replied\r\nIn-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\n\
         Message-ID: <{}>\r\n\r\nSarò assente fino al 3 dicembre.\r\n",
        unique_id()
    );
    send(&stack, CITIZEN, &[LAVORI], ooo.as_bytes());
    let shown = gw.wait_for("auto-reply recorded on the ticket", WAIT, || {
        let s = gw.show(&reference);
        s["events"]
            .as_array()?
            .iter()
            .any(|e| e["kind"] == "auto_reply")
            .then_some(s)
    });
    assert_eq!(
        ticket_count(&gw),
        1,
        "an auto-reply never opens a ticket of its own"
    );
    let inbound: Vec<&Value> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["direction"] == "in")
        .collect();
    assert_eq!(inbound.len(), 2);
    assert_eq!(inbound[1]["kind"], "auto_reply");
    assert_eq!(
        fetch_all(&stack, CITIZEN).len(),
        1,
        "and it is not answered"
    );
}

#[test]
fn a_quarantined_message_is_made_a_ticket_by_retry_after_the_configuration_is_fixed() {
    let stack = MailStack::start();
    let mut gw = Gateway::start(&stack);
    // Piped in for the ambiente mailbox (which has no default_area) and addressed to
    // nobody we know: there is no area for it.
    let raw = format!(
        "From: <{CITIZEN}>\r\nTo: <uffici@comune.test>\r\nSubject: Senza area\r\nMessage-ID: <{}>\r\n\r\ntesto\r\n",
        unique_id()
    );
    let out = gw.ingest("ambiente", raw.as_bytes());
    assert!(
        out.status.success(),
        "stored, so exit 0: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("quarantined: no area"));
    let q = gw.quarantine();
    assert_eq!(q.len(), 1);
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no default_area"),
        "{q:?}"
    );
    assert!(gw.stop());
    let text = std::fs::read_to_string(&gw.config_path).expect("config");
    let fixed = text.replacen(
        "poll_seconds = 1\n\n[[area]]",
        "poll_seconds = 1\ndefault_area = \"ambiente\"\n\n[[area]]",
        1,
    );
    assert_ne!(text, fixed, "config edit applied");
    std::fs::write(&gw.config_path, fixed).expect("write config");
    let id = q[0]["id"].as_i64().expect("id").to_string();
    let out = gw.cli(&["quarantine", "retry", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let tickets = gw.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["area"], "ambiente");
    assert_eq!(printed, tickets[0]["ref"].as_str().unwrap_or(""));
    assert!(gw.quarantine().is_empty());
    // The acknowledgment goes out once serve runs again.
    gw.restart();
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&printed));
}

#[test]
fn pipe_delivery_to_a_complaints_address_makes_a_complaint_and_is_idempotent() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (_, raw) = citizen_mail(
        CITIZEN,
        "reclami@comune.test",
        "Reclamo sul cantiere",
        "Il cantiere è fermo da mesi.",
    );
    let out = gw.ingest("lavori-pubblici", &raw);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let t = gw.show(&reference);
    assert_eq!(t["ticket"]["kind"], "reclamo");
    assert_eq!(t["ticket"]["area"], "lavori-pubblici");
    // The MTA retrying the same delivery changes nothing.
    let again = gw.ingest("lavori-pubblici", &raw);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("duplicate"));
    assert_eq!(ticket_count(&gw), 1);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&reference));
    assert!(subject_and_text(&ack).1.contains("reclamo"));
    // --limit and --config after the subcommand.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args([
            "ticket", "list", "--format", "json", "--limit", "1", "--config",
        ])
        .arg(&gw.config_path)
        .output()
        .expect("run");
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(|a| a.len()), Some(1));
}

#[test]
fn without_idle_the_mailbox_is_polled() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.polling();
        c.outbox = "retry_initial_seconds = 1".to_owned();
    });
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Senza IDLE", "testo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    assert!(gw.log().contains("idle=false"), "the poller says it polls");
}

/// `processed_folder = folder` on the "lavori-pubblici" mailbox (failed sends retried after
/// a second).
fn processed_folder(folder: &str) -> impl FnOnce(&mut TestConfig) + '_ {
    move |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.mailbox("lavori-pubblici").processed_folder = Some(folder.to_owned());
    }
}

/// Acknowledgments the citizen has received.
fn acknowledgments(stack: &MailStack, citizen: &str) -> usize {
    fetch_all(stack, citizen)
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("[Ticket #"))
        .count()
}

#[test]
fn a_processed_folder_the_server_refuses_never_stops_new_mail_from_becoming_tickets() {
    let stack = MailStack::start();
    // Dovecot (Maildir++, separator ".") refuses '/' in a name: CREATE and MOVE answer NO.
    let mut gw = Gateway::start_configured(&stack, processed_folder("Processed/Rifiutata"));
    let (_, first) = citizen_mail(CITIZEN, LAVORI, "Prima segnalazione", "testo");
    send(&stack, CITIZEN, &[LAVORI], &first);
    wait_tickets(&gw, 1);
    // Sent after the folder was refused: before the fix no mail was fetched any more.
    let (_, second) = citizen_mail(CITIZEN2, LAVORI, "Seconda segnalazione", "testo");
    send(&stack, CITIZEN2, &[LAVORI], &second);
    wait_tickets(&gw, 2);
    gw.wait_for("both citizens acknowledged", WAIT, || {
        (acknowledgments(&stack, CITIZEN) == 1 && acknowledgments(&stack, CITIZEN2) == 1)
            .then_some(())
    });

    let log = gw.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("IMAP folder cannot be used"))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARN, not one per attempt:\n{log}");
    assert!(
        warnings[0].contains("Processed/Rifiutata")
            && warnings[0].contains("must not have '/' characters"),
        "the WARN names the folder and the server's answer: {}",
        warnings[0]
    );
    assert!(
        !log.contains("IMAP connection lost"),
        "a refused folder is not a lost connection:\n{log}"
    );
    let errors = gw
        .metric(
            "ticketgate_imap_folder_errors_total{mailbox=\"lavori-pubblici\",folder=\"Processed/Rifiutata\"}",
        )
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "the refusal is counted: {errors}");
    assert_eq!(
        fetch_all(&stack, LAVORI).len(),
        2,
        "handled mail waits in the inbox"
    );

    // The operator fixes the name and restarts: the waiting moves are done, no ticket is
    // made twice, no citizen is acknowledged twice.
    let text = std::fs::read_to_string(&gw.config_path).expect("config");
    std::fs::write(
        &gw.config_path,
        text.replace("Processed/Rifiutata", "Processed"),
    )
    .expect("write config");
    gw.restart();
    gw.wait_for("both messages in Processed", WAIT, || {
        (fetch_folder(&stack, LAVORI, "Processed").len() == 2).then_some(())
    });
    assert!(fetch_all(&stack, LAVORI).is_empty(), "the inbox is empty");
    assert_eq!(ticket_count(&gw), 2);
    assert_eq!(
        (
            acknowledgments(&stack, CITIZEN),
            acknowledgments(&stack, CITIZEN2)
        ),
        (1, 1)
    );
}

#[test]
fn a_processed_folder_with_italian_letters_is_created_and_used_in_modified_utf7() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, processed_folder("INBOX.Già elaborati"));
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, "Lampione spento", "testo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    // What Dovecot stores under the wire name of RFC 3501 §5.1.3.
    let moved = gw.wait_for("the message in INBOX.Già elaborati", WAIT, || {
        let m = fetch_folder(&stack, LAVORI, "INBOX.Gi&AOA- elaborati");
        (m.len() == 1).then_some(m)
    });
    assert!(String::from_utf8_lossy(&moved[0]).contains(&id));
    assert!(fetch_all(&stack, LAVORI).is_empty());
    assert!(
        !gw.log().contains("IMAP folder cannot be used"),
        "{}",
        gw.log()
    );
    let out = gw.cli(&["check-config", "--connect"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("processed folder \"INBOX.Già elaborati\" exists"),
        "{stdout}"
    );
}

#[test]
fn check_config_connect_creates_or_finds_the_processed_folder_and_names_a_refusal() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let check = |folder: &str| {
        let path = gw.dir.join("check.toml");
        let mut config = gw.config.clone();
        config.mailbox("lavori-pubblici").processed_folder = Some(folder.to_owned());
        std::fs::write(&path, config.to_toml()).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&path)
            .args(["check-config", "--connect"])
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, stdout) = check("Archivio");
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("processed folder \"Archivio\" created"),
        "{stdout}"
    );
    let (ok, stdout) = check("Archivio");
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("processed folder \"Archivio\" exists"),
        "{stdout}"
    );
    let (ok, stdout) = check("Archivio/Rifiutato");
    assert!(!ok, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("FAIL: mailbox \"lavori-pubblici\""))
        .unwrap_or_else(|| panic!("a FAIL line: {stdout}"));
    assert!(
        line.contains("processed folder \"Archivio/Rifiutato\"")
            && line.contains("CREATE")
            && line.contains("must not have '/' characters")
            && line.contains("separates folder levels with \".\""),
        "{line}"
    );
    assert!(stdout.contains("ok: mailbox \"ambiente\""), "{stdout}");
}

/// Dovecot without MOVE in its capabilities (RFC 6851 is an extension; Courier and old
/// servers lack it).
const WITHOUT_MOVE: &str = "imap_capability = IMAP4rev1 LITERAL+ IDLE UIDPLUS NAMESPACE\n";

/// Restarts the stack's Dovecot with `extra` appended to its configuration (`start-imap`
/// keeps the generated dovecot.conf).
fn reconfigure_dovecot(stack: &MailStack, extra: &str) {
    stack.stop_imap();
    let conf = stack.dir.join("dovecot.conf");
    let mut text = std::fs::read_to_string(&conf).expect("dovecot.conf");
    text.push_str(extra);
    std::fs::write(&conf, text).expect("write dovecot.conf");
    stack.start_imap();
}

#[test]
fn without_move_handled_mail_is_copied_and_expunged_and_the_fallback_is_logged_once() {
    let stack = MailStack::start();
    reconfigure_dovecot(&stack, WITHOUT_MOVE);
    let gw = Gateway::start_configured(&stack, processed_folder("Processed"));
    for (i, citizen) in [CITIZEN, CITIZEN2].into_iter().enumerate() {
        let (_, raw) = citizen_mail(citizen, LAVORI, &format!("Senza MOVE {i}"), "testo");
        send(&stack, citizen, &[LAVORI], &raw);
        wait_tickets(&gw, i + 1);
        gw.wait_for("the message in Processed", WAIT, || {
            (fetch_folder(&stack, LAVORI, "Processed").len() == i + 1).then_some(())
        });
    }
    assert!(
        fetch_all(&stack, LAVORI).is_empty(),
        "UID EXPUNGE removed them from the inbox"
    );
    let log = gw.log();
    assert_eq!(
        log.matches("the server has no MOVE").count(),
        1,
        "said once per connection:\n{log}"
    );
    assert!(!log.contains("IMAP connection lost"), "{log}");
}

#[test]
fn a_folder_that_works_again_gets_the_waiting_mail_without_a_restart() {
    let stack = MailStack::start();
    // The mailbox's Maildir exists once someone has logged in; then a folder directory
    // Dovecot (user vmail) cannot enter: LIST shows it, MOVE answers NO [SERVERBUG].
    fetch_all(&stack, LAVORI);
    let blocked = stack.dir.join(format!("mail/{LAVORI}/Maildir/.Archivio"));
    std::fs::create_dir(&blocked).expect("mkdir");
    std::fs::set_permissions(
        &blocked,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .expect("chmod");
    let gw = Gateway::start_configured(&stack, processed_folder("Archivio"));
    let (id, raw) = citizen_mail(CITIZEN, LAVORI, "Da archiviare", "testo");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    wait_tickets(&gw, 1);
    gw.wait_for("the WARN about the folder", WAIT, || {
        gw.log()
            .contains("IMAP folder cannot be used")
            .then_some(())
    });
    assert_eq!(
        fetch_all(&stack, LAVORI).len(),
        1,
        "the mail waits in the inbox"
    );

    // The operator removes the broken directory; the next retry (30 s after the refusal)
    // creates the folder and moves the mail, with no restart.
    std::fs::remove_dir(&blocked).expect("rmdir");
    gw.wait_for("the folder usable again", Duration::from_secs(90), || {
        gw.log().contains("IMAP folder usable again").then_some(())
    });
    let moved = fetch_folder(&stack, LAVORI, "Archivio");
    assert_eq!(moved.len(), 1);
    assert!(String::from_utf8_lossy(&moved[0]).contains(&id));
    assert!(fetch_all(&stack, LAVORI).is_empty());
    assert!(
        gw.log().contains("IMAP folder usable again"),
        "{}",
        gw.log()
    );
    assert_eq!(ticket_count(&gw), 1, "a retried move makes no ticket");
    assert!(!gw.log().contains("IMAP connection lost"), "{}", gw.log());
}

#[test]
fn copied_mail_the_server_will_not_expunge_is_reported_once_and_not_copied_again() {
    let stack = MailStack::start();
    // Without MOVE, and with an ACL that takes the expunge right ("e") from the owner of
    // the inbox: Dovecot answers UID EXPUNGE with "OK Expunge ignored: Permission denied".
    reconfigure_dovecot(
        &stack,
        &format!(
            "{WITHOUT_MOVE}mail_plugins = $mail_plugins acl\n\
             protocol imap {{\n  mail_plugins = $mail_plugins acl\n}}\n\
             plugin {{\n  acl = vfile\n}}\n"
        ),
    );
    fetch_all(&stack, LAVORI); // the Maildir exists once someone has logged in
    let maildir = stack.dir.join(format!("mail/{LAVORI}/Maildir"));
    let acl = maildir.join("dovecot-acl");
    std::fs::write(&acl, "owner lrwstipk\n").expect("write dovecot-acl");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&maildir).expect("stat"));
    std::os::unix::fs::chown(&acl, Some(owner), Some(owner)).expect("chown");

    let gw = Gateway::start_configured(&stack, processed_folder("Processed"));
    for (i, citizen) in [CITIZEN, CITIZEN2].into_iter().enumerate() {
        let (_, raw) = citizen_mail(citizen, LAVORI, &format!("Non cancellabile {i}"), "testo");
        send(&stack, citizen, &[LAVORI], &raw);
        wait_tickets(&gw, i + 1);
        gw.wait_for("the message copied to Processed", WAIT, || {
            (fetch_folder(&stack, LAVORI, "Processed").len() == i + 1).then_some(())
        });
    }
    let log = gw.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot be removed from the inbox"))
        .collect();
    assert_eq!(warnings.len(), 1, "once per connection:\n{log}");
    assert!(
        warnings[0].contains("UID EXPUNGE removed 0 of 1"),
        "{}",
        warnings[0]
    );
    assert_eq!(fetch_all(&stack, LAVORI).len(), 2, "both stay in the inbox");
    assert!(
        flags(&stack, LAVORI)
            .iter()
            .all(|(_, f)| f.iter().any(|x| x.contains("Deleted"))),
        "marked \\Deleted for whoever can expunge"
    );
    assert_eq!(
        fetch_folder(&stack, LAVORI, "Processed").len(),
        2,
        "never copied twice"
    );
    assert_eq!(ticket_count(&gw), 2);
}
