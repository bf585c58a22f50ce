//! The operator's one TOML file: its shape, its defaults, and the checks that name a bad key.
//!
//! Loading goes through figment so that every key can be overridden from the environment as
//! `TICKETGATE__SECTION__KEY`; [`check`] reads the merged tree so that every mistake of a file
//! (syntax, types, unknown keys) is named at once, with its key path and line. Semantic checks
//! (unknown area, duplicate address, short secret…) live in [`Config::problems`], which
//! `ticketgate check-config` prints and every other command refuses to start on.

mod check;

pub use check::Checked;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{EmailAddress, TicketKind};

/// Shortest accepted HMAC key: 256 bits, the output size of the HMAC-SHA256 it keys.
pub const MIN_SECRET_BYTES: usize = 32;

/// The sample password of `config/ticketgate.example.toml` (a warning where it is left).
const EXAMPLE_PASSWORD: &str = "secret";

/// Polling without IDLE more rarely than this is worth a warning: mail waits that long.
const LONG_POLL_SECONDS: u64 = 60;

/// The example's `security.secret` starts `CHANGE-ME`: a copied file nobody finished.
fn is_example_secret(secret: &str) -> bool {
    let s = secret.trim().to_ascii_lowercase();
    s.starts_with("change-me") || s.starts_with("changeme")
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub security: SecurityConfig,
    pub smtp: SmtpConfig,
    /// The PEC provider's SMTP account: answers to tickets that came by PEC leave through it,
    /// so that they are certified too. Required when a mailbox has `pec = true`.
    pub pec_smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub pec: PecConfig,
    #[serde(default)]
    pub tickets: TicketsConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub notifications: NotificationsConfig,
    #[serde(default)]
    pub digest: DigestConfig,
    #[serde(default, rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
    #[serde(default, rename = "area")]
    pub areas: Vec<AreaConfig>,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub calendar: CalendarConfig,
    #[serde(default)]
    pub web: WebConfig,
}

/// The public pages beyond the citizens' own (issue 14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// `/statistiche`: the figures of the last 12 months for everyone (default true); false
    /// answers 404 and takes the link off the front page.
    #[serde(default = "default_true")]
    pub public_stats: bool,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig { public_stats: true }
    }
}

/// The comune's own closures, on top of weekends and national holidays (issue 14, see
/// `domain::calendar`): they do not count as working days for due dates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// `MM-DD` every year (the patron saint) or `YYYY-MM-DD` once (a local closure).
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// What `/healthz` counts as unhealthy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// A mailbox that has not managed to sync for this long turns `/healthz` into a 503
    /// (shorter failures — a server restart, a network blip — are retried quietly).
    #[serde(default = "default_mailbox_failing_seconds")]
    pub mailbox_failing_seconds: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            mailbox_failing_seconds: default_mailbox_failing_seconds(),
        }
    }
}

fn default_mailbox_failing_seconds() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the web server listens.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Public address of the web page, used in the mails we send.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The name at the top of every citizen page, e.g. "Comune di Esempio — Segnalazioni".
    #[serde(default = "default_site_name")]
    pub site_name: String,
    /// Behind a reverse proxy or load balancer: take the client's address from the last
    /// entry of `X-Forwarded-For` (the one the proxy added) for the per-address sign-in
    /// limit. Only with a proxy that sets the header, or clients could choose their address.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Where `/metrics` is served, apart from the citizens' port: an address, or `off`.
    /// Default loopback only: the figures are for the operator, not for the Internet.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// A bearer token `/metrics` then asks for (`Authorization: Bearer …`), on
    /// `metrics_listen` and — only when set — also on the citizens' port.
    pub metrics_token: Option<SecretString>,
    /// Web connections served at once; more wait in the kernel's queue. Lowered at start so
    /// that file descriptors stay free for the mail side, the database and attachments.
    #[serde(default = "default_max_connections_web")]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, and that an idle keep-alive
    /// connection is kept waiting for the next request.
    #[serde(default = "default_header_timeout_seconds")]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body, from the end of its headers.
    #[serde(default = "default_body_timeout_seconds")]
    pub body_timeout_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            base_url: default_base_url(),
            site_name: default_site_name(),
            trust_forwarded_for: false,
            metrics_listen: default_metrics_listen(),
            metrics_token: None,
            max_connections: default_max_connections_web(),
            header_timeout_seconds: default_header_timeout_seconds(),
            body_timeout_seconds: default_body_timeout_seconds(),
        }
    }
}

impl ServerConfig {
    /// The address of the separate metrics listener, `None` when it is `off` (or invalid:
    /// [`Config::problems`] names that).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listen.trim().parse().ok()
    }
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9898".to_owned()
}
fn default_max_connections_web() -> usize {
    512
}
fn default_header_timeout_seconds() -> u64 {
    10
}
fn default_body_timeout_seconds() -> u64 {
    120
}
/// Shortest accepted `server.metrics_token`.
pub const MIN_METRICS_TOKEN_BYTES: usize = 16;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_site_name() -> String {
    "Segnalazioni al Comune".to_owned()
}
fn default_base_url() -> String {
    "http://127.0.0.1:8080".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    pub url: String,
    /// Connections kept in the pool.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_max_connections() -> u32 {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for content-addressed attachments.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// HMAC key that signs our Message-IDs; at least [`MIN_SECRET_BYTES`] bytes.
    #[serde(default = "empty_secret")]
    pub secret: SecretString,
    /// The authserv-id the comune's own MTA writes in `Authentication-Results`. When set, a
    /// staff reply whose DKIM, SPF or DMARC result from that server is `fail` is not
    /// trusted as the office's answer (a second proof besides our signed Message-IDs).
    pub authserv_id: Option<String>,
    /// Days a signed link to the staff ticket page stays valid after the mail that carries it
    /// was written (1 to 366).
    #[serde(default = "default_staff_link_days")]
    pub staff_link_days: u32,
}

fn default_staff_link_days() -> u32 {
    30
}

impl SecurityConfig {
    /// How long a staff page link stays valid, in milliseconds.
    pub fn staff_link_millis(&self) -> i64 {
        i64::from(self.staff_link_days) * 24 * 3_600_000
    }
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

/// Transport security for IMAP and SMTP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain TCP: only for loopback or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS.
    Starttls,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Allows `tls = "none"` to a host that is not loopback (a trusted private network).
    /// Without it check-config refuses that: the password and every citizen's mail would
    /// cross the network in clear.
    #[serde(default)]
    pub allow_plaintext: bool,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Seconds to wait for the SMTP server on connect and on each command.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
}

/// How PEC provider envelopes are checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PecConfig {
    /// Verify the provider's S/MIME signature on every envelope and receipt against
    /// `trust_store`. The result is recorded on the message; mail is never dropped for it.
    #[serde(default)]
    pub verify_signatures: bool,
    /// PEM file with the certificates of the trusted provider CAs (e.g. the AgID list).
    pub trust_store: Option<PathBuf>,
}

fn default_smtp_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Word inside the subject tag: `[Ticket #2026-000123]`.
    #[serde(default = "default_tag_prefix")]
    pub tag_prefix: String,
    /// Larger messages are quarantined (their headers kept, the message left on the server)
    /// and the sender is told the limit.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Automatic answers (acknowledgments and "too large" notices, counted together) one
    /// address can receive in an hour; more are suppressed (the ticket is still made), which
    /// stops mail loops and floods from turning us into a spam source.
    #[serde(default = "default_acks_per_hour")]
    pub acks_per_sender_per_hour: u32,
    /// Attachments extracted from one message (written to storage.dir, listed on the ticket);
    /// the rest stay in the raw message and are counted as not extracted. Bounds the work one
    /// mail can cause (20,000 tiny attachments took minutes to write, one file at a time).
    #[serde(default = "default_max_attachments")]
    pub max_attachments: u32,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            tag_prefix: default_tag_prefix(),
            max_message_bytes: default_max_message_bytes(),
            acks_per_sender_per_hour: default_acks_per_hour(),
            max_attachments: default_max_attachments(),
        }
    }
}

fn default_tag_prefix() -> String {
    "Ticket".to_owned()
}
fn default_max_message_bytes() -> u64 {
    25 * 1024 * 1024
}
fn default_max_attachments() -> u32 {
    100
}
/// Largest `tickets.max_attachments` accepted.
const MAX_ATTACHMENTS_LIMIT: u32 = 10_000;
fn default_acks_per_hour() -> u32 {
    10
}

/// What the staff notifications carry (issue 13).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Total decoded size of the citizen's attachments one notification carries; the files
    /// that do not fit are listed with their size and a link to the staff ticket page. Most
    /// office mail servers refuse mail over 20–25 MB, and base64 makes a file a third
    /// larger: 15 MiB of files is a mail of about 20.5 MB. `0` attaches nothing.
    #[serde(default = "default_max_attachment_bytes")]
    pub max_attachment_bytes: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            max_attachment_bytes: default_max_attachment_bytes(),
        }
    }
}

fn default_max_attachment_bytes() -> u64 {
    15 * 1024 * 1024
}
/// Each office's daily digest of its queue (issue 14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// Whether `serve` mails the digest at all (`ticketgate digest` still prints it).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Italian time ("HH:MM", Europe/Rome) from which the day's digest is sent.
    #[serde(default = "default_digest_time")]
    pub time: String,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            enabled: true,
            time: default_digest_time(),
        }
    }
}

impl DigestConfig {
    /// `time` as (hour, minute); `None` when it is not a valid "HH:MM" (check-config says so).
    pub fn hour_minute(&self) -> Option<(u8, u8)> {
        crate::domain::rome::parse_hh_mm(&self.time)
    }
}

fn default_digest_time() -> String {
    "08:30".to_owned()
}

/// Above this `notifications.max_attachment_bytes` is refused: no mail server takes 1 GiB.
const MAX_ATTACHMENT_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;
/// Above this `notifications.max_attachment_bytes` is warned about: the base64 mail would
/// pass 25 MB, which most office servers refuse.
const ATTACHMENT_BYTES_WARNING: u64 = 18 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// First retry delay after a temporary SMTP failure; it doubles on every attempt.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_seconds: u64,
    /// Cap of the retry delay.
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    /// After this many temporary failures the message is marked failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// A worker owns the rows it claimed this long, renewed every third of it while it
    /// sends them (a heartbeat). With several instances, the rows of an instance that died
    /// are sent by another one about this long after (on SQLite, with one instance, leases
    /// are dropped at start). A send never outlives its lease: when renewals fail it is
    /// abandoned first, so the lease need not cover a slow SMTP send.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            retry_initial_seconds: default_retry_initial(),
            retry_max_seconds: default_retry_max(),
            max_attempts: default_max_attempts(),
            lease_seconds: default_lease_seconds(),
        }
    }
}

fn default_retry_initial() -> u64 {
    5
}
fn default_retry_max() -> u64 {
    900
}
fn default_max_attempts() -> u32 {
    100
}
fn default_lease_seconds() -> u64 {
    10
}
/// Shortest `outbox.lease_seconds`: renewed every third, a renewal then has a second.
const MIN_LEASE_SECONDS: u64 = 3;
/// Longest `outbox.lease_seconds`: a dead instance's mail waits this long for another one.
const MAX_LEASE_SECONDS: u64 = 3600;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Operator's name for the mailbox; also the key of its checkpoint.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Allows `tls = "none"` to a host that is not loopback: see [`SmtpConfig::allow_plaintext`].
    #[serde(default)]
    pub allow_plaintext: bool,
    pub username: String,
    pub password: SecretString,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Handled messages are moved here (after being flagged `\Seen`).
    pub processed_folder: Option<String>,
    /// Use IMAP IDLE when the server offers it.
    #[serde(default = "default_true")]
    pub idle: bool,
    /// Polling interval when IDLE is off or not offered.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
    /// Area for mail whose recipients match no area address.
    pub default_area: Option<String>,
    /// A PEC box: what arrives is read as provider envelopes and receipts (RFC 6109), never
    /// as plain mail.
    #[serde(default)]
    pub pec: bool,
}

fn default_folder() -> String {
    "INBOX".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_poll_seconds() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaConfig {
    pub slug: String,
    pub name: String,
    pub addresses: Vec<AreaAddress>,
    #[serde(default)]
    pub staff: Vec<String>,
    /// Working days within which the office answers; told to the citizen.
    #[serde(default = "default_response_days")]
    pub response_days: u32,
    /// What the office handles, for the web page and the acknowledgment.
    #[serde(default)]
    pub description: String,
    /// Staff of an admin area may answer and command on every ticket.
    #[serde(default)]
    pub admin: bool,
    /// The head of office's address: told, with the admin areas' staff, of a ticket still
    /// unanswered `escalate_after_days` after its reminder (issue 14).
    #[serde(default)]
    pub head: Option<String>,
    /// Days after the reminder of an overdue ticket that it is escalated; 0 = never.
    #[serde(default = "default_escalate_after_days")]
    pub escalate_after_days: u32,
}

fn default_response_days() -> u32 {
    30
}

fn default_escalate_after_days() -> u32 {
    7
}

/// The most `escalate_after_days` may be: a year.
pub const MAX_ESCALATE_AFTER_DAYS: u32 = 366;

/// An area address, optionally with the kind its tickets get (e.g. `reclami@` → `reclamo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AreaAddress {
    Plain(String),
    WithKind { address: String, kind: String },
}

impl AreaAddress {
    pub fn address(&self) -> &str {
        match self {
            AreaAddress::Plain(a) => a,
            AreaAddress::WithKind { address, .. } => address,
        }
    }
    pub fn kind(&self) -> Option<&str> {
        match self {
            AreaAddress::Plain(_) => None,
            AreaAddress::WithKind { kind, .. } => Some(kind),
        }
    }
}

/// Why the configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} not found")]
    NotFound(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

/// How bad a [`Problem`] is: errors stop the service, warnings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding of [`Config::problems`] or of reading the file: the key it is about (a path
/// such as `mailbox[1].port`), its line in the file when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub key: String,
    pub message: String,
    /// 1-based line in the file (`None` for a key that is not in the file, or set by the
    /// environment).
    pub line: Option<usize>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(line) => write!(f, "{label}: {} (line {line}): {}", self.key, self.message),
            None => write!(f, "{label}: {}: {}", self.key, self.message),
        }
    }
}

/// A resolved area address: where mail to it goes and with which default kind.
#[derive(Debug, Clone)]
pub struct AddressRoute {
    pub area: String,
    pub kind: Option<TicketKind>,
}

impl Config {
    /// Reads the file at `path`, then `TICKETGATE__SECTION__KEY` environment overrides.
    /// A file that cannot be read into a configuration is an error naming every mistake,
    /// semantic ones included; a readable file with only semantic errors is returned (see
    /// [`Config::validate`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let checked = Self::check_file(path)?;
        match checked.config {
            Some(config) => Ok(config),
            None => checked.into_result(),
        }
    }

    /// Reads the file at `path` and names every problem: syntax, types, unknown and missing
    /// keys, and the semantic checks, each with its key path and line. Errs only when the
    /// file cannot be read.
    pub fn check_file(path: &Path) -> Result<Checked, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ConfigError::NotFound(path.to_owned()),
            _ => ConfigError::Invalid(format!("cannot read {}: {e}", path.display())),
        })?;
        Ok(Self::check_toml_str(&text))
    }

    /// [`Config::check_file`] on a TOML text; environment overrides still apply.
    pub fn check_toml_str(text: &str) -> Checked {
        check::check(
            text,
            Figment::from(Toml::string(text)).merge(env_provider()),
        )
    }

    /// Parses a TOML text (tests and tools); environment overrides still apply. Like
    /// [`Config::load`], only a text that cannot be read into a configuration is an error.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let checked = Self::check_toml_str(text);
        match checked.config {
            Some(config) => Ok(config),
            None => checked.into_result(),
        }
    }

    /// Every semantic problem found, errors first. Empty means the file is good.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut err = |key: String, message: String| {
            out.push(Problem {
                severity: Severity::Error,
                key,
                message,
                line: None,
            })
        };

        let secret_len = self.security.secret.expose_secret().len();
        if secret_len == 0 {
            err(
                "security.secret".into(),
                format!("missing: set a random key of at least {MIN_SECRET_BYTES} bytes"),
            );
        } else if secret_len < MIN_SECRET_BYTES {
            err(
                "security.secret".into(),
                format!("too short: {secret_len} bytes, at least {MIN_SECRET_BYTES} needed"),
            );
        } else if is_example_secret(self.security.secret.expose_secret()) {
            // Everyone who read the example knows it: our Message-IDs could be forged.
            err(
                "security.secret".into(),
                "still the example's placeholder: generate one with \
                 `head -c 32 /dev/urandom | base64`"
                    .into(),
            );
        }
        if !(self.server.base_url.starts_with("http://")
            || self.server.base_url.starts_with("https://"))
        {
            err(
                "server.base_url".into(),
                format!("{:?} is not an http(s) URL", self.server.base_url),
            );
        }
        let metrics_listen = self.server.metrics_listen.trim();
        if metrics_listen != "off" && self.server.metrics_addr().is_none() {
            err(
                "server.metrics_listen".into(),
                format!("{metrics_listen:?} is neither an address:port nor \"off\""),
            );
        }
        if let Some(token) = &self.server.metrics_token {
            let token = token.expose_secret();
            if token.len() < MIN_METRICS_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                err(
                    "server.metrics_token".into(),
                    format!(
                        "use at least {MIN_METRICS_TOKEN_BYTES} visible ASCII characters, no spaces"
                    ),
                );
            }
        }
        if self.server.max_connections == 0 {
            err("server.max_connections".into(), "must be at least 1".into());
        }
        let link_days = self.security.staff_link_days;
        if link_days == 0 || link_days > 366 {
            err(
                "security.staff_link_days".into(),
                format!("{link_days}: use 1 to 366 days"),
            );
        }
        for (key, value) in [
            (
                "server.header_timeout_seconds",
                self.server.header_timeout_seconds,
            ),
            (
                "server.body_timeout_seconds",
                self.server.body_timeout_seconds,
            ),
        ] {
            if value == 0 || value > 3600 {
                err(key.into(), format!("{value}: use 1 to 3600 seconds"));
            }
        }
        let failing = self.health.mailbox_failing_seconds;
        if failing == 0 || failing > 7 * 24 * 3600 {
            err(
                "health.mailbox_failing_seconds".into(),
                format!("{failing}: use 1 to 604800 seconds (a week)"),
            );
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            err(
                "database.url".into(),
                "must start with sqlite:// or postgres://".into(),
            );
        }
        let prefix = &self.tickets.tag_prefix;
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            err(
                "tickets.tag_prefix".into(),
                format!("{prefix:?}: use letters, digits, '-' or '_'"),
            );
        }
        // The lease is renewed while the rows are sent and a send is abandoned before the
        // lease could run out, so it no longer has to outlast `smtp.timeout_seconds`; it
        // only has to leave each renewal a moment, and a long one just slows failover.
        if !(MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS).contains(&self.outbox.lease_seconds) {
            err(
                "outbox.lease_seconds".into(),
                format!(
                    "{} is not between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}",
                    self.outbox.lease_seconds
                ),
            );
        }
        if self.tickets.max_message_bytes < 1024 {
            err(
                "tickets.max_message_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.digest.hour_minute().is_none() {
            err(
                "digest.time".into(),
                format!(
                    "{:?} is not an Italian time \"HH:MM\" (e.g. \"08:30\")",
                    self.digest.time
                ),
            );
        }
        if self.notifications.max_attachment_bytes > MAX_ATTACHMENT_BYTES_LIMIT {
            err(
                "notifications.max_attachment_bytes".into(),
                format!(
                    "{} is more than {MAX_ATTACHMENT_BYTES_LIMIT} (1 GiB); most office mail \
                     servers refuse mail over 20-25 MB (default 15728640, 0 attaches nothing)",
                    self.notifications.max_attachment_bytes
                ),
            );
        }
        if !(1..=MAX_ATTACHMENTS_LIMIT).contains(&self.tickets.max_attachments) {
            err(
                "tickets.max_attachments".into(),
                format!(
                    "{} is not between 1 and {MAX_ATTACHMENTS_LIMIT}",
                    self.tickets.max_attachments
                ),
            );
        }

        let mut slugs = HashSet::new();
        let mut addresses: HashMap<String, String> = HashMap::new();
        for (i, area) in self.areas.iter().enumerate() {
            let key = format!("area[{i}]");
            if !valid_slug(&area.slug) {
                err(
                    format!("{key}.slug"),
                    format!(
                        "{:?}: use lowercase letters, digits and '-' (e.g. lavori-pubblici)",
                        area.slug
                    ),
                );
            }
            if !slugs.insert(area.slug.clone()) {
                err(
                    format!("{key}.slug"),
                    format!("duplicate area {:?}", area.slug),
                );
            }
            if area.addresses.is_empty() {
                err(
                    format!("{key}.addresses"),
                    format!("area {:?} has no address", area.slug),
                );
            }
            for (j, a) in area.addresses.iter().enumerate() {
                let akey = format!("{key}.addresses[{j}]");
                match EmailAddress::parse(a.address()) {
                    Err(e) => err(akey.clone(), format!("{:?}: {e}", a.address())),
                    Ok(addr) => {
                        if let Some(other) =
                            addresses.insert(addr.as_str().to_owned(), area.slug.clone())
                        {
                            err(
                                akey.clone(),
                                format!("duplicate address {addr}: already used by area {other:?}"),
                            );
                        }
                    }
                }
                if let Some(kind) = a.kind() {
                    if TicketKind::parse(kind).is_none() {
                        err(
                            format!("{akey}.kind"),
                            format!("unknown kind {kind:?}: segnalazione, suggerimento or reclamo"),
                        );
                    }
                }
            }
            for (j, s) in area.staff.iter().enumerate() {
                if let Err(e) = EmailAddress::parse(s) {
                    err(format!("{key}.staff[{j}]"), format!("{s:?}: {e}"));
                }
            }
            if let Some(head) = &area.head {
                if let Err(e) = EmailAddress::parse(head) {
                    err(format!("{key}.head"), format!("{head:?}: {e}"));
                }
            }
            if area.escalate_after_days > MAX_ESCALATE_AFTER_DAYS {
                err(
                    format!("{key}.escalate_after_days"),
                    format!(
                        "{} is more than {MAX_ESCALATE_AFTER_DAYS} days (0 turns escalation off)",
                        area.escalate_after_days
                    ),
                );
            }
        }

        let mut names = HashSet::new();
        for (i, mb) in self.mailboxes.iter().enumerate() {
            let key = format!("mailbox[{i}]");
            if mb.name.trim().is_empty() {
                err(format!("{key}.name"), "must not be empty".into());
            }
            if !names.insert(mb.name.clone()) {
                err(
                    format!("{key}.name"),
                    format!("duplicate mailbox name {:?}", mb.name),
                );
            }
            if let Some(area) = &mb.default_area {
                if !self.areas.iter().any(|a| &a.slug == area) {
                    err(
                        format!("{key}.default_area"),
                        format!("unknown area {area:?} (no [[area]] with that slug)"),
                    );
                }
            }
            if mb.name == crate::domain::WEB_MAILBOX {
                err(
                    format!("{key}.name"),
                    "\"web\" is reserved for reports made on the web page".into(),
                );
            }
            if mb.poll_seconds == 0 {
                err(format!("{key}.poll_seconds"), "must be at least 1".into());
            }
            if mb.pec && self.pec_smtp.is_none() {
                err(
                    format!("{key}.pec"),
                    "a PEC mailbox needs [pec_smtp]: answers to PEC tickets must leave through \
                     the PEC provider"
                        .into(),
                );
            }
        }
        // Plain connections only where nobody else can listen (docs/design-notes.md,
        // "Fuzzing, PEC certification, plaintext transports").
        let plaintext = self
            .mailboxes
            .iter()
            .enumerate()
            .map(|(i, mb)| {
                (
                    format!("mailbox[{i}]"),
                    &mb.host,
                    mb.tls,
                    mb.allow_plaintext,
                )
            })
            .chain([(
                "smtp".to_owned(),
                &self.smtp.host,
                self.smtp.tls,
                self.smtp.allow_plaintext,
            )])
            .chain(
                self.pec_smtp
                    .iter()
                    .map(|p| ("pec_smtp".to_owned(), &p.host, p.tls, p.allow_plaintext)),
            );
        for (key, host, tls, allowed) in plaintext {
            if tls == TlsMode::None && !allowed && !is_loopback_host(host) {
                err(
                    format!("{key}.tls"),
                    format!(
                        "\"none\" sends the password and the mail in clear to {host:?}, which is \
                         not a loopback address: use \"starttls\" or \"tls\", or set \
                         {key}.allow_plaintext = true if the network is trusted"
                    ),
                );
            }
        }
        if self.pec.verify_signatures {
            match &self.pec.trust_store {
                None => err(
                    "pec.trust_store".into(),
                    "missing: pec.verify_signatures = true needs a PEM file of trusted CAs".into(),
                ),
                Some(path) if !path.is_file() => err(
                    "pec.trust_store".into(),
                    format!("{} is not a readable file", path.display()),
                ),
                Some(_) => {}
            }
        }
        for (i, why) in crate::domain::Holidays::parse(&self.calendar.holidays).1 {
            err(format!("calendar.holidays[{i}]"), why);
        }

        let mut warnings = Vec::new();
        let mut warn = |key: String, message: String| {
            warnings.push(Problem {
                severity: Severity::Warning,
                key,
                message,
                line: None,
            })
        };
        if self.areas.is_empty() {
            warn(
                "area".into(),
                "no [[area]] configured: every message will be quarantined".into(),
            );
        }
        let attach = self.notifications.max_attachment_bytes;
        if attach > ATTACHMENT_BYTES_WARNING && attach <= MAX_ATTACHMENT_BYTES_LIMIT {
            warn(
                "notifications.max_attachment_bytes".into(),
                format!(
                    "{attach}: encoded in base64 a notification would pass 25 MB, which most \
                     office mail servers refuse (the default is 15728640, 15 MiB)"
                ),
            );
        }
        if self.mailboxes.is_empty() {
            warn(
                "mailbox".into(),
                "no [[mailbox]] configured: mail arrives only through `ingest`".into(),
            );
        }
        for (i, area) in self.areas.iter().enumerate() {
            match area.staff.len() {
                0 => warn(
                    format!("area[{i}].staff"),
                    format!(
                        "area {:?} has no staff: nobody will be notified of its tickets",
                        area.slug
                    ),
                ),
                // Legal, but the office is one person: holidays and sick days leave its
                // tickets unseen.
                1 => warn(
                    format!("area[{i}].staff"),
                    format!(
                        "area {:?} has one staff address: nobody else sees its tickets when \
                         that person is away",
                        area.slug
                    ),
                ),
                _ => {}
            }
        }
        // The example's sample password: a copied file that was never finished.
        let passwords = self
            .mailboxes
            .iter()
            .enumerate()
            .map(|(i, mb)| (format!("mailbox[{i}].password"), Some(&mb.password)))
            .chain([("smtp.password".to_owned(), self.smtp.password.as_ref())])
            .chain(
                self.pec_smtp
                    .iter()
                    .map(|p| ("pec_smtp.password".to_owned(), p.password.as_ref())),
            );
        for (key, password) in passwords {
            if password.is_some_and(|p| p.expose_secret() == EXAMPLE_PASSWORD) {
                warn(
                    key,
                    format!("{EXAMPLE_PASSWORD:?} is the example's sample password"),
                );
            }
        }
        if self.server.base_url.starts_with("http://") && !self.server.listen.ip().is_loopback() {
            warn(
                "server.base_url".into(),
                format!(
                    "plain http while listening on {}, not loopback: passwords and session \
                     cookies cross the network in clear unless a TLS proxy is in front (then \
                     base_url is its https:// address)",
                    self.server.listen
                ),
            );
        }
        for (i, mb) in self.mailboxes.iter().enumerate() {
            if !mb.idle && mb.poll_seconds > LONG_POLL_SECONDS {
                warn(
                    format!("mailbox[{i}].poll_seconds"),
                    format!(
                        "idle = false and a poll every {} s: a new mail may wait that long for \
                         its ticket",
                        mb.poll_seconds
                    ),
                );
            }
        }
        out.extend(warnings);
        out
    }

    /// Errors only, as one message; `Ok` when the service may start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let errors: Vec<String> = self
            .problems()
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors.join("\n")))
        }
    }

    /// The local holidays of `[calendar]` (bad entries, refused by the check, left out).
    pub fn holidays(&self) -> crate::domain::Holidays {
        crate::domain::Holidays::parse(&self.calendar.holidays).0
    }

    /// The working days area `slug` answers within (the default, 30, for an area no longer
    /// configured).
    pub fn response_days(&self, slug: &str) -> u32 {
        self.area(slug)
            .map(|a| a.response_days)
            .unwrap_or_else(default_response_days)
    }

    /// The due date of a ticket of area `slug` created at `created_at` (unix millis): the one
    /// rule of `domain::calendar`, with this file's holidays and response days.
    pub fn due_date(&self, slug: &str, created_at: i64) -> time::Date {
        crate::domain::due_date(created_at, self.response_days(slug), &self.holidays())
    }

    pub fn area(&self, slug: &str) -> Option<&AreaConfig> {
        self.areas.iter().find(|a| a.slug == slug)
    }

    /// From of mail that belongs to no area (account links of the web page): the first
    /// address of the first area that is not the admin area.
    pub fn web_sender(&self) -> Option<String> {
        self.areas
            .iter()
            .find(|a| !a.admin)
            .or(self.areas.first())
            .and_then(|a| a.addresses.first())
            .map(|a| a.address().to_lowercase())
    }

    /// The area with this slug or (case-insensitive) name.
    pub fn find_area(&self, slug_or_name: &str) -> Option<&AreaConfig> {
        let wanted = slug_or_name.trim().to_lowercase();
        self.areas
            .iter()
            .find(|a| a.slug == wanted || a.name.to_lowercase() == wanted)
    }

    /// True if `address` may speak for the office of `area` (its staff, or an admin area's).
    pub fn is_staff_of(&self, address: &str, area: &str) -> bool {
        let address = address.trim().to_lowercase();
        let listed = |a: &AreaConfig| a.staff.iter().any(|s| s.trim().to_lowercase() == address);
        self.areas
            .iter()
            .any(|a| (a.slug == area || a.admin) && listed(a))
    }

    /// True if `address` is staff of any area.
    pub fn is_any_staff(&self, address: &str) -> bool {
        let address = address.trim().to_lowercase();
        self.areas
            .iter()
            .any(|a| a.staff.iter().any(|s| s.trim().to_lowercase() == address))
    }

    pub fn mailbox(&self, name: &str) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| m.name == name)
    }

    /// Lowercased area address → route. Built once at start-up.
    pub fn address_routes(&self) -> HashMap<String, AddressRoute> {
        let mut map = HashMap::new();
        for area in &self.areas {
            for a in &area.addresses {
                if let Ok(addr) = EmailAddress::parse(a.address()) {
                    map.entry(addr.as_str().to_owned())
                        .or_insert_with(|| AddressRoute {
                            area: area.slug.clone(),
                            kind: a.kind().and_then(TicketKind::parse),
                        });
                }
            }
        }
        map
    }
}

fn env_provider() -> Env {
    // `TICKETGATE__SMTP__PORT=2525` → smtp.port. The double underscore keeps keys such as
    // `max_message_bytes` intact, and `TICKETGATE_CONFIG` (single underscore) out of it.
    Env::prefixed("TICKETGATE__").split("__")
}

/// `localhost` or a loopback IP address (`127.0.0.0/8`, `::1`, also in brackets). Names are not
/// resolved: what a name resolves to can change after the check, and check-config must not
/// depend on DNS.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The area slug rule is the domain's ([`crate::domain::AreaSlug`]): the config names a bad
/// slug with its own message.
fn valid_slug(s: &str) -> bool {
    crate::domain::AreaSlug::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [database]
        url = "sqlite://x.db"
        [storage]
        dir = "data"
        [security]
        secret = "0123456789abcdef0123456789abcdef"
        [smtp]
        host = "127.0.0.1"
        port = 25
        tls = "none"
        [[mailbox]]
        name = "main"
        host = "127.0.0.1"
        port = 143
        tls = "none"
        username = "u"
        password = "p"
        default_area = "lavori-pubblici"
        [[area]]
        slug = "lavori-pubblici"
        name = "Lavori pubblici"
        addresses = ["Lavori-Pubblici@comune.test", { address = "reclami@comune.test", kind = "reclamo" }]
        staff = ["mario@comune.test", "lucia@comune.test"]
    "#;

    #[test]
    fn a_good_file_has_no_problems_and_defaults_apply() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert_eq!(cfg.problems(), vec![]);
        assert_eq!(cfg.tickets.tag_prefix, "Ticket");
        assert_eq!(cfg.tickets.acks_per_sender_per_hour, 10);
        assert_eq!(cfg.tickets.max_attachments, 100);
        assert_eq!(cfg.tickets.max_message_bytes, 25 * 1024 * 1024);
        assert!(cfg.mailboxes[0].idle);
        let routes = cfg.address_routes();
        assert_eq!(
            routes["lavori-pubblici@comune.test"].area,
            "lavori-pubblici"
        );
        assert_eq!(
            routes["reclami@comune.test"].kind,
            Some(TicketKind::Reclamo)
        );
    }

    #[test]
    fn metrics_are_on_loopback_by_default_and_bad_web_limits_are_named() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert_eq!(
            cfg.server.metrics_addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 9898)))
        );
        assert_eq!(cfg.server.max_connections, 512);
        let text = format!("[server]\nmetrics_listen = \"off\"\n{GOOD}");
        let cfg = Config::from_toml_str(&text).expect("parses");
        assert_eq!(cfg.server.metrics_addr(), None);
        assert_eq!(cfg.problems(), vec![]);

        let text = format!(
            "[server]\nmetrics_listen = \"everywhere\"\nmetrics_token = \"short\"\n\
             max_connections = 0\nheader_timeout_seconds = 0\n{GOOD}"
        );
        let cfg = Config::from_toml_str(&text).expect("parses");
        let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
        for key in [
            "server.metrics_listen",
            "server.metrics_token",
            "server.max_connections",
            "server.header_timeout_seconds",
        ] {
            assert!(keys.contains(&key.to_owned()), "{key}: {keys:?}");
        }
    }

    #[test]
    fn a_bad_head_of_office_and_a_too_long_escalation_are_named() {
        let defaults = Config::from_toml_str(GOOD).expect("parses");
        assert_eq!(defaults.areas[0].escalate_after_days, 7);
        assert_eq!(defaults.areas[0].head, None);
        let text =
            format!("{GOOD}\n        head = \"dirigente\"\n        escalate_after_days = 400\n");
        let cfg = Config::from_toml_str(&text).expect("parses");
        let problems = cfg.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["area[0].head", "area[0].escalate_after_days"]);
        let good = format!(
            "{GOOD}\n        head = \"capo@comune.test\"\n        escalate_after_days = 0\n"
        );
        let cfg = Config::from_toml_str(&good).expect("parses");
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        assert_eq!(cfg.areas[0].head.as_deref(), Some("capo@comune.test"));
    }

    #[test]
    fn the_public_figures_page_is_on_by_default_and_its_key_is_checked() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert!(cfg.web.public_stats);
        let off = Config::from_toml_str(&format!("{GOOD}\n[web]\npublic_stats = false\n"))
            .expect("parses");
        assert!(!off.web.public_stats);
        for bad in ["public_stats = \"no\"", "public_statistics = false"] {
            let checked = Config::check_toml_str(&format!("{GOOD}\n[web]\n{bad}\n"));
            let keys: Vec<&str> = checked.problems.iter().map(|p| p.key.as_str()).collect();
            assert!(
                keys.iter().any(|k| k.starts_with("web.public_stat")),
                "{bad}: {keys:?}"
            );
        }
    }

    #[test]
    fn every_bad_calendar_holiday_is_named_and_the_good_ones_count() {
        let text = format!(
            "{GOOD}\n[calendar]\nholidays = [\"12-07\", \"31-12\", \"2026-06-24\", \"domani\"]\n"
        );
        let cfg = Config::from_toml_str(&text).expect("parses");
        let problems = cfg.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["calendar.holidays[1]", "calendar.holidays[3]"]);
        assert!(
            problems[0].message.contains("\"31-12\""),
            "{}",
            problems[0].message
        );
        let holidays = cfg.holidays();
        assert!(holidays.contains(time::macros::date!(2030 - 12 - 07)));
        assert!(holidays.contains(time::macros::date!(2026 - 06 - 24)));
        let unknown = format!("{GOOD}\n[calendar]\nholiday = [\"12-07\"]\n");
        let checked = Config::check_toml_str(&unknown);
        assert!(
            checked.problems.iter().any(|p| p.key.contains("calendar")),
            "{:?}",
            checked.problems
        );
    }

    #[test]
    fn a_pec_mailbox_needs_pec_smtp_and_signature_checks_need_a_trust_store() {
        let text = GOOD.replace("default_area = \"lavori-pubblici\"", "pec = true")
            + "\n[pec]\nverify_signatures = true\n";
        let cfg = Config::from_toml_str(&text).expect("parses");
        let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
        assert!(keys.contains(&"mailbox[0].pec".to_owned()), "{keys:?}");
        assert!(keys.contains(&"pec.trust_store".to_owned()), "{keys:?}");

        let text = GOOD.replace("default_area = \"lavori-pubblici\"", "pec = true")
            + "\n[pec_smtp]\nhost = \"127.0.0.1\"\nport = 25\ntls = \"none\"\n";
        let cfg = Config::from_toml_str(&text).expect("parses");
        assert_eq!(cfg.problems(), vec![]);
        assert!(cfg.mailboxes[0].pec);
    }

    #[test]
    fn plaintext_to_a_host_that_is_not_loopback_is_refused_unless_allowed() {
        let remote = GOOD.replace("host = \"127.0.0.1\"", "host = \"mail.comune.test\"")
            + "\n[pec_smtp]\nhost = \"192.0.2.7\"\nport = 25\ntls = \"none\"\n";
        let cfg = Config::from_toml_str(&remote).expect("parses");
        let problems = cfg.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"smtp.tls"), "{problems:?}");
        assert!(keys.contains(&"mailbox[0].tls"), "{problems:?}");
        assert!(keys.contains(&"pec_smtp.tls"), "{problems:?}");
        assert!(cfg.validate().is_err());
        let message = cfg.validate().unwrap_err().to_string();
        assert!(message.contains("allow_plaintext"), "{message}");

        let allowed = remote.replace("tls = \"none\"", "tls = \"none\"\nallow_plaintext = true");
        let cfg = Config::from_toml_str(&allowed).expect("parses");
        assert_eq!(cfg.problems(), vec![]);

        let encrypted = remote.replace("tls = \"none\"", "tls = \"starttls\"");
        let cfg = Config::from_toml_str(&encrypted).expect("parses");
        assert_eq!(cfg.problems(), vec![]);
    }

    #[test]
    fn loopback_hosts_are_recognised_without_resolving_names() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost ",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "0.0.0.0",
            "10.0.0.1",
            "mail.comune.test",
            "localhost.evil.test",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_documented_example_file_fails_only_on_its_placeholder_secret() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ticketgate.example.toml");
        let text = std::fs::read_to_string(&path).expect("the example config");
        let cfg = Config::from_toml_str(&text).expect("the example parses");
        let errors: Vec<String> = cfg
            .problems()
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.key)
            .collect();
        assert_eq!(errors, ["security.secret"]);
        // With a real secret it is a working file, with warnings about its sample values.
        let finished = text.replace(
            "CHANGE-ME-to-a-random-string-of-32-bytes-or-more",
            "Zr3x9P0qLw8sT2vYb6nHc4mKd7fJg1aE",
        );
        let checked = Config::check_toml_str(&finished);
        assert!(!checked.has_errors(), "{:?}", checked.problems);
        let warned: Vec<&str> = checked.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(warned.contains(&"smtp.password"), "{warned:?}");
        assert!(warned.contains(&"mailbox[0].password"), "{warned:?}");
        assert!(warned.contains(&"area[1].staff"), "{warned:?}");
    }

    /// The line of the first line of `text` containing `needle`.
    fn line_with(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle:?} not in the text"))
    }

    #[test]
    fn a_file_with_several_mistakes_names_every_one_with_its_key_and_line() {
        let text = GOOD
            .replace("0123456789abcdef0123456789abcdef", "short")
            .replace("[smtp]", "[smtp]\nhots = \"x\"")
            .replace("username = \"u\"", "")
            .replace(
                "port = 143\n        tls = \"none\"",
                "port = 143\n        tls = \"maybe\"",
            )
            .replace("Lavori-Pubblici@comune.test", "not an address")
            + r#"
        [[mailbox]]
        name = "second"
        host = "127.0.0.1"
        port = "imap"
        tls = "none"
        username = "u"
        password = "p"
        "#;
        let checked = Config::check_toml_str(&text);
        assert!(
            checked.config.is_none(),
            "a file with errors is never usable"
        );
        let found: Vec<(&str, Option<usize>)> = checked
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        for (key, line) in [
            ("smtp.hots", Some(line_with(&text, "hots ="))),
            ("mailbox[0].tls", Some(line_with(&text, "\"maybe\""))),
            ("mailbox[0].username", Some(line_with(&text, "[[mailbox]]"))),
            ("mailbox[1].port", Some(line_with(&text, "\"imap\""))),
            ("security.secret", Some(line_with(&text, "\"short\""))),
            (
                "area[0].addresses[0]",
                Some(line_with(&text, "not an address")),
            ),
        ] {
            assert!(found.contains(&(key, line)), "{key} at {line:?}: {found:?}");
        }
        // Nothing said about the placeholders that stood in for the bad values.
        assert!(
            checked
                .problems
                .iter()
                .all(|p| !p.message.contains("placeholder")),
            "{:?}",
            checked.problems
        );
        let one_message = Config::from_toml_str(&text).unwrap_err().to_string();
        for key in ["smtp.hots", "mailbox[1].port", "security.secret"] {
            assert!(one_message.contains(key), "{one_message}");
        }
    }

    #[test]
    fn a_file_of_thousands_of_mistakes_is_checked_in_bounded_work() {
        let junk: String = (0..5000).map(|i| format!("junk{i} = {i}\n")).collect();
        let text = GOOD.replace("[smtp]", &format!("[smtp]\n{junk}"));
        let checked = Config::check_toml_str(&text);
        assert!(checked.config.is_none());
        let errors = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        // Up to the repair bound, then one line saying the rest was not checked.
        assert!((100..=201).contains(&errors), "{errors}");
        assert!(checked.problems.iter().any(|p| p.key == "file"), "said");
    }

    #[test]
    fn a_syntax_error_is_named_with_its_line_and_stops_the_other_checks() {
        let text = GOOD.replace("port = 25", "port = = 25");
        let checked = Config::check_toml_str(&text);
        assert!(checked.config.is_none());
        assert_eq!(checked.problems.len(), 1, "{:?}", checked.problems);
        assert_eq!(checked.problems[0].key, "syntax");
        assert_eq!(
            checked.problems[0].line,
            Some(line_with(&text, "port = = 25"))
        );
    }

    #[test]
    fn risky_but_legal_settings_are_warnings_and_the_placeholder_secret_an_error() {
        let text = GOOD
            .replace(", \"lucia@comune.test\"", "")
            .replace("password = \"p\"", "password = \"secret\"\nidle = false\npoll_seconds = 600")
            .replace(
                "[database]",
                "[server]\nlisten = \"0.0.0.0:8080\"\nbase_url = \"http://segnalazioni.test\"\n[database]",
            );
        let checked = Config::check_toml_str(&text);
        let warnings: Vec<&str> = checked
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.key.as_str())
            .collect();
        for key in [
            "mailbox[0].password",
            "mailbox[0].poll_seconds",
            "server.base_url",
            "area[0].staff",
        ] {
            assert!(warnings.contains(&key), "{key}: {warnings:?}");
        }
        assert!(!checked.has_errors(), "{:?}", checked.problems);

        let placeholder = GOOD.replace(
            "0123456789abcdef0123456789abcdef",
            "CHANGE-ME-to-a-random-string-of-32-bytes-or-more",
        );
        let cfg = Config::from_toml_str(&placeholder).expect("parses");
        let errors: Vec<String> = cfg
            .problems()
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.key)
            .collect();
        assert_eq!(errors, ["security.secret"]);
    }

    #[test]
    fn the_digest_is_on_at_half_past_eight_by_default_and_a_bad_time_is_named() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert!(cfg.digest.enabled);
        assert_eq!(cfg.digest.hour_minute(), Some((8, 30)));
        let errors = |text: &str| -> Vec<String> {
            Config::check_toml_str(text)
                .problems
                .into_iter()
                .filter(|p| p.severity == Severity::Error)
                .map(|p| p.key)
                .collect()
        };
        let seven = format!("{GOOD}\n[digest]\nenabled = false\ntime = \"07:45\"\n");
        assert!(errors(&seven).is_empty());
        let bad = format!("{GOOD}\n[digest]\ntime = \"8.30\"\n");
        assert_eq!(errors(&bad), ["digest.time"]);
        let unknown = format!("{GOOD}\n[digest]\nhour = \"08:30\"\n");
        assert!(errors(&unknown).iter().any(|k| k.contains("hour")));
    }

    #[test]
    fn the_notification_attachment_budget_defaults_to_15_mib_and_a_bad_one_is_named() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert_eq!(cfg.notifications.max_attachment_bytes, 15_728_640);
        let zero = format!("{GOOD}\n[notifications]\nmax_attachment_bytes = 0\n");
        let cfg = Config::from_toml_str(&zero).expect("parses");
        assert_eq!(cfg.notifications.max_attachment_bytes, 0);
        let keys = |text: &str, severity: Severity| -> Vec<String> {
            Config::check_toml_str(text)
                .problems
                .into_iter()
                .filter(|p| p.severity == severity)
                .map(|p| p.key)
                .collect()
        };
        assert!(keys(&zero, Severity::Error).is_empty());
        let huge = format!("{GOOD}\n[notifications]\nmax_attachment_bytes = 2000000000\n");
        assert_eq!(
            keys(&huge, Severity::Error),
            ["notifications.max_attachment_bytes"]
        );
        let large = format!("{GOOD}\n[notifications]\nmax_attachment_bytes = 26214400\n");
        assert!(keys(&large, Severity::Warning)
            .contains(&"notifications.max_attachment_bytes".to_owned()));
        for bad in ["-1", "\"15MB\"", "1.5"] {
            let text = format!("{GOOD}\n[notifications]\nmax_attachment_bytes = {bad}\n");
            let errors = keys(&text, Severity::Error);
            assert!(
                errors.iter().any(|k| k.contains("max_attachment_bytes")),
                "{bad}: {errors:?}"
            );
        }
        let unknown = format!("{GOOD}\n[notifications]\nmax_attachments_bytes = 1\n");
        assert!(
            keys(&unknown, Severity::Error)
                .iter()
                .any(|k| k.contains("max_attachments_bytes")),
            "{:?}",
            keys(&unknown, Severity::Error)
        );
    }

    #[test]
    fn an_attachment_cap_out_of_range_is_named() {
        for bad in ["0", "10001"] {
            let text = format!("{GOOD}\n[tickets]\nmax_attachments = {bad}\n");
            let cfg = Config::from_toml_str(&text).expect("parses");
            let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
            assert_eq!(keys, ["tickets.max_attachments"], "{bad}");
        }
    }

    #[test]
    fn a_lease_out_of_range_is_named_and_the_smtp_timeout_no_longer_bounds_it() {
        for bad in ["0", "2", "3601"] {
            let text = format!("{GOOD}\n[outbox]\nlease_seconds = {bad}\n");
            let cfg = Config::from_toml_str(&text).expect("parses");
            let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
            assert_eq!(keys, ["outbox.lease_seconds"], "{bad}");
        }
        // Renewed while sending: a lease shorter than a slow SMTP timeout is fine now.
        let text = GOOD.replace("[smtp]", "[smtp]\ntimeout_seconds = 120");
        let cfg = Config::from_toml_str(&format!("{text}\n[outbox]\nlease_seconds = 10\n"))
            .expect("parses");
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        assert_eq!(
            Config::from_toml_str(GOOD).unwrap().outbox.lease_seconds,
            10
        );
    }

    #[test]
    fn the_staff_link_validity_defaults_to_thirty_days_and_a_bad_value_is_named() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert_eq!(cfg.security.staff_link_days, 30);
        assert_eq!(cfg.security.staff_link_millis(), 30 * 24 * 3_600_000);
        for bad in ["0", "367"] {
            let text = GOOD.replace("[smtp]", &format!("staff_link_days = {bad}\n[smtp]"));
            let cfg = Config::from_toml_str(&text).expect("parses");
            let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
            assert_eq!(keys, ["security.staff_link_days"], "{bad}");
        }
        let text = GOOD.replace("[smtp]", "staff_link_days = \"a month\"\n[smtp]");
        let checked = Config::check_toml_str(&text);
        let keys: Vec<&str> = checked.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"security.staff_link_days"), "{keys:?}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let text = GOOD.replace("[smtp]", "[smtp]\nhots = \"x\"");
        let e = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(e.contains("hots"), "{e}");
    }

    #[test]
    fn short_secret_unknown_default_area_and_duplicate_address_are_named() {
        let text = GOOD
            .replace("0123456789abcdef0123456789abcdef", "short")
            .replace(
                "default_area = \"lavori-pubblici\"",
                "default_area = \"ambiente\"",
            )
            + r#"
        [[area]]
        slug = "verde"
        name = "Verde"
        addresses = ["lavori-pubblici@comune.test"]
        "#;
        let cfg = Config::from_toml_str(&text).expect("parses");
        let problems = cfg.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"security.secret"), "{problems:?}");
        assert!(keys.contains(&"mailbox[0].default_area"), "{problems:?}");
        assert!(keys.contains(&"area[1].addresses[0]"), "{problems:?}");
        assert!(keys.contains(&"area[1].staff"), "{problems:?}");
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn the_mailbox_failing_threshold_defaults_to_five_minutes_and_zero_is_refused() {
        let cfg = Config::from_toml_str(GOOD).expect("parses");
        assert_eq!(cfg.health.mailbox_failing_seconds, 300);
        let text = format!("{GOOD}\n[health]\nmailbox_failing_seconds = 0\n");
        let cfg = Config::from_toml_str(&text).expect("parses");
        let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec!["health.mailbox_failing_seconds".to_owned()]);
    }
}
