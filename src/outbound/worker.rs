//! The outbox worker: claims due rows with a lease, sends the stored bytes, records every
//! attempt and the server's reply, retries temporary failures with exponential backoff.
//!
//! At least once: a row is marked sent only after the server's 2xx. If the process dies in
//! between, the row is sent again after its lease expires — the same bytes, so the same
//! Message-ID, and the recipient's client shows one message.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::OutboxConfig;
use crate::outbound::smtp::{SendResult, SmtpSender};
use crate::store::{now_millis, Attempt, Store};

/// Messages sent at the same time (each on its own pooled SMTP connection).
const CONCURRENCY: usize = 4;
/// Rows claimed (and then recorded) together.
const CLAIM_BATCH: i64 = 32;
/// The worker looks for due rows at least this often, also when nobody wakes it (rows
/// queued by another process, e.g. `ticketgate ingest`).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Sends what is in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxWorker {
    store: Store,
    smtp: SmtpSender,
    /// `[pec_smtp]`, for rows queued with the PEC transport.
    pec_smtp: Option<SmtpSender>,
    cfg: Arc<OutboxConfig>,
    wake: Arc<Notify>,
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
        }
    }

    /// Sends every row due now, once. Returns how many attempts were made.
    ///
    /// Rows are claimed a batch at a time and their results recorded a batch at a time: each
    /// commit costs an fsync, and two per mail would cap sending at a few hundred a second.
    /// A crash can then leave up to a batch sent but not recorded: those rows are sent again
    /// (same bytes, same Message-ID), which at-least-once delivery allows.
    pub async fn run_pending(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let now = now_millis();
            let lease =
                i64::try_from(self.cfg.lease_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
            let claimed = self
                .store
                .claim_due_outbox(now, now.saturating_add(lease), CLAIM_BATCH)
                .await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            total += claimed.len();
            let attempts: Vec<anyhow::Result<Option<Attempt>>> = futures::stream::iter(claimed)
                .map(|id| self.send_one(id))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let attempts: Vec<Attempt> = attempts
                .into_iter()
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            self.store.record_attempts(&attempts).await?;
        }
    }

    /// Sends one claimed row; the attempt to record (None if the row vanished).
    async fn send_one(&self, outbox_id: i64) -> anyhow::Result<Option<Attempt>> {
        let Some(item) = self.store.outbox_item(outbox_id).await? else {
            return Ok(None);
        };
        let sender = match item.transport.as_str() {
            "pec" => self.pec_smtp.as_ref(),
            _ => Some(&self.smtp),
        };
        let result = match (sender, &item.recipients) {
            // A stored list that is not a list of valid addresses is never sent to a guess.
            (_, Err(problem)) => SendResult::Permanent(format!("not sent: {problem}")),
            (Some(s), Ok(recipients)) => s.send(&item.envelope_from, recipients, &item.raw).await,
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
        Ok(Some(Attempt {
            outbox_id,
            at,
            ok,
            reply,
            next_attempt_at,
        }))
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
        loop {
            if let Err(e) = self.run_pending().await {
                tracing::error!(error = format!("{e:#}"), "outbox worker round failed");
            }
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
