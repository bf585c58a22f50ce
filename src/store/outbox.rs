//! The outbox: rows the worker claims with a lease, sends, and records attempt by attempt.
//!
//! Claiming is a conditional UPDATE on `lease_until` (SQLite has no `SKIP LOCKED`); a row
//! whose worker died becomes claimable again when its lease runs out. Leases are short and
//! renewed by their holder (`lease_owner`) while it sends: a dead worker's rows are free again
//! within seconds. On PostgreSQL, where several instances share the rows, lease times are
//! read from the database's clock, so instances whose clocks disagree never cut each other's
//! leases short.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_millis, nul_free, parsed, Result, Store, Tx};
use crate::domain::{EmailAddress, OutboxState, Transport};

/// A row due for sending.
#[derive(Debug, Clone, Copy)]
pub struct DueOutbox {
    pub outbox_id: i64,
}

/// What the worker needs to send one row.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub outbox_id: i64,
    pub message_id: i64,
    pub envelope_from: String,
    /// The envelope recipients, each one valid address; `Err` with the reason when the stored
    /// list is not usable (the row is then failed, never sent to a guess).
    pub recipients: std::result::Result<Vec<EmailAddress>, String>,
    pub raw: Vec<u8>,
    pub attempts: i64,
    /// Which account sends it.
    pub transport: Transport,
}

/// The condition, on a candidate row `outbox`, that no earlier row of the same ticket for the
/// same recipients is still queued: mail reaches each reader of a ticket in the order it was
/// written (acknowledgment before answer), also after an outage, when the backoff of the rows
/// written first has grown longer than that of the rows written last (docs/design-notes.md,
/// "Fault rehearsal"). A row
/// still queued blocks the next one also while it is leased (being sent). Rows of no ticket
/// (account mail) never wait; a row that failed for good stops blocking.
///
/// Written with CROSS JOINs on purpose: SQLite takes them as the join order (PostgreSQL
/// reorders them freely). With plain JOINs SQLite looked `earlier` up before `em` through
/// the `outbox_due (state)` index, reading every queued row for every candidate row: with
/// 8,000 rows queued the worker sent 32 mails a second at full CPU (found by the release
/// drain benchmark). In this order `earlier` is found by `outbox_message (message_id)`.
macro_rules! no_earlier_queued_for_same_reader {
    () => {
        " AND NOT EXISTS (SELECT 1 FROM message AS m \
         CROSS JOIN message AS em CROSS JOIN outbox AS earlier \
         WHERE m.message_id = outbox.message_id AND em.ticket_id = m.ticket_id \
         AND earlier.message_id = em.message_id AND earlier.outbox_id < outbox.outbox_id \
         AND earlier.state = 'queued' AND earlier.recipients = outbox.recipients)"
    };
}

impl Store {
    /// Queued rows whose next attempt is due, oldest first, each only once the rows written
    /// before it for the same ticket and recipients are done.
    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<DueOutbox>> {
        let rows = sqlx::query(concat!(
            "SELECT outbox_id FROM outbox WHERE state = 'queued' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $1)",
            no_earlier_queued_for_same_reader!(),
            " ORDER BY outbox_id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueOutbox {
                    outbox_id: r.try_get("outbox_id")?,
                })
            })
            .collect()
    }

    /// Earliest next attempt among queued rows, to know how long the worker may sleep.
    pub async fn next_outbox_due(&self) -> Result<Option<i64>> {
        // Rows waiting behind an earlier one are left out: they become due when it is done
        // (the worker runs again right after recording a send), and counting them would
        // wake the worker for nothing every few milliseconds during an outage.
        let row = sqlx::query(concat!(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
             THEN lease_until ELSE next_attempt_at END) AS due FROM outbox \
             WHERE state = 'queued'",
            no_earlier_queued_for_same_reader!()
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("due")?)
    }

    /// Claims up to `limit` rows due at `now` for `owner`, for `lease_ms`; returns the ids
    /// taken.
    ///
    /// PostgreSQL (several instances): one statement that locks the rows it picks and skips
    /// rows another instance is claiming at the same moment (`FOR UPDATE SKIP LOCKED`), so
    /// workers never wait on each other nor take the same row; the lease is measured on the
    /// database's clock (see [`Store::renew_outbox_leases`]). SQLite (one process, so one
    /// clock): the due rows, then a conditional update per row in one transaction.
    pub async fn claim_due_outbox(
        &self,
        now: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        if !self.sqlite {
            let rows = sqlx::query(concat!(
                "UPDATE outbox SET lease_owner = $1, \
                 lease_until = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + $2 \
                 WHERE outbox_id IN ( \
                 SELECT outbox_id FROM outbox WHERE state = 'queued' AND next_attempt_at <= $3 \
                 AND (lease_until IS NULL \
                 OR lease_until < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
                no_earlier_queued_for_same_reader!(),
                " ORDER BY outbox_id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING outbox_id"
            ))
            .bind(owner)
            .bind(lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            return outbox_ids(&rows);
        }
        let due: Vec<i64> = self
            .due_outbox(now, limit)
            .await?
            .into_iter()
            .map(|d| d.outbox_id)
            .collect();
        if due.is_empty() {
            return Ok(due);
        }
        self.claim_outbox_batch_for(Some(owner), &due, now, now.saturating_add(lease_ms))
            .await
    }

    /// Extends by `lease_ms` the leases `owner` still holds (queued rows whose lease has not
    /// run out); returns their ids. A row missing from the answer is no longer ours — its
    /// lease ran out, maybe another worker has it — and must not be sent by `owner`.
    ///
    /// On PostgreSQL both the test and the new end are taken from the database's clock, as
    /// in [`Store::claim_due_outbox`]: the holder counts its lease from just before the
    /// statement on its own monotonic clock, which can only end it early, never late. On
    /// SQLite `now` (one process) is the clock.
    pub async fn renew_outbox_leases(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<i64>> {
        let rows = if self.sqlite {
            sqlx::query(
                "UPDATE outbox SET lease_until = $1 WHERE lease_owner = $2 \
                 AND state = 'queued' AND lease_until >= $3 RETURNING outbox_id",
            )
            .bind(now.saturating_add(lease_ms))
            .bind(owner)
            .bind(now)
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query(
                "UPDATE outbox \
                 SET lease_until = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + $1 \
                 WHERE lease_owner = $2 AND state = 'queued' \
                 AND lease_until >= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT \
                 RETURNING outbox_id",
            )
            .bind(lease_ms)
            .bind(owner)
            .fetch_all(&self.pool)
            .await?
        };
        outbox_ids(&rows)
    }

    /// Takes the row for `lease_until`; false if another worker holds it or it is done.
    pub async fn claim_outbox(&self, outbox_id: i64, now: i64, lease_until: i64) -> Result<bool> {
        Ok(!self
            .claim_outbox_batch(&[outbox_id], now, lease_until)
            .await?
            .is_empty())
    }

    /// Takes several rows in one transaction (one commit, one fsync); returns those taken.
    pub async fn claim_outbox_batch(
        &self,
        outbox_ids: &[i64],
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<i64>> {
        self.claim_outbox_batch_for(None, outbox_ids, now, lease_until)
            .await
    }

    /// [`Store::claim_outbox_batch`] recording `owner` as the holder.
    async fn claim_outbox_batch_for(
        &self,
        owner: Option<&str>,
        outbox_ids: &[i64],
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let mut claimed = Vec::with_capacity(outbox_ids.len());
        for &id in outbox_ids {
            let done = sqlx::query(
                "UPDATE outbox SET lease_until = $1, lease_owner = $2 WHERE outbox_id = $3 \
                 AND state = 'queued' AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(lease_until)
            .bind(owner)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                claimed.push(id);
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    pub async fn outbox_item(&self, outbox_id: i64) -> Result<Option<OutboxItem>> {
        let row = sqlx::query(
            "SELECT o.outbox_id, o.message_id, o.envelope_from, o.recipients, m.raw, o.attempts, \
             o.transport FROM outbox o JOIN message m ON m.message_id = o.message_id WHERE o.outbox_id = $1",
        )
        .bind(outbox_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let recipients: String = r.try_get("recipients")?;
        Ok(Some(OutboxItem {
            outbox_id: r.try_get("outbox_id")?,
            message_id: r.try_get("message_id")?,
            envelope_from: r.try_get("envelope_from")?,
            recipients: decode_recipients(&recipients),
            raw: r.try_get::<Option<Vec<u8>>, _>("raw")?.unwrap_or_default(),
            attempts: r.try_get("attempts")?,
            transport: parsed(&r, "transport")?,
        }))
    }

    /// Records one attempt. `next_attempt_at = None` with `ok = false` means given up
    /// (permanent failure); `ok = true` means sent.
    pub async fn record_attempt(
        &self,
        outbox_id: i64,
        at: i64,
        ok: bool,
        reply: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<()> {
        self.record_attempts(&[Attempt {
            outbox_id,
            at,
            ok,
            reply: reply.to_owned(),
            next_attempt_at,
        }])
        .await
    }

    /// Records several attempts in one transaction.
    pub async fn record_attempts(&self, attempts: &[Attempt]) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for a in attempts {
            record_in(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Queues an outbound message for the outbox worker: due now, sent by `transport`.
    pub async fn enqueue(
        tx: &mut Tx,
        message_id: i64,
        envelope_from: &str,
        recipients: &[EmailAddress],
        transport: Transport,
    ) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO outbox (message_id, envelope_from, recipients, state, next_attempt_at, \
             created_at, transport) VALUES ($1, $2, $3, 'queued', $4, $4, $5)",
        )
        .bind(message_id)
        .bind(nul_free(envelope_from))
        .bind(encode_recipients(recipients))
        .bind(now)
        .bind(transport.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The `outbox_id` column of each row, in ascending order.
fn outbox_ids(rows: &[AnyRow]) -> Result<Vec<i64>> {
    let mut ids = rows
        .iter()
        .map(|r| r.try_get("outbox_id"))
        .collect::<Result<Vec<i64>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// The `recipients` column: a JSON array of addresses, one element per envelope recipient.
///
/// A list, never a joined string: splitting a string on commas once turned one hostile
/// "address" (`<a@x,b@y,…>`) into two hundred recipients. Every element must still parse as
/// one address. Rows written before migration 0005 hold a plain string; ticketgate only ever
/// queued one recipient per row then, so such a row is sent when the whole string is one
/// address and failed otherwise (a comma in it can only be that hostile kind).
pub fn encode_recipients(recipients: &[EmailAddress]) -> String {
    let list: Vec<&str> = recipients.iter().map(EmailAddress::as_str).collect();
    serde_json::Value::from(list).to_string()
}

/// The inverse of [`encode_recipients`], also reading rows from before migration 0005.
pub fn decode_recipients(stored: &str) -> std::result::Result<Vec<EmailAddress>, String> {
    let items: Vec<String> = if stored.trim_start().starts_with('[') {
        serde_json::from_str(stored)
            .map_err(|e| format!("the stored recipient list is not a JSON list: {e}"))?
    } else {
        vec![stored.to_owned()]
    };
    if items.is_empty() {
        return Err("no recipient".to_owned());
    }
    items
        .iter()
        .map(|a| {
            EmailAddress::parse(a)
                .map_err(|e| format!("recipient {a:?} is not one valid address: {e}"))
        })
        .collect()
}

/// One outbox row's state and lease, as [`Store::outbox_leases`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxLease {
    pub outbox_id: i64,
    pub state: OutboxState,
    /// The worker holding the row (see `OutboxWorker::owner`), if any.
    pub lease_owner: Option<String>,
    /// Unix millis when the lease runs out (PostgreSQL: on the database's clock).
    pub lease_until: Option<i64>,
    pub sent_at: Option<i64>,
    /// The Message-ID header of the mail the row sends.
    pub rfc_message_id: Option<String>,
}

/// The result of one SMTP attempt, as [`Store::record_attempts`] stores it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outbox_id: i64,
    pub at: i64,
    pub ok: bool,
    /// The server's reply, or the error.
    pub reply: String,
    /// When to try again; `None` with `ok = false` means given up.
    pub next_attempt_at: Option<i64>,
}

async fn record_in(tx: &mut Tx, a: &Attempt) -> Result<()> {
    sqlx::query("INSERT INTO delivery_attempt (outbox_id, at, ok, reply) VALUES ($1, $2, $3, $4)")
        .bind(a.outbox_id)
        .bind(a.at)
        .bind(i64::from(a.ok))
        .bind(nul_free(&a.reply))
        .execute(&mut **tx)
        .await?;
    let state = match (a.ok, a.next_attempt_at) {
        (true, _) => OutboxState::Sent,
        (false, Some(_)) => OutboxState::Queued,
        (false, None) => OutboxState::Failed,
    };
    let sent_at = a.ok.then_some(a.at);
    sqlx::query(
        "UPDATE outbox SET state = $1, attempts = attempts + 1, last_reply = $2, \
         lease_until = NULL, lease_owner = NULL, next_attempt_at = $3, \
         sent_at = COALESCE($4, sent_at) WHERE outbox_id = $5",
    )
    .bind(state.as_str())
    .bind(nul_free(&a.reply))
    .bind(a.next_attempt_at.unwrap_or(a.at))
    .bind(sent_at)
    .bind(a.outbox_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Drops every lease. Only for a single-instance deployment at start-up (SQLite: one
    /// `serve` per database), where any lease found belongs to a process that died; the
    /// rows it held are sent again — the same bytes, so the same Message-ID.
    pub async fn release_outbox_leases(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET lease_until = NULL, lease_owner = NULL \
             WHERE state = 'queued' AND lease_until IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every outbox row with its lease and the Message-ID it carries, oldest first: who holds
    /// what, for tests and for an operator looking at a failover.
    pub async fn outbox_leases(&self) -> Result<Vec<OutboxLease>> {
        let rows = sqlx::query(
            "SELECT o.outbox_id, o.state, o.lease_owner, o.lease_until, o.sent_at, \
             m.rfc_message_id FROM outbox o JOIN message m ON m.message_id = o.message_id \
             ORDER BY o.outbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxLease {
                    outbox_id: r.try_get("outbox_id")?,
                    state: parsed(r, "state")?,
                    lease_owner: r.try_get("lease_owner")?,
                    lease_until: r.try_get("lease_until")?,
                    sent_at: r.try_get("sent_at")?,
                    rfc_message_id: r.try_get("rfc_message_id")?,
                })
            })
            .collect()
    }

    /// Counts of outbox rows by state, for `/metrics` and tests.
    pub async fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((parsed(r, "state")?, r.try_get("n")?)))
            .collect()
    }
}

/// What waits in the outbox, for `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Rows still to send (`queued`, due or waiting for a retry).
    pub queued: i64,
    /// When the oldest of them was queued (unix millis).
    pub oldest_queued_at: Option<i64>,
}

impl Store {
    /// How many rows are queued and since when the oldest waits.
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS queued, MIN(created_at) AS oldest_queued_at FROM outbox \
             WHERE state = 'queued'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxBacklog {
            queued: row.try_get("queued")?,
            oldest_queued_at: row.try_get("oldest_queued_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> EmailAddress {
        EmailAddress::parse(a).unwrap()
    }

    #[test]
    fn recipients_are_stored_as_a_list_and_read_back_as_one() {
        let list = [addr("anna@citizen.test"), addr("luca@citizen.test")];
        let stored = encode_recipients(&list);
        assert_eq!(stored, r#"["anna@citizen.test","luca@citizen.test"]"#);
        assert_eq!(decode_recipients(&stored), Ok(list.to_vec()));
    }

    #[test]
    fn a_row_from_before_the_list_sends_when_it_holds_one_address() {
        assert_eq!(
            decode_recipients("anna@citizen.test"),
            Ok(vec![addr("anna@citizen.test")])
        );
    }

    #[test]
    fn a_comma_joined_string_is_never_split_into_recipients() {
        for stored in [
            "a@x.test,b@y.test",
            "<a@x.test,b@y.test>",
            r#"["a@x.test,b@y.test"]"#,
            "[]",
            "[not json",
        ] {
            assert!(decode_recipients(stored).is_err(), "{stored}");
        }
    }
}
