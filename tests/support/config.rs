//! The configuration of a test gateway, typed: what a test changes is a field
//! (`mailbox("lavori-pubblici").processed_folder`, `storage_dir`, `polling()`), and
//! [`TestConfig::to_toml`] writes the file. The text is the one the suites were written
//! against (same tables, same order), so that a test may still add a line the builder does
//! not know yet by editing the text (`Gateway::start_edited`); a setting used by more than
//! one test belongs here instead.
#![allow(dead_code)] // not every test binary uses every item

use std::path::{Path, PathBuf};

use super::gateway::{AMBIENTE, LAVORI, SECRET, STAFF_AMBIENTE, STAFF_LAVORI};
use super::mailstack::MailStack;

/// The retry settings of the outbox in most tests: a failed send is retried after a second.
pub const FAST_RETRY: &str = "retry_initial_seconds = 1\nretry_max_seconds = 2";

/// One `[[mailbox]]` table: an IMAP account of the private mail stack.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub name: String,
    pub username: String,
    pub default_area: Option<String>,
    /// `idle = false`: poll only (the gateway's default is IDLE on).
    pub idle: Option<bool>,
    pub processed_folder: Option<String>,
    /// `pec = true`: a certified-mail (PEC) box.
    pub pec: bool,
}

/// One `[[area]]` table.
#[derive(Debug, Clone)]
pub struct Area {
    pub slug: String,
    pub name: String,
    /// Written as they are into `addresses = [...]`: a quoted address, or an inline table
    /// (`{ address = "…", kind = "reclamo" }`).
    pub addresses: Vec<String>,
    pub staff: Vec<String>,
    pub response_days: u32,
    /// `head`: the head of office, told of an overdue ticket with the escalation (issue 14).
    pub head: Option<String>,
    /// `escalate_after_days`; the gateway's default (7) when `None`.
    pub escalate_after_days: Option<u32>,
    /// `admin = true`: its staff speak for every office and get every escalation.
    pub admin: bool,
}

/// A test gateway's configuration: the private mail stack's ports, two areas
/// (lavori-pubblici with a complaints address, ambiente) with one staff member each, and
/// two mailboxes polled every second.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub web_port: u16,
    pub metrics_port: u16,
    /// `base_url` of `[server]`: `http://127.0.0.1:<web_port>` unless a test changes it.
    pub base_url: String,
    /// `[server] trust_forwarded_for`: behind a proxy that sets X-Forwarded-For.
    pub trust_forwarded_for: bool,
    /// `[server] metrics_token`: `/metrics` only with this bearer token.
    pub metrics_token: Option<String>,
    /// `[server] header_timeout_seconds` and `body_timeout_seconds`.
    pub header_timeout_seconds: Option<u64>,
    pub body_timeout_seconds: Option<u64>,
    pub database_url: String,
    /// Where attachments go (`[storage] dir`): several instances may share one.
    pub storage_dir: PathBuf,
    /// `[security] authserv_id`: whose Authentication-Results headers count.
    pub authserv_id: Option<String>,
    pub smtp_port: u16,
    pub imap_port: u16,
    pub imap_password: String,
    /// The body of `[tickets]` (TOML lines).
    pub tickets: String,
    /// The body of `[outbox]` (TOML lines).
    pub outbox: String,
    pub mailboxes: Vec<Mailbox>,
    pub areas: Vec<Area>,
    /// `[pec_smtp]` on the private Postfix at this port (certified mail out).
    pub pec_smtp_port: Option<u16>,
    /// `[digest] enabled`: false unless a test wants `serve`'s scheduled digest. A suite run
    /// after 08:30 Rome time on a working day would otherwise get a digest mail (and an
    /// outbox row) at the gateway's first tick that none of its counts expect.
    pub digest: bool,
    /// More TOML appended at the end (tables the builder does not know).
    pub extra: String,
}

impl TestConfig {
    /// The test configuration for `stack`, with its files under `dir`, listening on
    /// `web_port` and `metrics_port`, on the database at `database_url`; `[tickets]` and
    /// `[outbox]` empty.
    pub fn new(
        stack: &MailStack,
        dir: &Path,
        (web_port, metrics_port): (u16, u16),
        database_url: &str,
    ) -> TestConfig {
        let mailbox = |name: &str, username: &str, default_area: Option<&str>| Mailbox {
            name: name.to_owned(),
            username: username.to_owned(),
            default_area: default_area.map(str::to_owned),
            idle: None,
            processed_folder: None,
            pec: false,
        };
        let area = |slug: &str, name: &str, addresses: &[String], staff: &str, days: u32| Area {
            slug: slug.to_owned(),
            name: name.to_owned(),
            addresses: addresses.to_vec(),
            staff: vec![staff.to_owned()],
            response_days: days,
            head: None,
            escalate_after_days: None,
            admin: false,
        };
        TestConfig {
            web_port,
            metrics_port,
            base_url: format!("http://127.0.0.1:{web_port}"),
            trust_forwarded_for: false,
            metrics_token: None,
            header_timeout_seconds: None,
            body_timeout_seconds: None,
            database_url: database_url.to_owned(),
            storage_dir: dir.join("attachments"),
            authserv_id: None,
            smtp_port: stack.smtp_port,
            imap_port: stack.imap_port,
            imap_password: stack.password.clone(),
            tickets: String::new(),
            outbox: String::new(),
            mailboxes: vec![
                mailbox("lavori-pubblici", LAVORI, Some("lavori-pubblici")),
                mailbox("ambiente", AMBIENTE, None),
            ],
            areas: vec![
                area(
                    "lavori-pubblici",
                    "Lavori pubblici",
                    &[
                        format!("{LAVORI:?}"),
                        r#"{ address = "reclami@comune.test", kind = "reclamo" }"#.to_owned(),
                    ],
                    STAFF_LAVORI,
                    30,
                ),
                area(
                    "ambiente",
                    "Ambiente",
                    &[format!("{AMBIENTE:?}")],
                    STAFF_AMBIENTE,
                    20,
                ),
            ],
            pec_smtp_port: None,
            digest: false,
            extra: String::new(),
        }
    }

    /// The mailbox called `name`; panics when there is none.
    pub fn mailbox(&mut self, name: &str) -> &mut Mailbox {
        self.mailboxes
            .iter_mut()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no mailbox {name:?} in the test configuration"))
    }

    /// The area called `slug`; panics when there is none.
    pub fn area(&mut self, slug: &str) -> &mut Area {
        self.areas
            .iter_mut()
            .find(|a| a.slug == slug)
            .unwrap_or_else(|| panic!("no area {slug:?} in the test configuration"))
    }

    /// IDLE off on every mailbox: each is polled every second.
    pub fn polling(&mut self) -> &mut TestConfig {
        for m in &mut self.mailboxes {
            m.idle = Some(false);
        }
        self
    }

    /// The configuration file. Strings are written with Rust's `{:?}`, which quotes and
    /// escapes them as a TOML basic string does.
    pub fn to_toml(&self) -> String {
        let mut server = String::new();
        if self.trust_forwarded_for {
            server.push_str("trust_forwarded_for = true\n");
        }
        if let Some(token) = &self.metrics_token {
            server.push_str(&format!("metrics_token = {token:?}\n"));
        }
        if let Some(seconds) = self.header_timeout_seconds {
            server.push_str(&format!("header_timeout_seconds = {seconds}\n"));
        }
        if let Some(seconds) = self.body_timeout_seconds {
            server.push_str(&format!("body_timeout_seconds = {seconds}\n"));
        }
        let security = match &self.authserv_id {
            Some(id) => format!("authserv_id = {id:?}\n"),
            None => String::new(),
        };
        let mut text = format!(
            r#"
[server]
listen = "127.0.0.1:{web_port}"
base_url = {base_url:?}
metrics_listen = "127.0.0.1:{metrics_port}"
{server}
[database]
url = {database_url:?}

[storage]
dir = {storage:?}

[security]
secret = "{SECRET}"
{security}
[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"
timeout_seconds = 10

[tickets]
{tickets}

[outbox]
{outbox}

[digest]
enabled = {digest}
"#,
            web_port = self.web_port,
            base_url = self.base_url,
            metrics_port = self.metrics_port,
            database_url = self.database_url,
            storage = self.storage_dir.display().to_string(),
            smtp = self.smtp_port,
            tickets = self.tickets,
            outbox = self.outbox,
            digest = self.digest,
        );
        for m in &self.mailboxes {
            text.push_str(&format!(
                "\n[[mailbox]]\nname = {:?}\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
                 username = {:?}\npassword = {:?}\npoll_seconds = 1\n",
                m.name, self.imap_port, m.username, self.imap_password
            ));
            if let Some(idle) = m.idle {
                text.push_str(&format!("idle = {idle}\n"));
            }
            if let Some(folder) = &m.processed_folder {
                text.push_str(&format!("processed_folder = {folder:?}\n"));
            }
            if m.pec {
                text.push_str("pec = true\n");
            }
            if let Some(area) = &m.default_area {
                text.push_str(&format!("default_area = {area:?}\n"));
            }
        }
        for a in &self.areas {
            let staff: Vec<String> = a.staff.iter().map(|s| format!("{s:?}")).collect();
            text.push_str(&format!(
                "\n[[area]]\nslug = {:?}\nname = {:?}\naddresses = [{}]\nstaff = [{}]\n\
                 response_days = {}\n",
                a.slug,
                a.name,
                a.addresses.join(", "),
                staff.join(", "),
                a.response_days
            ));
            if let Some(head) = &a.head {
                text.push_str(&format!("head = {head:?}\n"));
            }
            if let Some(days) = a.escalate_after_days {
                text.push_str(&format!("escalate_after_days = {days}\n"));
            }
            if a.admin {
                text.push_str("admin = true\n");
            }
        }
        if let Some(port) = self.pec_smtp_port {
            text.push_str(&format!(
                "\n[pec_smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
                 timeout_seconds = 10\n"
            ));
        }
        text.push_str(&self.extra);
        text
    }
}
