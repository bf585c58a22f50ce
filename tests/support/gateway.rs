//! A `ticketgate serve` process for integration tests: its own directory, SQLite file,
//! config pointing at a private [`MailStack`], and a free web port. It runs the real binary,
//! so SIGKILL and restart are real.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use ticketgate::cli::json::TicketShow;

use super::config::{TestConfig, FAST_RETRY};
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
    /// What its config file was written from (without the text edits of
    /// [`Gateway::start_edited`]).
    pub config: TestConfig,
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

/// Sets the bodies of `[tickets]` and `[outbox]`.
fn tables<'a>(tickets: &'a str, outbox: &'a str) -> impl FnOnce(&mut TestConfig) + 'a {
    move |c| {
        c.tickets = tickets.to_owned();
        c.outbox = outbox.to_owned();
    }
}

/// Runs `ticketgate --config CONFIG ingest --mailbox NAME` with `raw` on stdin and `env`
/// added to its environment, as an MTA's pipe delivery does.
pub fn ingest(config: &std::path::Path, mailbox: &str, raw: &[u8], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(config)
        .args(["ingest", "--mailbox", mailbox])
        .envs(env.iter().copied())
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

/// The kinds of a `ticket show` JSON's events, in order.
pub fn events(shown: &Value) -> Vec<String> {
    shown["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
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
        Self::start_configured(stack, |_| {})
    }

    /// Same, with the configuration changed by `configure` first.
    pub fn start_configured(stack: &MailStack, configure: impl FnOnce(&mut TestConfig)) -> Gateway {
        let mut gw = Self::prepare(stack, None, configure, |t| t, None, &[]);
        gw.spawn();
        gw
    }

    /// Same, with the bodies of the `[tickets]` and `[outbox]` tables given.
    pub fn start_with(stack: &MailStack, tickets: &str, outbox: &str) -> Gateway {
        Self::start_edited(stack, tickets, outbox, |t| t)
    }

    /// Same, with the generated config text passed through `edit` first (for a line the
    /// typed [`TestConfig`] does not know).
    pub fn start_edited(
        stack: &MailStack,
        tickets: &str,
        outbox: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        let mut gw = Self::prepare(stack, None, tables(tickets, outbox), edit, None, &[]);
        gw.spawn();
        gw
    }

    /// [`Gateway::start_configured`] with the process's open-files limit set to `nofile`.
    pub fn start_with_fd_limit(
        stack: &MailStack,
        nofile: u64,
        configure: impl FnOnce(&mut TestConfig),
    ) -> Gateway {
        let mut gw = Self::prepare(stack, None, configure, |t| t, Some(nofile), &[]);
        gw.spawn();
        gw
    }

    /// The default test config, `serve` started with `env` added to its environment.
    pub fn start_with_env(stack: &MailStack, env: &[(&str, &str)]) -> Gateway {
        let mut gw = Self::prepare(stack, None, |_| {}, |t| t, None, env);
        gw.spawn();
        gw
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
        Self::shared(stack, database_url, storage, tickets, outbox, &[])
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
        Self::shared(stack, database_url, storage, "", outbox, env)
    }

    fn shared(
        stack: &MailStack,
        database_url: &str,
        storage: &std::path::Path,
        tickets: &str,
        outbox: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        let configure = |c: &mut TestConfig| {
            tables(tickets, outbox)(c);
            c.storage_dir = storage.to_owned();
        };
        let mut gw = Self::prepare(stack, Some(database_url), configure, |t| t, None, env);
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
        Self::prepare(stack, None, |_| {}, edit, None, env)
    }

    /// A gateway not started yet: its directory, ports and database (a database of its own
    /// on PostgreSQL when the run is on PostgreSQL, unless `shared_url` names one), and its
    /// config file (the default [`TestConfig`] with [`FAST_RETRY`], then `configure`, then
    /// the text through `edit`).
    fn prepare(
        stack: &MailStack,
        shared_url: Option<&str>,
        configure: impl FnOnce(&mut TestConfig),
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
        let mut config = TestConfig::new(stack, &dir, (web_port, metrics_port), &url);
        config.outbox = FAST_RETRY.to_owned();
        configure(&mut config);
        std::fs::write(&config_path, edit(config.to_toml())).expect("write config");
        Gateway {
            dir,
            config_path,
            config,
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
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ingest(&self.config_path, mailbox, raw, &env)
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

    /// `ticket show REF --format json`, read into the type the CLI prints it from.
    pub fn ticket(&self, reference: &str) -> TicketShow {
        let shown = self.show(reference);
        serde_json::from_value(shown.clone())
            .unwrap_or_else(|e| panic!("ticket show {reference}: not a TicketShow ({e}): {shown}"))
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
