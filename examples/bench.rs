//! The two benchmarks of BENCHMARKS.md, against real servers and the real `ticketgate serve`.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench -- drain [COUNT]     # default 5000
//! cargo run --release --example bench -- latency [COUNT]   # default 200
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
//! - `latency`: with the gateway idle in IMAP IDLE, sends mails one at a time over SMTP, each
//!   from its own citizen address, and times SMTP acceptance → acknowledgment visible in that
//!   citizen's INBOX (polled over IMAP every [`POLL_EVERY`]).
//!
//! Figures are printed; nothing here passes or fails on timing. Needs root (the mail stack
//! switches users) and the Debian packages of `scripts/install-deps`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::TryStreamExt;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
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

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let inbound_only = args.iter().any(|a| a == "--inbound-only");
    args.retain(|a| a != "--inbound-only");
    let (mode, count) = match args.as_slice() {
        [m] => (m.as_str(), None),
        [m, n] => match n.parse::<usize>() {
            Ok(n) if n > 0 => (m.as_str(), Some(n)),
            _ => return usage(),
        },
        _ => return usage(),
    };
    let known = matches!((mode, inbound_only), ("drain", _) | ("latency", false));
    if !known {
        return usage();
    }
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
            match mode {
                "drain" => drain(count.unwrap_or(5000), inbound_only).await,
                _ => latency(count.unwrap_or(200)).await,
            }
        };
        // On Ctrl-C the benchmark future is dropped: its guards stop the gateway and the
        // mail stack (daemons that would otherwise outlive us).
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
    eprintln!("usage: bench drain [COUNT] [--inbound-only] | bench latency [COUNT]");
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
    _silent: Option<SilentRelay>,
    dir: PathBuf,
    db: PathBuf,
    child: Option<Child>,
    pid: u32,
    /// Unix millis just before the process was spawned.
    spawned_at: i64,
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

fn config_text(stack: &Stack, dir: &Path, web_port: u16, smtp_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"

[database]
url = "sqlite://{dir}/ticketgate.db"

[storage]
dir = "{dir}/attachments"

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
        smtp = smtp_port,
        imap = stack.imap_port,
        pw = stack.password,
    )
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

    /// Starts `serve`; its outbox sends to the stack's Postfix, or with `inbound_only` to a
    /// [`SilentRelay`], so nothing is sent (and no CPU spent sending) during the run.
    async fn start(stack: &Stack, inbound_only: bool) -> anyhow::Result<Gateway> {
        let bin = Self::binary()?;
        let dir = PathBuf::from(format!("/tmp/tgb-gw.{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let web_port = free_port()?;
        let config = dir.join("ticketgate.toml");
        let silent = if inbound_only {
            Some(SilentRelay::start().await?)
        } else {
            None
        };
        let smtp_port = silent.as_ref().map_or(stack.smtp_port, |r| r.port);
        std::fs::write(&config, config_text(stack, &dir, web_port, smtp_port))
            .context("writing config")?;
        let log = std::fs::File::create(dir.join("serve.log")).context("creating serve.log")?;
        // `info` is what `serve` logs by default: one line per ticket and per mail sent.
        let filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
        let spawned_at = now_millis();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("TICKETGATE_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut gw = Gateway {
            _silent: silent,
            db: dir.join("ticketgate.db"),
            dir,
            pid: child.id(),
            child: Some(child),
            spawned_at,
        };
        gw.wait_healthy(web_port).await?;
        Ok(gw)
    }

    async fn wait_healthy(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
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

    async fn db(&self) -> anyhow::Result<SqlitePool> {
        let opts = SqliteConnectOptions::new()
            .filename(&self.db)
            .busy_timeout(Duration::from_secs(10));
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening {}", self.db.display()))
    }

    /// CPU, memory and disk figures of the gateway process now.
    fn usage(&self) -> anyhow::Result<ProcUsage> {
        proc_usage(self.pid)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        drop(self._silent.take());
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

#[derive(Debug, Clone, Copy)]
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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is fields[N - 3].
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
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

/// One message of the drain mix; `i % 5` picks the shape, `i % 10` the HTML variant.
fn drain_message(run: i64, i: usize, citizens: usize) -> Vec<u8> {
    let citizen = i % citizens;
    let name = NAMES[i % NAMES.len()];
    let subject = SUBJECTS[i % SUBJECTS.len()];
    let body = BODIES[i % BODIES.len()];
    let head = format!(
        "From: {name} <citizen{citizen}@citizen.test>\r\nTo: Lavori pubblici <{LAVORI}>\r\n\
         Subject: {subject} (n. {i})\r\nMessage-ID: <bench.{run}.{i}@citizen.test>\r\n\
         Date: {date}\r\nMIME-Version: 1.0\r\n",
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

async fn fill_inbox(stack: &Stack, run: i64, count: usize) -> anyhow::Result<(u64, Duration)> {
    let citizens = (count / 5).max(1);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..APPEND_SESSIONS {
        let mut session = stack.login(LAVORI).await?;
        tasks.spawn(async move {
            let mut bytes = 0u64;
            for i in (s..count).step_by(APPEND_SESSIONS) {
                let raw = drain_message(run, i, citizens);
                bytes += raw.len() as u64;
                session
                    .append("INBOX", None, None, &raw)
                    .await
                    .with_context(|| format!("APPEND of message {i}"))?;
            }
            let _ = session.logout().await;
            anyhow::Ok(bytes)
        });
    }
    let mut bytes = 0;
    while let Some(r) = tasks.join_next().await {
        bytes += r.context("APPEND task")??;
    }
    let elapsed = started.elapsed();
    // Check what the gateway will find.
    let mut session = stack.login(LAVORI).await?;
    let mb = session.select("INBOX").await.context("SELECT INBOX")?;
    let _ = session.logout().await;
    if mb.exists as usize != count {
        bail!("INBOX holds {} messages, {count} appended", mb.exists);
    }
    Ok((bytes, elapsed))
}

async fn scalar(db: &SqlitePool, sql: &'static str) -> anyhow::Result<i64> {
    let row = sqlx::query(sql).fetch_one(db).await.context(sql)?;
    Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0))
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

async fn drain(count: usize, inbound_only: bool) -> anyhow::Result<()> {
    let run = now_millis();
    let ticks = clock_ticks();
    let busy_before = machine_busy_now().await;
    eprintln!("bench drain: starting a private mail stack");
    let stack = Stack::start()?;
    eprintln!(
        "bench drain: filling {LAVORI} with {count} messages over IMAP APPEND ({APPEND_SESSIONS} sessions)"
    );
    let (bytes, fill_time) = fill_inbox(&stack, run, count).await?;
    eprintln!(
        "bench drain: appended {count} messages, {:.1} MB, in {:.1} s",
        bytes as f64 / 1e6,
        fill_time.as_secs_f64()
    );

    let machine_before = machine_jiffies();
    let bench_cpu_before = self_cpu_ms();
    let mut gw = Gateway::start(&stack, inbound_only).await?;
    let profiler = Profiler::start(gw.pid)?;
    let db = gw.db().await?;
    let watch_start = Instant::now();
    let mut last_report = Instant::now();
    // Drain done: every message stored and none pending.
    let (drain_usage, machine_drain, drain_seen) = loop {
        let stored = scalar(
            &db,
            "SELECT COUNT(*) FROM raw_message WHERE mailbox = 'lavori-pubblici'",
        )
        .await?;
        let pending = scalar(
            &db,
            "SELECT COUNT(*) FROM raw_message WHERE state = 'pending'",
        )
        .await?;
        if stored as usize >= count && pending == 0 {
            break (gw.usage()?, machine_jiffies(), now_millis());
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("bench drain: {stored} stored, {pending} pending");
            last_report = Instant::now();
        }
        if watch_start.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "drain not finished after {DRAIN_TIMEOUT:?}:\n{}",
                gw.log_tail()
            );
        }
        gw.check_alive()?;
        tokio::time::sleep(WATCH_EVERY).await;
    };
    let bench_cpu_drain = self_cpu_ms() - bench_cpu_before;
    drop(profiler);

    // Then the outbox: an acknowledgment and a staff notification per ticket.
    // BENCH_NO_OUTBOX_WAIT=1 skips this (quicker experiments; no outbox figures then).
    let skip_outbox = std::env::var_os("BENCH_NO_OUTBOX_WAIT").is_some_and(|v| v == "1");
    let wait_outbox = !(inbound_only || skip_outbox);
    let (outbox_usage, outbox_seen) = loop {
        if !wait_outbox {
            break (drain_usage, drain_seen);
        }
        let queued = scalar(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'queued'").await?;
        let tickets = scalar(&db, "SELECT COUNT(*) FROM ticket").await?;
        let rows = scalar(&db, "SELECT COUNT(*) FROM outbox").await?;
        if queued == 0 && rows >= 2 * tickets {
            break (gw.usage()?, now_millis());
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("bench drain: outbox {queued} queued of {rows}");
            last_report = Instant::now();
        }
        gw.check_alive()?;
        if watch_start.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "outbox not empty after {DRAIN_TIMEOUT:?}:\n{}",
                gw.log_tail()
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
    let raw_states =
        sqlx::query("SELECT state, COUNT(*) FROM raw_message GROUP BY state ORDER BY state")
            .fetch_all(&db)
            .await?
            .iter()
            .map(|r| format!("{}={}", r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect::<Vec<_>>()
            .join(" ");
    let outbox_states = sqlx::query("SELECT kind, o.state, COUNT(*) FROM outbox o JOIN message m USING (message_id) GROUP BY kind, o.state ORDER BY kind")
        .fetch_all(&db)
        .await?
        .iter()
        .map(|r| format!("{}/{}={}", r.get::<String, _>(0), r.get::<String, _>(1), r.get::<i64, _>(2)))
        .collect::<Vec<_>>()
        .join(" ");
    let outbox_rows = scalar(&db, "SELECT COUNT(*) FROM outbox").await?;
    let attachments = scalar(&db, "SELECT COUNT(*) FROM attachment").await?;
    let db_bytes = std::fs::metadata(&gw.db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(gw.db.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    db.close().await;

    let n = count as f64;
    let end = last_processed.max(last_ticket);
    let drain_ms = end - first_stored;
    let from_start_ms = end - gw.spawned_at;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    println!(
        "== drain: {count} messages, {:.1} MB, SQLite (WAL, synchronous=FULL), {} ==",
        bytes as f64 / 1e6,
        if inbound_only {
            "inbound only (silent SMTP relay)"
        } else {
            "outbox sending to the local Postfix"
        }
    );
    println!("machine CPU in the second before the run: {busy_before} (other work on the machine)");
    println!(
        "fill (IMAP APPEND, before the gateway starts): {:.1} s",
        fill_time.as_secs_f64()
    );
    println!(
        "gateway start -> first raw stored: {:.3} s",
        secs(first_stored - gw.spawned_at)
    );
    println!(
        "first raw stored -> last message processed: {:.3} s  => {:.0} msg/s",
        secs(drain_ms),
        n / secs(drain_ms)
    );
    println!(
        "process start -> last message processed:    {:.3} s  => {:.0} msg/s",
        secs(from_start_ms),
        n / secs(from_start_ms)
    );
    println!(
        "(last raw stored at +{:.3} s; last ticket created_at {:.3} s, last processed_at {:.3} s after the first raw)",
        secs(last_stored - first_stored),
        secs(last_ticket - first_stored),
        secs(last_processed - first_stored),
    );
    println!(
        "gateway CPU at drain end (seen {} ms after it): {:.0} ms = {:.2} ms/msg (outbox sending included); \
         peak RSS (VmHWM) {:.1} MiB, RSS {:.1} MiB",
        drain_seen - end,
        drain_usage.cpu_ms,
        drain_usage.cpu_ms / n,
        drain_usage.hwm_kib as f64 / 1024.0,
        drain_usage.rss_kib as f64 / 1024.0,
    );
    println!(
        "gateway disk writes at drain end: {:.0} MB (SQLite WAL + checkpoints + attachment files; \
         write_bytes of /proc/PID/io), reads {:.0} MB",
        drain_usage.disk_write as f64 / 1e6,
        drain_usage.disk_read as f64 / 1e6,
    );
    println!(
        "gateway context switches at drain end: {} = {:.0} per message (live threads only)",
        drain_usage.switches,
        drain_usage.switches as f64 / n,
    );
    println!(
        "machine CPU from gateway start to drain end: {} of {cores} cores; this bench process used {:.0} ms",
        machine_drain.since(machine_before),
        bench_cpu_drain,
    );
    if wait_outbox {
        println!(
            "outbox: all {outbox_rows} rows sent {:.3} s after the first raw (seen {} ms later) \
             => {:.0} mails/s; gateway CPU then {:.0} ms = {:.2} ms/msg, peak RSS {:.1} MiB",
            secs(last_sent - first_stored),
            outbox_seen - last_sent,
            outbox_rows as f64 / secs(last_sent - first_stored),
            outbox_usage.cpu_ms,
            outbox_usage.cpu_ms / n,
            outbox_usage.hwm_kib as f64 / 1024.0,
        );
    } else {
        println!(
            "outbox: not waited for ({})",
            if inbound_only {
                "--inbound-only: the SMTP relay accepts connections and never answers"
            } else {
                "BENCH_NO_OUTBOX_WAIT=1"
            }
        );
    }
    println!(
        "outcome: tickets={tickets} duplicates={duplicates} quarantined={quarantined} \
         raw[{raw_states}] attachments={attachments} outbox[{outbox_states}]"
    );
    println!(
        "database + WAL after the run: {:.1} MB (clock tick {ticks} Hz)",
        db_bytes as f64 / 1e6
    );
    if tickets as usize != count {
        bail!("{count} messages drained but {tickets} tickets: something was lost or quarantined");
    }
    println!("all {count} messages became tickets");
    drop(gw);
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
    let busy_before = machine_busy_now().await;
    eprintln!("bench latency: starting a private mail stack");
    let stack = Stack::start()?;
    let gw = Gateway::start(&stack, false).await?;
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
    drop(gw);
    drop(stack);
    Ok(())
}
