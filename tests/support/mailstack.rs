//! A private, real mail stack for integration tests: one Dovecot (IMAP, plaintext, on
//! 127.0.0.1) and one Postfix (SMTP on 127.0.0.1, delivering every recipient of any domain
//! into that Dovecot), started by `scripts/mailstack` in a fresh short directory under /tmp.
//!
//! This module owns only the lifecycle: start, stop/start each server (to test reconnects
//! and queued delivery), and stop + clean up on drop. Tests talk to the servers themselves
//! over IMAP/SMTP: any user name (use the full address, `someone@comune.test`) logs in
//! with [`MailStack::password`]. Each `MailStack` is independent (own ports, queue,
//! processes), so tests and test binaries may run several in parallel.
//!
//! [`MailStack::start_cyrus`] starts the same with Cyrus IMAP (Debian's 3.6, unpacked by
//! `scripts/install-deps`) in place of Dovecot: the second IMAP server of `tests/cyrus.rs`.
//! Cyrus checks passwords, so only the users given to it (or to [`MailStack::add_users`])
//! log in; its folder separator is `/` and a user's folders live under `INBOX/`.
//!
//! Needs root and the Debian packages of `scripts/install-deps`. Logs of a run are in
//! `dir/dovecot.log` and `dir/postfix.log`; the directory is kept (and its path printed)
//! when the stack is dropped during a panic, so a failing test leaves them to read.
#![allow(dead_code)] // not every test binary uses every method

use std::path::{Path, PathBuf};
use std::process::Command;

use super::local::fresh_dir;

/// A running private Dovecot (or Cyrus) + Postfix. Dropping it stops both and removes `dir`.
pub struct MailStack {
    pub dir: PathBuf,
    pub imap_port: u16,
    pub smtp_port: u16,
    pub password: String,
    pub imap_server: ImapServer,
}

/// Which IMAP server a [`MailStack`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapServer {
    Dovecot,
    Cyrus,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mailstack")
}

/// Runs `scripts/mailstack CMD DIR`, returns its stdout; panics with its stderr on failure.
fn mailstack(cmd: &str, dir: &Path) -> String {
    mailstack_with(cmd, dir, &[])
}

/// Runs `scripts/mailstack CMD DIR ARGS...`, like [`mailstack`].
fn mailstack_with(cmd: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(script())
        .arg(cmd)
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    if !out.status.success() {
        panic!(
            "scripts/mailstack {cmd} {} failed ({}):\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl MailStack {
    /// Starts a private stack on free loopback ports (takes well under a second).
    /// Panics with the script's stderr (and the servers' log tails) on failure.
    pub fn start() -> MailStack {
        Self::start_server(ImapServer::Dovecot)
    }

    /// Starts a private stack with Cyrus IMAP in place of Dovecot; `users` (full addresses)
    /// log in with [`MailStack::password`]. Mail to any address is delivered (the INBOX is
    /// created on first delivery or login).
    pub fn start_cyrus(users: &[&str]) -> MailStack {
        let stack = Self::start_server(ImapServer::Cyrus);
        stack.add_users(users);
        stack
    }

    /// Lets more users log in (Cyrus); Dovecot takes any user already.
    pub fn add_users(&self, users: &[&str]) {
        if self.imap_server == ImapServer::Cyrus && !users.is_empty() {
            mailstack_with("add-user", &self.dir, users);
        }
    }

    fn start_server(imap_server: ImapServer) -> MailStack {
        let dir = fresh_dir("tgms");
        let cmd = match imap_server {
            ImapServer::Dovecot => "start",
            ImapServer::Cyrus => "start-cyrus",
        };
        let out = mailstack(cmd, &dir);
        let value = |key: &str| -> String {
            out.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("scripts/mailstack start printed no {key}=:\n{out}"))
                .to_string()
        };
        MailStack {
            imap_port: value("IMAP_PORT").parse().expect("IMAP_PORT"),
            smtp_port: value("SMTP_PORT").parse().expect("SMTP_PORT"),
            password: value("PASSWORD"),
            imap_server,
            dir,
        }
    }

    /// Stops Dovecot (connected clients get `* BYE`); Postfix queues mail meanwhile.
    /// (Cyrus, for a Cyrus stack: the same holds for every method that names Dovecot.)
    pub fn stop_imap(&self) {
        mailstack("stop-imap", &self.dir);
    }

    /// Starts Dovecot again on the same port; mail that Postfix queued is delivered at once.
    pub fn start_imap(&self) {
        mailstack("start-imap", &self.dir);
    }

    /// Stops Postfix (SMTP connections are refused until [`MailStack::start_smtp`]).
    pub fn stop_smtp(&self) {
        mailstack("stop-smtp", &self.dir);
    }

    /// Starts Postfix again on the same port and flushes its queue.
    pub fn start_smtp(&self) {
        mailstack("start-smtp", &self.dir);
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        // Never panic here: a panic while already panicking aborts the test binary.
        let stopped = Command::new(script())
            .arg("stop")
            .arg(&self.dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if std::thread::panicking() || !stopped {
            eprintln!(
                "mail stack kept for inspection: {} (dovecot.log or cyrus.log, postfix.log)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
