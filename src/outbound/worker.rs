//! The outbox worker: claims due rows with a lease, sends the stored bytes, records every
//! attempt and the server's reply, retries temporary failures with exponential backoff.
//!
//! At least once: a row is marked sent only after the server's 2xx. If the process dies in
//! between, the row is sent again after its lease expires — the same bytes, so the same
//! Message-ID, and the recipient's client shows one message.
//!
//! Failover in seconds (docs/design-notes.md, "Failover in seconds"): the lease is short
//! (`outbox.lease_seconds`, 10 s by default) and a heartbeat renews it every third of that while
//! the rows are in hand, so a dead instance's rows are claimable again about one lease after it
//! died, however long its SMTP sends take. Leases rather than row locks held by an open
//! transaction: they work the same on SQLite and PostgreSQL, keep no transaction open across
//! network I/O, and give the holder a deadline it can check on its own clock — a row lock is
//! released by the server when *it* decides the connection is dead, which the holder cannot know.
//!
//! The rule that keeps two live instances from sending one row: a row is sent only while
//! its lease is known to be ours. When renewals fail (the database is unreachable from here
//! but maybe not from the other instances), sends not yet started are given up and sends in
//! flight are abandoned a fifth of a lease ([`LAPSE_MARGIN_PART`]) before it could run out;
//! the rows stay queued for whoever claims them next.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::OutboxConfig;
use crate::domain::Transport;
use crate::outbound::smtp::{SendResult, SmtpSender};
use crate::store::{now_millis, Attempt, Store};

/// Messages sent at the same time (each on its own pooled SMTP connection).
const CONCURRENCY: usize = 4;
/// Rows claimed (and then recorded) together.
const CLAIM_BATCH: i64 = 32;
/// Most results recorded by one commit (all that finished while the previous one ran).
const RECORD_BATCH: usize = 32;
/// The worker looks for due rows at least this often, also when nobody wakes it (rows
/// queued by another process, e.g. `ticketgate ingest`).
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// The longest pause after rounds that keep failing (the database is unreachable).
const FAILED_ROUND_PAUSE_CAP: Duration = Duration::from_secs(10);
/// The heartbeat renews the leases this many times per lease: two renewals may fail in a
/// row (a slow statement, a database restart) before sending stops.
const RENEWALS_PER_LEASE: u32 = 3;
/// The part of a lease never used for sending (lease / this): sends stop that long before
/// the lease could run out, to cover the moment between deciding to stop and the connection
/// being dropped.
const LAPSE_MARGIN_PART: u32 = 5;

/// Sends what is in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxWorker {
    store: Store,
    smtp: SmtpSender,
    /// `[pec_smtp]`, for rows queued with the PEC transport.
    pec_smtp: Option<SmtpSender>,
    cfg: Arc<OutboxConfig>,
    wake: Arc<Notify>,
    /// This worker's name on the leases it holds (`outbox.lease_owner`): the process id and
    /// random bytes, new at every start, so a restarted process never renews the rows its
    /// previous life held.
    owner: Arc<str>,
}

/// The rows a batch holds and until when, as the last successful claim or renewal says.
#[derive(Debug, Clone)]
struct Hold {
    /// Rows still ours: a renewal drops those it no longer finds ours.
    rows: BTreeSet<i64>,
    /// No sending from this instant: the lease's end, counted on this process's monotonic
    /// clock from just before the statement that set it, less the margin.
    stop_at: Instant,
    /// SQLite: one `serve` per database, so nobody else can claim these rows and the clock
    /// never stops a send (a database busy for a while must not abandon sends for nothing).
    exclusive: bool,
}

impl Hold {
    /// Whether row `id` may still be sent at `now`.
    fn keeps(&self, id: i64, now: Instant) -> bool {
        self.rows.contains(&id) && (self.exclusive || now < self.stop_at)
    }
}

/// Completes when row `id` may no longer be sent: it left the hold, or the hold's
/// `stop_at` passed without a renewal moving it.
async fn lapse(mut hold: watch::Receiver<Hold>, id: i64) {
    loop {
        let stop_at = {
            let h = hold.borrow_and_update();
            if !h.rows.contains(&id) {
                return;
            }
            (!h.exclusive).then_some(h.stop_at)
        };
        let deadline = async {
            match stop_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = deadline => {
                if !hold.borrow().keeps(id, Instant::now()) {
                    return;
                }
            }
            changed = hold.changed() => {
                // The sender lives until the batch is recorded; gone means nothing holds
                // the row any more.
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A lease owner name: `<pid>-<12 hex digits>`.
fn new_owner() -> String {
    let mut bytes = [0u8; 6];
    // Without randomness the pid alone still names this process among live ones.
    let _ = getrandom::fill(&mut bytes);
    format!("{}-{}", std::process::id(), hex::encode(bytes))
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        smtp: SmtpSender,
        pec_smtp: Option<SmtpSender>,
        cfg: Arc<OutboxConfig>,
        wake: Arc<Notify>,
    ) -> Self {
        OutboxWorker {
            store,
            smtp,
            pec_smtp,
            cfg,
            wake,
            owner: new_owner().into(),
        }
    }

    /// The name this worker writes into `outbox.lease_owner` of the rows it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn lease(&self) -> Duration {
        // check-config keeps it at 3 s or more; the floor keeps the arithmetic below sane.
        Duration::from_secs(self.cfg.lease_seconds.max(3))
    }

    /// Sends every row due now, once. Returns how many attempts were recorded.
    ///
    /// Rows are claimed a batch at a time and their results recorded a batch at a time: each
    /// commit costs an fsync, and two per mail would cap sending at a few hundred a second.
    /// A crash can then leave up to a batch sent but not recorded: those rows are sent again
    /// (same bytes, same Message-ID), which at-least-once delivery allows.
    pub async fn run_pending(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let lease = self.lease();
            let margin = lease / LAPSE_MARGIN_PART;
            let asked = Instant::now();
            let claimed = self
                .store
                .claim_due_outbox(now_millis(), &self.owner, millis(lease), CLAIM_BATCH)
                .await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            let (hold, held) = watch::channel(Hold {
                rows: claimed.iter().copied().collect(),
                stop_at: asked + lease - margin,
                exclusive: self.store.is_sqlite(),
            });
            // Results are recorded as the sends finish, one commit for whatever finished
            // meanwhile, not once for the whole claimed batch: a process killed between a
            // server's 250 and the commit that records it sends that mail again after the
            // restart, and that window is now one commit instead of a batch of 32 sends (the
            // kill rehearsal of tests/faults.rs; figures in BENCHMARKS.md). The recorder runs
            // beside the sends, so a slow commit never stops a send from being abandoned
            // before its lease could lapse.
            let (finished, mut results) = tokio::sync::mpsc::unbounded_channel::<Attempt>();
            let sending = async move {
                let mut sends = std::pin::pin!(futures::stream::iter(claimed)
                    .map(|id| self.send_one(id, held.clone()))
                    .buffer_unordered(CONCURRENCY)
                    .filter_map(|a| async move { a }));
                while let Some(attempt) = sends.next().await {
                    // The recorder is gone only after a database error: the row stays
                    // leased and is sent again once the lease lapses (same bytes).
                    let _ = finished.send(attempt);
                }
            };
            let recording = async {
                let mut recorded = 0;
                let mut attempts = Vec::new();
                while results.recv_many(&mut attempts, RECORD_BATCH).await > 0 {
                    // Recorded while the heartbeat still runs: a row sent must not look free
                    // to another instance before its result is written.
                    self.store.record_attempts(&attempts).await?;
                    recorded += attempts.len();
                    attempts.clear();
                }
                anyhow::Ok(recorded)
            };
            let batch = async {
                let ((), recorded) = tokio::join!(sending, recording);
                recorded
            };
            let recorded = self.renewing(&hold, batch).await?;
            total += recorded;
            if recorded == 0 {
                // Every row was given up (leases lost): let `run` wait before claiming again.
                return Ok(total);
            }
        }
    }

    /// Runs `work` while renewing this worker's leases every lease / [`RENEWALS_PER_LEASE`],
    /// telling `hold` which rows are still ours and until when.
    async fn renewing<T>(&self, hold: &watch::Sender<Hold>, work: impl Future<Output = T>) -> T {
        let lease = self.lease();
        let margin = lease / LAPSE_MARGIN_PART;
        let every = lease / RENEWALS_PER_LEASE;
        let heartbeat = async {
            loop {
                tokio::time::sleep(every).await;
                let asked = Instant::now();
                let renewed = tokio::time::timeout(
                    every,
                    self.store
                        .renew_outbox_leases(&self.owner, now_millis(), millis(lease)),
                )
                .await;
                match renewed {
                    Ok(Ok(ids)) => hold.send_modify(|h| {
                        let before = h.rows.len();
                        if !h.exclusive {
                            h.rows.retain(|id| ids.binary_search(id).is_ok());
                        }
                        h.stop_at = asked + lease - margin;
                        if h.rows.len() < before {
                            tracing::warn!(
                                lost = before - h.rows.len(),
                                "outbox leases ran out before they were renewed: those rows are left to whoever claims them"
                            );
                        }
                    }),
                    Ok(Err(e)) => {
                        metrics::counter!("ticketgate_outbox_lease_renewal_failures_total")
                            .increment(1);
                        tracing::warn!(error = %e, "cannot renew the outbox leases: sending stops before they could run out");
                    }
                    Err(_) => {
                        metrics::counter!("ticketgate_outbox_lease_renewal_failures_total")
                            .increment(1);
                        tracing::warn!(timeout = ?every, "renewing the outbox leases took too long: sending stops before they could run out");
                    }
                }
            }
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => return out,
            () = heartbeat => {}
        }
        // The heartbeat never ends; were it to, the batch still finishes (without renewals,
        // its sends stop when the lease could run out).
        work.await
    }

    /// Sends one claimed row while `hold` keeps it; the attempt to record, or `None` when
    /// nothing is to be recorded (the row vanished, could not be read, or its lease could run
    /// out before the send ended — then it stays queued for the next claim).
    async fn send_one(&self, outbox_id: i64, hold: watch::Receiver<Hold>) -> Option<Attempt> {
        let given_up = || {
            tracing::warn!(
                outbox_id,
                "outbox lease could run out before the send: not sent now, left queued"
            );
        };
        // Checked before reading the row too: with the database unreachable that read would
        // only wait for the pool's timeout.
        if !hold.borrow().keeps(outbox_id, Instant::now()) {
            given_up();
            return None;
        }
        let item = match self.store.outbox_item(outbox_id).await {
            Ok(Some(item)) => item,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(outbox_id, error = %e, "cannot read an outbox row; it is sent later");
                return None;
            }
        };
        if !hold.borrow().keeps(outbox_id, Instant::now()) {
            given_up();
            return None;
        }
        let sender = match item.transport {
            Transport::Pec => self.pec_smtp.as_ref(),
            Transport::Smtp => Some(&self.smtp),
        };
        let result = match (sender, &item.recipients) {
            // A stored list that is not a list of valid addresses is never sent to a guess.
            (_, Err(problem)) => SendResult::Permanent(format!("not sent: {problem}")),
            (Some(s), Ok(recipients)) => {
                let stop = lapse(hold, outbox_id);
                match s
                    .send_until(&item.envelope_from, recipients, &item.raw, stop)
                    .await
                {
                    Some(result) => result,
                    None => {
                        metrics::counter!("ticketgate_outbox_abandoned_total").increment(1);
                        tracing::warn!(
                            outbox_id,
                            message_id = item.message_id,
                            "outbox lease could run out during the send: send abandoned, the row stays queued"
                        );
                        return None;
                    }
                }
            }
            // check-config refuses a PEC mailbox without [pec_smtp]; a row queued before the
            // section was removed waits (temporary) instead of leaving by the wrong route.
            (None, Ok(_)) => {
                SendResult::Temporary("no [pec_smtp] configured for a PEC mail".to_owned())
            }
        };
        let at = now_millis();
        let (ok, reply, next_attempt_at) = match result {
            SendResult::Accepted(reply) => {
                metrics::counter!("ticketgate_outbox_sent_total").increment(1);
                tracing::info!(outbox_id, message_id = item.message_id, %reply, "mail sent");
                (true, reply, None)
            }
            SendResult::Temporary(reply) => {
                let attempts = item.attempts + 1;
                metrics::counter!("ticketgate_outbox_retries_total").increment(1);
                let next = if attempts >= i64::from(self.cfg.max_attempts) {
                    tracing::error!(outbox_id, %reply, attempts, "giving up on mail after repeated temporary failures");
                    None
                } else {
                    let delay = self.backoff(attempts);
                    tracing::warn!(outbox_id, %reply, retry_in = ?delay, "temporary SMTP failure");
                    Some(at + delay.as_millis() as i64)
                };
                (false, reply, next)
            }
            SendResult::Permanent(reply) => {
                metrics::counter!("ticketgate_outbox_failed_total").increment(1);
                tracing::error!(outbox_id, %reply, "permanent SMTP failure");
                (false, reply, None)
            }
        };
        Some(Attempt {
            outbox_id,
            at,
            ok,
            reply,
            next_attempt_at,
        })
    }

    /// `retry_initial_seconds * 2^(attempts-1)`, capped at `retry_max_seconds`.
    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        let secs = self
            .cfg
            .retry_initial_seconds
            .saturating_mul(1u64 << exp)
            .min(self.cfg.retry_max_seconds);
        Duration::from_secs(secs.max(1))
    }

    /// Sends until `shutdown`; wakes on [`Notify`] from the pipeline, on the next due retry,
    /// or every [`IDLE_RECHECK`].
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(owner = %self.owner, lease = ?self.lease(), "outbox worker started");
        let mut failed_rounds: u32 = 0;
        loop {
            if let Err(e) = self.run_pending().await {
                failed_rounds = failed_rounds.saturating_add(1);
                // Backs off (1, 2, 4, 8, then every 10 s) instead of retrying every few
                // milliseconds: a database that fails every round would fill the log with
                // the same line twenty times a second (seen in the disk-error run of
                // docs/design-notes.md, "Fault rehearsal").
                let pause = IDLE_RECHECK
                    .saturating_mul(1 << (failed_rounds - 1).min(4))
                    .min(FAILED_ROUND_PAUSE_CAP);
                tracing::error!(error = format!("{e:#}"), retry_in = ?pause, failed_rounds, "outbox worker round failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
            failed_rounds = 0;
            let mut wait = IDLE_RECHECK;
            if let Ok(Some(due)) = self.store.next_outbox_due().await {
                let ms = (due - now_millis()).max(0) as u64;
                wait = wait.min(Duration::from_millis(ms));
            }
            // A floor, so a row that is due but cannot be claimed never spins the loop.
            let wait = wait.max(Duration::from_millis(50));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(rows: &[i64], stop_in: Duration) -> Hold {
        Hold {
            rows: rows.iter().copied().collect(),
            stop_at: Instant::now() + stop_in,
            exclusive: false,
        }
    }

    #[test]
    fn a_row_is_kept_only_while_held_and_before_the_stop() {
        let h = hold(&[1, 2], Duration::from_secs(60));
        let now = Instant::now();
        assert!(h.keeps(1, now));
        assert!(!h.keeps(3, now), "a row the renewal did not return");
        assert!(
            !h.keeps(1, h.stop_at),
            "the stop instant itself is too late"
        );
    }

    #[tokio::test]
    async fn a_send_is_stopped_when_its_row_is_no_longer_ours() {
        let (tx, rx) = watch::channel(hold(&[1, 2], Duration::from_secs(3600)));
        let stop = tokio::spawn(lapse(rx, 2));
        tx.send_modify(|h| {
            h.rows.remove(&2);
        });
        // A deadline for the condition, not a measure: it fires at once.
        tokio::time::timeout(Duration::from_secs(30), stop)
            .await
            .expect("the lapse fired")
            .unwrap();
    }

    #[tokio::test]
    async fn a_send_is_stopped_when_the_lease_could_have_run_out() {
        let (_tx, rx) = watch::channel(hold(&[1], Duration::ZERO));
        tokio::time::timeout(Duration::from_secs(30), lapse(rx, 1))
            .await
            .expect("the lapse fired");
    }

    #[tokio::test]
    async fn a_renewed_row_is_not_stopped_by_its_former_deadline() {
        let (tx, rx) = watch::channel(hold(&[1], Duration::from_millis(200)));
        tx.send_modify(|h| h.stop_at = Instant::now() + Duration::from_secs(3600));
        let out = tokio::time::timeout(Duration::from_secs(1), lapse(rx, 1)).await;
        assert!(
            out.is_err(),
            "renewed: still sending after the first deadline"
        );
    }

    #[tokio::test]
    async fn on_sqlite_the_clock_never_stops_a_send_but_a_lost_row_still_does() {
        let mut h = hold(&[1], Duration::ZERO);
        h.exclusive = true;
        assert!(h.keeps(1, Instant::now() + Duration::from_secs(3600)));
        let (tx, rx) = watch::channel(h);
        let out = tokio::time::timeout(Duration::from_millis(300), lapse(rx.clone(), 1)).await;
        assert!(out.is_err(), "one instance: nobody else can take the row");
        let stop = tokio::spawn(lapse(rx, 1));
        tx.send_modify(|h| {
            h.rows.remove(&1);
        });
        tokio::time::timeout(Duration::from_secs(30), stop)
            .await
            .expect("the lapse fired")
            .unwrap();
    }

    #[test]
    fn owners_differ_between_workers() {
        assert_ne!(new_owner(), new_owner());
    }
}
