//! What an operator relies on, through the real binary and real servers: systemd's
//! notifications on a real unix datagram socket, `/healthz` while Dovecot and Postfix are
//! stopped and started, and JSON logs.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{Gateway, CITIZEN, LAVORI};
use support::http;
use support::mail::{citizen_mail, send};
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(60);

/// `/healthz?format=json` on `port`: (status code, parsed body).
fn health_json(port: u16) -> (u16, Value) {
    let (code, body) = http::get(port, "/healthz?format=json");
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/healthz?format=json is not JSON ({e}): {body:?}"));
    (code, value)
}

fn mailbox<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["mailboxes"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("mailbox {name} not in {health}"))
}

#[test]
fn systemd_hears_ready_once_healthz_answers_then_watchdog_pings_and_stopping_at_sigterm() {
    let stack = MailStack::start();
    let sock_dir = tempfile::tempdir().expect("temp dir");
    let path = sock_dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let notify_socket = path.display().to_string();
    // 400 ms: systemd's watchdog interval for this test; pings are due every 200 ms.
    let mut gw = Gateway::prepare_with_env(
        &stack,
        &[
            ("NOTIFY_SOCKET", notify_socket.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
        |t| t,
    );
    let port = gw.web_port;
    // Each datagram, and for READY=1 the answer /healthz gave the moment it arrived.
    let (tx, rx) = mpsc::channel::<(String, Option<u16>)>();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let healthz = message
                    .lines()
                    .any(|l| l == "READY=1")
                    .then(|| http::get(port, "/healthz").0);
                if tx.send((message, healthz)).is_err() {
                    return;
                }
            }
        })
    };
    gw.launch();

    let next = |what: &str| -> (String, Option<u16>) {
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {what} from serve within 30 s:\n{}", gw.log()))
    };
    let (first, healthz) = next("READY=1");
    assert!(
        first.lines().any(|l| l == "READY=1"),
        "the first notification is READY=1: {first:?}"
    );
    assert_eq!(
        healthz,
        Some(200),
        "when READY=1 arrives, /healthz already answers"
    );
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pings < 3 && Instant::now() < deadline {
        let (message, _) = next("WATCHDOG=1");
        assert_eq!(message, "WATCHDOG=1", "only watchdog pings while serving");
        pings += 1;
    }
    assert_eq!(pings, 3, "the main loop pings the watchdog");

    assert!(gw.stop(), "serve exits 0 on SIGTERM:\n{}", gw.log());
    let mut after: Vec<String> = Vec::new();
    while let Ok((message, _)) = rx.recv_timeout(Duration::from_secs(1)) {
        after.push(message);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    listener.join().expect("listener thread");
    assert!(
        after.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "STOPPING=1 is sent when the stop begins: {after:?}"
    );
}

#[test]
fn a_mailbox_failing_longer_than_the_threshold_makes_healthz_503_naming_it() {
    let stack = MailStack::start();
    let gw = Gateway::start_edited(
        &stack,
        "",
        "retry_initial_seconds = 1\nretry_max_seconds = 2",
        |t| t + "\n[health]\nmailbox_failing_seconds = 2\n",
    );
    // Up: both pollers synced, nothing waiting to be sent.
    gw.wait_for("both mailboxes idle on /healthz", WAIT, || {
        let (code, h) = health_json(gw.web_port);
        let idle = ["lavori-pubblici", "ambiente"]
            .iter()
            .all(|m| mailbox(&h, m)["phase"] == "idle");
        (code == 200 && h["status"] == "ok" && idle).then_some(())
    });
    let (code, text) = http::get(gw.web_port, "/healthz");
    assert_eq!(code, 200);
    assert!(
        text.starts_with("ok\n"),
        "plain text, verdict first: {text}"
    );
    assert!(text.contains("mailbox lavori-pubblici: idle"), "{text}");
    assert!(text.contains("outbox: 0 queued"), "{text}");

    // Postfix down: the acknowledgment and the staff notification wait in the outbox.
    stack.stop_smtp();
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Lampione spento", "via Garibaldi 3");
    let out = gw.ingest("lavori-pubblici", &raw);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, h) = health_json(gw.web_port);
    assert_eq!(code, 200, "a backlog alone is not a failure: {h}");
    let queued = h["outbox"]["queued"].as_i64().expect("queued count");
    assert!(queued >= 2, "ack and notification queued: {h}");
    assert!(
        h["outbox"]["oldest_queued_age_seconds"].as_i64().is_some(),
        "the oldest queued row's age: {h}"
    );

    // Dovecot down: after the 2 s threshold, 503 naming both mailboxes.
    stack.stop_imap();
    let text = gw.wait_for("/healthz 503", WAIT, || {
        let (code, text) = http::get(gw.web_port, "/healthz");
        (code == 503).then_some(text)
    });
    assert!(text.starts_with("unavailable\n"), "{text}");
    for name in ["lavori-pubblici", "ambiente"] {
        assert!(
            text.contains(&format!("mailbox {name}: backing_off, failing for")),
            "{name} named as failing: {text}"
        );
    }
    // A load balancer asks about the web side only: still served.
    let (code, text) = http::get(gw.web_port, "/healthz?scope=web");
    assert_eq!(code, 200, "{text}");
    // The citizens' port never shows the error texts (they name servers and accounts) ...
    let (_, h) = health_json(gw.web_port);
    assert_eq!(h["status"], "unavailable");
    assert_eq!(mailbox(&h, "lavori-pubblici")["state"], "unavailable");
    assert!(
        mailbox(&h, "lavori-pubblici")["last_error"].is_null(),
        "{h}"
    );
    // ... the operator's listener does, as JSON when the client asks with Accept.
    let (code, body) = http::request(
        gw.metrics_port,
        "GET",
        "/healthz",
        &[("Accept", "application/json")],
        None,
    );
    assert_eq!(code, 503);
    let h: Value = serde_json::from_str(&body).expect("JSON by Accept");
    let failing = mailbox(&h, "lavori-pubblici");
    assert!(
        failing["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "the operator sees the last error: {h}"
    );
    assert!(failing["failing_seconds"].as_i64() >= Some(2), "{h}");
    assert!(failing["failing_since"].as_i64().is_some(), "{h}");

    // Both back: healthy again, the backlog sent.
    stack.start_imap();
    stack.start_smtp();
    gw.wait_for("/healthz ok with an empty outbox", WAIT, || {
        let (code, h) = health_json(gw.web_port);
        (code == 200 && h["status"] == "ok" && h["outbox"]["queued"] == 0).then_some(())
    });
}

#[test]
fn with_the_json_log_format_every_line_on_stderr_is_a_json_object() {
    let stack = MailStack::start();
    let mut gw = Gateway::start_with_env(&stack, &[("TICKETGATE_LOG_FORMAT", "json")]);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Rifiuti abbandonati", "via Verdi");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    gw.wait_for("the ticket", WAIT, || {
        (!gw.tickets().is_empty()).then_some(())
    });
    assert!(gw.stop(), "clean stop:\n{}", gw.log());
    let log = gw.log();
    let mut messages = Vec::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line:?}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        messages.push(v["fields"]["message"].as_str().unwrap_or("").to_owned());
    }
    for expected in ["ticketgate serving", "ticketgate stopped"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "{expected:?} logged: {messages:?}"
        );
    }
}

#[test]
fn the_unit_in_the_deployment_guide_is_the_packaged_unit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("packaging/ticketgate.service")).expect("unit");
    let guide = std::fs::read_to_string(root.join("docs/deploy.md")).expect("deploy.md");
    let shown = guide
        .split("```ini\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an ```ini block in docs/deploy.md");
    assert_eq!(
        shown, unit,
        "docs/deploy.md shows packaging/ticketgate.service word for word"
    );
    for line in [
        "Type=notify",
        "WatchdogSec=60",
        "RestartPreventExitStatus=78",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/ticketgate",
        "UMask=0077",
        "LimitNOFILE=8192",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line}");
    }
}

#[test]
fn systemd_rates_the_packaged_unit_at_most_2_0() {
    let unit =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/ticketgate.service");
    let out = match std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: systemd-analyze is not installed (apt install systemd)");
            return;
        }
        Err(e) => panic!("systemd-analyze: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ticketgate.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure figure in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{text}");
}

#[test]
fn healthz_says_503_when_the_database_stops_answering() {
    let stack = MailStack::start();
    // A PostgreSQL server of this test alone, so that stopping it harms no other test.
    let server = support::postgres::PgServer::start();
    server.psql("CREATE DATABASE tg_health OWNER ticketgate");
    let url = format!(
        "postgres://ticketgate:{}@127.0.0.1:{}/tg_health",
        server.password, server.port
    );
    let storage = tempfile::tempdir().expect("storage dir");
    let gw = Gateway::start_shared(
        &stack,
        &url,
        storage.path(),
        "",
        "retry_initial_seconds = 1\nretry_max_seconds = 2",
    );
    let (code, h) = health_json(gw.web_port);
    assert_eq!((code, h["database"].as_str()), (200, Some("ok")), "{h}");

    drop(server); // pg_ctl stop -m immediate: every connection is cut
    let text = gw.wait_for("/healthz 503", WAIT, || {
        let (code, text) = http::get(gw.web_port, "/healthz?scope=web");
        (code == 503).then_some(text)
    });
    assert!(
        text.starts_with("unavailable\ndatabase: unreachable\n"),
        "{text}"
    );
    assert!(text.contains("outbox: unknown"), "{text}");
}
