//! The two benchmarks of BENCHMARKS.md, against real servers and the real `ticketgate serve`.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench -- drain [COUNT] [--inbound-only]     # default 5000
//!     [--postgres [--instances N] [--split]] [--mailboxes M]
//! cargo run --release --example bench -- latency [COUNT]                    # default 200
//! ```
//!
//! Each run starts its own private Dovecot + Postfix (`scripts/mailstack start DIR`, DIR under
//! /tmp), writes a gateway configuration (SQLite in a fresh directory under /tmp, two areas
//! with one staff member each), spawns `target/release/ticketgate --config … serve` and
//! measures. Gateway and mail stack are always stopped at the end, also on error and on
//! Ctrl-C (`BENCH_KEEP=1` keeps the directories, with `serve.log`, for inspection).
//!
//! - `drain`: fills the INBOX of `lavori-pubblici@comune.test` over IMAP APPEND *before* the
//!   gateway starts (mixed Italian mail: plain 8bit, quoted-printable Latin-1, HTML, and one in
//!   five with a 200 KB JPEG-like attachment), then starts it and measures from the first raw
//!   message stored to the last one processed: messages/second, CPU of the gateway process
//!   (utime+stime from /proc/PID/stat, outbox worker included) and peak RSS (VmHWM). Then
//!   waits for the outbox to empty and checks that every message became a ticket.
//!   - `--postgres`: the database is a private PostgreSQL server (tests/support/postgres.rs,
//!     under /tmp), restarted with PostgreSQL's durable defaults (`fsync`,
//!     `synchronous_commit`, `full_page_writes` on; the test server turns them off, which
//!     `BENCH_PG_NO_FSYNC=1` keeps) so that it is compared with SQLite at `synchronous = FULL`.
//!     `BENCH_PG_OPTIONS="-c name=value …"` adds server settings (what-if runs).
//!   - `--instances N` (only with `--postgres`): N `serve` processes, each with its own
//!     configuration directory and web port, on the same `[database] url`, the same
//!     `[storage] dir` and the same mailboxes. ticketgate coordinates them itself (a
//!     PostgreSQL advisory lock per mailbox, outbox rows claimed with `SKIP LOCKED`). The
//!     database is migrated first (`ticketgate migrate`), then all are spawned at once, so the
//!     mailbox locks go to whichever instance asks first: the run prints who polled what.
//!     (An instance starts all its pollers at the same moment, so one instance often locks
//!     every mailbox and the others only send from the outbox.)
//!   - `--mailboxes M` (default 1): the messages are spread over M mailboxes (message i goes
//!     to mailbox i mod M, each mailbox the address of its own area), so that several
//!     instances have several pollers to share.
//!   - `--split` (only with `--postgres`): what several instances would do if the mailboxes
//!     were spread over them, which ticketgate does not do by itself. The backlog is
//!     appended to a `Backlog` folder instead; the benchmark holds every mailbox's lock while
//!     the instances start, hands mailbox m to instance m mod N (see
//!     [`Gateways::assign_mailboxes`]), waits until the pollers are idle, then moves the
//!     backlog into the INBOXes with one `UID MOVE` per mailbox. Figures count from then.
//! - `latency`: with the gateway idle in IMAP IDLE, sends mails one at a time over SMTP, each
//!   from its own citizen address, and times SMTP acceptance → acknowledgment visible in that
//!   citizen's INBOX (polled over IMAP every [`POLL_EVERY`]).
//!
//! The watcher reads the database through sqlx's `Any` driver, so the same queries run on both
//! backends (BIGINT and TEXT columns only: `Any` cannot decode BOOLEAN or NUMERIC).
//!
//! Figures are printed; nothing here passes or fails on timing. Needs root (the mail stack
//! switches users) and the Debian packages of `scripts/install-deps`.

// postgres.rs takes its port and directory from local.rs (`super::local`).
#[path = "../tests/support/local.rs"]
mod local;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::TryStreamExt;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Row};
use tokio::net::TcpStream;

const LAVORI: &str = "lavori-pubblici@comune.test";
const AMBIENTE: &str = "ambiente@comune.test";
const STAFF_LAVORI: &str = "mario.rossi@comune.test";
const STAFF_AMBIENTE: &str = "giulia.bianchi@comune.test";
const SECRET: &str = "bench-secret-bench-secret-bench-";

/// IMAP sessions filling the INBOX in parallel before a drain.
const APPEND_SESSIONS: usize = 4;
/// Size of the binary attachment carried by one message in five.
const ATTACHMENT_BYTES: usize = 200 * 1024;
/// How often the drain watcher looks at the database.
const WATCH_EVERY: Duration = Duration::from_millis(50);
/// How often the latency probe asks Dovecot for the citizen's INBOX.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// Give up on a drain after this long (a stuck gateway, not a slow one).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Give up on one acknowledgment after this long.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

type ImapSession = async_imap::Session<TcpStream>;

/// How a drain is set up: where the data lives and how many gateways share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    /// The outbox sends to a relay that never answers: the inbound pipeline alone.
    inbound_only: bool,
    /// A private PostgreSQL instead of SQLite.
    postgres: bool,
    /// `serve` processes on the same database, storage and mailboxes (PostgreSQL only).
    instances: usize,
    /// IMAP mailboxes, one area each, that the messages are spread over.
    mailboxes: usize,
    /// Instance k polls mailbox k (mod N), arranged by the benchmark, and the backlog is
    /// moved into the INBOXes once every poller is idle (PostgreSQL only). ticketgate does
    /// not spread mailboxes by itself: the first instance to start locks them all.
    split: bool,
}

impl Default for Setup {
    /// One gateway on SQLite, every message in one mailbox: the runs before PostgreSQL.
    fn default() -> Self {
        Setup {
            inbound_only: false,
            postgres: false,
            instances: 1,
            mailboxes: 1,
            split: false,
        }
    }
}

/// Most `--mailboxes` and `--instances` a run accepts (each mailbox is an area, each instance
/// a process with its own pool of database connections).
const MAX_MAILBOXES: usize = 8;
const MAX_INSTANCES: usize = 8;

/// `(mode, count, setup)` from the command line, `None` when it does not parse.
fn parse_args(args: Vec<String>) -> Option<(String, Option<usize>, Setup)> {
    let mut setup = Setup::default();
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut number = |max: usize| -> Option<usize> {
            args.next()?.parse().ok().filter(|n| (1..=max).contains(n))
        };
        match arg.as_str() {
            "--inbound-only" => setup.inbound_only = true,
            "--postgres" => setup.postgres = true,
            "--split" => setup.split = true,
            "--instances" => setup.instances = number(MAX_INSTANCES)?,
            "--mailboxes" => setup.mailboxes = number(MAX_MAILBOXES)?,
            a if a.starts_with("--") => return None,
            _ => positional.push(arg),
        }
    }
    let (mode, count) = match positional.as_slice() {
        [m] => (m.clone(), None),
        [m, n] => match n.parse::<usize>() {
            Ok(n) if n > 0 => (m.clone(), Some(n)),
            _ => return None,
        },
        _ => return None,
    };
    let valid = match mode.as_str() {
        // SQLite runs one `serve` per database: several instances need PostgreSQL.
        // The benchmark's hand-over of mailboxes uses PostgreSQL's locks too.
        "drain" => (setup.instances == 1 && !setup.split) || setup.postgres,
        "latency" => setup == Setup::default(),
        _ => false,
    };
    valid.then_some((mode, count, setup))
}

fn main() -> std::process::ExitCode {
    let Some((mode, count, setup)) = parse_args(std::env::args().skip(1).collect()) else {
        return usage();
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let work = async {
            match mode.as_str() {
                "drain" => drain(count.unwrap_or(5000), setup).await,
                _ => latency(count.unwrap_or(200)).await,
            }
        };
        // On Ctrl-C the benchmark future is dropped: its guards stop the gateway, the
        // database server and the mail stack (daemons that would otherwise outlive us).
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage() -> std::process::ExitCode {
    eprintln!(
        "usage: bench drain [COUNT] [--inbound-only] [--postgres [--instances N] [--split]] [--mailboxes M]\n\
         \x20      bench latency [COUNT]\n\
         (--instances and --split need --postgres; N ≤ {MAX_INSTANCES}, M ≤ {MAX_MAILBOXES})"
    );
    std::process::ExitCode::from(2)
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn keep() -> bool {
    std::env::var_os("BENCH_KEEP").is_some_and(|v| v == "1")
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ------------------------------------------------------------------ mail stack

/// A private Dovecot + Postfix; dropping it stops both (and removes the directory).
struct Stack {
    dir: PathBuf,
    imap_port: u16,
    smtp_port: u16,
    password: String,
}

impl Stack {
    fn start() -> anyhow::Result<Stack> {
        // Short: unix socket paths under DIR must fit in ~108 bytes.
        let dir = PathBuf::from(format!("/tmp/tgb.{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let script = manifest_dir().join("scripts/mailstack");
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        // From here on the guard exists, so a half-started stack is stopped too.
        let mut stack = Stack {
            dir,
            imap_port: 0,
            smtp_port: 0,
            password: String::new(),
        };
        if !out.status.success() {
            bail!("scripts/mailstack start failed ({})", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| -> anyhow::Result<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| format!("scripts/mailstack start printed no {key}=: {text}"))
        };
        stack.imap_port = value("IMAP_PORT")?.parse().context("IMAP_PORT")?;
        stack.smtp_port = value("SMTP_PORT")?.parse().context("SMTP_PORT")?;
        stack.password = value("PASSWORD")?;
        Ok(stack)
    }

    async fn login(&self, user: &str) -> anyhow::Result<ImapSession> {
        let tcp = TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .context("connecting to Dovecot")?;
        tcp.set_nodelay(true).ok();
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .context("IMAP greeting")?
            .context("no IMAP greeting")?;
        client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| anyhow::anyhow!("IMAP login as {user}: {e}"))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new(manifest_dir().join("scripts/mailstack"))
            .arg("stop")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .status();
        if keep() {
            eprintln!("bench: mail stack kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ------------------------------------------------------------------ gateway

/// A running `ticketgate serve`; dropping it sends SIGTERM and waits (SIGKILL after 30 s).
struct Gateway {
    /// Its configuration and `serve.log`.
    dir: PathBuf,
    /// The `[database] url`.
    db_url: String,
    /// The SQLite database file (its size is a figure); `None` on PostgreSQL.
    sqlite_file: Option<PathBuf>,
    web_port: u16,
    child: Option<Child>,
    pid: u32,
    /// Unix millis just before the process was spawned.
    spawned_at: i64,
}

/// The gateways of a run — one, or several `serve` processes on one PostgreSQL — and what
/// they share. Dropping it closes the silent relay, then stops every instance at once.
struct Gateways {
    silent: Option<SilentRelay>,
    instances: Vec<Gateway>,
    /// The attachment store of a PostgreSQL run (outside every instance's directory).
    shared_storage: Option<PathBuf>,
}

/// An "SMTP server" that accepts connections and never says a word: the outbox's sends wait
/// for the greeting until `smtp.timeout_seconds`, so during a drain the worker holds a few
/// connections and spends (almost) nothing. Isolates the inbound pipeline.
struct SilentRelay {
    port: u16,
    task: tokio::task::JoinHandle<()>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentRelay {
    async fn start() -> anyhow::Result<SilentRelay> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the silent relay")?;
        let port = listener.local_addr()?.port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(socket);
            }
        });
        Ok(SilentRelay { port, task, held })
    }
}

impl Drop for SilentRelay {
    /// Closes every held connection: the sends waiting on them fail at once, so the gateway
    /// stops promptly (it finishes the sends in flight before exiting).
    fn drop(&mut self) {
        self.task.abort();
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// One benchmark mailbox and the area its mail goes to. The first two are those of the
/// integration tests' configuration (and of every run before `--mailboxes`); more are made up.
struct Area {
    slug: String,
    name: String,
    address: String,
    staff: String,
}

fn area(k: usize) -> Area {
    let (slug, name, address, staff) = match k {
        0 => (
            "lavori-pubblici".to_owned(),
            "Lavori pubblici".to_owned(),
            LAVORI.to_owned(),
            STAFF_LAVORI.to_owned(),
        ),
        1 => (
            "ambiente".to_owned(),
            "Ambiente".to_owned(),
            AMBIENTE.to_owned(),
            STAFF_AMBIENTE.to_owned(),
        ),
        _ => (
            format!("quartiere-{}", k + 1),
            format!("Quartiere {}", k + 1),
            format!("quartiere{}@comune.test", k + 1),
            format!("presidente{}@comune.test", k + 1),
        ),
    };
    Area {
        slug,
        name,
        address,
        staff,
    }
}

/// A gateway configuration. With `mailboxes` ≤ 2 it is the configuration of every run before
/// PostgreSQL (two mailboxes, two areas); each mailbox above two adds a mailbox and its area.
fn config_text(
    stack: &Stack,
    web_port: u16,
    smtp_port: u16,
    database_url: &str,
    storage: &Path,
    mailboxes: usize,
) -> String {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"

[database]
url = "{database_url}"

[storage]
dir = "{storage}"

[security]
secret = "{SECRET}"

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"
timeout_seconds = 30

[[mailbox]]
name = "lavori-pubblici"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{LAVORI}"
password = "{pw}"
default_area = "lavori-pubblici"

[[mailbox]]
name = "ambiente"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{AMBIENTE}"
password = "{pw}"
"#,
        storage = storage.display(),
        smtp = smtp_port,
        imap = stack.imap_port,
        pw = stack.password,
    );
    for a in (2..mailboxes).map(area) {
        text.push_str(&format!(
            r#"
[[mailbox]]
name = "{slug}"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{address}"
password = "{pw}"
"#,
            slug = a.slug,
            address = a.address,
            imap = stack.imap_port,
            pw = stack.password,
        ));
    }
    text.push_str(&format!(
        r#"
[[area]]
slug = "lavori-pubblici"
name = "Lavori pubblici"
addresses = ["{LAVORI}", {{ address = "reclami@comune.test", kind = "reclamo" }}]
staff = ["{STAFF_LAVORI}"]
response_days = 30

[[area]]
slug = "ambiente"
name = "Ambiente"
addresses = ["{AMBIENTE}"]
staff = ["{STAFF_AMBIENTE}"]
response_days = 20
"#
    ));
    for a in (2..mailboxes).map(area) {
        text.push_str(&format!(
            r#"
[[area]]
slug = "{slug}"
name = "{name}"
addresses = ["{address}"]
staff = ["{staff}"]
response_days = 30
"#,
            slug = a.slug,
            name = a.name,
            address = a.address,
            staff = a.staff,
        ));
    }
    text
}

impl Gateway {
    fn binary() -> anyhow::Result<PathBuf> {
        // Beside this example (target/release/examples/bench -> target/release/ticketgate),
        // so a CARGO_TARGET_DIR elsewhere works too; else the usual place.
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("ticketgate")))
            .filter(|p| p.is_file());
        let bin = std::env::var_os("TICKETGATE_BIN")
            .map(PathBuf::from)
            .or(beside)
            .unwrap_or_else(|| manifest_dir().join("target/release/ticketgate"));
        if !bin.is_file() {
            bail!(
                "{} is missing: build it first with `cargo build --release` \
                 (or point TICKETGATE_BIN at a ticketgate binary)",
                bin.display()
            );
        }
        Ok(bin)
    }

    /// Writes an instance's configuration into a fresh `dir`. The database and the
    /// attachment store are the run's: several instances share them.
    fn configure(
        stack: &Stack,
        dir: PathBuf,
        smtp_port: u16,
        database_url: &str,
        storage: &Path,
        mailboxes: usize,
    ) -> anyhow::Result<Gateway> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let web_port = free_port()?;
        std::fs::write(
            dir.join("ticketgate.toml"),
            config_text(stack, web_port, smtp_port, database_url, storage, mailboxes),
        )
        .context("writing config")?;
        Ok(Gateway {
            sqlite_file: database_url.strip_prefix("sqlite://").map(PathBuf::from),
            db_url: database_url.to_owned(),
            dir,
            web_port,
            child: None,
            pid: 0,
            spawned_at: 0,
        })
    }

    fn config(&self) -> PathBuf {
        self.dir.join("ticketgate.toml")
    }

    /// `ticketgate migrate`: creates the schema before several instances start at once.
    fn migrate(&self, bin: &Path) -> anyhow::Result<()> {
        let log =
            std::fs::File::create(self.dir.join("migrate.log")).context("creating migrate.log")?;
        let status = Command::new(bin)
            .arg("--config")
            .arg(self.config())
            .arg("migrate")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .with_context(|| format!("running {} migrate", bin.display()))?;
        if !status.success() {
            bail!(
                "ticketgate migrate failed ({status}):\n{}",
                std::fs::read_to_string(self.dir.join("migrate.log")).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Spawns `serve` (without waiting for it to be healthy).
    fn spawn(&mut self, bin: &Path) -> anyhow::Result<()> {
        let log =
            std::fs::File::create(self.dir.join("serve.log")).context("creating serve.log")?;
        // `info` is what `serve` logs by default: one line per ticket and per mail sent.
        let filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
        self.spawned_at = now_millis();
        let child = Command::new(bin)
            .arg("--config")
            .arg(self.config())
            .arg("serve")
            .env("TICKETGATE_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.pid = child.id();
        self.child = Some(child);
        Ok(())
    }

    /// Sends `signal` (a name `kill` knows: TERM, STOP, CONT) to the process.
    fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// SIGTERM, without waiting (after a SIGCONT, in case `--split` left it stopped).
    fn terminate(&self) {
        self.signal("CONT");
        self.signal("TERM");
    }

    /// Waits until the log has `count` lines with `message` (and, if given, `mailbox=NAME`).
    async fn wait_log(
        &self,
        message: &str,
        mailbox: Option<&str>,
        count: usize,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self
                .log()
                .lines()
                .filter(|l| l.contains(message))
                .filter(|l| mailbox.is_none() || log_field(l, "mailbox") == mailbox)
                .count();
            if seen >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "no {count} log lines {message:?}{} after 30 s:\n{}",
                    mailbox.map(|m| format!(" for {m}")).unwrap_or_default(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.web_port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "ticketgate serve exited with {status}:\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "ticketgate serve not healthy after 60 s:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An error (with the log's tail) if the process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            bail!(
                "ticketgate serve exited with {status}:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until every poller has logged its mailbox as selected (then it drains and IDLEs).
    async fn wait_selected(&self, mailboxes: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log().matches("IMAP mailbox selected").count() < mailboxes {
            if Instant::now() > deadline {
                bail!(
                    "the pollers did not select their mailboxes:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// A pool of one connection to the gateway's database, for the watcher.
    async fn db(&self) -> anyhow::Result<AnyPool> {
        let url = match &self.sqlite_file {
            // The gateway created the file; the watcher must not create another.
            Some(_) => format!("{}?mode=rw", self.db_url),
            None => self.db_url.clone(),
        };
        open_pool(&url).await
    }

    /// CPU, memory and disk figures of the gateway process now.
    fn usage(&self) -> anyhow::Result<ProcUsage> {
        proc_usage(self.pid)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        eprintln!("bench: ticketgate did not stop within 30 s: SIGKILL");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        if keep() {
            eprintln!("bench: gateway directory kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Gateways {
    /// Starts the run's gateways; their outbox sends to the stack's Postfix, or with
    /// `inbound_only` to a [`SilentRelay`], so nothing is sent (and no CPU spent sending)
    /// during the run. `postgres_url`: the database of a PostgreSQL run (else SQLite in the
    /// gateway's directory, as in every run before PostgreSQL).
    async fn start(
        stack: &Stack,
        setup: &Setup,
        postgres_url: Option<&str>,
    ) -> anyhow::Result<Gateways> {
        let bin = Gateway::binary()?;
        let pid = std::process::id();
        let mut gws = Gateways {
            silent: if setup.inbound_only {
                Some(SilentRelay::start().await?)
            } else {
                None
            },
            instances: Vec::new(),
            shared_storage: None,
        };
        let smtp_port = gws.silent.as_ref().map_or(stack.smtp_port, |r| r.port);
        match postgres_url {
            None => {
                let dir = PathBuf::from(format!("/tmp/tgb-gw.{pid}"));
                let url = format!("sqlite://{}/ticketgate.db", dir.display());
                let storage = dir.join("attachments");
                gws.instances.push(Gateway::configure(
                    stack,
                    dir,
                    smtp_port,
                    &url,
                    &storage,
                    setup.mailboxes,
                )?);
            }
            Some(url) => {
                let storage = PathBuf::from(format!("/tmp/tgb-st.{pid}"));
                if storage.exists() {
                    std::fs::remove_dir_all(&storage)
                        .with_context(|| format!("clearing {}", storage.display()))?;
                }
                gws.shared_storage = Some(storage.clone());
                for k in 1..=setup.instances {
                    let dir = PathBuf::from(format!("/tmp/tgb-gw.{pid}.{k}"));
                    gws.instances.push(Gateway::configure(
                        stack,
                        dir,
                        smtp_port,
                        url,
                        &storage,
                        setup.mailboxes,
                    )?);
                }
                // Schema first: then every instance starts the same way, and the mailbox
                // locks go to whichever asks first.
                gws.instances[0].migrate(&bin)?;
            }
        }
        // `--split`: the benchmark holds every mailbox's lock while the instances start, so
        // that it can hand each mailbox to the instance it chooses.
        let held = match (setup.split, postgres_url) {
            (true, Some(url)) => Some(hold_mailbox_locks(url, setup.mailboxes).await?),
            _ => None,
        };
        for gw in &mut gws.instances {
            gw.spawn(&bin)?;
        }
        for gw in &mut gws.instances {
            gw.wait_healthy().await?;
        }
        if let Some((_store, locks)) = held {
            gws.assign_mailboxes(locks).await?;
        }
        Ok(gws)
    }

    /// Hands mailbox m to instance m mod N. Every instance stands by for every mailbox (the
    /// benchmark holds the locks); for each mailbox, the other instances are stopped
    /// (SIGSTOP), the lock is released, its instance takes it at its next try (every 2 s,
    /// `LOCK_RETRY` in src/inbound/imap.rs) and selects the mailbox, and the others continue
    /// (SIGCONT) and keep standing by. Meant for empty mailboxes: a stopped instance does
    /// nothing, so with a backlog the pause would be part of the figures.
    async fn assign_mailboxes(
        &mut self,
        mut locks: Vec<Option<ticketgate::store::MailboxLock>>,
    ) -> anyhow::Result<()> {
        let n = self.instances.len();
        for gw in &self.instances {
            gw.wait_log("standing by", None, locks.len()).await?;
        }
        for (m, lock) in locks.iter_mut().enumerate() {
            let owner = m % n;
            let name = area(m).slug;
            let others = || {
                self.instances
                    .iter()
                    .enumerate()
                    .filter(move |(k, _)| *k != owner)
            };
            for (_, gw) in others() {
                gw.signal("STOP");
            }
            // Dropping the lock closes its connection: the server releases the lock.
            drop(lock.take());
            let taken = self.instances[owner]
                .wait_log("IMAP mailbox selected", Some(&name), 1)
                .await;
            for (_, gw) in others() {
                gw.signal("CONT");
            }
            taken.with_context(|| format!("instance {} taking {name}", owner + 1))?;
        }
        Ok(())
    }

    /// When the first instance was spawned (Unix millis).
    fn spawned_at(&self) -> i64 {
        self.instances
            .iter()
            .map(|g| g.spawned_at)
            .min()
            .unwrap_or(0)
    }

    /// An error (with the log's tail) if any instance has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (k, gw) in self.instances.iter_mut().enumerate() {
            gw.check_alive()
                .with_context(|| format!("instance {}", k + 1))?;
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        self.instances
            .iter()
            .enumerate()
            .map(|(k, g)| {
                format!(
                    "--- instance {} ({}):\n{}",
                    k + 1,
                    g.dir.display(),
                    g.log_tail()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn usage(&self) -> anyhow::Result<Vec<ProcUsage>> {
        self.instances.iter().map(Gateway::usage).collect()
    }

    async fn db(&self) -> anyhow::Result<AnyPool> {
        self.instances[0].db().await
    }
}

impl Drop for Gateways {
    fn drop(&mut self) {
        drop(self.silent.take());
        // All at once, then each is waited for (in its own drop).
        for gw in &self.instances {
            gw.terminate();
        }
        self.instances.clear();
        if let Some(storage) = &self.shared_storage {
            if keep() {
                eprintln!("bench: attachment store kept in {}", storage.display());
            } else {
                let _ = std::fs::remove_dir_all(storage);
            }
        }
    }
}

/// Takes the lock of each of the first `mailboxes` mailboxes, as an instance would
/// (`Store::try_lock_mailbox` of the ticketgate library, a PostgreSQL advisory lock on a
/// connection of its own). The store must outlive the locks.
async fn hold_mailbox_locks(
    url: &str,
    mailboxes: usize,
) -> anyhow::Result<(
    ticketgate::store::Store,
    Vec<Option<ticketgate::store::MailboxLock>>,
)> {
    let store = ticketgate::store::Store::connect(url, 1)
        .await
        .context("connecting to hold the mailbox locks")?;
    let mut locks = Vec::new();
    for m in 0..mailboxes {
        let name = area(m).slug;
        let lock = store
            .try_lock_mailbox(&name)
            .await
            .with_context(|| format!("locking {name}"))?
            .with_context(|| format!("the lock of {name} is already held"))?;
        locks.push(Some(lock));
    }
    Ok((store, locks))
}

/// A pool of one connection for the watcher; SQLite waits for the gateway's write lock like
/// the gateway's own connections do.
async fn open_pool(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let options = AnyConnectOptions::from_str(url)
        .with_context(|| format!("database url {}", redact(url)))?
        .disable_statement_logging();
    AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", redact(url)))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}://{user}:***{}", &url[..s], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

// ------------------------------------------------------------------ PostgreSQL

/// The private PostgreSQL of a `--postgres` run: a server of tests/support/postgres.rs
/// (under /tmp, run as the `postgres` OS user when we are root) with one database. Dropping
/// it drops the database and stops the server; `BENCH_KEEP` does not keep it.
struct Pg {
    /// The watcher's connection (progress, figures, server statistics).
    pool: AnyPool,
    db: postgres::PgDatabase,
    /// `fsync`, `synchronous_commit` and `full_page_writes` as the server reports them.
    durability: String,
    version: String,
}

impl Pg {
    async fn start() -> anyhow::Result<Pg> {
        // The module panics with the tool's output when something fails (a test's way): the
        // panic message is printed, and the server it started is stopped while unwinding.
        let db = tokio::task::spawn_blocking(postgres::PgDatabase::create)
            .await
            .map_err(|e| anyhow::anyhow!("the private PostgreSQL did not start: {e}"))?;
        let keep_test_settings = std::env::var_os("BENCH_PG_NO_FSYNC").is_some_and(|v| v == "1");
        // What-if settings of the server, e.g. "-c default_toast_compression=lz4".
        let extra = std::env::var("BENCH_PG_OPTIONS").unwrap_or_default();
        if !keep_test_settings || !extra.is_empty() {
            let durability = if keep_test_settings {
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            } else {
                ""
            };
            restart(&db.server, &format!("{durability} {extra}"))?;
        }
        let pool = open_pool(&db.url).await?;
        let row = sqlx::query(
            "SELECT current_setting('fsync'), current_setting('synchronous_commit'), \
             current_setting('full_page_writes'), current_setting('server_version'), \
             current_setting('default_toast_compression')",
        )
        .fetch_one(&pool)
        .await
        .context("reading the server's settings")?;
        let setting = |k: usize| row.try_get::<String, _>(k);
        let durability = format!(
            "fsync={}, synchronous_commit={}, full_page_writes={}, default_toast_compression={}",
            setting(0)?,
            setting(1)?,
            setting(2)?,
            setting(4)?
        );
        let version = setting(3)?;
        Ok(Pg {
            pool,
            db,
            durability,
            version,
        })
    }

    /// CPU time of the whole server so far (see [`pg_cpu_ms`]).
    fn cpu_ms(&self) -> f64 {
        pg_cpu_ms(&self.db.server.dir).unwrap_or(0.0)
    }

    /// The server's WAL position in bytes: the difference of two is the WAL written between
    /// them (the cluster holds only this run's database). pg_stat_wal would lag: backends
    /// report their WAL statistics at most once a second.
    async fn wal_bytes(&self) -> anyhow::Result<i64> {
        scalar(
            &self.pool,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::BIGINT",
        )
        .await
    }
}

/// Restarts the private server with PostgreSQL's defaults for durability, plus `extra`
/// options. The test server runs with `fsync`, `synchronous_commit` and `full_page_writes`
/// off (its tests are about behaviour, and must be quick); a benchmark compared with SQLite at
/// `synchronous = FULL` must wait for the disk as SQLite does. Same port, socket directory
/// and connection limit.
fn restart(server: &postgres::PgServer, extra: &str) -> anyhow::Result<()> {
    let data = server.dir.join("data");
    let postmaster = postmaster_pid(&server.dir)?;
    // The server's own pg_ctl, beside the postgres binary that runs.
    let pg_ctl = std::fs::read_link(format!("/proc/{postmaster}/exe"))
        .context("finding the PostgreSQL binaries")?
        .with_file_name("pg_ctl");
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200 {extra}",
        server.port,
        server.dir.display()
    );
    // initdb refuses root, so as root the module runs the cluster as `postgres`.
    let as_root = std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0);
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let out = cmd
        // `postgres` may not enter our working directory.
        .current_dir(&server.dir)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(server.dir.join("postgres.log"))
        .args(["-w", "-t", "60", "-m", "fast", "-o", &options, "restart"])
        .output()
        .with_context(|| format!("running {} restart", pg_ctl.display()))?;
    if !out.status.success() {
        bail!(
            "restarting the private PostgreSQL failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The postmaster's pid, from the first line of `DATA/postmaster.pid`.
fn postmaster_pid(server_dir: &Path) -> anyhow::Result<u32> {
    let file = server_dir.join("data/postmaster.pid");
    std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no pid in {}", file.display()))
}

/// CPU time (ms) of the PostgreSQL server: the postmaster's own, that of the processes it
/// has reaped (backends of closed connections: its cutime + cstime), and that of its live
/// processes (backends, checkpointer, WAL writer, …).
fn pg_cpu_ms(server_dir: &Path) -> anyhow::Result<f64> {
    let postmaster = postmaster_pid(server_dir)?;
    let fields = stat_fields(postmaster)?;
    // fields[N - 3] is field N of /proc/PID/stat: 14 utime, 15 stime, 16 cutime, 17 cstime.
    let mut ticks: f64 = fields[11..15]
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    for entry in std::fs::read_dir("/proc")
        .context("reading /proc")?
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read.
        let Ok(f) = stat_fields(pid) else { continue };
        // Field 4: the parent's pid.
        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
            ticks += f[11..13]
                .iter()
                .filter_map(|x| x.parse::<f64>().ok())
                .sum::<f64>();
        }
    }
    Ok(ticks * 1000.0 / clock_ticks())
}

/// The fields of /proc/PID/stat from field 3 (state) on: field N is at index N - 3.
fn stat_fields(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
    if fields.len() < 15 {
        bail!("short /proc/{pid}/stat");
    }
    Ok(fields)
}

// ------------------------------------------------------------------ profiling

/// `perf record` of the gateway (or, with `BENCH_PERF_ALL=1`, of the whole machine, without
/// call graphs) from gateway start to drain end, when `BENCH_PERF=FILE` is set. DWARF call
/// graphs unwind through `.eh_frame`, which release builds keep. Figures of a profiled run are
/// not results.
struct Profiler(Option<Child>);

impl Profiler {
    fn start(pid: u32) -> anyhow::Result<Profiler> {
        let Some(out) = std::env::var_os("BENCH_PERF") else {
            return Ok(Profiler(None));
        };
        let mut cmd = Command::new("perf");
        cmd.args(["record", "-F", "499", "-o"]).arg(out);
        if std::env::var_os("BENCH_PERF_ALL").is_some_and(|v| v == "1") {
            // Flat: which processes and functions share the machine.
            cmd.arg("-a");
        } else {
            cmd.args(["--call-graph", "dwarf,32768", "-p"])
                .arg(pid.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting perf record")?;
        Ok(Profiler(Some(child)))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------ /proc

#[derive(Debug, Clone, Copy, Default)]
struct ProcUsage {
    cpu_ms: f64,
    hwm_kib: u64,
    rss_kib: u64,
    /// Bytes the process caused to be written to / read from the block device
    /// (`write_bytes`, `read_bytes` of /proc/PID/io).
    disk_write: u64,
    disk_read: u64,
    /// Voluntary + involuntary context switches of the threads alive now.
    switches: u64,
}

impl ProcUsage {
    /// The CPU, disk and context switches since `base` (an earlier reading of the same
    /// process); memory as it is now (VmHWM is the peak since the process started).
    fn since(self, base: ProcUsage) -> ProcUsage {
        ProcUsage {
            cpu_ms: self.cpu_ms - base.cpu_ms,
            disk_write: self.disk_write.saturating_sub(base.disk_write),
            disk_read: self.disk_read.saturating_sub(base.disk_read),
            switches: self.switches.saturating_sub(base.switches),
            ..self
        }
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime+stime (fields 14 and 15 of /proc/PID/stat, all threads) and VmHWM/VmRSS.
fn proc_usage(pid: u32) -> anyhow::Result<ProcUsage> {
    let fields = stat_fields(pid)?;
    // Field N is fields[N - 3]: 14 utime, 15 stime.
    let utime: f64 = fields[11].parse()?;
    let stime: f64 = fields[12].parse()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let io_bytes = |key: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcUsage {
        cpu_ms: (utime + stime) * 1000.0 / clock_ticks(),
        hwm_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
        disk_write: io_bytes("write_bytes:"),
        disk_read: io_bytes("read_bytes:"),
        switches: context_switches(pid),
    })
}

/// Context switches summed over the live threads of `pid` (threads that ended are not counted).
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// (busy, total) jiffies of the whole machine, from the first line of /proc/stat.
#[derive(Debug, Clone, Copy)]
struct Jiffies {
    /// Not idle (user, nice, system, irq, softirq, steal).
    busy: u64,
    /// Of which niced processes: other sessions' builds and tests run niced on this machine.
    nice: u64,
    /// Time the hypervisor gave our vCPUs to someone else.
    steal: u64,
    total: u64,
}

impl Jiffies {
    /// "B% busy (N% niced)" of the machine between `self` and `later`.
    fn since(self, earlier: Jiffies) -> String {
        let total = (self.total - earlier.total).max(1) as f64;
        format!(
            "{:.0}% busy ({:.0}% by niced processes, {:.0}% stolen by the hypervisor)",
            100.0 * (self.busy - earlier.busy) as f64 / total,
            100.0 * (self.nice - earlier.nice) as f64 / total,
            100.0 * (self.steal - earlier.steal) as f64 / total,
        )
    }
}

fn machine_jiffies() -> Jiffies {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counts are inside user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Jiffies {
        busy: total - idle,
        nice: v.get(1).copied().unwrap_or(0),
        steal: v.get(7).copied().unwrap_or(0),
        total,
    }
}

/// Percent of the machine's CPU busy over the next second: other work that would skew a run.
async fn machine_busy_now() -> String {
    let a = machine_jiffies();
    tokio::time::sleep(Duration::from_secs(1)).await;
    machine_jiffies().since(a)
}

fn self_cpu_ms() -> f64 {
    proc_usage(std::process::id())
        .map(|u| u.cpu_ms)
        .unwrap_or(0.0)
}

// ------------------------------------------------------------------ messages

const SUBJECTS: &[&str] = &[
    "Buca in via Roma",
    "Lampione spento in piazza Garibaldi",
    "Marciapiede dissestato davanti alla scuola",
    "Richiesta di potatura degli alberi in viale Mazzini",
    "Segnalazione perdita d'acqua in via Verdi",
    "Tombino rotto all'incrocio con corso Italia",
    "Semaforo guasto: è pericoloso",
    "Reclamo per lavori non completati",
];

const BODIES: &[&str] = &[
    "Buongiorno,\n\nvi segnalo che in via Roma, all'altezza del civico 12, c'è una buca profonda \
     circa venti centimetri. Ieri sera un motociclista è caduto e ha rischiato di farsi male. \
     Vi chiedo di intervenire al più presto.\n\nCordiali saluti",
    "Gentile ufficio,\n\nda tre giorni il lampione di piazza Garibaldi è spento e la sera la piazza \
     è completamente al buio. Molti anziani passano di lì per andare in farmacia.\n\nGrazie per \
     l'attenzione",
    "Salve,\n\nil marciapiede davanti alla scuola elementare è pieno di radici che hanno sollevato \
     le mattonelle. I bambini inciampano ogni mattina. Allego una foto.\n\nUn genitore \
     preoccupato",
    "Egregi signori,\n\nchiedo cortesemente la potatura dei platani di viale Mazzini: i rami \
     toccano i fili della luce e con il vento di questi giorni temo che possano cadere.\n\nDistinti \
     saluti",
    "Buonasera,\n\nin via Verdi esce acqua dall'asfalto da almeno una settimana; si è formata una \
     pozza che d'inverno gelerà. Forse è una tubatura rotta.\n\nCordialità",
];

const NAMES: &[&str] = &[
    "Anna Verdi",
    "Luca Neri",
    "Giuseppe Esposito",
    "Francesca Romano",
    "Marco Colombo",
    "Chiara Ricci",
    "Niccolò Bruno",
    "Elena Gallo",
];

/// Quoted-printable (RFC 2045 §6.7) of bytes, CRLF line ends, soft breaks before 76 columns.
fn quoted_printable(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut col = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            out.push_str("\r\n");
            col = 0;
            i += 1;
            continue;
        }
        let piece = if (b == b' ' || b == b'\t') && bytes.get(i + 1).is_none_or(|n| *n == b'\n') {
            format!("={b:02X}") // trailing whitespace must be encoded
        } else if (33..=126).contains(&b) && b != b'=' || b == b' ' || b == b'\t' {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + piece.len() > 75 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
        i += 1;
    }
    out
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 38 + 8);
    let mut col = 0;
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        col += 4;
        if col == 76 {
            out.push_str("\r\n");
            col = 0;
        }
    }
    if col > 0 {
        out.push_str("\r\n");
    }
    out
}

/// A JPEG-looking blob, different for every seed (so content-addressed storage cannot
/// de-duplicate the attachments of a run).
fn jpeg_like(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00,
        0x48, 0x00, 0x48, 0x00, 0x00,
    ]);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len - 2 {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len - 2);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

fn date_header(i: usize) -> String {
    let minute = i % 60;
    let hour = 8 + (i / 60) % 10;
    format!("Thu, 26 Nov 2026 {hour:02}:{minute:02}:00 +0100")
}

/// One message of the drain mix to `to`'s address; `i % 5` picks the shape, `i % 10` the
/// HTML variant.
fn drain_message(run: i64, i: usize, citizens: usize, to: &Area) -> Vec<u8> {
    let citizen = i % citizens;
    let name = NAMES[i % NAMES.len()];
    let subject = SUBJECTS[i % SUBJECTS.len()];
    let body = BODIES[i % BODIES.len()];
    let head = format!(
        "From: {name} <citizen{citizen}@citizen.test>\r\nTo: {area} <{address}>\r\n\
         Subject: {subject} (n. {i})\r\nMessage-ID: <bench.{run}.{i}@citizen.test>\r\n\
         Date: {date}\r\nMIME-Version: 1.0\r\n",
        area = to.name,
        address = to.address,
        date = date_header(i),
    );
    let body_crlf = crlf(body);
    let rest = match i % 5 {
        // Plain UTF-8, 8bit.
        0 | 1 => format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
             {body_crlf}\r\n{name}\r\n"
        ),
        // Latin-1, quoted-printable (Outlook and webmails of the older kind).
        2 => format!(
            "Content-Type: text/plain; charset=iso-8859-1\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
            quoted_printable(&latin1(&format!("{body}\n{name}")))
        ),
        // HTML: alone, or as the alternative of a plain part.
        3 => {
            let html = format!(
                "<html><body><p>{}</p><p><b>{name}</b></p></body></html>",
                body.replace("\n\n", "</p><p>").replace('\n', "<br>")
            );
            if i % 10 == 3 {
                format!(
                    "Content-Type: text/html; charset=utf-8\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
                    quoted_printable(html.as_bytes())
                )
            } else {
                format!(
                    "Content-Type: multipart/alternative; boundary=\"alt-{i}\"\r\n\r\n\
                     --alt-{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Content-Transfer-Encoding: 8bit\r\n\r\n{body_crlf}\r\n{name}\r\n\
                     --alt-{i}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--alt-{i}--\r\n",
                    quoted_printable(html.as_bytes())
                )
            }
        }
        // A photo: multipart/mixed with a 200 KB image/jpeg in base64.
        _ => format!(
            "Content-Type: multipart/mixed; boundary=\"mix-{i}\"\r\n\r\n\
             This is a multi-part message in MIME format.\r\n\r\n\
             --mix-{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{body_crlf}\r\n{name}\r\n\
             --mix-{i}\r\nContent-Type: image/jpeg; name=\"foto_{i}.jpg\"\r\n\
             Content-Disposition: attachment; filename=\"foto_{i}.jpg\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}--mix-{i}--\r\n",
            base64_lines(&jpeg_like(i as u64 + 1, ATTACHMENT_BYTES))
        ),
    };
    let mut raw = head.into_bytes();
    raw.extend_from_slice(rest.as_bytes());
    raw
}

fn latency_message(run: i64, i: usize, from: &str) -> (String, Vec<u8>) {
    let id = format!("lat.{run}.{i}@citizen.test");
    let raw = format!(
        "From: {name} <{from}>\r\nTo: Lavori pubblici <{LAVORI}>\r\n\
         Subject: {subject}\r\nMessage-ID: <{id}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {body}\r\n",
        name = NAMES[i % NAMES.len()],
        subject = SUBJECTS[i % SUBJECTS.len()],
        date = date_header(i),
        body = crlf(BODIES[i % BODIES.len()]),
    );
    (id, raw.into_bytes())
}

// ------------------------------------------------------------------ drain

/// Folder of each mailbox that holds the backlog of a `--split` run until it is moved into
/// the INBOX.
const BACKLOG_FOLDER: &str = "Backlog";

/// Puts `count` messages into `folder` of `mailboxes` mailboxes (message i into mailbox
/// i mod `mailboxes`) over [`APPEND_SESSIONS`] IMAP sessions in all (at least one a mailbox).
/// Returns the bytes appended and the time it took.
async fn fill_inboxes(
    stack: &Stack,
    run: i64,
    count: usize,
    mailboxes: usize,
    folder: &'static str,
) -> anyhow::Result<(u64, Duration)> {
    let citizens = (count / 5).max(1);
    let sessions = (APPEND_SESSIONS / mailboxes).max(1);
    if folder != "INBOX" {
        for m in 0..mailboxes {
            let mut session = stack.login(&area(m).address).await?;
            session
                .create(folder)
                .await
                .with_context(|| format!("CREATE {folder}"))?;
            let _ = session.logout().await;
        }
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for m in 0..mailboxes {
        for s in 0..sessions {
            let to = area(m);
            let mut session = stack.login(&to.address).await?;
            tasks.spawn(async move {
                let mut bytes = 0u64;
                // This mailbox's messages, every `sessions`-th of them from the `s`-th.
                for i in (m..count).step_by(mailboxes).skip(s).step_by(sessions) {
                    let raw = drain_message(run, i, citizens, &to);
                    bytes += raw.len() as u64;
                    session
                        .append(folder, None, None, &raw)
                        .await
                        .with_context(|| format!("APPEND of message {i} to {}", to.address))?;
                }
                let _ = session.logout().await;
                anyhow::Ok(bytes)
            });
        }
    }
    let mut bytes = 0;
    while let Some(r) = tasks.join_next().await {
        bytes += r.context("APPEND task")??;
    }
    let elapsed = started.elapsed();
    // Check what the gateway will find.
    for m in 0..mailboxes {
        let address = area(m).address;
        let expected = (m..count).step_by(mailboxes).count();
        let mut session = stack.login(&address).await?;
        let mb = session
            .select(folder)
            .await
            .with_context(|| format!("SELECT {folder}"))?;
        let _ = session.logout().await;
        if mb.exists as usize != expected {
            bail!(
                "{folder} of {address} holds {} messages, {expected} appended",
                mb.exists
            );
        }
    }
    Ok((bytes, elapsed))
}

/// Moves the backlog of every mailbox into its INBOX at once: one `UID MOVE 1:*` per
/// mailbox, all in parallel (sessions logged in beforehand). Dovecot makes a mailbox's moved
/// messages visible together, when the MOVE commits. Returns the Unix millis when the
/// MOVEs were sent and when the last one completed.
async fn move_backlog(stack: &Stack, mailboxes: usize) -> anyhow::Result<(i64, i64)> {
    let mut sessions = Vec::new();
    for m in 0..mailboxes {
        let mut session = stack.login(&area(m).address).await?;
        session
            .select(BACKLOG_FOLDER)
            .await
            .with_context(|| format!("SELECT {BACKLOG_FOLDER}"))?;
        sessions.push(session);
    }
    let issued = now_millis();
    let mut tasks = tokio::task::JoinSet::new();
    for mut session in sessions {
        tasks.spawn(async move {
            session
                .uid_mv("1:*", "INBOX")
                .await
                .context("UID MOVE of the backlog")?;
            let _ = session.logout().await;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("MOVE task")??;
    }
    Ok((issued, now_millis()))
}

async fn scalar(db: &AnyPool, sql: &'static str) -> anyhow::Result<i64> {
    let row = sqlx::query(sql).fetch_one(db).await.context(sql)?;
    Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0))
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The load average of the machine (1, 5 and 15 minutes), from /proc/loadavg.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The server's CPU and WAL at one moment of a PostgreSQL run.
#[derive(Debug, Clone, Copy)]
struct PgSnapshot {
    cpu_ms: f64,
    wal_bytes: i64,
}

async fn pg_snapshot(pg: Option<&Pg>) -> anyhow::Result<Option<PgSnapshot>> {
    match pg {
        None => Ok(None),
        Some(pg) => Ok(Some(PgSnapshot {
            cpu_ms: pg.cpu_ms(),
            wal_bytes: pg.wal_bytes().await?,
        })),
    }
}

/// What one instance did, from its log (`info` lines): the mailboxes it polled, those it
/// stood by for, lock takeovers, tickets it made, mails it sent.
struct InstanceWork {
    polled: Vec<String>,
    stood_by: Vec<String>,
    takeovers: usize,
    tickets: usize,
    sent: usize,
}

impl InstanceWork {
    fn of(gw: &Gateway) -> InstanceWork {
        let log = gw.log();
        let mailboxes = |message: &str| -> Vec<String> {
            let mut names: Vec<String> = log
                .lines()
                .filter(|l| l.contains(message))
                .filter_map(|l| log_field(l, "mailbox"))
                .map(str::to_owned)
                .collect();
            names.sort();
            names.dedup();
            names
        };
        InstanceWork {
            polled: mailboxes("IMAP mailbox selected"),
            stood_by: mailboxes("standing by"),
            takeovers: log.matches("mailbox lock taken over").count(),
            tickets: log.matches("ticket created").count(),
            sent: log.matches("mail sent").count(),
        }
    }
}

/// The value of `key=value` in a line of tracing's default format.
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()
}

/// Each instance's usage since its `base` reading.
fn since(now: Vec<ProcUsage>, base: &[ProcUsage]) -> Vec<ProcUsage> {
    now.into_iter()
        .zip(base)
        .map(|(u, b)| u.since(*b))
        .collect()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn drain(count: usize, setup: Setup) -> anyhow::Result<()> {
    let run = now_millis();
    let ticks = clock_ticks();
    let load_before = load_average();
    let busy_before = machine_busy_now().await;
    eprintln!("bench drain: load average {load_before}; starting a private mail stack");
    let stack = Stack::start()?;
    let pg = if setup.postgres {
        eprintln!("bench drain: starting a private PostgreSQL");
        Some(Pg::start().await?)
    } else {
        None
    };
    let addresses = (0..setup.mailboxes)
        .map(|m| area(m).address)
        .collect::<Vec<_>>()
        .join(", ");
    let folder = if setup.split { BACKLOG_FOLDER } else { "INBOX" };
    eprintln!(
        "bench drain: filling {folder} of {addresses} with {count} messages over IMAP APPEND ({} sessions)",
        (APPEND_SESSIONS / setup.mailboxes).max(1) * setup.mailboxes
    );
    let (bytes, fill_time) = fill_inboxes(&stack, run, count, setup.mailboxes, folder).await?;
    eprintln!(
        "bench drain: appended {count} messages, {:.1} MB, in {:.1} s",
        bytes as f64 / 1e6,
        fill_time.as_secs_f64()
    );

    let mut machine_before = machine_jiffies();
    let mut bench_cpu_before = self_cpu_ms();
    let mut pg_before = pg_snapshot(pg.as_ref()).await?;
    let mut gws = Gateways::start(&stack, &setup, pg.as_ref().map(|p| p.db.url.as_str())).await?;
    let instances = gws.instances.len();
    // What the gateways had used before the drain: nothing, except in a `--split` run.
    let mut base_usage = vec![ProcUsage::default(); instances];
    // `--split`: the pollers hold their mailboxes and are idle (IDLE); now the backlog.
    let moved = if setup.split {
        for gw in &gws.instances {
            gw.wait_log("IMAP mailbox selected", None, 1).await?;
        }
        // Time for the pollers' first (empty) sync and for entering IDLE.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The figures count from here: start-up and the mailbox hand-over are left out.
        base_usage = gws.usage()?;
        machine_before = machine_jiffies();
        bench_cpu_before = self_cpu_ms();
        pg_before = pg_snapshot(pg.as_ref()).await?;
        eprintln!("bench drain: moving the backlog into the INBOXes");
        Some(move_backlog(&stack, setup.mailboxes).await?)
    } else {
        None
    };
    let profiler = Profiler::start(gws.instances[0].pid)?;
    let db = match &pg {
        Some(pg) => pg.pool.clone(),
        None => gws.db().await?,
    };
    let watch_start = Instant::now();
    let mut last_report = Instant::now();
    // Drain done: every message stored and none pending.
    let (drain_usage, machine_drain, drain_seen, pg_drain) = loop {
        let stored = scalar(&db, "SELECT COUNT(*) FROM raw_message").await?;
        let pending = scalar(
            &db,
            "SELECT COUNT(*) FROM raw_message WHERE state = 'pending'",
        )
        .await?;
        if stored as usize >= count && pending == 0 {
            break (
                since(gws.usage()?, &base_usage),
                machine_jiffies(),
                now_millis(),
                pg_snapshot(pg.as_ref()).await?,
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("bench drain: {stored} stored, {pending} pending");
            last_report = Instant::now();
        }
        if watch_start.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "drain not finished after {DRAIN_TIMEOUT:?}:\n{}",
                gws.log_tail()
            );
        }
        gws.check_alive()?;
        tokio::time::sleep(WATCH_EVERY).await;
    };
    let bench_cpu_drain = self_cpu_ms() - bench_cpu_before;
    drop(profiler);

    // Then the outbox: an acknowledgment and a staff notification per ticket.
    // BENCH_NO_OUTBOX_WAIT=1 skips this (quicker experiments; no outbox figures then).
    let skip_outbox = std::env::var_os("BENCH_NO_OUTBOX_WAIT").is_some_and(|v| v == "1");
    let wait_outbox = !(setup.inbound_only || skip_outbox);
    let (outbox_usage, outbox_seen, pg_outbox) = loop {
        if !wait_outbox {
            break (drain_usage.clone(), drain_seen, pg_drain);
        }
        let queued = scalar(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'queued'").await?;
        let tickets = scalar(&db, "SELECT COUNT(*) FROM ticket").await?;
        let rows = scalar(&db, "SELECT COUNT(*) FROM outbox").await?;
        if queued == 0 && rows >= 2 * tickets {
            break (
                since(gws.usage()?, &base_usage),
                now_millis(),
                pg_snapshot(pg.as_ref()).await?,
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("bench drain: outbox {queued} queued of {rows}");
            last_report = Instant::now();
        }
        gws.check_alive()?;
        if watch_start.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "outbox not empty after {DRAIN_TIMEOUT:?}:\n{}",
                gws.log_tail()
            );
        }
        tokio::time::sleep(WATCH_EVERY).await;
    };

    let first_stored = scalar(&db, "SELECT MIN(received_at) FROM raw_message").await?;
    let last_stored = scalar(&db, "SELECT MAX(received_at) FROM raw_message").await?;
    let last_ticket = scalar(&db, "SELECT MAX(created_at) FROM ticket").await?;
    let last_processed = scalar(&db, "SELECT MAX(processed_at) FROM raw_message").await?;
    let last_sent = scalar(&db, "SELECT MAX(sent_at) FROM outbox").await?;
    let tickets = scalar(&db, "SELECT COUNT(*) FROM ticket").await?;
    let duplicates = scalar(
        &db,
        "SELECT COUNT(*) FROM raw_message WHERE state = 'duplicate'",
    )
    .await?;
    let quarantined = scalar(
        &db,
        "SELECT COUNT(*) FROM raw_message WHERE state = 'quarantined'",
    )
    .await?;
    let pairs = |rows: Vec<sqlx::any::AnyRow>| -> anyhow::Result<String> {
        let mut out = Vec::new();
        for r in rows {
            let count: i64 = r.try_get(r.len() - 1)?;
            let mut key = Vec::new();
            for k in 0..r.len() - 1 {
                key.push(r.try_get::<String, _>(k)?);
            }
            out.push(format!("{}={count}", key.join("/")));
        }
        Ok(out.join(" "))
    };
    let raw_states = pairs(
        sqlx::query("SELECT state, COUNT(*) FROM raw_message GROUP BY state ORDER BY state")
            .fetch_all(&db)
            .await?,
    )?;
    let raw_mailboxes = pairs(
        sqlx::query("SELECT mailbox, COUNT(*) FROM raw_message GROUP BY mailbox ORDER BY mailbox")
            .fetch_all(&db)
            .await?,
    )?;
    let outbox_states = pairs(
        sqlx::query("SELECT kind, o.state, COUNT(*) FROM outbox o JOIN message m USING (message_id) GROUP BY kind, o.state ORDER BY kind, o.state")
            .fetch_all(&db)
            .await?,
    )?;
    let outbox_rows = scalar(&db, "SELECT COUNT(*) FROM outbox").await?;
    let attachments = scalar(&db, "SELECT COUNT(*) FROM attachment").await?;
    // Doubles, from the database: more delivery attempts than rows means a mail was tried
    // (and, with the log's "mail sent" lines, sent) twice; an inbound Message-ID recorded
    // twice means a message was made into a ticket twice.
    let delivery_attempts = scalar(&db, "SELECT COUNT(*) FROM delivery_attempt").await?;
    let retried_rows = scalar(&db, "SELECT COUNT(*) FROM outbox WHERE attempts > 1").await?;
    let twice_ids = scalar(
        &db,
        "SELECT COUNT(*) - COUNT(DISTINCT rfc_message_id) FROM message WHERE direction = 'in'",
    )
    .await?;
    let db_bytes = match (&pg, &gws.instances[0].sqlite_file) {
        (Some(_), _) => scalar(&db, "SELECT pg_database_size(current_database())").await? as u64,
        (None, Some(file)) => {
            std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
                + std::fs::metadata(file.with_extension("db-wal"))
                    .map(|m| m.len())
                    .unwrap_or(0)
        }
        (None, None) => 0,
    };
    let work: Vec<InstanceWork> = gws.instances.iter().map(InstanceWork::of).collect();
    if pg.is_none() {
        db.close().await;
    }

    let n = count as f64;
    let end = last_processed.max(last_ticket);
    let drain_ms = end - first_stored;
    let from_start_ms = end - gws.spawned_at();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let label = |k: usize| -> String {
        if instances == 1 {
            "gateway".to_owned()
        } else {
            format!("instance {} (pid {})", k + 1, gws.instances[k].pid)
        }
    };
    let cpu_sum = |u: &[ProcUsage]| u.iter().map(|u| u.cpu_ms).sum::<f64>();
    // Where the CPU and disk figures start counting.
    let from = if moved.is_some() {
        "the backlog MOVE"
    } else {
        "gateway start"
    };
    let hwm_sum = |u: &[ProcUsage]| u.iter().map(|u| u.hwm_kib).sum::<u64>();

    let backend = match &pg {
        None => "SQLite (WAL, synchronous=FULL)".to_owned(),
        Some(pg) => format!(
            "PostgreSQL {} ({}), {instances} instance{}",
            pg.version,
            pg.durability,
            if instances == 1 { "" } else { "s" }
        ),
    };
    let mailboxes = match (setup.mailboxes, setup.split) {
        (1, _) => String::new(),
        (m, false) => format!(", {m} mailboxes"),
        (m, true) => format!(", {m} mailboxes split over the instances by the benchmark"),
    };
    println!(
        "== drain: {count} messages, {:.1} MB, {backend}{mailboxes}, {} ==",
        bytes as f64 / 1e6,
        if setup.inbound_only {
            "inbound only (silent SMTP relay)"
        } else {
            "outbox sending to the local Postfix"
        }
    );
    println!("machine CPU in the second before the run: {busy_before} (other work on the machine)");
    println!("load average before the run: {load_before}");
    println!(
        "fill (IMAP APPEND, before the gateway starts): {:.1} s",
        fill_time.as_secs_f64()
    );
    match moved {
        None => println!(
            "gateway start -> first raw stored: {:.3} s",
            secs(first_stored - gws.spawned_at())
        ),
        Some((issued, done)) => {
            println!(
                "mailboxes split by the benchmark: {}",
                (0..setup.mailboxes)
                    .map(|m| format!("{} -> instance {}", area(m).slug, m % instances + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "backlog moved into the INBOXes (UID MOVE, all mailboxes at once) in {:.3} s; \
                 MOVE sent -> first raw stored: {:.3} s (gateway CPU, disk and context switches \
                 below count from the MOVE)",
                secs(done - issued),
                secs(first_stored - issued)
            );
        }
    }
    println!(
        "first raw stored -> last message processed: {:.3} s  => {:.0} msg/s",
        secs(drain_ms),
        n / secs(drain_ms)
    );
    match moved {
        None => println!(
            "process start -> last message processed:    {:.3} s  => {:.0} msg/s",
            secs(from_start_ms),
            n / secs(from_start_ms)
        ),
        Some((issued, _)) => println!(
            "MOVE sent -> last message processed:        {:.3} s  => {:.0} msg/s",
            secs(end - issued),
            n / secs(end - issued)
        ),
    }
    println!(
        "(last raw stored at +{:.3} s; last ticket created_at {:.3} s, last processed_at {:.3} s after the first raw)",
        secs(last_stored - first_stored),
        secs(last_ticket - first_stored),
        secs(last_processed - first_stored),
    );
    for (k, u) in drain_usage.iter().enumerate() {
        println!(
            "{} CPU at drain end (seen {} ms after it): {:.0} ms = {:.2} ms/msg (outbox sending included); \
             peak RSS (VmHWM) {:.1} MiB, RSS {:.1} MiB",
            label(k),
            drain_seen - end,
            u.cpu_ms,
            u.cpu_ms / n,
            mib(u.hwm_kib),
            mib(u.rss_kib),
        );
    }
    if instances > 1 {
        println!(
            "all {instances} instances at drain end: CPU {:.0} ms = {:.2} ms/msg; peak RSS {:.1} MiB (sum of each one's peak)",
            cpu_sum(&drain_usage),
            cpu_sum(&drain_usage) / n,
            mib(hwm_sum(&drain_usage)),
        );
    }
    for (k, u) in drain_usage.iter().enumerate() {
        println!(
            "{} disk writes at drain end: {:.0} MB ({}; write_bytes of /proc/PID/io), reads {:.0} MB",
            label(k),
            u.disk_write as f64 / 1e6,
            if pg.is_some() {
                "attachment files and log; the database writes are PostgreSQL's"
            } else {
                "SQLite WAL + checkpoints + attachment files"
            },
            u.disk_read as f64 / 1e6,
        );
    }
    for (k, u) in drain_usage.iter().enumerate() {
        println!(
            "{} context switches at drain end: {} = {:.0} per message (live threads only)",
            label(k),
            u.switches,
            u.switches as f64 / n,
        );
    }
    if let (Some(before), Some(at)) = (pg_before, pg_drain) {
        let cpu = at.cpu_ms - before.cpu_ms;
        println!(
            "PostgreSQL server from {from} to drain end: CPU {cpu:.0} ms = {:.2} ms/msg, \
             WAL written {:.0} MB; gateways + server {:.2} ms/msg",
            cpu / n,
            (at.wal_bytes - before.wal_bytes) as f64 / 1e6,
            (cpu + cpu_sum(&drain_usage)) / n,
        );
    }
    println!(
        "machine CPU from {from} to drain end: {} of {cores} cores; this bench process used {:.0} ms",
        machine_drain.since(machine_before),
        bench_cpu_drain,
    );
    if wait_outbox {
        println!(
            "outbox: all {outbox_rows} rows sent {:.3} s after the first raw (seen {} ms later) \
             => {:.0} mails/s; gateway CPU then {:.0} ms = {:.2} ms/msg, peak RSS {:.1} MiB{}",
            secs(last_sent - first_stored),
            outbox_seen - last_sent,
            outbox_rows as f64 / secs(last_sent - first_stored),
            cpu_sum(&outbox_usage),
            cpu_sum(&outbox_usage) / n,
            mib(outbox_usage.iter().map(|u| u.hwm_kib).max().unwrap_or(0)),
            if instances == 1 {
                String::new()
            } else {
                format!(
                    " (all instances; largest peak of one); per instance {}",
                    outbox_usage
                        .iter()
                        .enumerate()
                        .map(|(k, u)| format!(
                            "{}: {:.0} ms, {:.1} MiB",
                            k + 1,
                            u.cpu_ms,
                            mib(u.hwm_kib)
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            },
        );
        if let (Some(before), Some(at)) = (pg_before, pg_outbox) {
            let cpu = at.cpu_ms - before.cpu_ms;
            println!(
                "PostgreSQL server from {from} to outbox empty: CPU {cpu:.0} ms = {:.2} ms/msg, \
                 WAL written {:.0} MB",
                cpu / n,
                (at.wal_bytes - before.wal_bytes) as f64 / 1e6,
            );
        }
    } else {
        println!(
            "outbox: not waited for ({})",
            if setup.inbound_only {
                "--inbound-only: the SMTP relay accepts connections and never answers"
            } else {
                "BENCH_NO_OUTBOX_WAIT=1"
            }
        );
    }
    if pg.is_some() {
        for (k, w) in work.iter().enumerate() {
            println!(
                "{}: polled [{}], stood by for [{}], lock takeovers {}; tickets created {}, mails sent {} (its log)",
                label(k),
                w.polled.join(" "),
                w.stood_by.join(" "),
                w.takeovers,
                w.tickets,
                w.sent,
            );
        }
    }
    println!(
        "outcome: tickets={tickets} duplicates={duplicates} quarantined={quarantined} \
         raw[{raw_states}] attachments={attachments} outbox[{outbox_states}]"
    );
    let sent_lines: usize = work.iter().map(|w| w.sent).sum();
    let made_lines: usize = work.iter().map(|w| w.tickets).sum();
    println!(
        "doubles: raw by mailbox [{raw_mailboxes}]; inbound Message-IDs recorded twice {twice_ids}; \
         \"ticket created\" log lines {made_lines} for {tickets} tickets; delivery attempts \
         {delivery_attempts} for {outbox_rows} outbox rows ({retried_rows} rows tried more than once); \
         \"mail sent\" log lines {sent_lines}"
    );
    println!(
        "{} after the run: {:.1} MB (clock tick {ticks} Hz)",
        if pg.is_some() {
            "database (pg_database_size)"
        } else {
            "database + WAL"
        },
        db_bytes as f64 / 1e6
    );
    if tickets as usize != count {
        bail!("{count} messages drained but {tickets} tickets: something was lost or quarantined");
    }
    // Fewer log lines than rows can be a log filter (BENCH_LOG); more is a double.
    if twice_ids != 0 || made_lines > count || sent_lines as i64 > outbox_rows {
        bail!("doubles: see the line above");
    }
    println!("all {count} messages became tickets");
    drop(gws);
    drop(pg);
    drop(stack);
    Ok(())
}

// ------------------------------------------------------------------ latency

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(label: &str, values: &[f64]) {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{label:<48} p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1}  min {:>7.1}",
        percentile(&v, 50.0),
        percentile(&v, 90.0),
        percentile(&v, 99.0),
        v.last().copied().unwrap_or(f64::NAN),
        v.first().copied().unwrap_or(f64::NAN),
    );
}

struct Sample {
    id: String,
    accepted_at: i64,
    delivered_at: i64,
    seen_at: i64,
    latency_ms: f64,
}

/// Waits until a UID above `last` is in the selected mailbox (the area's INBOX, read by a
/// second session beside the gateway's): when the MTA has delivered it. A NOOP makes Dovecot
/// sync at once; the gateway, in IDLE, hears of it later (Dovecot delays IDLE notifications).
async fn wait_for_delivery(session: &mut ImapSession, last: &mut u32) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        session.noop().await.context("NOOP")?;
        let uids = session
            .uid_search(format!("UID {}:*", *last + 1))
            .await
            .context("UID SEARCH")?;
        // `N:*` always matches the highest UID, even below N (RFC 3501 §6.4.8).
        if let Some(&uid) = uids.iter().filter(|u| **u > *last).max() {
            *last = uid;
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("the mail was not delivered to {LAVORI} within {ACK_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn wait_for_ack(session: &mut ImapSession, id: &str) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        // NOOP makes Dovecot look at the Maildir; UID SEARCH then lists what is there.
        session.noop().await.context("NOOP")?;
        let uids = session.uid_search("ALL").await.context("UID SEARCH")?;
        if let Some(uid) = uids.iter().max() {
            let seen = Instant::now();
            let fetched: Vec<_> = session
                .uid_fetch(
                    uid.to_string(),
                    "BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO SUBJECT)]",
                )
                .await
                .context("UID FETCH")?
                .try_collect()
                .await
                .context("UID FETCH")?;
            let header = fetched
                .iter()
                .find_map(|f| f.header().or(f.body()).or(f.text()))
                .map(|h| String::from_utf8_lossy(h).into_owned())
                .unwrap_or_default();
            if !header.contains(id) {
                bail!("the citizen received a mail that is not the acknowledgment of <{id}>: {header}");
            }
            return Ok(seen);
        }
        if Instant::now() > deadline {
            bail!("no acknowledgment of <{id}> within {ACK_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn latency(count: usize) -> anyhow::Result<()> {
    let run = now_millis();
    let load_before = load_average();
    let busy_before = machine_busy_now().await;
    eprintln!("bench latency: starting a private mail stack");
    let stack = Stack::start()?;
    let gws = Gateways::start(&stack, &Setup::default(), None).await?;
    let gw = &gws.instances[0];
    gw.wait_selected(2).await?;
    // Let the pollers finish their first (empty) drain and enter IDLE.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(stack.smtp_port)
        .timeout(Some(Duration::from_secs(30)))
        .build();
    let to: Address = LAVORI.parse()?;
    let mut area = stack.login(LAVORI).await?;
    area.select("INBOX").await.context("SELECT INBOX")?;
    let mut area_last = 0u32;
    let mut samples = Vec::with_capacity(count);
    let machine_before = machine_jiffies();
    eprintln!("bench latency: {count} mails, one at a time");
    for i in 0..count {
        let citizen = format!("lat{i}@citizen.test");
        let mut session = stack.login(&citizen).await?;
        session.select("INBOX").await.context("SELECT INBOX")?;
        let (id, raw) = latency_message(run, i, &citizen);
        let envelope = Envelope::new(Some(citizen.parse()?), vec![to.clone()])?;
        smtp.send_raw(&envelope, &raw)
            .await
            .with_context(|| format!("SMTP send of mail {i}"))?;
        let accepted = Instant::now();
        let accepted_at = now_millis();
        let delivered = wait_for_delivery(&mut area, &mut area_last)
            .await
            .with_context(|| format!("mail {i}"))?;
        let seen = wait_for_ack(&mut session, &id)
            .await
            .with_context(|| format!("mail {i}:\n{}", gw.log_tail()))?;
        let latency = seen.duration_since(accepted);
        samples.push(Sample {
            id,
            accepted_at,
            delivered_at: accepted_at + delivered.duration_since(accepted).as_millis() as i64,
            seen_at: accepted_at + latency.as_millis() as i64,
            latency_ms: latency.as_secs_f64() * 1000.0,
        });
        let _ = session.logout().await;
        if (i + 1) % 50 == 0 {
            eprintln!("bench latency: {} done", i + 1);
        }
    }
    let usage = gw.usage()?;
    let machine_run = machine_jiffies().since(machine_before);
    let _ = area.logout().await;

    // Where the time went, from the gateway's own timestamps (same clock, millisecond
    // resolution): stored raw, processed (inside the ticket's transaction), ack accepted by
    // Postfix.
    let db = gw.db().await?;
    let mut to_delivered = Vec::new();
    let mut to_stored = Vec::new();
    let mut to_processed = Vec::new();
    let mut to_sent = Vec::new();
    let mut to_visible = Vec::new();
    for s in &samples {
        let row = sqlx::query(
            "SELECT r.received_at, r.processed_at, \
             (SELECT o.sent_at FROM message a JOIN outbox o ON o.message_id = a.message_id \
              WHERE a.ticket_id = m.ticket_id AND a.kind = 'ack') \
             FROM message m JOIN raw_message r ON r.raw_message_id = m.raw_message_id \
             WHERE m.rfc_message_id = $1 AND m.direction = 'in'",
        )
        .bind(&s.id)
        .fetch_optional(&db)
        .await?
        .with_context(|| format!("no inbound message {} in the database", s.id))?;
        let stored: i64 = row.get(0);
        let processed: Option<i64> = row.get(1);
        let sent: Option<i64> = row.get(2);
        let (Some(processed), Some(sent)) = (processed, sent) else {
            bail!("message {} has no processing or sending time", s.id);
        };
        to_delivered.push((s.delivered_at - s.accepted_at) as f64);
        to_stored.push((stored - s.delivered_at) as f64);
        to_processed.push((processed - stored) as f64);
        to_sent.push((sent - processed) as f64);
        to_visible.push((s.seen_at - sent) as f64);
    }
    let tickets = scalar(&db, "SELECT COUNT(*) FROM ticket").await?;
    db.close().await;

    let lat: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    println!("== latency: {count} mails one at a time, SMTP accepted -> acknowledgment in the citizen's INBOX ==");
    println!("(IMAP poll of the citizen's INBOX every {POLL_EVERY:?}; milliseconds)");
    println!("machine CPU in the second before the run: {busy_before} (other work on the machine)");
    println!("load average before the run: {load_before}");
    println!("machine CPU during the run: {machine_run}");
    summary("end to end", &lat);
    println!(
        "first mail: {:.1} ms",
        lat.first().copied().unwrap_or(f64::NAN)
    );
    println!("breakdown (gateway timestamps and this probe's, same clock, ms resolution):");
    summary(
        "  SMTP accepted -> in the area's INBOX (MTA)",
        &to_delivered,
    );
    summary("  in the INBOX -> raw stored (IDLE, FETCH)", &to_stored);
    summary("  raw stored -> processed (transaction)", &to_processed);
    summary("  processed -> ack accepted by Postfix (outbox)", &to_sent);
    summary(
        "  ack accepted -> in the citizen's INBOX (MTA)",
        &to_visible,
    );
    println!(
        "gateway CPU for the whole run {:.0} ms, peak RSS {:.1} MiB; tickets {tickets}",
        usage.cpu_ms,
        usage.hwm_kib as f64 / 1024.0
    );
    drop(gws);
    drop(stack);
    Ok(())
}
