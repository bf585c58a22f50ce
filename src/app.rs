//! Wiring of `ticketgate serve`: store, pipeline, one poller per mailbox, the outbox worker
//! and the web server in one tokio process, and a clean stop on SIGINT/SIGTERM.
//!
//! A stop request cancels one token. Pollers finish the batch they hold (its transactions
//! commit or roll back whole) and log out; the worker finishes the sends in flight; the web
//! server finishes the requests in hand within a deadline (half-sent requests do not hold
//! the stop up). Nothing is half-processed because every change is one
//! transaction and the server is told only after the commit.
//!
//! Under systemd (`Type=notify`) `serve` says `READY=1` once the listeners are bound and the
//! tasks started, `WATCHDOG=1` from its main loop, and `STOPPING=1` when a stop begins.

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::domain::SignedIds;
use crate::inbound::imap;
use crate::intake::Pipeline;
use crate::outbound::smtp::SmtpSender;
use crate::outbound::worker::OutboxWorker;
use crate::store::Store;
use crate::systemd::Notifier;
use crate::web::{self, AppState};
use secrecy::ExposeSecret;

/// Connects the store and applies migrations; creates the attachment directory.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    if let Some(path) = cfg.database.url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                private_dir(parent)
                    .with_context(|| format!("creating the database directory {parent:?}"))?;
            }
        }
    }
    let store = Store::connect(&cfg.database.url, cfg.database.max_connections)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&cfg.database.url)))?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    private_dir(&cfg.storage.dir)
        .with_context(|| format!("creating storage.dir {:?}", cfg.storage.dir))?;
    Ok(store)
}

/// Creates a missing directory (and missing parents) readable by the gateway's user only
/// (0700): the database and the attachments are citizens' personal data. Existing
/// directories keep the mode the operator gave them.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Hides the password of a `postgres://user:pass@host/db` URL in messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..s], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Stack of every runtime thread, in bytes. Mail is parsed on these threads; the MIME
/// pre-scan keeps nesting to 32 levels, which needs far less, but where the scan and the parser
/// ever disagree a parsed tree of tens of thousands of levels must still be dropped without a
/// stack overflow (40,000 levels overflow 2 MiB, tokio's default, and fit in 8 MiB). Only
/// the pages touched are ever backed by memory.
pub const THREAD_STACK_BYTES: usize = 64 * 1024 * 1024;

/// The pieces of a running gateway, for `serve` and for tests that drive it in-process.
#[derive(Debug)]
pub struct Gateway {
    pub store: Store,
    pub pipeline: Arc<Pipeline>,
    pub worker: OutboxWorker,
    pub outbox_wake: Arc<Notify>,
    pub attachments: AttachmentStore,
}

impl Gateway {
    pub async fn build(cfg: Arc<Config>) -> anyhow::Result<Gateway> {
        let store = open_store(&cfg).await?;
        let outbox_wake = Arc::new(Notify::new());
        let attachments = AttachmentStore::new(&cfg.storage.dir)?;
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            cfg.clone(),
            outbox_wake.clone(),
            attachments.clone(),
        ));
        let smtp = SmtpSender::new(&cfg.smtp)?;
        let pec_smtp = cfg.pec_smtp.as_ref().map(SmtpSender::new).transpose()?;
        let worker = OutboxWorker::new(
            store.clone(),
            smtp,
            pec_smtp,
            Arc::new(cfg.outbox.clone()),
            outbox_wake.clone(),
        );
        Ok(Gateway {
            store,
            pipeline,
            worker,
            outbox_wake,
            attachments,
        })
    }
}

fn install_metrics() -> Option<PrometheusHandle> {
    // A second install (tests building several gateways) fails; the first one serves.
    PrometheusBuilder::new().install_recorder().ok()
}

/// Runs until SIGINT/SIGTERM or until `stop` is cancelled.
pub async fn serve(cfg: Arc<Config>, stop: CancellationToken) -> anyhow::Result<()> {
    let notifier = Notifier::from_env();
    let metrics = install_metrics();
    let gw = Gateway::build(cfg.clone()).await?;
    let shutdown = stop;
    let mut tasks = tokio::task::JoinSet::new();

    if gw.store.is_sqlite() {
        let released = gw.store.release_outbox_leases().await?;
        if released > 0 {
            tracing::warn!(
                released,
                "outbox rows claimed by a process that died are sent again"
            );
        }
    }
    tasks.spawn(gw.worker.clone().run(shutdown.clone()));
    for mb in &cfg.mailboxes {
        let mb = Arc::new(mb.clone());
        tasks.spawn(imap::run_mailbox(mb, gw.pipeline.clone(), shutdown.clone()));
    }
    // Rows left `pending` by an `ingest` that died before processing.
    {
        let pipeline = gw.pipeline.clone();
        tasks.spawn(async move {
            if let Err(e) = process_orphans(&pipeline).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "processing pending ingested messages"
                );
            }
        });
    }

    // Reminders and escalation of overdue tickets (issue 14): checked at start and every
    // few minutes. Each is sent once however many instances check (see intake::remind).
    tasks.spawn(run_reminders(gw.pipeline.clone(), shutdown.clone()));

    // Each office's daily digest (issue 14): once per area and day, recorded in the database.
    if cfg.digest.enabled {
        tasks.spawn(crate::digest::run_scheduled(
            gw.store.clone(),
            cfg.clone(),
            SignedIds::new(cfg.security.secret.expose_secret().as_bytes()),
            gw.outbox_wake.clone(),
            shutdown.clone(),
        ));
    }

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("binding the web server to {}", cfg.server.listen))?;
    let metrics_listener = match cfg.server.metrics_addr() {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "binding server.metrics_listen {addr} (in use by another instance on \
                         this host? give each its own port, or \"off\")"
            )
        })?),
        None => None,
    };
    let state = AppState {
        store: gw.store.clone(),
        metrics,
        cfg: cfg.clone(),
        ids: SignedIds::new(cfg.security.secret.expose_secret().as_bytes()),
        pipeline: gw.pipeline.clone(),
        attachments: gw.attachments.clone(),
        outbox_wake: gw.outbox_wake.clone(),
        public_stats: Default::default(),
    };
    let limits = web_limits(&cfg);
    tasks.spawn(web::server::serve(
        listener,
        web::router(state.clone()),
        limits,
        shutdown.clone(),
    ));
    if let Some(listener) = metrics_listener {
        // The operator's scraper: a handful of connections is plenty.
        let limits = web::server::Limits {
            max_connections: METRICS_CONNECTIONS,
            ..limits
        };
        tasks.spawn(web::server::serve(
            listener,
            web::metrics_router(state),
            limits,
            shutdown.clone(),
        ));
    }
    tracing::info!(
        listen = %cfg.server.listen,
        metrics_listen = %cfg.server.metrics_listen,
        max_connections = limits.max_connections,
        mailboxes = cfg.mailboxes.len(),
        "ticketgate serving"
    );
    // The listeners are bound and every task spawned: a request to /healthz is answered from
    // now on. Not waiting for the IMAP logins is deliberate: a mail server that is down must
    // show as a failing mailbox on /healthz, not as a service that never finishes starting.
    notifier.ready();

    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested: finishing the work in hand");
            shutdown.cancel();
        });
    }
    // The main loop: collects the tasks as they end and, under systemd's watchdog, proves at
    // half its interval that the runtime still schedules work (a wedged runtime is restarted).
    let mut watchdog = notifier.watchdog_period().map(|period| {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    });
    let mut told_stopping = false;
    loop {
        tokio::select! {
            res = tasks.join_next() => match res {
                None => break,
                Some(Err(e)) => tracing::error!(error = %e, "a task ended abnormally"),
                Some(Ok(())) => {}
            },
            _ = shutdown.cancelled(), if !told_stopping => {
                notifier.stopping();
                told_stopping = true;
            }
            _ = next_tick(&mut watchdog) => notifier.watchdog(),
        }
    }
    gw.store.close().await;
    tracing::info!("ticketgate stopped");
    Ok(())
}

/// Connections the metrics listener serves at once.
const METRICS_CONNECTIONS: usize = 8;

/// The citizens' port limits: as configured, with the connection cap lowered so that file
/// descriptors stay free for IMAP, SMTP, the database and attachment files.
fn web_limits(cfg: &Config) -> web::server::Limits {
    let soft = web::server::open_files_limit();
    let max_connections = web::server::connection_cap(cfg.server.max_connections, soft);
    if max_connections < cfg.server.max_connections {
        tracing::warn!(
            configured = cfg.server.max_connections,
            serving = max_connections,
            open_files_limit = soft,
            "server.max_connections lowered to keep file descriptors for the mail side \
             (raise LimitNOFILE to serve more)"
        );
    }
    web::server::Limits {
        max_connections,
        header_timeout: std::time::Duration::from_secs(cfg.server.header_timeout_seconds),
        body_timeout: std::time::Duration::from_secs(cfg.server.body_timeout_seconds),
    }
}

/// How often `serve` checks for overdue tickets: a reminder is due from the first minutes
/// of the day after the due date, and a few minutes late is on time for it.
const REMIND_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// The reminder task: [`Pipeline::remind`] now, then every [`REMIND_EVERY`], until stopped.
async fn run_reminders(pipeline: Arc<Pipeline>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(REMIND_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match pipeline.remind(crate::domain::now_millis(), true).await {
            Ok(lines) => {
                for l in &lines {
                    tracing::info!(%l, "overdue ticket chased");
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "checking overdue tickets"),
        }
    }
}

/// Processes raw messages left pending outside any IMAP mailbox generation (ingest).
async fn process_orphans(pipeline: &Pipeline) -> anyhow::Result<()> {
    for id in pipeline.store().pending_ingested().await? {
        pipeline.process(id).await?;
    }
    Ok(())
}

/// The next tick of the watchdog interval; never, when there is no watchdog.
async fn next_tick(every: &mut Option<tokio::time::Interval>) {
    match every {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
