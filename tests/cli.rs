//! The operator's command line, run as the built binary: exit codes, databases that must
//! exist, `ingest --mailbox` names, every configuration mistake at once, `check-config
//! --connect` beyond the mail servers, and a quarantine an operator can read.
//!
//! Most tests need no mail server: they are about what the CLI does before it would talk to
//! one. Where mail must be handled, it arrives through `ingest` (the real pipe-delivery path).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::gateway::{LAVORI, SECRET, STAFF_LAVORI};
use ticketgate::cli::json::{QuarantineEntry, Ticket, TicketShow};
use ticketgate::domain::calendar;

/// A scratch directory with a configuration file in it.
struct Setup {
    dir: tempfile::TempDir,
}

/// A valid configuration whose database and attachments live in `dir`. The mailbox
/// `imap-lavori` is deliberately named apart from the area slug `lavori-pubblici`, so that
/// both kinds of `ingest --mailbox` names are exercised.
fn config_text(dir: &Path) -> String {
    format!(
        r#"
[database]
url = "sqlite://{dir}/ticketgate.db"

[storage]
dir = "{dir}/attachments"

[security]
secret = "{SECRET}"

[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"

[[mailbox]]
name = "imap-lavori"
host = "127.0.0.1"
port = 1143
tls = "none"
username = "lavori"
password = "a-real-password"

[[area]]
slug = "lavori-pubblici"
name = "Lavori pubblici"
addresses = ["{LAVORI}"]
staff = ["{STAFF_LAVORI}", "anna.bianchi@comune.test"]
"#,
        dir = dir.display()
    )
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("tg-cli-")
            .tempdir()
            .expect("temp dir");
        let setup = Setup { dir };
        setup.write_config(&config_text(setup.dir.path()));
        setup
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_path(&self) -> PathBuf {
        self.path().join("ticketgate.toml")
    }

    fn db_path(&self) -> PathBuf {
        self.path().join("ticketgate.db")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config");
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], None)
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ticketgate");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            input.write_all(bytes).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("ticketgate output")
    }

    /// The JSON document `args` print, read into its type (`ticketgate::cli::json`).
    fn json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text_of(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", text_of(&out)))
    }

    /// `ticket list --format json`.
    fn tickets(&self) -> Vec<Ticket> {
        self.json(&["ticket", "list", "--format", "json"])
    }

    /// `quarantine list [--all] --format json`.
    fn quarantine(&self, all: bool) -> Vec<QuarantineEntry> {
        if all {
            self.json(&["quarantine", "list", "--all", "--format", "json"])
        } else {
            self.json(&["quarantine", "list", "--format", "json"])
        }
    }

    /// Runs statements on the database, as another process would: how a test gives tickets
    /// a known past (creation and event times) that `ingest` stamps with the clock.
    fn sql(&self, statements: &[String]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            let url = format!("sqlite://{}", self.db_path().display());
            let mut c = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            for statement in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement.as_str()))
                    .execute(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        });
    }

    fn migrate(&self) {
        let out = self.run(&["migrate"]);
        assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    }
}

/// stdout and stderr, for assertion messages and searches.
fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn citizen_mail(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Anna Verdi <anna.verdi@citizen.test>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Message-ID: <{}>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0100\r\n\r\n\
         Una buca in via Roma.\r\n",
        support::mail::unique_id()
    )
    .into_bytes()
}

#[test]
fn serve_and_migrate_exit_78_on_a_bad_configuration_and_create_nothing() {
    let s = Setup::new();
    s.write_config(&config_text(s.path()).replace(SECRET, "short"));
    for command in ["serve", "migrate"] {
        let out = s.run(&[command]);
        assert_eq!(out.status.code(), Some(78), "{command}: {}", text_of(&out));
        assert!(
            text_of(&out).contains("security.secret"),
            "{}",
            text_of(&out)
        );
    }
    assert!(!s.db_path().exists(), "no database was created");
}

#[test]
fn commands_that_read_never_create_a_missing_sqlite_database() {
    let s = Setup::new();
    for args in [
        &["ticket", "list"][..],
        &["ticket", "show", "2026-000001"],
        &["quarantine", "list"],
    ] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", text_of(&out));
        let said = text_of(&out);
        assert!(said.contains("does not exist"), "{said}");
        assert!(said.contains(&s.db_path().display().to_string()), "{said}");
        assert!(!s.db_path().exists(), "{args:?} created the database");
    }
    // Once migrated, the same command reads it.
    s.migrate();
    assert_eq!(s.tickets(), vec![]);
}

#[test]
fn commands_that_read_refuse_a_missing_postgresql_database_and_hide_its_password() {
    let server = support::postgres::PgServer::shared();
    let s = Setup::new();
    let url = format!(
        "postgres://ticketgate:{}@127.0.0.1:{}/tg_no_such_database",
        server.password, server.port
    );
    let out = s.run_with(
        &["ticket", "list"],
        &[("TICKETGATE__DATABASE__URL", &url)],
        None,
    );
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(said.contains("does not exist"), "{said}");
    assert!(said.contains("tg_no_such_database"), "{said}");
    assert!(!said.contains(&server.password), "password shown: {said}");
}

#[test]
fn ingest_refuses_a_mailbox_name_that_is_not_configured_and_stores_nothing() {
    let s = Setup::new();
    s.migrate();
    let out = s.run_with(
        &["ingest", "--mailbox", "lavori-pubbici"],
        &[],
        Some(&citizen_mail(LAVORI, "Con un nome sbagliato")),
    );
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(said.contains("imap-lavori"), "known names listed: {said}");
    assert!(
        said.contains("lavori-pubblici"),
        "known names listed: {said}"
    );
    assert_eq!(s.tickets(), vec![]);
    assert_eq!(s.quarantine(false), vec![]);

    // Both documented kinds of name work: a [[mailbox]] name and an area slug.
    for name in ["imap-lavori", "lavori-pubblici"] {
        let out = s.run_with(
            &["ingest", "--mailbox", name],
            &[],
            Some(&citizen_mail(LAVORI, &format!("Per {name}"))),
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text_of(&out));
    }
    let tickets = s.tickets();
    assert_eq!(tickets.len(), 2, "{tickets:?}");

    // A bad file is a temporary failure: the MTA keeps the message and retries (Postfix
    // would bounce on 78), and nothing is stored meanwhile.
    s.write_config(&config_text(s.path()).replace(SECRET, "short"));
    let out = s.run_with(
        &["ingest", "--mailbox", "imap-lavori"],
        &[],
        Some(&citizen_mail(LAVORI, "Con un file sbagliato")),
    );
    assert_eq!(out.status.code(), Some(75), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("security.secret"),
        "{}",
        text_of(&out)
    );
    s.write_config(&config_text(s.path()));
    let tickets = s.tickets();
    assert_eq!(tickets.len(), 2, "{tickets:?}");
}

#[test]
fn ticket_list_and_show_print_the_documented_json_with_its_keys_in_sorted_order() {
    let s = Setup::new();
    s.migrate();
    let out = s.run_with(
        &["ingest", "--mailbox", "lavori-pubblici"],
        &[],
        Some(&citizen_mail(LAVORI, "Buca in via Roma")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let tickets = s.tickets();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let t = &tickets[0];
    assert_eq!(t.not_certified_because, None, "not a key of the list");
    assert_eq!(
        (t.status.as_str(), t.channel.as_str(), t.area.as_str()),
        ("received", "email", "lavori-pubblici")
    );
    assert_eq!(t.subject, "Buca in via Roma");

    let out = s.run(&["ticket", "show", &t.reference, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let shown: TicketShow = serde_json::from_slice(&out.stdout).expect("ticket show JSON");
    assert_eq!(
        shown.ticket.not_certified_because,
        Some(None),
        "said, as null"
    );
    assert_eq!(shown.ticket.reference, t.reference);
    let roles: Vec<&str> = shown.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(
        roles,
        ["citizen", "ack", "notification", "notification"],
        "the report, its acknowledgment, one notification per staff member"
    );
    let ack = &shown.messages[1];
    assert_eq!(
        ack.delivery.as_ref().map(|d| d.state.as_str()),
        Some("queued"),
        "{ack:?}"
    );
    // The due date (issue 14): the creation date in Rome plus the area's 30 working days.
    let created = time::OffsetDateTime::parse(
        &shown.ticket.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("created_at is RFC 3339");
    let created = i64::try_from(created.unix_timestamp_nanos() / 1_000_000).expect("millis");
    let due = calendar::due_date(created, 30, &calendar::Holidays::none());
    assert_eq!(shown.ticket.due_date, calendar::iso_date(due));
    assert_eq!(t.due_date, shown.ticket.due_date, "list and show agree");
    assert!(
        !shown.ticket.overdue && !t.overdue,
        "a new ticket is not overdue"
    );
    // A local holiday on that day (`[calendar] holidays`) moves it to the next working day.
    s.write_config(&format!(
        "{}\n[calendar]\nholidays = [\"{}\"]\n",
        config_text(s.path()),
        calendar::iso_date(due)
    ));
    let moved: TicketShow = s.json(&["ticket", "show", &t.reference, "--format", "json"]);
    let next = calendar::add_working_days(due, 1, &calendar::Holidays::none());
    assert_eq!(moved.ticket.due_date, calendar::iso_date(next));
    let said = text_of(&s.run(&["ticket", "show", &t.reference]));
    assert!(
        said.contains(&format!("Due      {}", calendar::iso_date(next))),
        "{said}"
    );

    // Scripts may depend on the exact bytes: keys sorted at every level, as the `json!`
    // maps the CLI first printed them with had them.
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", serde_json::to_string_pretty(&value).expect("print"))
    );
    let keys: Vec<&String> = value["ticket"]
        .as_object()
        .expect("ticket")
        .keys()
        .collect();
    assert_eq!(
        keys,
        [
            "area",
            "certified",
            "channel",
            "citizen",
            "citizen_name",
            "created_at",
            "due_date",
            "kind",
            "not_certified_because",
            "overdue",
            "pec_address",
            "ref",
            "reply_to",
            "reply_to_asked",
            "status",
            "subject",
            "text",
            "updated_at"
        ]
    );
}

#[test]
fn check_config_names_every_mistake_of_a_file_with_its_line_and_exits_78() {
    let s = Setup::new();
    let text = config_text(s.path())
        .replace(SECRET, "CHANGE-ME-to-a-random-string-of-32-bytes-or-more")
        .replace("port = 2525", "port = 2525\nhots = \"x\"")
        .replace("port = 1143", "port = \"imap\"")
        .replace(
            &format!("addresses = [\"{LAVORI}\"]"),
            "addresses = [\"nobody\"]",
        )
        + "\n[calendar]\nholidays = [\"12-07\",\n  \"31-12\"]\n";
    s.write_config(&text);
    let out = s.run(&["check-config"]);
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(78), "{said}");
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
    for (key, needle) in [
        ("security.secret", "CHANGE-ME"),
        ("smtp.hots", "hots ="),
        ("mailbox[0].port", "\"imap\""),
        ("area[0].addresses[0]", "\"nobody\""),
        ("calendar.holidays[1]", "\"31-12\""),
    ] {
        let expected = format!("error: {key} (line {})", line(needle).expect("in the file"));
        assert!(said.contains(&expected), "{expected:?} not in:\n{said}");
    }
    assert!(said.contains("5 error(s)"), "{said}");
}

#[test]
fn the_example_configuration_is_refused_only_for_its_placeholder_secret() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ticketgate.example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(&example)
        .arg("check-config")
        .output()
        .expect("run check-config");
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(78), "{said}");
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{said}");
    assert!(errors[0].starts_with("error: security.secret"), "{said}");
    assert!(said.contains("warning: smtp.password"), "{said}");
}

#[test]
fn check_config_connect_opens_the_database_without_creating_it_and_writes_to_storage() {
    let stack = support::mailstack::MailStack::start();
    let s = Setup::new();
    let ports = (1, support::local::free_port());
    let database_url = format!("sqlite://{}/ticketgate.db", s.path().display());
    let text = support::config::TestConfig::new(&stack, s.path(), ports, &database_url).to_toml();
    s.write_config(&text);

    // Before `migrate`: the SQLite file may be missing (it can be created), and stays missing.
    let out = s.run(&["check-config", "--connect"]);
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("ok: database"), "{said}");
    assert!(said.contains("no file yet"), "{said}");
    assert!(said.contains("ok: storage.dir"), "{said}");
    assert!(!s.db_path().exists(), "check-config created the database");

    s.migrate();
    let out = s.run(&["check-config", "--connect"]);
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("schema up to date"), "{said}");
    assert!(said.contains("wrote and removed a file"), "{said}");
    let leftovers: Vec<_> = std::fs::read_dir(s.path().join("attachments"))
        .expect("storage dir")
        .collect();
    assert!(
        leftovers.is_empty(),
        "the probe file was left: {leftovers:?}"
    );

    // A database file that is not a database, and a storage.dir under a regular file.
    let blocker = s.path().join("a-file");
    std::fs::write(&blocker, "not a directory").expect("write");
    std::fs::write(s.path().join("junk.db"), vec![b'x'; 4096]).expect("write");
    s.write_config(
        &text
            .replace(
                &format!("{}/attachments", s.path().display()),
                &format!("{}/attachments", blocker.display()),
            )
            .replace("ticketgate.db", "junk.db"),
    );
    let out = s.run(&["check-config", "--connect"]);
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL: database"), "{said}");
    assert!(said.contains("FAIL: storage.dir"), "{said}");
    assert!(
        said.contains("ok: mailbox"),
        "the mail servers still checked: {said}"
    );
}

/// A mail nested deeper than the gateway reads (quarantined by the MIME pre-scan), with an
/// encoded From and a Subject carrying a terminal escape sequence.
fn nested_mail(subject_b64: &str, message_id: &str) -> Vec<u8> {
    let mut raw = format!(
        "From: =?UTF-8?Q?Anna_Verd=C3=AC?= <anna.verdi@citizen.test>\r\nTo: {LAVORI}\r\n\
         Subject: =?UTF-8?B?{subject_b64}?=\r\nMessage-ID: <{message_id}>\r\n\
         Date: Mon, 07 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
    )
    .into_bytes();
    for _ in 0..100 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"From: x@example.test\r\n\r\nfondo\r\n");
    raw
}

#[test]
fn the_quarantine_shows_who_wrote_what_and_a_dropped_message_keeps_its_bytes_and_its_note() {
    let s = Setup::new();
    s.migrate();
    // "Buca\x1b[31m in via Roma", base64.
    let raw = nested_mail("QnVjYRtbMzFtIGluIHZpYSBSb21h", "nested-1@citizen.test");
    let out = s.run_with(&["ingest", "--mailbox", "lavori-pubblici"], &[], Some(&raw));
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(text_of(&out).contains("quarantined"), "{}", text_of(&out));

    let list = s.quarantine(false);
    assert_eq!(list.len(), 1, "{list:?}");
    let q = &list[0];
    assert_eq!(q.from, "Anna Verdì <anna.verdi@citizen.test>");
    assert_eq!(q.subject, "Buca[31m in via Roma", "escape removed: {q:?}");
    assert_eq!(q.message_id, "nested-1@citizen.test");
    assert_eq!(q.mailbox, "lavori-pubblici");
    assert_eq!(usize::try_from(q.size).ok(), Some(raw.len()));
    assert!(q.received_at.starts_with("20"), "{q:?}");
    assert!(!q.reason.is_empty(), "{q:?}");
    let id = q.id.to_string();

    let out = s.run(&["quarantine", "list"]);
    let listed = text_of(&out);
    assert!(
        listed.contains("Anna Verdì <anna.verdi@citizen.test>"),
        "{listed}"
    );
    assert!(listed.contains("nested-1@citizen.test"), "{listed}");
    assert!(
        !listed.contains('\u{1b}'),
        "no raw escape on the terminal: {listed}"
    );

    let out = s.run(&["quarantine", "show", &id]);
    let shown = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("Subject: =?UTF-8?B?QnVjYRtbMzFtIGluIHZpYSBSb21h?="),
        "{shown}"
    );
    assert!(shown.contains("Reason"), "{shown}");
    assert!(!shown.contains("fondo"), "the body is not shown: {shown}");

    let out = s.run(&["quarantine", "export", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(out.stdout == raw, "export writes the stored bytes exactly");

    // Drop: gone from the list, still stored, with who, when and why.
    let out = s.run_with(
        &[
            "quarantine",
            "drop",
            &id,
            "--reason",
            "test nidificato, nessuna azione",
        ],
        &[("USER", "operatore")],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert_eq!(s.quarantine(false), vec![]);
    let all = s.quarantine(true);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, "dropped", "{all:?}");
    let dropped = all[0].dropped.as_ref().expect("who dropped it");
    assert_eq!(dropped.by, "operatore");
    assert_eq!(dropped.reason, "test nidificato, nessuna azione");
    let out = s.run(&["quarantine", "export", &id]);
    assert!(out.stdout == raw, "the bytes stay stored after the drop");
    let out = s.run(&["quarantine", "drop", &id, "--reason", "again"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "dropped once: {}",
        text_of(&out)
    );
    let out = s.run(&["quarantine", "show", "999999"]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
}

#[test]
fn a_quarantined_message_with_a_megabyte_of_header_is_listed_short_and_shown_cut() {
    let s = Setup::new();
    s.migrate();
    let mut raw = b"X-Filler: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    raw.extend_from_slice(b"\r\n");
    raw.extend(nested_mail("TG9uZ2E=", "long-1@citizen.test"));
    let out = s.run_with(&["ingest", "--mailbox", "lavori-pubblici"], &[], Some(&raw));
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let list = s.quarantine(false);
    assert_eq!(list.len(), 1, "{list:?}");
    // The fields after the cap are not read: the list is bounded, not complete.
    assert!(list[0].subject.len() <= 1000, "{:?}", list[0].subject);
    let id = list[0].id.to_string();
    let out = s.run(&["quarantine", "show", &id]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(
        shown.len() < 80 * 1024,
        "show is bounded: {} bytes",
        shown.len()
    );
    assert!(shown.contains("header block cut"), "the cut is said");
}

#[test]
fn a_bad_value_from_the_environment_is_named_by_its_variable_beside_the_file_s_mistakes() {
    let s = Setup::new();
    s.write_config(&config_text(s.path()).replace("port = 1143", "port = 1143\nfolder = 7"));
    let out = s.run_with(
        &["check-config"],
        &[("TICKETGATE__SMTP__PORT", "submission")],
        None,
    );
    let said = text_of(&out);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(
        said.contains("error: smtp.port: ") && said.contains("TICKETGATE__SMTP__PORT"),
        "{said}"
    );
    assert!(said.contains("error: mailbox[0].folder (line"), "{said}");
}

#[test]
fn ticket_list_filters_by_area_status_day_and_text_and_prints_csv_a_spreadsheet_cannot_run() {
    let s = Setup::new();
    s.migrate();
    for subject in [
        "Buca in via Roma",
        "Sconto del 100%",
        "=HYPERLINK(\"http://x\")",
    ] {
        let out = s.run_with(
            &["ingest", "--mailbox", "lavori-pubblici"],
            &[],
            Some(&citizen_mail(LAVORI, subject)),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    }
    let subjects = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ticket", "list", "--format", "json"];
        all.extend_from_slice(args);
        let tickets: Vec<Ticket> = s.json(&all);
        tickets.into_iter().map(|t| t.subject).collect()
    };
    assert_eq!(
        subjects(&["--search", "SCONTO"]),
        ["Sconto del 100%"],
        "any case"
    );
    assert_eq!(
        subjects(&["--search", "100%"]),
        ["Sconto del 100%"],
        "% is a character, not a wildcard"
    );
    assert_eq!(subjects(&["--search", "_"]), Vec::<String>::new(), "_ too");
    assert_eq!(
        subjects(&["--search", "anna.verdi@citizen"]).len(),
        3,
        "the address"
    );
    assert_eq!(
        subjects(&["--area", "lavori-pubblici", "--status", "received"]).len(),
        3
    );
    assert_eq!(subjects(&["--status", "resolved"]), Vec::<String>::new());
    assert_eq!(subjects(&["--since", "2000-01-01"]).len(), 3);
    assert_eq!(subjects(&["--since", "2999-01-01"]), Vec::<String>::new());
    assert_eq!(subjects(&["--overdue"]), Vec::<String>::new(), "all new");
    // Created 70 days ago, past the default 30 working days: the received and the taken ones
    // are overdue, the answered one is not.
    s.sql(&[
        "UPDATE ticket SET created_at = created_at - 86400000 * 70".into(),
        "UPDATE ticket SET status = 'taken' WHERE subject = 'Sconto del 100%'".into(),
        "UPDATE ticket SET status = 'answered' WHERE subject LIKE 'Buca%'".into(),
    ]);
    assert_eq!(
        subjects(&["--overdue", "--search", "100"]),
        ["Sconto del 100%"],
        "the overdue ticket that also matches"
    );
    assert_eq!(subjects(&["--overdue"]).len(), 2, "received and taken");
    let flagged = s.tickets().iter().filter(|t| t.overdue).count();
    assert_eq!(
        flagged, 2,
        "the JSON's `overdue` says the same as --overdue"
    );
    for (args, named) in [
        (&["--area", "tributi"][..], "--area"),
        (&["--status", "closed"], "--status"),
        (&["--since", "8/12/2026"], "--since"),
    ] {
        let mut all = vec!["ticket", "list"];
        all.extend_from_slice(args);
        let out = s.run(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text_of(&out));
        assert!(text_of(&out).contains(named), "{}", text_of(&out));
    }

    let out = s.run(&["ticket", "list", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let csv = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "area,certified,channel,citizen,citizen_name,created_at,due_date,kind,overdue,\
         pec_address,ref,reply_to,reply_to_asked,status,subject,text,updated_at"
    );
    assert_eq!(lines.len(), 5, "a header, three rows, the last CRLF: {csv}");
    assert!(
        lines[1].contains(",\"'=HYPERLINK(\"\"http://x\"\")\","),
        "quoted and neutralised: {}",
        lines[1]
    );
    assert!(lines[1].starts_with("lavori-pubblici,,email,anna.verdi@citizen.test,Anna Verdi,"));
}

#[test]
fn stats_gives_the_medians_p90_and_shares_of_a_known_history_as_json_and_csv() {
    let s = Setup::new();
    s.migrate();
    for subject in ["T1", "T2", "T3", "T4"] {
        let out = s.run_with(
            &["ingest", "--mailbox", "lavori-pubblici"],
            &[],
            Some(&citizen_mail(LAVORI, subject)),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    }
    // Monday 30 November 2026, 09:00 in Rome. T1 answered 2 hours later, T2 after 30 hours
    // (Tuesday) and resolved after 50, T3 after 100 (Friday); T4, of 1 September, waits
    // past its due date.
    const MONDAY_9: i64 = 1_796_025_600_000;
    const HOUR: i64 = 3_600_000;
    let answer = |subject: &str, hours: i64| {
        format!(
            "INSERT INTO event (ticket_id, kind, at, actor, details) SELECT ticket_id, \
             'answered', created_at + {}, 'test', '{{}}' FROM ticket WHERE subject = '{subject}'",
            hours * HOUR
        )
    };
    s.sql(&[
        format!("UPDATE ticket SET created_at = {MONDAY_9} WHERE subject <> 'T4'"),
        "UPDATE ticket SET created_at = 1788246000000 WHERE subject = 'T4'".into(),
        answer("T1", 2),
        answer("T2", 30),
        answer("T3", 100),
        format!(
            "INSERT INTO event (ticket_id, kind, at, actor, details) SELECT ticket_id, \
             'resolved', created_at + {}, 'test', '{{}}' FROM ticket WHERE subject = 'T2'",
            50 * HOUR
        ),
        "UPDATE ticket SET status = 'answered' WHERE subject IN ('T1', 'T3')".into(),
        "UPDATE ticket SET status = 'resolved' WHERE subject = 'T2'".into(),
    ]);

    let report: serde_json::Value = s.json(&["stats", "--format", "json"]);
    let all = &report["all"];
    assert_eq!(
        report["areas"]["lavori-pubblici"], *all,
        "one area: the same"
    );
    assert_eq!(all["received"], 4);
    assert_eq!(all["by_channel"]["email"], 4);
    assert_eq!(all["by_kind"]["segnalazione"], 4);
    assert_eq!(
        (
            &all["answered"],
            &all["resolved"],
            &all["open_now"],
            &all["overdue_now"]
        ),
        (&3.into(), &1.into(), &3.into(), &1.into())
    );
    let first = &all["first_answer"];
    assert_eq!(first["count"], 3);
    assert_eq!(first["median_hours"], 30.0);
    assert_eq!(first["p90_hours"], 100.0);
    assert_eq!(first["max_hours"], 100.0);
    assert_eq!(first["median_working_days"], 1.0);
    assert_eq!(first["p90_working_days"], 4.0);
    assert_eq!(all["resolution"]["median_hours"], 50.0);
    assert_eq!(all["resolution"]["median_working_days"], 2.0);
    assert_eq!(all["answered_within_due"], 0.75, "3 on time, 1 overdue");

    let from: serde_json::Value = s.json(&[
        "stats",
        "--from",
        "2026-11-30",
        "--to",
        "2026-11-30",
        "--format",
        "json",
    ]);
    assert_eq!(from["all"]["received"], 3, "T4 is of September");
    assert_eq!(from["from"], "2026-11-30");

    let out = s.run(&["stats", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let csv = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(
        lines[0].starts_with("area,received,kind_segnalazione,"),
        "{csv}"
    );
    assert!(lines[1].starts_with("lavori-pubblici,4,4,"), "{csv}");
    assert!(lines[2].starts_with("all,4,4,"), "{csv}");
    let out = s.run(&["stats", "--area", "tributi"]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
}
