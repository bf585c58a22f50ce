//! A private, real PostgreSQL for integration tests: `initdb` into a fresh short directory
//! under /tmp, `pg_ctl start` on a free 127.0.0.1 port with the unix socket in that same
//! directory, one login role with a password, and one database per test.
//!
//! This module owns only the lifecycle. The system cluster (`pg_ctlcluster 15 main`) is never
//! touched. The server is shared by the tests of one binary that run at the same time
//! ([`PgDatabase::create`] hands out `Arc`s to it): each test gets its own database, and the
//! last test to drop its [`PgDatabase`] stops the server (`pg_ctl stop -m immediate`) and
//! removes the directory. A test binary killed before that leaks `/tmp/tgpg.*`;
//! `scripts/test` stops those leftovers.
//!
//! Needs the Debian package `postgresql` (scripts/install-deps). When it is missing the test
//! panics with that advice: it does not skip, so `cargo test` never passes by not testing.
//! Clients reach the server over TCP with a scram password, as the gateway would; the
//! administration (role, databases) goes through the unix socket with peer authentication,
//! as the OS user that owns the cluster (`postgres` when the tests run as root, because
//! initdb refuses root; the current user otherwise).
#![allow(dead_code)] // not every test binary uses every item

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::local::{free_port, fresh_dir};

/// The login role the tests connect as (owner of every test database).
const ROLE: &str = "ticketgate";

/// Attempts at starting the server, each on a new port: a port found free can be taken by
/// another process (another test binary) before the postmaster binds it.
const START_ATTEMPTS: usize = 3;

/// How long `pg_ctl start -w` may wait for the server to accept connections.
const START_TIMEOUT_SECONDS: u32 = 30;

/// A running private PostgreSQL. Dropping the last handle stops it and removes `dir`.
pub struct PgServer {
    pub dir: PathBuf,
    pub port: u16,
    pub password: String,
    /// Major version of the server (from the cluster's PG_VERSION).
    pub major: u32,
    bin: PathBuf,
    /// Run commands as this OS user (`runuser -u`) when we are root; `None`: as ourselves.
    os_user: Option<String>,
    /// Time `initdb` + `pg_ctl start` + role creation took (reported by the store tests).
    pub startup: Duration,
}

/// One database of its own on the shared private server, for one test.
pub struct PgDatabase {
    pub name: String,
    /// `postgres://ticketgate:PASSWORD@127.0.0.1:PORT/NAME`
    pub url: String,
    pub server: Arc<PgServer>,
}

impl PgDatabase {
    /// A new empty database (owned by the test role) on the private server, starting the
    /// server if no test of this binary holds it now.
    pub fn create() -> PgDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = PgServer::shared();
        let name = format!("tg_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        // PostgreSQL 15 copies the template through the WAL by default; a file copy is
        // about twice as fast here (fsync is off, so its checkpoint is cheap).
        let strategy = if server.major >= 15 {
            " STRATEGY = FILE_COPY"
        } else {
            ""
        };
        server.psql(&format!("CREATE DATABASE {name} OWNER {ROLE}{strategy}"));
        PgDatabase {
            url: format!(
                "postgres://{ROLE}:{}@127.0.0.1:{}/{name}",
                server.password, server.port
            ),
            name,
            server,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Frees the disk while other tests keep the server; FORCE ends connections a test
        // left open. Best effort and never a panic (this may run during unwinding).
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = self.server.run_psql(&sql);
    }
}

impl PgServer {
    /// The server of this test binary: the running one if a test holds it, else a new one.
    pub fn shared() -> Arc<PgServer> {
        static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
        // A test that panicked while holding the lock poisoned it; the Weak inside is fine.
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(PgServer::start());
        *slot = Arc::downgrade(&server);
        server
    }

    /// Starts a new private server (about a second: initdb dominates). Panics with the
    /// tool's output and the server log when anything fails.
    pub fn start() -> PgServer {
        let began = Instant::now();
        let bin = bin_dir();
        let os_user = (current_uid() == 0).then(|| "postgres".to_owned());
        let dir = fresh_dir("tgpg");
        if os_user.is_some() {
            chown_to_postgres(&dir);
        }
        let mut server = PgServer {
            dir,
            port: 0,
            password: password(),
            major: 0,
            bin,
            os_user,
            startup: Duration::ZERO,
        };
        server.initdb();
        server.major = std::fs::read_to_string(server.data_dir().join("PG_VERSION"))
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        server.port = server.pg_ctl_start();
        server.psql(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{}'",
            server.password
        ));
        server.startup = began.elapsed();
        eprintln!(
            "private PostgreSQL {} on 127.0.0.1:{} in {}, ready in {} ms",
            server.major,
            server.port,
            server.dir.display(),
            server.startup.as_millis()
        );
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// `Command` for one of the server's programs, run as the cluster's OS user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = match &self.os_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        // The `postgres` user cannot enter the build directory under /root: without this,
        // initdb and psql complain that they cannot find the current directory.
        c.current_dir(&self.dir);
        c
    }

    fn initdb(&self) {
        // Peer auth on the private socket (only its own directory can reach it), scram on
        // TCP: the test role logs in with a password like a deployed gateway does.
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output();
        self.check("initdb", out);
    }

    /// Starts the postmaster on a free loopback port; returns the port.
    fn pg_ctl_start(&self) -> u16 {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            // Durability is not under test: fsync off makes CREATE DATABASE and the
            // migrations fast on a busy 2-core machine.
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                self.dir.display()
            );
            let out = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_file())
                .args([
                    "-w",
                    "-t",
                    &START_TIMEOUT_SECONDS.to_string(),
                    "-o",
                    &options,
                ])
                .arg("start")
                .output();
            match out {
                Ok(o) if o.status.success() => return port,
                Ok(o) => last = describe(&o),
                Err(e) => last = e.to_string(),
            }
        }
        panic!(
            "private PostgreSQL in {} did not start after {START_ATTEMPTS} attempts: {last}\n\
             server log:\n{}",
            self.dir.display(),
            self.log_tail()
        );
    }

    /// Runs one SQL statement as the superuser over the unix socket; panics on failure.
    pub fn psql(&self, sql: &str) {
        let out = self.run_psql(sql);
        self.check(&format!("psql -c {sql:?}"), out);
    }

    fn run_psql(&self, sql: &str) -> std::io::Result<Output> {
        self.command("psql")
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-d", "postgres"])
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
    }

    fn check(&self, what: &str, out: std::io::Result<Output>) {
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "{what} failed for the private PostgreSQL in {}: {}\nserver log:\n{}",
                self.dir.display(),
                describe(&o),
                self.log_tail()
            ),
            Err(e) => panic!("cannot run {what}: {e}"),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Never panic here: a panic while already panicking aborts the test binary.
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if std::thread::panicking() || !stopped {
            eprintln!(
                "private PostgreSQL kept for inspection: {} (postgres.log){}",
                self.dir.display(),
                if stopped { "" } else { "; it may still run" }
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The bin directory of the newest installed PostgreSQL server: Debian's
/// `/usr/lib/postgresql/<major>/bin`, else `initdb` on PATH (other distributions).
fn bin_dir() -> PathBuf {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin);
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path).find(|dir| {
                dir.join("initdb").is_file()
                    && dir.join("pg_ctl").is_file()
                    && dir.join("psql").is_file()
            })
        })
    };
    match debian.or_else(on_path) {
        Some(bin) => bin,
        None => panic!(
            "PostgreSQL is not installed: no initdb in /usr/lib/postgresql/*/bin nor on PATH. \
             The store tests run every operation against a private PostgreSQL and do not \
             skip; install the server with scripts/install-deps (Debian package `postgresql`)."
        ),
    }
}

fn chown_to_postgres(dir: &Path) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "no `postgres` OS user to run the private PostgreSQL as (initdb refuses \
                     root): install the server with scripts/install-deps"
                )
            })
    };
    let (uid, gid) = (id("-u"), id("-g"));
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("cannot chown {} to postgres: {e}", dir.display()));
}

/// Effective uid of this process (the owner of /proc/self), without libc.
fn current_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// A throwaway password for a server that only listens on loopback for one test run: it
/// only has to differ between runs, and stay inside '…' and a URL without escaping.
fn password() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("pw{:x}{:x}", std::process::id(), nanos)
}

fn describe(o: &Output) -> String {
    format!(
        "{}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
