//! Several `ticketgate serve` instances on one PostgreSQL and the same mailboxes (always on
//! PostgreSQL, whatever `TICKETGATE_TEST_DATABASE` says): they share the work, never make a
//! ticket or send a mail twice, and keep going when one is killed.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use support::postgres::PgDatabase;

const MESSAGES: usize = 1000;
const CITIZENS: usize = 10;
const WAIT: Duration = Duration::from_secs(300);

fn citizen(i: usize) -> String {
    format!("cittadino{i}@citizen.test")
}

fn all_tickets(gw: &Gateway) -> Vec<Value> {
    let out = gw.cli(&["ticket", "list", "--format", "json", "--limit", "100000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ticket list JSON")
}

/// The outbox rows by state, read through `/metrics`.
fn outbox_rows(gw: &Gateway, state: &str) -> f64 {
    gw.metric(&format!("ticketgate_outbox_rows{{state=\"{state}\"}}"))
        .unwrap_or(0.0)
}

#[test]
fn two_instances_on_one_postgresql_share_the_work_and_survive_a_kill_without_doubles() {
    let stack = MailStack::start();
    let db = PgDatabase::create();
    let storage = tempfile::tempdir().unwrap();
    // Leases short enough for the test to see the killed instance's mail taken over (they
    // must exceed the SMTP timeout of 10 s); no acknowledgment limit in the way.
    let tickets = "acks_per_sender_per_hour = 100000";
    let outbox = "retry_initial_seconds = 1\nretry_max_seconds = 2\nlease_seconds = 15";
    let mut instances = [
        Gateway::start_shared(&stack, &db.url, storage.path(), tickets, outbox),
        Gateway::start_shared(&stack, &db.url, storage.path(), tickets, outbox),
    ];

    let sent = AtomicUsize::new(0);
    let victim = std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..MESSAGES {
                let from = citizen(i % CITIZENS);
                let to = if i % 2 == 0 { LAVORI } else { AMBIENTE };
                let (_, raw) = citizen_mail(&from, to, &format!("Segnalazione n. {i}"), "testo");
                send(&stack, &from, &[to], &raw);
                sent.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Midway, an instance that is polling a mailbox dies without warning (the one
        // that made more tickets so far) and comes back.
        while sent.load(Ordering::SeqCst) < MESSAGES * 2 / 5 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let made = |gw: &Gateway| gw.log().matches("ticket created").count();
        let victim = if made(&instances[0]) >= made(&instances[1]) {
            0
        } else {
            1
        };
        assert!(made(&instances[victim]) > 0, "the victim was doing work");
        instances[victim].kill();
        std::thread::sleep(Duration::from_secs(2));
        instances[victim].restart();
        victim
    });

    let second = &instances[1 - victim];
    let tickets = second.wait_for("every message made into a ticket", WAIT, || {
        let t = all_tickets(second);
        (t.len() >= MESSAGES).then_some(t)
    });
    assert_eq!(tickets.len(), MESSAGES, "exactly one ticket per message");
    let subjects: HashSet<&str> = tickets
        .iter()
        .filter_map(|t| t["subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), MESSAGES);
    let refs: HashSet<&str> = tickets.iter().filter_map(|t| t["ref"].as_str()).collect();
    assert_eq!(
        refs.len(),
        MESSAGES,
        "ticket numbers unique under concurrency"
    );

    // Nothing stuck: every outbox row sent (the killed instance's leases expire and the
    // other instance sends them).
    second.wait_for("the outbox emptied", WAIT, || {
        (outbox_rows(second, "queued") == 0.0 && outbox_rows(second, "sent") > 0.0).then_some(())
    });
    assert_eq!(outbox_rows(second, "failed"), 0.0);

    // Every ticket acknowledged exactly once: one acknowledgment Message-ID per ticket in
    // the citizens' mailboxes (a resend after the kill repeats the same Message-ID).
    let mut ack_ids: HashMap<String, String> = HashMap::new();
    second.wait_for("every acknowledgment delivered", WAIT, || {
        ack_ids.clear();
        for c in 0..CITIZENS {
            for m in fetch_all(&stack, &citizen(c)) {
                let text = String::from_utf8_lossy(&m).into_owned();
                let (subject, _) = subject_and_text(&text);
                if !subject.contains("[Ticket #") {
                    continue;
                }
                let id = header(&text, "Message-ID").unwrap_or_default();
                let reference = subject
                    .split('#')
                    .nth(1)
                    .and_then(|r| r.get(..11))
                    .unwrap_or_default()
                    .to_owned();
                if let Some(previous) = ack_ids.insert(id.clone(), reference.clone()) {
                    assert_eq!(previous, reference, "one Message-ID, two tickets: {id}");
                }
            }
        }
        (ack_ids.len() >= MESSAGES).then_some(())
    });
    assert_eq!(
        ack_ids.len(),
        MESSAGES,
        "exactly one acknowledgment per ticket"
    );
    let acked: HashSet<&String> = ack_ids.values().collect();
    assert_eq!(acked.len(), MESSAGES, "no ticket acknowledged twice");
    assert!(second.quarantine().is_empty());
    // The survivor took over the mailbox the victim was polling.
    assert!(
        second.log().contains("mailbox lock taken over"),
        "{}",
        second.log()
    );
}

/// A citizen signed in on one instance is signed in on the other (sessions live in the
/// database), and a form served by one instance may be posted to the other (CSRF tokens are
/// keyed by `security.secret`, the same everywhere).
#[test]
fn a_session_opened_on_one_instance_is_valid_on_the_other() {
    use support::web::{cf, link_in, Client};
    let stack = MailStack::start();
    let db = PgDatabase::create();
    let storage = tempfile::tempdir().unwrap();
    let a = Gateway::start_shared(
        &stack,
        &db.url,
        storage.path(),
        "",
        "retry_initial_seconds = 1",
    );
    let b = Gateway::start_shared(
        &stack,
        &db.url,
        storage.path(),
        "",
        "retry_initial_seconds = 1",
    );
    let password = "una-password-lunga-42";
    let mut client = Client::new(&a);
    let form = client.get("/register");
    let done = client.post(
        "/register",
        &[
            ("csrf", &form.csrf()),
            ("first_name", "Anna"),
            ("last_name", "Verdi"),
            ("email", CITIZEN),
            ("fiscal_code", &cf("RSSMRA85T10A562")),
            ("password", password),
            ("password_confirm", password),
            ("privacy", "yes"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let mail = wait_for_mail(&stack, CITIZEN, Duration::from_secs(30), |m| {
        m.contains("/verify?token=")
    });
    let link = link_in(&mail, "/verify?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    // The link names instance a; confirm it on instance b with a form from instance a.
    let page = client.get(&link);
    client.base = format!("http://127.0.0.1:{}", b.web_port);
    let confirmed = client.post("/verify", &[("csrf", &page.csrf()), ("token", &token)]);
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let login_form = client.get("/login");
    let signed = client.post(
        "/login",
        &[
            ("csrf", &login_form.csrf()),
            ("email", CITIZEN),
            ("password", password),
            ("next", "/tickets"),
        ],
    );
    assert_eq!(signed.status, 303, "{}", signed.body);
    // Signed in on b; the same cookie works on a.
    assert_eq!(client.get("/tickets").status, 200);
    client.base = format!("http://127.0.0.1:{}", a.web_port);
    let list = client.get("/tickets");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("Anna Verdi"));
}
