//! A `ticketgate serve` process for integration tests: its own directory, SQLite file,
//! config pointing at a private [`MailStack`], and a free web port. It runs the real binary,
//! so SIGKILL and restart are real.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;
use super::local::free_port;
use super::mailstack::MailStack;
use super::postgres::PgDatabase;

/// The database every gateway of a test run uses: SQLite by default, PostgreSQL (a database
/// of its own per gateway on a private server) when `TICKETGATE_TEST_DATABASE=postgres` —
/// `scripts/test` runs the end-to-end suites both ways.
pub fn test_backend_is_postgres() -> bool {
    std::env::var("TICKETGATE_TEST_DATABASE").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// The test secret (32 bytes).
pub const SECRET: &str = "test-secret-test-secret-test-sec";

/// Area and people used by the tests.
pub const LAVORI: &str = "lavori-pubblici@comune.test";
pub const AMBIENTE: &str = "ambiente@comune.test";
pub const STAFF_LAVORI: &str = "mario.rossi@comune.test";
pub const STAFF_AMBIENTE: &str = "giulia.bianchi@comune.test";
pub const CITIZEN: &str = "anna.verdi@citizen.test";
pub const CITIZEN2: &str = "luca.neri@citizen.test";

pub struct Gateway {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub web_port: u16,
    /// The operator's listener (`server.metrics_listen`): `/metrics` and `/healthz`.
    pub metrics_port: u16,
    /// A lower open-files limit for the process (`prlimit --nofile`), when a test wants one.
    fd_limit: Option<u64>,
    child: Option<Child>,
    /// Extra environment of the `serve` process (e.g. a test failpoint).
    env: Vec<(String, String)>,
    /// The PostgreSQL database, when the run is on PostgreSQL (dropped after the process).
    pg: Option<PgDatabase>,
    _tmp: tempfile::TempDir,
}

/// The test configuration; `extra` is appended (more TOML) and may override nothing
/// already set, so tests that need other values pass their own `tickets`/`outbox` tables
/// through `sections`.
pub fn config_text(
    stack: &MailStack,
    dir: &std::path::Path,
    web_port: u16,
    tickets: &str,
    outbox: &str,
) -> String {
    config_text_on(
        stack,
        dir,
        (web_port, free_port()),
        tickets,
        outbox,
        &format!("sqlite://{}/ticketgate.db", dir.display()),
    )
}

/// [`config_text`] on the database at `database_url`, with the web and metrics ports.
pub fn config_text_on(
    stack: &MailStack,
    dir: &std::path::Path,
    (web_port, metrics_port): (u16, u16),
    tickets: &str,
    outbox: &str,
    database_url: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"
metrics_listen = "127.0.0.1:{metrics_port}"

[database]
url = "{database_url}"

[storage]
dir = "{dir}/attachments"

[security]
secret = "{SECRET}"

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"
timeout_seconds = 10

[tickets]
{tickets}

[outbox]
{outbox}

[[mailbox]]
name = "lavori-pubblici"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{LAVORI}"
password = "{pw}"
poll_seconds = 1
default_area = "lavori-pubblici"

[[mailbox]]
name = "ambiente"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{AMBIENTE}"
password = "{pw}"
poll_seconds = 1

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
"#,
        dir = dir.display(),
        smtp = stack.smtp_port,
        imap = stack.imap_port,
        pw = stack.password,
    )
}

/// How long [`wait_tickets`] waits.
pub const TICKETS_WAIT: Duration = Duration::from_secs(30);

/// Waits until `n` tickets exist (at most [`TICKETS_WAIT`]), returns them.
pub fn wait_tickets(gw: &Gateway, n: usize) -> Vec<Value> {
    gw.wait_for(&format!("{n} ticket(s)"), TICKETS_WAIT, || {
        let t = gw.tickets();
        (t.len() >= n).then_some(t)
    })
}

impl Gateway {
    /// Writes the default test config and starts `ticketgate serve`.
    pub fn start(stack: &MailStack) -> Gateway {
        Self::start_with(
            stack,
            "",
            "retry_initial_seconds = 1\nretry_max_seconds = 2",
        )
    }

    /// Same, with the bodies of the `[tickets]` and `[outbox]` tables given.
    pub fn start_with(stack: &MailStack, tickets: &str, outbox: &str) -> Gateway {
        Self::start_edited(stack, tickets, outbox, |t| t)
    }

    /// Same, with the generated config text passed through `edit` first.
    pub fn start_edited(
        stack: &MailStack,
        tickets: &str,
        outbox: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        Self::start_on(stack, None, tickets, outbox, edit, None, &[])
    }

    /// [`Gateway::start_edited`] with the process's open-files limit set to `nofile`.
    pub fn start_with_fd_limit(
        stack: &MailStack,
        nofile: u64,
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        Self::start_on(
            stack,
            None,
            "",
            "retry_initial_seconds = 1\nretry_max_seconds = 2",
            edit,
            Some(nofile),
            &[],
        )
    }

    /// The default test config, `serve` started with `env` added to its environment.
    pub fn start_with_env(stack: &MailStack, env: &[(&str, &str)]) -> Gateway {
        Self::start_on(
            stack,
            None,
            "",
            "retry_initial_seconds = 1\nretry_max_seconds = 2",
            |t| t,
            None,
            env,
        )
    }

    /// Another instance on the database at `database_url` and the attachment directory
    /// `storage` (several `serve` processes sharing one PostgreSQL and one storage
    /// directory), with its own directory and web port.
    pub fn start_shared(
        stack: &MailStack,
        database_url: &str,
        storage: &std::path::Path,
        tickets: &str,
        outbox: &str,
    ) -> Gateway {
        let storage = storage.display().to_string();
        Self::start_on(
            stack,
            Some(database_url),
            tickets,
            outbox,
            move |text| {
                let start = text.find("[storage]").expect("a [storage] table");
                let end = start + text[start..].find("\n\n").expect("end of [storage]");
                format!(
                    "{}[storage]\ndir = \"{storage}\"{}",
                    &text[..start],
                    &text[end..]
                )
            },
            None,
            &[],
        )
    }

    /// [`Gateway::start_shared`] with extra environment for the process (e.g.
    /// `TICKETGATE__SMTP__PORT` to reach the SMTP server through a test's forwarder).
    pub fn start_shared_with_env(
        stack: &MailStack,
        database_url: &str,
        storage: &std::path::Path,
        outbox: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        let storage = storage.display().to_string();
        Self::start_on(
            stack,
            Some(database_url),
            "",
            outbox,
            move |text| {
                let start = text.find("[storage]").expect("a [storage] table");
                let end = start + text[start..].find("\n\n").expect("end of [storage]");
                format!(
                    "{}[storage]\ndir = \"{storage}\"{}",
                    &text[..start],
                    &text[end..]
                )
            },
            None,
            env,
        )
    }

    fn start_on(
        stack: &MailStack,
        shared_url: Option<&str>,
        tickets: &str,
        outbox: &str,
        edit: impl FnOnce(String) -> String,
        fd_limit: Option<u64>,
        env: &[(&str, &str)],
    ) -> Gateway {
        let mut gw = Self::prepare_on(stack, shared_url, tickets, outbox, edit, fd_limit, env);
        gw.spawn();
        gw
    }

    /// The default test config with `env` added to the environment of `serve`, not started
    /// yet: the test sets up what must be listening first, then calls [`Gateway::launch`].
    pub fn prepare_with_env(
        stack: &MailStack,
        env: &[(&str, &str)],
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        Self::prepare_on(
            stack,
            None,
            "",
            "retry_initial_seconds = 1\nretry_max_seconds = 2",
            edit,
            None,
            env,
        )
    }

    fn prepare_on(
        stack: &MailStack,
        shared_url: Option<&str>,
        tickets: &str,
        outbox: &str,
        edit: impl FnOnce(String) -> String,
        fd_limit: Option<u64>,
        env: &[(&str, &str)],
    ) -> Gateway {
        let tmp = tempfile::Builder::new()
            .prefix("tg-gw-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().to_owned();
        let web_port = free_port();
        let metrics_port = free_port();
        let config_path = dir.join("ticketgate.toml");
        let (pg, url) = match shared_url {
            Some(url) => (None, url.to_owned()),
            None => {
                let pg = test_backend_is_postgres().then(PgDatabase::create);
                let url = match &pg {
                    Some(db) => db.url.clone(),
                    None => format!("sqlite://{}/ticketgate.db", dir.display()),
                };
                (pg, url)
            }
        };
        let text = edit(config_text_on(
            stack,
            &dir,
            (web_port, metrics_port),
            tickets,
            outbox,
            &url,
        ));
        std::fs::write(&config_path, text).expect("write config");
        Gateway {
            dir,
            config_path,
            web_port,
            metrics_port,
            fd_limit,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pg,
            _tmp: tmp,
        }
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_healthy();
    }

    /// Starts `serve` without waiting for it to be healthy (it may be expected to die).
    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .expect("log file");
        let mut command = match self.fd_limit {
            // prlimit sets the limit and then execs the binary: the pid stays the gateway's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_ticketgate"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ticketgate")),
        };
        let child = command
            .args(["--config"])
            .arg(&self.config_path)
            .arg("serve")
            .env("TICKETGATE_LOG", "info,ticketgate=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ticketgate serve");
        self.child = Some(child);
    }

    /// Starts `serve` again on the same directory and database, without waiting for it to
    /// be healthy: for a start that is expected to die.
    pub fn relaunch(&mut self) {
        self.kill();
        self.launch();
    }

    /// Waits until `serve` exits by itself (e.g. aborts) and returns how it ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "ticketgate serve still running after {timeout:?}:\n{}",
            self.log()
        );
    }

    /// Waits until `/healthz` answers 200 (panics with the log after 30 s or if `serve` dies).
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(answer) = http::try_exchange(self.web_port, "GET /healthz HTTP/1.0\r\n\r\n") {
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("ticketgate serve exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ticketgate serve not healthy after 30 s:\n{}", self.log());
    }

    /// The largest resident memory of the running `serve` so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("a running gateway").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// GET a path of the web server, returns the body.
    pub fn http_get(&self, path: &str) -> String {
        Self::http_get_on(self.web_port, path)
    }

    /// GET a path on `port` of this host, returns the body.
    pub fn http_get_on(port: u16, path: &str) -> String {
        http::get(port, path).1
    }

    /// `method path` on the web port, with an optional form body; (status code, body).
    pub fn http(&self, method: &str, path: &str, form: Option<&str>) -> (u16, String) {
        http::request(self.web_port, method, path, &[], form)
    }

    /// A gauge or counter value from `/metrics` (on the metrics listener), by its full
    /// series text.
    pub fn metric(&self, series: &str) -> Option<f64> {
        Self::http_get_on(self.metrics_port, "/metrics")
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// The `serve` process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns its exit status success.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts `serve` again on the same directory and database.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs a `ticketgate` subcommand against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .expect("run ticketgate")
    }

    /// Runs `ticketgate ingest --mailbox NAME` with `raw` on stdin.
    pub fn ingest(&self, mailbox: &str, raw: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&self.config_path)
            .args(["ingest", "--mailbox", mailbox])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ticketgate ingest");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(raw)
            .expect("write stdin");
        child.wait_with_output().expect("ingest output")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "ticketgate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ticketgate {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `ticket list --format json`.
    pub fn tickets(&self) -> Vec<Value> {
        match self.json(&["ticket", "list", "--format", "json"]) {
            Value::Array(a) => a,
            other => panic!("ticket list is not an array: {other}"),
        }
    }

    /// `ticket show REF --format json`.
    pub fn show(&self, reference: &str) -> Value {
        self.json(&["ticket", "show", reference, "--format", "json"])
    }

    /// `quarantine list --format json`.
    pub fn quarantine(&self) -> Vec<Value> {
        match self.json(&["quarantine", "list", "--format", "json"]) {
            Value::Array(a) => a,
            other => panic!("quarantine list is not an array: {other}"),
        }
    }

    /// Polls `f` until it returns Some or `timeout` passes (then panics with `what` and the log).
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- serve.log ---\n{}\n--- tickets ---\n{:?}",
                    self.log(),
                    self.cli(&["ticket", "list"])
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
