//! The IMAP poller: one task per `[[mailbox]]`, forever.
//!
//! Each round: fetch everything above the `(UIDVALIDITY, last UID)` checkpoint in batches,
//! store each batch raw (bytes + checkpoint in one commit), process the messages, and only
//! then flag them `\Seen` (and MOVE them to `processed_folder`). Then IDLE when the server
//! offers it — with a timeout, because NAT boxes and servers drop silent connections (the
//! Delta Chat lesson) and never longer than `poll_seconds`, the safety net for servers whose
//! IDLE announces late — or sleep `poll_seconds`. A connection error drops the connection and
//! reconnects with capped exponential backoff. A folder the server refuses (NO/BAD to
//! CREATE, `\Seen`, MOVE, COPY) is not a connection error: new mail keeps becoming tickets
//! and the flag/move of handled mail is retried on a schedule of its own (`FolderRetry`).
//! Folder names travel in modified UTF-7 ([`utf7`]). Nothing is ever deleted on the server.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_imap::Session;
use futures::TryStreamExt;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::{MailboxConfig, TlsMode};
use crate::health::{self, MailboxPhase};
use crate::inbound::utf7;
use crate::intake::Pipeline;
use crate::store::{MailboxLock, RawIn};

/// How long one IDLE lasts before we re-issue it. RFC 2177 asks clients to re-IDLE at least
/// every 29 minutes; real servers and middleboxes cut silent connections much sooner.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Time allowed for `DONE` to be answered after an IDLE.
const IDLE_DONE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for connect + greeting + login.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Any single command (FETCH of a batch, STORE, MOVE).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Reconnect backoff: starts here, doubles, capped.
/// How often a standing-by instance tries to take a mailbox's lock.
const LOCK_RETRY: Duration = Duration::from_secs(2);
/// Head start given to other instances per mailbox this instance already polls.
const LOCK_SPREAD: Duration = Duration::from_secs(1);
/// At most this much head start, however many mailboxes are held: a dead instance's mailbox
/// is taken over within LOCK_SPREAD_CAP + LOCK_RETRY (7 s, under the 10 s of failover) even
/// by a survivor that already polls many (docs/design-notes.md, "Failover in seconds").
const LOCK_SPREAD_CAP: Duration = Duration::from_secs(5);

/// Mailbox locks this process holds (for [`LOCK_SPREAD`]).
static HELD_LOCKS: AtomicUsize = AtomicUsize::new(0);

/// A mailbox lock counted in [`HELD_LOCKS`] while it lives.
struct HeldLock {
    lock: MailboxLock,
}

impl HeldLock {
    fn new(lock: MailboxLock) -> HeldLock {
        HELD_LOCKS.fetch_add(1, Ordering::SeqCst);
        HeldLock { lock }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        HELD_LOCKS.fetch_sub(1, Ordering::SeqCst);
    }
}
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// One FETCH brings at most this many messages…
const BATCH_MESSAGES: usize = 200;
/// …and at most about this many bytes.
const BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// One STORE/MOVE names at most this many messages (a bounded command line).
const FLAG_CHUNK: usize = 500;
/// A refused folder (processed_folder, or `\Seen` on the inbox) is tried again after this,
/// doubling…
const FOLDER_RETRY_START: Duration = Duration::from_secs(30);
/// …up to this.
const FOLDER_RETRY_CAP: Duration = Duration::from_secs(15 * 60);

/// A plain or TLS connection, so one `Session` type serves every `tls` mode.
#[derive(Debug)]
pub enum ImapConn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ImapConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapConn::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type ImapSession = Session<ImapConn>;

async fn tls_wrap(host: &str, tcp: TcpStream) -> anyhow::Result<ImapConn> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .with_context(|| format!("{host:?} is not a valid TLS server name"))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host}"))?;
    Ok(ImapConn::Tls(Box::new(tls)))
}

/// Connects and logs in; returns the session and whether the server offers IDLE and MOVE.
pub async fn connect(mb: &MailboxConfig) -> anyhow::Result<(ImapSession, bool, bool)> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(mb))
        .await
        .with_context(|| format!("timed out connecting to {}:{}", mb.host, mb.port))?
}

async fn connect_inner(mb: &MailboxConfig) -> anyhow::Result<(ImapSession, bool, bool)> {
    let tcp = TcpStream::connect((mb.host.as_str(), mb.port))
        .await
        .with_context(|| format!("connecting to IMAP server {}:{}", mb.host, mb.port))?;
    tcp.set_nodelay(true).ok();
    let conn = match mb.tls {
        TlsMode::None => ImapConn::Plain(tcp),
        TlsMode::Tls => tls_wrap(&mb.host, tcp).await?,
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            client
                .read_response()
                .await
                .context("reading the IMAP greeting")?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("STARTTLS refused")?;
            tls_wrap(&mb.host, client.into_inner()).await?
        }
    };
    let mut client = async_imap::Client::new(conn);
    if mb.tls != TlsMode::Starttls {
        client
            .read_response()
            .await
            .context("reading the IMAP greeting")?
            .context("the server closed the connection before its greeting")?;
    }
    let mut session = client
        .login(&mb.username, mb.password.expose_secret())
        .await
        .map_err(|(e, _)| anyhow::anyhow!("login as {:?} refused: {e}", mb.username))?;
    let caps = session.capabilities().await.context("CAPABILITY")?;
    let idle = caps.has_str("IDLE");
    let mv = caps.has_str("MOVE");
    Ok((session, idle, mv))
}

/// Runs one mailbox's poller until `shutdown` is cancelled.
pub async fn run_mailbox(
    mb: Arc<MailboxConfig>,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) {
    health::set_phase(&mb.name, MailboxPhase::Starting);
    let mut backoff = BACKOFF_START;
    // Outlives connections: a folder refused before a reconnect is still retried on its
    // schedule after it, and still logged once.
    let mut folders = FolderRetry::new();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let Some(mut lock) = lock_mailbox(&mb, &pipeline, &shutdown).await else {
            return; // shutdown while waiting
        };
        let mut synced_once = false;
        let result = session(
            &mb,
            &pipeline,
            &shutdown,
            &mut synced_once,
            &mut lock,
            &mut folders,
        )
        .await;
        // Released before any wait: another instance may poll while this one backs off.
        drop(lock);
        match result {
            Ok(()) => return, // shutdown
            Err(e) => {
                metrics::counter!("ticketgate_imap_errors_total", "mailbox" => mb.name.clone())
                    .increment(1);
                if synced_once {
                    backoff = BACKOFF_START;
                }
                let error = format!("{e:#}");
                health::set_failing(&mb.name, &error);
                // Say which side failed: an operator told "connection lost" looks at the IMAP
                // server while the database (or the attachment disk) is what needs them.
                let database = e
                    .chain()
                    .any(|c| c.downcast_ref::<crate::store::StoreError>().is_some());
                if database {
                    tracing::warn!(mailbox = %mb.name, error, retry_in = ?backoff, "storing mail failed (database); the mail stays on the server, reconnecting to retry");
                } else {
                    tracing::warn!(mailbox = %mb.name, error, retry_in = ?backoff, "IMAP connection lost; reconnecting");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_CAP);
            }
        }
    }
}

/// The head start other instances get before this one, holding `held` locks, tries to take
/// another.
fn lock_spread(held: usize) -> Duration {
    LOCK_SPREAD
        .saturating_mul(u32::try_from(held).unwrap_or(u32::MAX))
        .min(LOCK_SPREAD_CAP)
}

/// Waits until this instance holds the mailbox's lock (several instances on PostgreSQL:
/// one polls, the others wait and take over within [`LOCK_RETRY`] when it dies). `None`
/// on shutdown.
async fn lock_mailbox(
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    shutdown: &CancellationToken,
) -> Option<HeldLock> {
    let mut told = false;
    loop {
        // Spread mailboxes over instances: an instance that polls k mailboxes already lets
        // the others try first (k seconds), instead of taking every lock at start-up.
        let held = HELD_LOCKS.load(Ordering::SeqCst);
        if held > 0 && !pipeline.store().is_sqlite() {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(lock_spread(held)) => {}
            }
        }
        match pipeline.store().try_lock_mailbox(&mb.name).await {
            Ok(Some(lock)) => {
                if told {
                    tracing::info!(mailbox = %mb.name, "mailbox lock taken over: polling here now");
                }
                return Some(HeldLock::new(lock));
            }
            Ok(None) => {
                health::set_standing_by(&mb.name);
                if !told {
                    tracing::info!(mailbox = %mb.name, "another instance polls this mailbox; standing by");
                    told = true;
                }
            }
            Err(e) => {
                tracing::warn!(mailbox = %mb.name, error = %e, "cannot take the mailbox lock");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(LOCK_RETRY) => {}
        }
    }
}

/// One connection's life: login, sync, then IDLE/poll rounds until an error or shutdown.
async fn session(
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    shutdown: &CancellationToken,
    synced_once: &mut bool,
    lock: &mut HeldLock,
    folders: &mut FolderRetry,
) -> anyhow::Result<()> {
    let (mut session, has_idle, has_move) = connect(mb).await?;
    if let Some(folder) = &mb.processed_folder {
        // Find or create it. A refusal is a folder problem, not a connection problem:
        // tickets are still made, and the moves wait for the folder (see `FolderRetry`).
        match ensure_folder(&mut session, folder).await {
            Ok(found) => {
                tracing::debug!(mailbox = %mb.name, folder, ?found, "processed folder");
                folders.found(folder);
            }
            Err(FolderError::Refused { folder, answer }) => {
                folders.failed(&mb.name, &folder, answer)
            }
            Err(FolderError::Connection(e)) => return Err(e),
        }
    }
    let selected = timed(session.select(utf7::encode(&mb.folder)))
        .await?
        .with_context(|| format!("SELECT {:?}", mb.folder))?;
    let uidvalidity = selected
        .uid_validity
        .context("the server reported no UIDVALIDITY")?;
    let store = pipeline.store();
    let mut last_uid = match store.checkpoint(&mb.name).await? {
        Some((v, last)) if v == uidvalidity => last,
        Some((v, _)) => {
            // RFC 3501 §2.3.1.1: UIDs of the old generation mean nothing now. Fetch all
            // again; de-duplication (Message-ID, else sha256) keeps it from making tickets
            // twice.
            tracing::warn!(mailbox = %mb.name, old = v, new = uidvalidity, "UIDVALIDITY changed: full resync");
            store.set_checkpoint(&mb.name, uidvalidity, 0).await?;
            0
        }
        None => 0,
    };
    health::set_phase(&mb.name, MailboxPhase::Connected);
    let mut mover = Mover {
        has_move,
        told_fallback: false,
        told_expunge: false,
        retry: folders,
    };
    tracing::info!(mailbox = %mb.name, uidvalidity, last_uid, idle = has_idle && mb.idle, "IMAP mailbox selected");

    // Leftovers of a previous run: stored but unprocessed, processed but not flagged.
    let pending = store.pending_raw(&mb.name).await?;
    for chunk in pending.chunks(BATCH_MESSAGES) {
        pipeline.process_batch(chunk).await?;
    }
    flag_done(&mut session, mb, pipeline, uidvalidity, &mut mover).await?;

    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if !lock.lock.held().await {
            anyhow::bail!("lost the mailbox lock (database connection broken)");
        }
        // New mail first; a folder problem's retry only when its time has come, so a
        // refused folder never delays a fetch.
        last_uid = drain(
            &mut session,
            mb,
            pipeline,
            uidvalidity,
            last_uid,
            &mut mover,
            shutdown,
        )
        .await?;
        *synced_once = true;
        if mover.retry.retry_due() {
            flag_done(&mut session, mb, pipeline, uidvalidity, &mut mover).await?;
        }
        if shutdown.is_cancelled() {
            break;
        }
        health::set_phase(&mb.name, MailboxPhase::Idle);
        let wait = mover.retry.shorten(next_check(mb));
        if has_idle && mb.idle {
            // A message that arrives after our last FETCH is announced with `* N EXISTS`,
            // possibly before the server's `+ idling`: async-imap files such responses
            // in the session's unsolicited channel, not in the IDLE wait. Look there
            // before waiting, or that message would sit until the IDLE timeout.
            let unsolicited = session.unsolicited_responses.clone();
            if new_mail_announced(&unsolicited) {
                health::set_phase(&mb.name, MailboxPhase::Connected);
                continue;
            }
            let mut handle = session.idle();
            timed(handle.init()).await?.context("IDLE")?;
            if !new_mail_announced(&unsolicited) {
                // Ends after `wait` even without news: the next round's FETCH is the poll
                // that catches mail a server announces late or never (Cyrus tells IDLE
                // clients about new mail only every 60 s by default).
                let (idle_wait, interrupt) = handle.wait_with_timeout(wait);
                let response = tokio::select! {
                    r = idle_wait => Some(r),
                    _ = shutdown.cancelled() => None,
                };
                drop(interrupt);
                match response {
                    Some(Ok(_)) | None => {}
                    Some(Err(e)) => return Err(e).context("waiting in IDLE"),
                }
            }
            session = tokio::time::timeout(IDLE_DONE_TIMEOUT, handle.done())
                .await
                .context("the server did not answer DONE")?
                .context("ending IDLE")?;
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        health::set_phase(&mb.name, MailboxPhase::Connected);
    }
    // Best effort: the server closes it anyway.
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    Ok(())
}

/// The longest wait before looking for new mail again: `poll_seconds`, also while IDLE
/// (a safety net for servers whose IDLE announces late), and never longer than RFC 2177's
/// re-IDLE bound.
fn next_check(mb: &MailboxConfig) -> Duration {
    IDLE_TIMEOUT.min(Duration::from_secs(mb.poll_seconds.max(1)))
}

/// Drains the unsolicited responses; true if any said the mailbox grew.
fn new_mail_announced(
    rx: &async_channel::Receiver<async_imap::types::UnsolicitedResponse>,
) -> bool {
    let mut grew = false;
    while let Ok(r) = rx.try_recv() {
        if matches!(
            r,
            async_imap::types::UnsolicitedResponse::Exists(_)
                | async_imap::types::UnsolicitedResponse::Recent(_)
        ) {
            grew = true;
        }
    }
    grew
}

async fn timed<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    tokio::time::timeout(COMMAND_TIMEOUT, f)
        .await
        .context("IMAP command timed out")
}

/// Fetches, stores, processes and flags everything above `last_uid`. Returns the new
/// checkpoint. Stops between batches when shutdown is requested.
async fn drain(
    session: &mut ImapSession,
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    uidvalidity: u32,
    mut last_uid: u32,
    mover: &mut Mover<'_>,
    shutdown: &CancellationToken,
) -> anyhow::Result<u32> {
    // Sizes first, so over-limit messages are fetched as header only and batches stay
    // bounded in memory.
    let range = format!("{}:*", last_uid.saturating_add(1));
    let mut sizes: Vec<(u32, u64)> = timed(async {
        session
            .uid_fetch(&range, "(UID RFC822.SIZE)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?
    .context("UID FETCH sizes")?
    .into_iter()
    // `N:*` always includes the highest UID even when it is below N (RFC 3501 §6.4.8).
    .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
    .filter(|(uid, _)| *uid > last_uid)
    .collect();
    sizes.sort_unstable();
    if sizes.is_empty() {
        return Ok(last_uid);
    }
    let limit = pipeline.max_message_bytes();
    let mut i = 0;
    while i < sizes.len() {
        if shutdown.is_cancelled() {
            break;
        }
        let mut j = i;
        let mut bytes = 0u64;
        while j < sizes.len()
            && j - i < BATCH_MESSAGES
            && (j == i || bytes + sizes[j].1 <= BATCH_BYTES)
        {
            if sizes[j].1 <= limit {
                bytes += sizes[j].1;
            }
            j += 1;
        }
        let batch = &sizes[i..j];
        i = j;
        let full: Vec<u32> = batch
            .iter()
            .filter(|(_, s)| *s <= limit)
            .map(|(u, _)| *u)
            .collect();
        let big: Vec<u32> = batch
            .iter()
            .filter(|(_, s)| *s > limit)
            .map(|(u, _)| *u)
            .collect();
        let mut fetched: Vec<RawIn> = Vec::with_capacity(batch.len());
        if !full.is_empty() {
            fetched.extend(fetch_bodies(session, &full, "BODY.PEEK[]", true, batch).await?);
        }
        if !big.is_empty() {
            fetched.extend(fetch_bodies(session, &big, "BODY.PEEK[HEADER]", false, batch).await?);
        }
        fetched.sort_by_key(|m| m.uid);
        let batch_last = batch.last().map(|b| b.0).unwrap_or(last_uid);
        // Raw first: bytes and checkpoint commit together, before the server hears anything.
        let ids = pipeline
            .store()
            .store_raw_batch(&mb.name, uidvalidity, &fetched, batch_last)
            .await?;
        last_uid = batch_last;
        metrics::counter!("ticketgate_messages_fetched_total", "mailbox" => mb.name.clone())
            .increment(fetched.len() as u64);
        // The batch is in the database now and processing reads it back message by message:
        // holding these bytes (up to BATCH_BYTES) through processing only raises peak memory.
        drop(fetched);
        pipeline.process_batch(&ids).await?;
        flag_done(session, mb, pipeline, uidvalidity, mover).await?;
    }
    Ok(last_uid)
}

async fn fetch_bodies(
    session: &mut ImapSession,
    uids: &[u32],
    item: &str,
    complete: bool,
    sizes: &[(u32, u64)],
) -> anyhow::Result<Vec<RawIn>> {
    let set = uid_set(uids);
    let query = format!("(UID {item})");
    let fetches = timed(async {
        session
            .uid_fetch(&set, &query)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?
    .with_context(|| format!("UID FETCH {item}"))?;
    let mut out = Vec::with_capacity(fetches.len());
    for f in fetches {
        let Some(uid) = f.uid else { continue };
        if !uids.contains(&uid) {
            continue;
        }
        let bytes = if complete { f.body() } else { f.header() };
        let Some(bytes) = bytes else {
            bail!("the server returned no body for UID {uid}");
        };
        let size = sizes
            .iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, s)| *s)
            .unwrap_or(bytes.len() as u64);
        out.push(RawIn {
            uid: Some(uid),
            bytes: bytes.to_vec(),
            size: if complete { bytes.len() as u64 } else { size },
            complete,
        });
    }
    Ok(out)
}

/// A folder command's failure, split by what the poller must do about it.
#[derive(Debug)]
enum FolderError {
    /// The server answered NO or BAD about `folder` (it does not exist, cannot be created,
    /// the name is invalid, a right is missing): the connection is fine, new mail can still
    /// be fetched, and the command is retried later.
    Refused { folder: String, answer: String },
    /// The connection failed (I/O, timeout, a response that cannot be parsed): reconnect.
    Connection(anyhow::Error),
}

/// Runs one command about `folder`; a NO or BAD becomes [`FolderError::Refused`].
async fn refusable<T>(
    folder: &str,
    command: &str,
    f: impl std::future::Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, FolderError> {
    use async_imap::error::Error as ImapError;
    match timed(f).await {
        Err(e) => Err(FolderError::Connection(e.context(command.to_owned()))),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(ImapError::No(text) | ImapError::Bad(text))) => Err(FolderError::Refused {
            folder: folder.to_owned(),
            // TRYCREATE (RFC 3501 §7.1) is the one response code acted upon: the target
            // of a COPY/MOVE does not exist.
            answer: if text.contains("TryCreate") {
                format!("{command}: [TRYCREATE] {}", server_answer(&text))
            } else {
                format!("{command}: {}", server_answer(&text))
            },
        }),
        // The name could not even be sent (a line break in it): no server will take it.
        Ok(Err(ImapError::Validate(v))) => Err(FolderError::Refused {
            folder: folder.to_owned(),
            answer: format!("{command}: {v}"),
        }),
        Ok(Err(e)) => Err(FolderError::Connection(
            anyhow::Error::new(e).context(format!("{command} {folder:?}")),
        )),
    }
}

/// The server's words out of async-imap's `code: …, info: Some("…")` rendering of a NO/BAD
/// (the text is what an operator can search for; the parsed code adds nothing to it).
fn server_answer(text: &str) -> String {
    const INFO: &str = "info: Some(\"";
    match text.find(INFO) {
        Some(at) => {
            let info = text.get(at + INFO.len()..).unwrap_or_default();
            info.strip_suffix("\")").unwrap_or(info).to_owned()
        }
        None => text.to_owned(),
    }
}

/// Whether [`ensure_folder`] found the folder or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FolderFound {
    Exists,
    Created,
}

/// Finds `folder` with LIST, creates it if missing.
async fn ensure_folder(
    session: &mut ImapSession,
    folder: &str,
) -> Result<FolderFound, FolderError> {
    use async_imap::types::NameAttribute;
    let wire = utf7::encode(folder);
    // The pattern is sent as is by async-imap: quote it (RFC 3501 §4.3). `*` and `%` in a
    // name would be wildcards, so the answer is filtered for the exact name.
    let pattern = format!("\"{}\"", wire.replace('\\', "\\\\").replace('"', "\\\""));
    let names = refusable(folder, "LIST", async {
        session
            .list(Some(""), Some(&pattern))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    // Compared decoded (RFC 3501 §5.1.3): a server may encode a name differently.
    let same = |n: &str| match utf7::decode(n) {
        Ok(name) if folder.eq_ignore_ascii_case("INBOX") => name.eq_ignore_ascii_case("INBOX"),
        Ok(name) => name == folder,
        Err(_) => n == wire,
    };
    if let Some(found) = names.iter().find(|n| same(n.name())) {
        if found
            .attributes()
            .iter()
            .any(|a| matches!(a, NameAttribute::NoSelect))
        {
            return Err(FolderError::Refused {
                folder: folder.to_owned(),
                answer: "LIST: \\Noselect (the name exists but cannot hold messages)".into(),
            });
        }
        return Ok(FolderFound::Exists);
    }
    match refusable(folder, "CREATE", session.create(&wire)).await {
        Ok(()) => Ok(FolderFound::Created),
        // Listed by nobody, yet there (e.g. hidden from LIST by an ACL): usable.
        Err(FolderError::Refused { answer, .. })
            if answer.contains("ALREADYEXISTS")
                || answer.to_ascii_lowercase().contains("already exists") =>
        {
            Ok(FolderFound::Exists)
        }
        Err(FolderError::Refused { folder, answer }) => {
            // A hint for the most common mistake: the wrong hierarchy separator.
            let hint = match hierarchy_separator(session).await {
                Some(sep) => format!(" (this server separates folder levels with {sep:?})"),
                None => String::new(),
            };
            Err(FolderError::Refused {
                folder,
                answer: format!("{answer}{hint}"),
            })
        }
        Err(e) => Err(e),
    }
}

/// The server's hierarchy separator (`LIST "" ""`, RFC 3501 §6.3.8), if it says.
async fn hierarchy_separator(session: &mut ImapSession) -> Option<String> {
    let names = timed(async {
        session
            .list(Some(""), Some("\"\""))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await
    .ok()?
    .ok()?;
    names.iter().find_map(|n| n.delimiter().map(str::to_owned))
}

/// Checks a mailbox for `check-config --connect`: login, SELECT of `folder`, and
/// `processed_folder` found or created. The line to print, or what failed with the
/// server's answer.
pub async fn check_mailbox(mb: &MailboxConfig) -> anyhow::Result<String> {
    let (mut session, idle, has_move) = connect(mb).await?;
    let checked = check_folders(&mut session, mb).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    let processed = checked?;
    let mut line = format!(
        "mailbox {:?} ({}:{}), folder {:?}{}",
        mb.name,
        mb.host,
        mb.port,
        mb.folder,
        if idle { ", IDLE" } else { ", no IDLE: polling" }
    );
    if let Some((folder, found)) = processed {
        let found = match found {
            FolderFound::Exists => "exists",
            FolderFound::Created => "created",
        };
        line.push_str(&format!(", processed folder {folder:?} {found}"));
        if !has_move {
            line.push_str(" (no MOVE: COPY + \\Deleted + UID EXPUNGE)");
        }
    }
    Ok(line)
}

async fn check_folders(
    session: &mut ImapSession,
    mb: &MailboxConfig,
) -> anyhow::Result<Option<(String, FolderFound)>> {
    match refusable(
        &mb.folder,
        "SELECT",
        session.select(utf7::encode(&mb.folder)),
    )
    .await
    {
        Ok(_) => {}
        Err(FolderError::Refused { folder, answer }) => bail!("folder {folder:?}: {answer}"),
        Err(FolderError::Connection(e)) => return Err(e),
    }
    let Some(folder) = &mb.processed_folder else {
        return Ok(None);
    };
    match ensure_folder(session, folder).await {
        Ok(found) => Ok(Some((folder.clone(), found))),
        Err(FolderError::Refused { folder, answer }) => {
            bail!("processed folder {folder:?}: {answer}")
        }
        Err(FolderError::Connection(e)) => Err(e),
    }
}

/// A folder the poller cannot use, retried on a schedule of its own.
///
/// Handled mail waits (flagged in the store as not yet done on the server) while new mail
/// keeps becoming tickets: nothing about the folder may stop the fetch. The retry is
/// bounded — one attempt at a time, exponential backoff from [`FOLDER_RETRY_START`] to
/// [`FOLDER_RETRY_CAP`] — and logged at WARN once per folder, not once per attempt.
struct FolderRetry {
    /// The folder that was refused, while it is.
    folder: Option<String>,
    /// No attempt before this.
    next_try: Instant,
    /// The wait after the next refusal.
    delay: Duration,
}

impl FolderRetry {
    fn new() -> FolderRetry {
        FolderRetry {
            folder: None,
            next_try: Instant::now(),
            delay: FOLDER_RETRY_START,
        }
    }

    /// May handled mail be flagged/moved now? (Always, unless a folder is being waited for.)
    fn may_try(&self) -> bool {
        self.folder.is_none() || Instant::now() >= self.next_try
    }

    /// A refused folder's retry is due.
    fn retry_due(&self) -> bool {
        self.folder.is_some() && Instant::now() >= self.next_try
    }

    /// `wait`, shortened to end when the retry is due.
    fn shorten(&self, wait: Duration) -> Duration {
        if self.folder.is_none() {
            return wait;
        }
        let until = self.next_try.saturating_duration_since(Instant::now());
        wait.min(until.max(Duration::from_secs(1)))
    }

    /// `folder` was found or created at connect: if it is the one waited for, the moves
    /// are tried at once (the operator fixed it) instead of at the end of the backoff.
    fn found(&mut self, folder: &str) {
        if self.folder.as_deref() == Some(folder) {
            self.next_try = Instant::now();
        }
    }

    fn failed(&mut self, mailbox: &str, folder: &str, answer: String) {
        metrics::counter!(
            "ticketgate_imap_folder_errors_total",
            "mailbox" => mailbox.to_owned(),
            "folder" => folder.to_owned()
        )
        .increment(1);
        if self.folder.as_deref() == Some(folder) {
            tracing::debug!(mailbox, folder, answer, retry_in = ?self.delay, "IMAP folder still refused");
        } else {
            tracing::warn!(
                mailbox,
                folder,
                answer,
                retry_in = ?self.delay,
                "IMAP folder cannot be used; new mail still becomes tickets, handled mail stays \
                 where it is and is flagged/moved once the folder works (retried in the background)"
            );
            self.folder = Some(folder.to_owned());
        }
        health::set_folder_problem(mailbox, Some(format!("{folder}: {answer}")));
        self.next_try = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(FOLDER_RETRY_CAP);
    }

    fn succeeded(&mut self, mailbox: &str, done: usize) {
        if let Some(folder) = self.folder.take() {
            tracing::info!(
                mailbox,
                folder,
                messages = done,
                "IMAP folder usable again; handled mail flagged and moved"
            );
            health::set_folder_problem(mailbox, None);
        }
        self.delay = FOLDER_RETRY_START;
    }
}

/// How handled mail leaves the inbox on this connection, and what was already said about it.
struct Mover<'a> {
    has_move: bool,
    /// The COPY fallback was logged (once per connection).
    told_fallback: bool,
    /// A refused UID EXPUNGE was logged (once per connection).
    told_expunge: bool,
    retry: &'a mut FolderRetry,
}

/// Flags handled messages `\Seen` (and moves them), then records that it was done.
///
/// A folder the server refuses is not an error of the session: it is recorded in
/// [`FolderRetry`] and tried again later, and this returns `Ok` so the caller fetches new
/// mail. The store knows which UIDs are handled (`server_done`), so a move that is retried
/// later never makes a ticket again; it only finishes the server side.
async fn flag_done(
    session: &mut ImapSession,
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    uidvalidity: u32,
    mover: &mut Mover<'_>,
) -> anyhow::Result<()> {
    if !mover.retry.may_try() {
        return Ok(());
    }
    let rows = pipeline
        .store()
        .unflagged_raw(&mb.name, uidvalidity)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    // A retry of the processed folder finds or creates it first: it may have been refused
    // at connect (CREATE) or removed since, and a MOVE to a missing folder only fails again.
    if let Some(folder) = &mb.processed_folder {
        if mover.retry.folder.as_deref() == Some(folder.as_str()) {
            match ensure_folder(session, folder).await {
                Ok(_) => {}
                Err(FolderError::Refused { folder, answer }) => {
                    mover.retry.failed(&mb.name, &folder, answer);
                    return Ok(());
                }
                Err(FolderError::Connection(e)) => return Err(e),
            }
        }
    }
    // Bounded commands (a UID set of at most FLAG_CHUNK messages), stopping at the first
    // refusal: the next chunk would only be refused the same way.
    for chunk in rows.chunks(FLAG_CHUNK) {
        let uids: Vec<u32> = chunk.iter().map(|r| r.1).collect();
        match flag_chunk(session, mb, &uids, mover).await {
            Ok(()) => {}
            Err(FolderError::Refused { folder, answer }) => {
                mover.retry.failed(&mb.name, &folder, answer);
                return Ok(());
            }
            Err(FolderError::Connection(e)) => return Err(e),
        }
        let ids: Vec<i64> = chunk.iter().map(|r| r.0).collect();
        pipeline.store().mark_server_done(&ids).await?;
    }
    mover.retry.succeeded(&mb.name, rows.len());
    Ok(())
}

/// The server said the target folder does not exist (it was removed since the connection
/// found or created it, or its LIST was stale): create it and try once more.
fn must_create(e: &FolderError) -> bool {
    matches!(e, FolderError::Refused { answer, .. } if answer.contains("[TRYCREATE]"))
}

async fn flag_chunk(
    session: &mut ImapSession,
    mb: &MailboxConfig,
    uids: &[u32],
    mover: &mut Mover<'_>,
) -> Result<(), FolderError> {
    let set = uid_set(uids);
    let set = set.as_str();
    refusable(&mb.folder, "UID STORE \\Seen", async {
        session
            .uid_store(set, "+FLAGS.SILENT (\\Seen)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    let Some(folder) = &mb.processed_folder else {
        return Ok(());
    };
    let wire = utf7::encode(folder);
    if mover.has_move {
        return match refusable(folder, "UID MOVE", session.uid_mv(set, &wire)).await {
            Err(e) if must_create(&e) => {
                refusable(folder, "CREATE", session.create(&wire)).await?;
                refusable(folder, "UID MOVE", session.uid_mv(set, &wire)).await
            }
            other => other,
        };
    }
    // Without MOVE (RFC 6851), COPY then mark \Deleted and expunge just those UIDs:
    // the message exists in the processed folder before it leaves the inbox.
    if !mover.told_fallback {
        tracing::info!(mailbox = %mb.name, folder, "the server has no MOVE: moving handled mail by COPY, \\Deleted and UID EXPUNGE");
        mover.told_fallback = true;
    }
    match refusable(folder, "UID COPY", session.uid_copy(set, &wire)).await {
        Err(e) if must_create(&e) => {
            refusable(folder, "CREATE", session.create(&wire)).await?;
            refusable(folder, "UID COPY", session.uid_copy(set, &wire)).await?;
        }
        other => other?,
    }
    // Copied: the message is safe in the processed folder. If it cannot leave the inbox,
    // copying it again on a retry would only duplicate it, so this is logged and counted
    // as done: it stays in both folders (flagged \Seen, and \Deleted if that was taken).
    let removed = async {
        refusable(&mb.folder, "UID STORE \\Deleted", async {
            session
                .uid_store(set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        // UID EXPUNGE needs UIDPLUS (RFC 4315); a plain EXPUNGE could remove messages
        // someone else marked \Deleted, so it is never sent instead.
        refusable(&mb.folder, "UID EXPUNGE", async {
            session
                .uid_expunge(set)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
    };
    let refusal = match removed.await {
        // Dovecot without the expunge right answers "OK Expunge ignored: Permission
        // denied": only the `* n EXPUNGE` responses say what left the inbox.
        Ok(expunged) if expunged.len() < uids.len() => Some((
            mb.folder.clone(),
            format!(
                "UID EXPUNGE removed {} of {} copied message(s)",
                expunged.len(),
                uids.len()
            ),
        )),
        Ok(_) => None,
        Err(FolderError::Refused { folder, answer }) => Some((folder, answer)),
        Err(e) => return Err(e),
    };
    match refusal {
        None => Ok(()),
        Some((inbox, answer)) => {
            if !mover.told_expunge {
                tracing::warn!(
                    mailbox = %mb.name,
                    folder = inbox,
                    answer,
                    "handled mail was copied to the processed folder but cannot be removed \
                     from the inbox: it stays in both"
                );
                mover.told_expunge = true;
            }
            Ok(())
        }
    }
}

/// `1:3,7,9:10` from sorted or unsorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_folder_is_retried_later_with_growing_waits_and_cleared_by_a_success() {
        let name = "imap-test-folder-retry";
        let mut retry = FolderRetry::new();
        assert!(retry.may_try() && !retry.retry_due(), "nothing refused yet");
        assert_eq!(
            retry.shorten(Duration::from_secs(60)),
            Duration::from_secs(60)
        );

        retry.failed(name, "Processed/x", "UID MOVE: Invalid mailbox name".into());
        assert!(!retry.may_try(), "no attempt before the retry is due");
        assert!(retry.shorten(Duration::from_secs(3600)) <= FOLDER_RETRY_START);
        assert_eq!(retry.delay, FOLDER_RETRY_START * 2, "the next wait doubles");
        let problem = health::snapshot()
            .into_iter()
            .find(|r| r.name == name)
            .and_then(|r| r.folder_problem);
        assert_eq!(
            problem.as_deref(),
            Some("Processed/x: UID MOVE: Invalid mailbox name")
        );
        for _ in 0..20 {
            retry.failed(name, "Processed/x", "UID MOVE: still".into());
        }
        assert_eq!(retry.delay, FOLDER_RETRY_CAP, "the wait is capped");

        retry.found("Another");
        assert!(!retry.may_try(), "another folder found changes nothing");
        retry.found("Processed/x");
        assert!(
            retry.may_try() && retry.retry_due(),
            "the folder found at connect is tried at once"
        );
        retry.succeeded(name, 3);
        assert!(retry.may_try() && !retry.retry_due());
        assert_eq!(retry.delay, FOLDER_RETRY_START);
        let problem = health::snapshot()
            .into_iter()
            .find(|r| r.name == name)
            .and_then(|r| r.folder_problem);
        assert_eq!(problem, None, "/healthz no longer reports it");
    }

    fn mailbox(poll_seconds: u64) -> MailboxConfig {
        serde_json::from_value(serde_json::json!({
            "name": "m", "host": "127.0.0.1", "port": 143, "tls": "none",
            "username": "u", "password": "p", "poll_seconds": poll_seconds,
        }))
        .expect("a mailbox")
    }

    #[test]
    fn while_idle_new_mail_is_still_looked_for_every_poll_seconds() {
        // Cyrus announces new mail to IDLE clients only every 60 s by default: the IDLE
        // wait ends after poll_seconds so that the next FETCH finds it.
        assert_eq!(next_check(&mailbox(10)), Duration::from_secs(10));
        assert_eq!(next_check(&mailbox(60)), Duration::from_secs(60));
        // RFC 2177's re-IDLE bound still applies to a long poll.
        assert_eq!(next_check(&mailbox(3600)), IDLE_TIMEOUT);
        // A folder retry due sooner shortens the wait (never below a second).
        let mut retry = FolderRetry::new();
        retry.failed("imap-test-next-check", "P", "refused".into());
        assert!(retry.shorten(next_check(&mailbox(3600))) <= FOLDER_RETRY_START);
        retry.next_try = Instant::now();
        assert_eq!(
            retry.shorten(next_check(&mailbox(60))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_servers_answer_is_taken_out_of_async_imaps_rendering() {
        assert_eq!(
            server_answer(
                r#"code: None, info: Some("[CANNOT] Invalid mailbox name (0.001 secs).")"#
            ),
            "[CANNOT] Invalid mailbox name (0.001 secs)."
        );
        assert_eq!(server_answer("Permission denied"), "Permission denied");
    }

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn a_survivor_holding_many_mailboxes_still_takes_over_within_ten_seconds() {
        use super::{lock_spread, LOCK_RETRY};
        use std::time::Duration;
        assert_eq!(lock_spread(0), Duration::ZERO);
        assert_eq!(lock_spread(2), Duration::from_secs(2));
        for held in [1, 10, 1000, usize::MAX] {
            // Worst case: the lock is freed just after a try; the next try comes after the
            // retry pause and the head start.
            assert!(
                lock_spread(held) + LOCK_RETRY < Duration::from_secs(10),
                "{held}"
            );
        }
    }
}
