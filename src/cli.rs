//! The `ticketgate` command line: argument shapes (clap) and the operator commands that are
//! not `serve` — migrate, check-config, ingest, ticket list/show, quarantine list/retry,
//! remind.
//!
//! JSON shapes printed here are a contract with operators' scripts (docs/design-notes.md, "The
//! CLI's JSON is a contract"): field names do not change; new fields may be added. They are the types of [`json`].

pub mod csv;
pub mod json;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::app;
use crate::config::{Config, ConfigError, Severity};
use crate::domain::calendar::iso_date;
use crate::domain::{
    calendar, is_overdue, now_millis, parse_day, rfc3339, rome_day_start, stats, AreaSlug, Channel,
    EventKind, TicketKind, TicketRef, TicketStatus,
};
use crate::inbound::ingest::ingest_stdin;
use crate::intake::{Outcome, Pipeline};
use crate::mail::summary;
use crate::store::{Store, StoreError, TicketFilter, TicketTimeline, TicketView};

/// sysexits.h EX_TEMPFAIL: the MTA keeps the message and retries.
pub const EX_TEMPFAIL: u8 = 75;
/// sysexits.h EX_CONFIG: the configuration (or what it points at) must be fixed first. The
/// documented systemd unit has `RestartPreventExitStatus=78`, so a bad file is not restarted
/// every two seconds.
pub const EX_CONFIG: u8 = 78;

/// Something the operator must set up before a command can run: a database that does not
/// exist, a mailbox name that is not configured. Exit code [`EX_CONFIG`], like a bad file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The exit code for an error that ended a command: [`EX_CONFIG`] for a configuration or
/// setup problem (retrying cannot help), 1 for anything else.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain()
        .any(|c| c.is::<ConfigError>() || c.is::<SetupError>())
    {
        EX_CONFIG
    } else {
        1
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ticketgate",
    version,
    about = "Email-driven ticket gateway for municipalities"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "TICKETGATE_CONFIG",
        default_value = "config/ticketgate.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pollers, the outbox worker and the web server until SIGINT/SIGTERM.
    Serve,
    /// Create or upgrade the database (a missing SQLite file is created).
    Migrate,
    /// Check the configuration; name every bad key.
    CheckConfig {
        /// Also log in to every IMAP mailbox and to the SMTP server.
        #[arg(long)]
        connect: bool,
    },
    /// Process one raw message from stdin (MTA pipe delivery). Exit 75 if it was not stored.
    Ingest {
        /// The `[[mailbox]]` name it arrived for (routing default, records).
        #[arg(long)]
        mailbox: String,
    },
    /// Tickets.
    Ticket {
        #[command(subcommand)]
        command: TicketCommand,
    },
    /// Figures per area and in all for the tickets received in a period: received, taken,
    /// answered, resolved, open and overdue now, times to first answer and to resolution.
    Stats {
        /// First day (YYYY-MM-DD, Italian time); default: the first ticket.
        #[arg(long)]
        from: Option<String>,
        /// Last day, included (YYYY-MM-DD); default: today.
        #[arg(long)]
        to: Option<String>,
        /// Only this area (slug).
        #[arg(long)]
        area: Option<String>,
        #[arg(long, value_enum, default_value_t = TableFormat::Text)]
        format: TableFormat,
    },
    /// Each office's daily digest of its queue: print it (or, with --send, send it now, still
    /// once per area and day).
    Digest {
        /// Only this area.
        #[arg(long)]
        area: Option<String>,
        /// The moment of the digest, Italian time "YYYY-MM-DD HH:MM" (default: now).
        #[arg(long)]
        as_of: Option<String>,
        /// Record the day and queue the mails (the outbox sends them).
        #[arg(long)]
        send: bool,
    },
    /// Messages kept aside with a reason.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Reminders and escalation of tickets overdue without an answer: prints what is due now
    /// (one line per mail); with --send queues it (the outbox of `serve` sends it). `serve`
    /// runs the same check every few minutes.
    Remind {
        /// The moment to check, "YYYY-MM-DD HH:MM" in Italian time (default: now).
        #[arg(long)]
        as_of: Option<String>,
        /// Queue the reminders and escalations due, each recorded on its ticket.
        #[arg(long)]
        send: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Tickets, newest first: all, or those matching every filter given.
    List {
        #[arg(long, value_enum, default_value_t = TableFormat::Text)]
        format: TableFormat,
        #[arg(long)]
        limit: Option<i64>,
        /// Only the tickets of this area (slug).
        #[arg(long)]
        area: Option<String>,
        /// Only tickets in this status: received, taken, answered, resolved.
        #[arg(long)]
        status: Option<String>,
        /// Only tickets created on or after this day (YYYY-MM-DD, Italian time).
        #[arg(long)]
        since: Option<String>,
        /// Only tickets whose subject, text or citizen address contains this text.
        #[arg(long)]
        search: Option<String>,
        /// Only tickets past their due date without an answer.
        #[arg(long)]
        overdue: bool,
    },
    /// One ticket with its events, messages and attachments.
    Show {
        /// Reference, e.g. 2026-000123.
        reference: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Quarantined messages: received, mailbox, size, From, Subject, Message-ID, reason.
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also the messages dropped from the quarantine, with who dropped them and why.
        #[arg(long)]
        all: bool,
    },
    /// The header block of one message (control characters made visible) and its reason.
    Show { id: i64 },
    /// Write the stored bytes of one message, exactly, to stdout (`> message.eml`).
    Export { id: i64 },
    /// Process a quarantined message again (e.g. after fixing the configuration).
    Retry { id: i64 },
    /// Mark a message dealt with: it leaves the list, its bytes stay stored, and who (the
    /// unix user), when and why is recorded.
    Drop {
        id: i64,
        /// Why it needs nothing more (shown by `list --all`).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The output of the commands whose result is a table (`ticket list`, `stats`): also CSV,
/// for a spreadsheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Text,
    Json,
    Csv,
}

/// Loads and validates the configuration: every error of the file (parse and semantic, with
/// lines) as one [`ConfigError`], which the commands turn into exit code 78.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::check_file(path)?.into_result()?)
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::CheckConfig { connect } => check_config(&cli.config, connect).await,
        Command::Ingest { mailbox } => Ok(ingest(&cli.config, &mailbox).await),
        Command::Serve => {
            let checked = Config::check_file(&cli.config)?;
            // Risky but legal settings: said once in the service's log, where the operator
            // of a running gateway looks.
            for p in checked
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Warning)
            {
                tracing::warn!(key = %p.key, line = ?p.line, "configuration: {}", p.message);
            }
            let cfg = Arc::new(checked.into_result()?);
            app::serve(cfg, tokio_util::sync::CancellationToken::new()).await?;
            Ok(0)
        }
        Command::Migrate => {
            let cfg = load_config(&cli.config)?;
            app::open_store(&cfg).await?;
            println!("database ready: {}", app::redact_url(&cfg.database.url));
            Ok(0)
        }
        Command::Ticket { command } => {
            let cfg = load_config(&cli.config)?;
            let store = open_existing_store(&cfg).await?;
            match command {
                TicketCommand::List {
                    format,
                    limit,
                    area,
                    status,
                    since,
                    search,
                    overdue,
                } => {
                    let filter = ticket_filter(&cfg, area, status, since, search)?;
                    let limit = limit.unwrap_or(i64::MAX);
                    ticket_list(&cfg, &store, &filter, overdue, format, limit).await
                }
                TicketCommand::Show { reference, format } => {
                    ticket_show(&cfg, &store, &reference, format).await
                }
            }
        }
        Command::Stats {
            from,
            to,
            area,
            format,
        } => {
            let cfg = load_config(&cli.config)?;
            let store = open_existing_store(&cfg).await?;
            stats(&cfg, &store, from, to, area, format).await
        }
        Command::Remind { as_of, send } => {
            let cfg = Arc::new(load_config(&cli.config)?);
            remind(cfg, as_of.as_deref(), send).await
        }
        Command::Digest { area, as_of, send } => {
            let cfg = load_config(&cli.config)?;
            digest(&cfg, area.as_deref(), as_of.as_deref(), send).await
        }
        Command::Quarantine { command } => {
            let cfg = Arc::new(load_config(&cli.config)?);
            let store = open_existing_store(&cfg).await?;
            match command {
                QuarantineCommand::List { format, all } => {
                    quarantine_list(&store, format, all).await
                }
                QuarantineCommand::Show { id } => quarantine_show(&store, id).await,
                QuarantineCommand::Export { id } => quarantine_export(&store, id).await,
                QuarantineCommand::Drop { id, reason } => {
                    quarantine_drop(&store, id, &reason).await
                }
                QuarantineCommand::Retry { id } => {
                    if !store.requeue_quarantined(id).await? {
                        eprintln!("no quarantined message with id {id}");
                        return Ok(1);
                    }
                    let pipeline = Pipeline::new(
                        store,
                        cfg.clone(),
                        Arc::new(tokio::sync::Notify::new()),
                        crate::attachments::AttachmentStore::new(&cfg.storage.dir)?,
                    );
                    let outcome = pipeline.process(id).await?;
                    println!("{}", describe(&outcome));
                    Ok(0)
                }
            }
        }
    }
}

/// `ticketgate remind`: the reminders and escalations due at `as_of` (Rome time; now by
/// default), queued with `send`.
async fn remind(cfg: Arc<Config>, as_of: Option<&str>, send: bool) -> anyhow::Result<u8> {
    let now = match as_of {
        None => crate::domain::now_millis(),
        Some(text) => match crate::intake::as_of_millis(text) {
            Some(millis) => millis,
            None => {
                eprintln!("--as-of {text:?}: expected \"YYYY-MM-DD HH:MM\" (Italian time)");
                return Ok(2);
            }
        },
    };
    let store = open_existing_store(&cfg).await?;
    let pipeline = Pipeline::new(
        store,
        cfg.clone(),
        Arc::new(tokio::sync::Notify::new()),
        crate::attachments::AttachmentStore::new(&cfg.storage.dir)?,
    );
    let lines = pipeline.remind(now, send).await?;
    let verb = if send { "queued" } else { "would send" };
    for l in &lines {
        println!("{verb}: {l}");
    }
    if lines.is_empty() {
        println!("nothing due");
    }
    Ok(0)
}

/// The database of a command that reads (or changes) what is there: never created, never
/// migrated. A missing or unmigrated database is a [`SetupError`] naming the (redacted) url.
async fn open_existing_store(cfg: &Config) -> anyhow::Result<Store> {
    let url = app::redact_url(&cfg.database.url);
    match Store::open_existing(&cfg.database.url, cfg.database.max_connections).await {
        Ok(store) => Ok(store),
        Err(e @ (StoreError::Missing(_) | StoreError::NotMigrated(_))) => Err(SetupError(format!(
            "database {url}: {e}. Check database.url; `ticketgate migrate` creates or \
                 upgrades the database"
        ))
        .into()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("opening the database {url}"))),
    }
}

/// The names `ingest --mailbox` accepts: a `[[mailbox]]` name (its `default_area` and PEC
/// reading apply) or an area slug (pipe delivery for an area without an IMAP mailbox, as in
/// the README's Postfix example). Anything else would store mail under a name nothing knows.
fn ingest_names(cfg: &Config) -> Vec<&str> {
    let mut names: Vec<&str> = cfg.mailboxes.iter().map(|m| m.name.as_str()).collect();
    for a in &cfg.areas {
        if !names.contains(&a.slug.as_str()) {
            names.push(&a.slug);
        }
    }
    // Reports made on the web page are recorded under this name: mail must never pose as one.
    names.retain(|n| *n != crate::domain::WEB_MAILBOX);
    names
}

/// `ticketgate digest`: the digest of each area at `as_of` (Rome time), printed; with `send`,
/// recorded and queued (the outbox of a running `serve` sends it, or the next one started).
async fn digest(
    cfg: &Config,
    area: Option<&str>,
    as_of: Option<&str>,
    send: bool,
) -> anyhow::Result<u8> {
    use crate::digest::Outcome;
    if let Some(slug) = area {
        if cfg.area(slug).is_none() {
            return Err(SetupError(format!("no area {slug:?} in the configuration")).into());
        }
    }
    let at = match as_of {
        None => crate::domain::now_millis(),
        Some(text) => match crate::domain::rome::parse_local(text) {
            Some(local) => crate::domain::rome::to_millis(local),
            None => {
                eprintln!("--as-of {text:?}: expected Italian time \"YYYY-MM-DD HH:MM\"");
                return Ok(2);
            }
        },
    };
    let store = open_existing_store(cfg).await?;
    let ids = crate::domain::SignedIds::new(
        secrecy::ExposeSecret::expose_secret(&cfg.security.secret).as_bytes(),
    );
    let digests = crate::digest::run(&store, cfg, &ids, at, area, send).await?;
    for d in digests {
        let what = match d.outcome {
            Outcome::Shown if d.tickets == 0 => "nothing open: no digest".to_owned(),
            Outcome::Shown => format!("{} open tickets", d.tickets),
            Outcome::NotWorkingDay => "not a working day: no digest".to_owned(),
            Outcome::Empty => "nothing open: nothing sent".to_owned(),
            Outcome::Sent(n) => format!("{} open tickets: queued to {n} staff members", d.tickets),
            Outcome::AlreadySent => "already sent for this day: nothing sent".to_owned(),
        };
        println!("== {} {}: {what}", d.area, d.day);
        if !d.text.is_empty() {
            println!("{}", d.text);
        }
    }
    Ok(0)
}

async fn check_config(path: &std::path::Path, connect: bool) -> anyhow::Result<u8> {
    let checked = match Config::check_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EX_CONFIG);
        }
    };
    let problems = &checked.problems;
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    for p in problems {
        eprintln!("{p}");
    }
    let cfg = match checked.config {
        Some(cfg) if errors == 0 => cfg,
        _ => {
            eprintln!("{errors} error(s) in {}", path.display());
            return Ok(EX_CONFIG);
        }
    };
    let mut failed = 0;
    if connect {
        for mb in &cfg.mailboxes {
            match crate::inbound::imap::check_mailbox(mb).await {
                Ok(line) => println!("ok: {line}"),
                Err(e) => {
                    failed += 1;
                    println!("FAIL: mailbox {:?}: {e:#}", mb.name);
                }
            }
        }
        let accounts = std::iter::once(("smtp", &cfg.smtp))
            .chain(cfg.pec_smtp.iter().map(|p| ("pec_smtp", p)));
        for (key, smtp) in accounts {
            match crate::outbound::smtp::SmtpSender::new(smtp) {
                Ok(s) => match s.test().await {
                    Ok(()) => println!("ok: {key} {}:{}", smtp.host, smtp.port),
                    Err(e) => {
                        failed += 1;
                        println!("FAIL: {key} {}:{}: {e:#}", smtp.host, smtp.port);
                    }
                },
                Err(e) => {
                    failed += 1;
                    println!("FAIL: {key}: {e:#}");
                }
            }
        }
    }
    if connect {
        match check_database(&cfg).await {
            Ok(said) => println!(
                "ok: database {}: {said}",
                app::redact_url(&cfg.database.url)
            ),
            Err(e) => {
                failed += 1;
                println!(
                    "FAIL: database {}: {e:#}",
                    app::redact_url(&cfg.database.url)
                );
            }
        }
        match probe_dir(&cfg.storage.dir) {
            Ok(said) => println!("ok: storage.dir {}: {said}", cfg.storage.dir.display()),
            Err(e) => {
                failed += 1;
                println!("FAIL: storage.dir {}: {e}", cfg.storage.dir.display());
            }
        }
    }
    if failed > 0 {
        return Ok(1);
    }
    println!("configuration ok: {}", path.display());
    Ok(0)
}

/// `check-config --connect`: opens the database without creating or migrating it. A SQLite
/// file that is not there yet is fine where it can be created (`migrate` and `serve` create
/// it); a PostgreSQL database must exist (nobody creates it for the operator).
async fn check_database(cfg: &Config) -> anyhow::Result<String> {
    match Store::open_existing(&cfg.database.url, 1).await {
        Ok(store) => {
            store.close().await;
            Ok("opened, schema up to date".into())
        }
        Err(StoreError::NotMigrated(why)) => Ok(format!(
            "opened, not migrated yet ({why}): `ticketgate migrate` (or serve) does it"
        )),
        Err(StoreError::Missing(_)) if cfg.database.url.starts_with("sqlite:") => {
            let file = cfg
                .database
                .url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let file = std::path::Path::new(file.split('?').next().unwrap_or(file));
            let dir = file.parent().unwrap_or(std::path::Path::new("."));
            let dir = if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            };
            probe_dir(dir).map_err(anyhow::Error::msg)?;
            Ok("no file yet; its directory is writable, `ticketgate migrate` creates it".into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes, syncs and removes a small file in `dir` — or, when `dir` does not exist yet (the
/// gateway creates it at start), in its nearest existing ancestor. Says what it did.
fn probe_dir(dir: &std::path::Path) -> Result<String, String> {
    use std::io::Write;
    let existing = dir
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .unwrap_or(std::path::Path::new("."));
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    let probe = existing.join(format!(".ticketgate-check-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| {
            f.write_all(b"ticketgate check-config --connect\n")?;
            f.sync_all()
        });
    let removed = std::fs::remove_file(&probe);
    written.map_err(|e| format!("cannot write a file in {}: {e}", existing.display()))?;
    removed.map_err(|e| format!("cannot remove {}: {e}", probe.display()))?;
    if existing == dir {
        Ok("wrote and removed a file".into())
    } else {
        Ok(format!(
            "does not exist yet; wrote and removed a file in {}, where it will be created",
            existing.display()
        ))
    }
}

/// `ingest`: an unknown mailbox name is EX_CONFIG (nothing stored): a mistake in the MTA's
/// command line, not in the mail. Postfix's pipe(8) maps 78 to 5.3.5, a bounce to the
/// sender, so the first test delivery shows it. Any other failure before the raw message is
/// committed is EX_TEMPFAIL, a bad configuration file included: the MTA keeps the message
/// and retries, so an edit gone wrong while mail flows bounces nothing.
async fn ingest(path: &std::path::Path, mailbox: &str) -> u8 {
    let cfg = match load_config(path) {
        Ok(cfg) => Arc::new(cfg),
        Err(e) => {
            eprintln!("ticketgate ingest: message not stored, try again later: {e:#}");
            return EX_TEMPFAIL;
        }
    };
    let names = ingest_names(&cfg);
    if !names.contains(&mailbox) {
        eprintln!(
            "ticketgate ingest: message not stored: {mailbox:?} is neither a [[mailbox]] name \
             nor an area slug; known: {}",
            names.join(", ")
        );
        return EX_CONFIG;
    }
    let result: anyhow::Result<(i64, Outcome)> = async {
        let store = app::open_store(&cfg).await?;
        let pipeline = Pipeline::new(
            store,
            cfg.clone(),
            Arc::new(tokio::sync::Notify::new()),
            crate::attachments::AttachmentStore::new(&cfg.storage.dir)?,
        );
        ingest_stdin(&pipeline, mailbox).await
    }
    .await;
    match result {
        Ok((_, outcome)) => {
            println!("{}", describe(&outcome));
            0
        }
        Err(e) => {
            eprintln!("ticketgate ingest: message not stored, try again later: {e:#}");
            EX_TEMPFAIL
        }
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ticket {
            reference,
            acknowledged,
        } => {
            if *acknowledged {
                reference.clone()
            } else {
                format!("{reference} (no acknowledgment)")
            }
        }
        Outcome::Duplicate { of_message } => format!("duplicate of message {of_message}"),
        Outcome::Recorded { reference, kind } => format!("{reference} ({kind} recorded)"),
        Outcome::Quarantined { reason } => format!("quarantined: {reason}"),
        Outcome::AlreadyDone { state } => format!("already {state}"),
    }
}

/// The filters of `ticket list`, parsed: a value that cannot match anything (an area that is
/// not configured, a status or date that is not one) is an error naming it, not an empty list.
fn ticket_filter(
    cfg: &Config,
    area: Option<String>,
    status: Option<String>,
    since: Option<String>,
    search: Option<String>,
) -> anyhow::Result<TicketFilter> {
    let area = area.map(|a| configured_area(cfg, &a)).transpose()?;
    let status = match status {
        Some(s) => Some(s.parse::<TicketStatus>().map_err(|_| {
            anyhow::anyhow!("--status {s:?}: one of received, taken, answered, resolved")
        })?),
        None => None,
    };
    let since = since
        .map(|d| day_arg("--since", &d).map(rome_day_start))
        .transpose()?;
    Ok(TicketFilter {
        area,
        status,
        since,
        search: search.filter(|s| !s.is_empty()),
    })
}

/// A `--area` value: a configured area's slug.
fn configured_area(cfg: &Config, a: &str) -> anyhow::Result<AreaSlug> {
    let slug: AreaSlug = a
        .parse()
        .map_err(|_| anyhow::anyhow!("--area {a:?}: not an area slug"))?;
    if !cfg.areas.iter().any(|c| c.slug == a) {
        anyhow::bail!("--area {a:?}: no such area in the configuration");
    }
    Ok(slug)
}

/// A `--from`/`--to`/`--since` value.
fn day_arg(flag: &str, d: &str) -> anyhow::Result<time::Date> {
    parse_day(d).ok_or_else(|| anyhow::anyhow!("{flag} {d:?}: a day as YYYY-MM-DD"))
}

async fn stats(
    cfg: &Config,
    store: &Store,
    from: Option<String>,
    to: Option<String>,
    area: Option<String>,
    format: TableFormat,
) -> anyhow::Result<u8> {
    let area = area.map(|a| configured_area(cfg, &a)).transpose()?;
    let from_day = from.map(|d| day_arg("--from", &d)).transpose()?;
    let to_day = to.map(|d| day_arg("--to", &d)).transpose()?;
    let start = from_day.map(rome_day_start).unwrap_or(i64::MIN);
    let end = match to_day {
        Some(d) => d.next_day().map(rome_day_start).unwrap_or(i64::MAX),
        None => i64::MAX,
    };
    if start >= end {
        anyhow::bail!("--from is after --to");
    }
    let facts = store.ticket_facts(start, end, area.as_ref()).await?;
    let holidays = cfg.holidays();
    let response_days = |slug: &AreaSlug| {
        cfg.areas
            .iter()
            .find(|a| a.slug == slug.as_str())
            .map(|a| a.response_days)
    };
    let rule = stats::DueRule {
        response_days: &response_days,
        holidays: &holidays,
    };
    let areas: Vec<AreaSlug> = match &area {
        Some(a) => vec![a.clone()],
        None => cfg
            .areas
            .iter()
            .filter_map(|a| a.slug.parse().ok())
            .collect(),
    };
    let now = now_millis();
    let (all, by_area) = stats::figures_by_area(&facts, &areas, &rule, now);
    let report = json::Stats {
        all,
        areas: by_area,
        from: from_day.map(iso_date),
        generated_at: rfc3339(now),
        to: to_day.map(iso_date),
    };
    match format {
        TableFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        TableFormat::Csv => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let mut header = vec!["area".to_string()];
            header.extend(stats_columns(&report.all).into_iter().map(|(k, _)| k));
            out.write_all(csv::row(&header).as_bytes())?;
            let rows = report
                .areas
                .iter()
                .map(|(a, f)| (a.as_str(), f))
                .chain([("all", &report.all)]);
            for (name, f) in rows {
                let mut cells = vec![name.to_string()];
                cells.extend(stats_columns(f).into_iter().map(|(_, v)| v));
                out.write_all(csv::row(&cells).as_bytes())?;
            }
            out.flush()?;
        }
        TableFormat::Text => {
            let period = format!(
                "{} to {}",
                report.from.as_deref().unwrap_or("the first ticket"),
                report.to.as_deref().unwrap_or("today")
            );
            println!("Tickets received from {period}");
            let mut columns: Vec<(&str, &stats::Figures)> =
                report.areas.iter().map(|(a, f)| (a.as_str(), f)).collect();
            columns.push(("all", &report.all));
            print!("{:<34}", "");
            for (name, _) in &columns {
                print!(" {name:>18}");
            }
            println!();
            let table: Vec<Vec<(String, String)>> =
                columns.iter().map(|(_, f)| stats_columns(f)).collect();
            let names: Vec<String> = stats_columns(&report.all)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            for (i, name) in names.iter().enumerate() {
                print!("{name:<34}");
                for column in &table {
                    let value = column.get(i).map(|(_, v)| v.as_str()).unwrap_or("");
                    print!(" {:>18}", if value.is_empty() { "-" } else { value });
                }
                println!();
            }
        }
    }
    Ok(0)
}

/// The figures as (column, value) pairs, for the CSV and the text table: every kind and
/// channel appears, with 0 where there is none.
fn stats_columns(f: &stats::Figures) -> Vec<(String, String)> {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut c: Vec<(String, String)> = vec![("received".into(), f.received.to_string())];
    for kind in TicketKind::ALL {
        let n = f.by_kind.get(kind.as_str()).copied().unwrap_or(0);
        c.push((format!("kind_{kind}"), n.to_string()));
    }
    for channel in Channel::ALL {
        let n = f.by_channel.get(channel.as_str()).copied().unwrap_or(0);
        c.push((format!("channel_{channel}"), n.to_string()));
    }
    for (name, n) in [
        ("taken", f.taken),
        ("answered", f.answered),
        ("resolved", f.resolved),
        ("reopened", f.reopened),
        ("open_now", f.open_now),
        ("overdue_now", f.overdue_now),
    ] {
        c.push((name.into(), n.to_string()));
    }
    for (prefix, d) in [
        ("first_answer", &f.first_answer),
        ("resolution", &f.resolution),
    ] {
        for (name, v) in [
            ("median_hours", d.median_hours),
            ("p90_hours", d.p90_hours),
            ("max_hours", d.max_hours),
            ("median_working_days", d.median_working_days),
            ("p90_working_days", d.p90_working_days),
            ("max_working_days", d.max_working_days),
        ] {
            c.push((format!("{prefix}_{name}"), opt(v)));
        }
    }
    c.push((
        "answered_within_due".into(),
        opt(f.answered_within_due.map(|s| (s * 1000.0).round() / 1000.0)),
    ));
    c
}

/// The columns of `ticket list --format csv`: the keys of its JSON, in the same order.
const TICKET_CSV_COLUMNS: [&str; 17] = [
    "area",
    "certified",
    "channel",
    "citizen",
    "citizen_name",
    "created_at",
    "due_date",
    "kind",
    "overdue",
    "pec_address",
    "ref",
    "reply_to",
    "reply_to_asked",
    "status",
    "subject",
    "text",
    "updated_at",
];

fn ticket_csv_row(t: &json::Ticket) -> String {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    csv::row(&[
        t.area.clone(),
        t.certified.map(|c| c.to_string()).unwrap_or_default(),
        t.channel.clone(),
        t.citizen.clone(),
        opt(&t.citizen_name),
        t.created_at.clone(),
        t.due_date.clone(),
        t.kind.clone(),
        t.overdue.to_string(),
        opt(&t.pec_address),
        t.reference.clone(),
        opt(&t.reply_to),
        opt(&t.reply_to_asked),
        t.status.clone(),
        t.subject.clone(),
        t.text.clone(),
        t.updated_at.clone(),
    ])
}

/// Whether a ticket is past its due date without an answer now: the calendar's rule
/// (`Config::due_date`), the same as the JSON's `overdue`.
fn overdue_now(cfg: &Config, t: &TicketView, now: i64) -> bool {
    is_overdue(t.status, cfg.due_date(t.area.as_str(), t.created_at), now)
}

/// The JSON document of a ticket in `ticket list/show`, its due date seen at `now`.
fn ticket_json(cfg: &Config, t: &TicketView, now: i64) -> json::Ticket {
    json::Ticket::new(t, cfg.due_date(t.area.as_str(), t.created_at), now)
}

async fn ticket_list(
    cfg: &Config,
    store: &Store,
    filter: &TicketFilter,
    overdue: bool,
    format: TableFormat,
    limit: i64,
) -> anyhow::Result<u8> {
    let now = now_millis();
    let tickets = if overdue {
        // The due date is a calendar rule, not SQL: filter the waiting tickets here, then
        // apply the limit.
        let mut waiting = store.list_tickets_filtered(filter, -1).await?;
        waiting.retain(|t| overdue_now(cfg, t, now));
        waiting.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
        waiting
    } else {
        store.list_tickets_filtered(filter, limit).await?
    };
    match format {
        TableFormat::Json => {
            let all: Vec<json::Ticket> = tickets.iter().map(|t| ticket_json(cfg, t, now)).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        TableFormat::Csv => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(csv::row(&TICKET_CSV_COLUMNS).as_bytes())?;
            for t in &tickets {
                out.write_all(ticket_csv_row(&ticket_json(cfg, t, now)).as_bytes())?;
            }
            out.flush()?;
        }
        TableFormat::Text => {
            println!(
                "{:<12} {:<20} {:<13} {:<10} {:<19} {:<32} SUBJECT",
                "REF", "CREATED", "KIND", "STATUS", "DUE", "CITIZEN"
            );
            for t in &tickets {
                println!(
                    "{:<12} {:<20} {:<13} {:<10} {:<19} {:<32} {}",
                    t.reference,
                    rfc3339(t.created_at).get(..19).unwrap_or(""),
                    t.kind,
                    t.status,
                    due_text(cfg, t, now),
                    t.citizen,
                    t.subject
                );
            }
        }
    }
    Ok(0)
}

/// The due date for `ticket list/show` text: "2026-01-20", "2026-01-20 OVERDUE 3d".
fn due_text(cfg: &Config, t: &TicketView, now: i64) -> String {
    let due = cfg.due_date(t.area.as_str(), t.created_at);
    let late = calendar::days_overdue(t.status, due, now);
    if late > 0 {
        format!("{} OVERDUE {late}d", calendar::iso_date(due))
    } else {
        calendar::iso_date(due)
    }
}

async fn ticket_show(
    cfg: &Config,
    store: &Store,
    reference: &str,
    format: Format,
) -> anyhow::Result<u8> {
    let found = match reference.trim().parse::<TicketRef>() {
        Ok(r) => store.ticket_by_ref(&r).await?,
        Err(_) => None,
    };
    let Some(t) = found else {
        eprintln!("no ticket {reference}");
        return Ok(1);
    };
    let TicketTimeline {
        events,
        messages,
        attachments,
        notification_attachments,
    } = store.ticket_timeline(t.ticket_id).await?;
    // Why a PEC ticket is not certified: said by its `received` event (docs/design-notes.md,
    // "Fuzzing, PEC certification, plaintext transports").
    let not_certified = events.iter().find_map(|e| match &e.event {
        EventKind::Received(r) => r.pec.as_ref()?["not_certified"].as_str().map(str::to_owned),
        _ => None,
    });
    match format {
        Format::Json => {
            let doc = json::TicketShow {
                attachments: attachments.iter().map(json::Attachment::from).collect(),
                events: events.iter().map(json::Event::from).collect(),
                messages: messages
                    .iter()
                    .map(|m| {
                        json::Message::new(m, m.kind.role(m.direction))
                            .with_held(&events, m.message_id)
                            .with_attachments(m, &attachments, &notification_attachments)
                    })
                    .collect(),
                ticket: json::Ticket {
                    not_certified_because: Some(not_certified.clone()),
                    ..json::Ticket::new(
                        &t,
                        cfg.due_date(t.area.as_str(), t.created_at),
                        now_millis(),
                    )
                },
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => {
            println!("Ticket   {}", t.reference);
            println!("Subject  {}", t.subject);
            if t.citizen.is_none() {
                let name = t.citizen_name.as_deref().unwrap_or("");
                println!("Citizen  {name} (no email address: registered by staff)");
            } else {
                println!("Citizen  {}", t.citizen);
            }
            println!(
                "Area     {}   Kind {}   Status {}   Channel {}",
                t.area, t.kind, t.status, t.channel
            );
            match t.certified {
                Some(true) => println!(
                    "PEC      certified, to {}",
                    t.pec_address.as_deref().unwrap_or("")
                ),
                Some(false) => println!(
                    "PEC      NOT certified: {}",
                    not_certified
                        .as_deref()
                        .unwrap_or("ordinary mail to the PEC box")
                ),
                None => {}
            }
            println!("Created  {}", rfc3339(t.created_at));
            println!("Due      {}", due_text(cfg, &t, now_millis()));
            println!("\n{}\n", t.text.trim());
            println!("Events:");
            for e in &events {
                println!(
                    "  {}  {:<14} {:<32} {}",
                    rfc3339(e.at),
                    e.event.kind(),
                    e.actor,
                    e.details
                );
            }
            println!("Messages:");
            for m in &messages {
                let mut delivery = match (&m.delivery_state, &m.delivery_reply) {
                    (Some(s), Some(r)) => format!(" [{s}: {r}]"),
                    (Some(s), None) => format!(" [{s}]"),
                    _ => String::new(),
                };
                if let Some(state) = &m.pec_state {
                    delivery.push_str(&format!(" [PEC {state}]"));
                }
                println!(
                    "  {}  {:<3} {:<12} {} -> {}  {}{}",
                    rfc3339(m.at),
                    m.direction,
                    m.kind,
                    m.from_addr,
                    m.to_addrs,
                    m.subject,
                    delivery
                );
            }
            if !attachments.is_empty() {
                println!("Attachments:");
                for a in &attachments {
                    println!(
                        "  {} ({}, {} bytes) sha256 {}",
                        a.filename, a.content_type, a.size, a.sha256
                    );
                }
            }
        }
    }
    Ok(0)
}

/// Widest From or Subject in `quarantine list` (characters): the text list stays one line a
/// message on a terminal, JSON gets more.
const QUARANTINE_TEXT_WIDTH: usize = 48;
const QUARANTINE_JSON_WIDTH: usize = 200;
/// Longest drop reason kept (characters).
const MAX_DROP_REASON_CHARS: usize = 1000;

async fn quarantine_list(store: &Store, format: Format, all: bool) -> anyhow::Result<u8> {
    use futures::TryStreamExt;
    // One row at a time: each carries up to 64 KiB of its message, so only the short
    // summaries are kept, however long the quarantine is.
    let mut rows = std::pin::pin!(store.quarantine_stream(all));
    let mut json_rows = Vec::new();
    let mut count = 0usize;
    while let Some(q) = rows.try_next().await.context("reading the quarantine")? {
        count += 1;
        match format {
            Format::Json => {
                let h = summary::summarize(&q.head, QUARANTINE_JSON_WIDTH);
                json_rows.push(json::QuarantineEntry::new(&q, h));
            }
            Format::Text => {
                let h = summary::summarize(&q.head, QUARANTINE_TEXT_WIDTH);
                println!(
                    "{:>6}  {}  {:<16} {:>9}  {}  {}",
                    q.raw_message_id,
                    rfc3339(q.received_at).get(..19).unwrap_or(""),
                    summary::clean(&q.mailbox, 16),
                    human_size(q.size),
                    or_dash(&h.from),
                    or_dash(&h.subject),
                );
                println!(
                    "        Message-ID {}  reason: {}",
                    or_dash(&h.message_id),
                    summary::clean(&q.reason, 200)
                );
                if let Some(d) = &q.dropped {
                    println!(
                        "        dropped {} by {}: {}",
                        rfc3339(d.at).get(..19).unwrap_or(""),
                        summary::clean(&d.by, 64),
                        summary::clean(&d.reason, 200)
                    );
                }
            }
        }
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json_rows)?),
        Format::Text if count == 0 => println!("quarantine is empty"),
        Format::Text => {}
    }
    Ok(0)
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The stored raw message `id` if it is (or was) in quarantine; says so on stderr if not.
async fn quarantined_raw(store: &Store, id: i64) -> anyhow::Result<Option<crate::store::RawRow>> {
    let raw = store.raw(id).await.context("reading the message")?;
    match raw {
        Some(raw) if raw.state.is_quarantine() => Ok(Some(raw)),
        _ => {
            eprintln!("no quarantined message with id {id}");
            Ok(None)
        }
    }
}

async fn quarantine_show(store: &Store, id: i64) -> anyhow::Result<u8> {
    let Some(raw) = quarantined_raw(store, id).await? else {
        return Ok(1);
    };
    let reason = store.quarantine_entry(id).await?;
    let (block, cut) = summary::header_block(&raw.bytes);
    println!(
        "Message  {id}  ({}, mailbox {}, received {})",
        raw.state,
        summary::clean(&raw.mailbox, 64),
        rfc3339(raw.received_at)
    );
    println!(
        "Size     {} bytes{}",
        raw.size,
        if raw.complete {
            ""
        } else {
            " (only the header was kept; the message stays on the IMAP server)"
        }
    );
    if let Some(q) = &reason {
        println!("Reason   {}", summary::clean(&q.reason, 1000));
        if let Some(d) = &q.dropped {
            println!(
                "Dropped  {} by {}: {}",
                rfc3339(d.at),
                summary::clean(&d.by, 64),
                summary::clean(&d.reason, MAX_DROP_REASON_CHARS)
            );
        }
    }
    println!();
    print!("{}", summary::visible(block));
    if cut {
        println!(
            "\n[header block cut at {} bytes: `quarantine export {id}` writes it all]",
            summary::MAX_HEADER_BYTES
        );
    }
    Ok(0)
}

async fn quarantine_export(store: &Store, id: i64) -> anyhow::Result<u8> {
    use std::io::Write;
    let Some(raw) = quarantined_raw(store, id).await? else {
        return Ok(1);
    };
    if !raw.complete {
        eprintln!(
            "note: only the header of this message was kept ({} bytes of {}); the whole \
             message stays on the IMAP server",
            raw.bytes.len(),
            raw.size
        );
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&raw.bytes)
        .context("writing the message to stdout")?;
    out.flush().context("writing the message to stdout")?;
    Ok(0)
}

async fn quarantine_drop(store: &Store, id: i64, reason: &str) -> anyhow::Result<u8> {
    let reason = summary::clean(reason, MAX_DROP_REASON_CHARS);
    if reason.is_empty() {
        eprintln!("say why with --reason TEXT: it is what the next operator will read");
        return Ok(1);
    }
    let by = unix_user();
    if !store
        .drop_quarantined(id, &by, &reason)
        .await
        .context("recording the drop")?
    {
        eprintln!("no quarantined message with id {id} (already dropped, or never quarantined)");
        return Ok(1);
    }
    println!("dropped {id} (by {by}): the message stays stored; `quarantine list --all` shows it");
    Ok(0)
}

/// Who runs the command: `$USER`, else what `id -un` says, else the numeric uid.
fn unix_user() -> String {
    if let Ok(user) = std::env::var("USER") {
        if !user.trim().is_empty() {
            return user.trim().to_owned();
        }
    }
    if let Ok(out) = std::process::Command::new("id").arg("-un").output() {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !name.is_empty() {
            return name;
        }
    }
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| format!("uid {}", m.uid()))
        .unwrap_or_else(|_| "unknown".into())
}
