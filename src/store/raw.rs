//! Raw messages and IMAP checkpoints: the "raw first" half of the flow.

use sqlx::Row;

use super::{now_millis, nul_free, parsed, Result, Store, Tx};
use crate::domain::RawState;

/// One message as fetched, ready to be stored.
#[derive(Debug, Clone)]
pub struct RawIn {
    pub uid: Option<u32>,
    pub bytes: Vec<u8>,
    /// Full size of the message on the server (larger than `bytes` when only the header was
    /// fetched because the message is over the size limit).
    pub size: u64,
    pub complete: bool,
}

/// A stored raw message.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub raw_message_id: i64,
    pub mailbox: String,
    pub uid: Option<i64>,
    pub sha256: String,
    pub size: i64,
    pub complete: bool,
    pub bytes: Vec<u8>,
    pub received_at: i64,
    pub state: RawState,
    /// Processing attempts started (see [`Store::count_attempts`]).
    pub attempts: i64,
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Store {
    /// `(UIDVALIDITY, last UID stored)` of a mailbox, if it was ever synced.
    pub async fn checkpoint(&self, mailbox: &str) -> Result<Option<(u32, u32)>> {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = $1")
            .bind(nul_free(mailbox))
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let uidvalidity: i64 = r.try_get("uidvalidity")?;
        let last_uid: i64 = r.try_get("last_uid")?;
        Ok(Some((uidvalidity as u32, last_uid as u32)))
    }

    /// Sets the checkpoint (used on a UIDVALIDITY change, to resync from the start).
    pub async fn set_checkpoint(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        last_uid: u32,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        upsert_checkpoint(&mut tx, mailbox, uidvalidity, last_uid).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a batch of fetched messages and advances the checkpoint, in one transaction.
    /// Returns the ids of the rows stored now (a UID stored before is skipped: a crash
    /// between storing and advancing cannot happen, they commit together, but a resync can
    /// fetch the same UID again).
    pub async fn store_raw_batch(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        batch: &[RawIn],
        last_uid: u32,
    ) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        let mut ids = Vec::with_capacity(batch.len());
        for m in batch {
            if let Some(id) = insert_raw(&mut tx, mailbox, Some(uidvalidity), m, now).await? {
                ids.push(id);
            }
        }
        upsert_checkpoint(&mut tx, mailbox, uidvalidity, last_uid).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Stores one message that came through `ingest` (no UID).
    pub async fn store_raw_ingested(&self, mailbox: &str, m: &RawIn) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id = insert_raw(&mut tx, mailbox, None, m, now_millis()).await?;
        tx.commit().await?;
        // Without a UID the unique key (mailbox, uidvalidity, uid) never conflicts.
        id.ok_or(super::StoreError::Db(sqlx::Error::RowNotFound))
    }

    pub async fn raw(&self, raw_message_id: i64) -> Result<Option<RawRow>> {
        let row = sqlx::query(
            "SELECT raw_message_id, mailbox, uid, sha256, size, complete, bytes, received_at, state, \
             attempts FROM raw_message WHERE raw_message_id = $1",
        )
        .bind(raw_message_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(RawRow {
            raw_message_id: r.try_get("raw_message_id")?,
            mailbox: r.try_get("mailbox")?,
            uid: r.try_get("uid")?,
            sha256: r.try_get("sha256")?,
            size: r.try_get("size")?,
            complete: r.try_get::<i64, _>("complete")? != 0,
            bytes: r.try_get("bytes")?,
            received_at: r.try_get("received_at")?,
            state: parsed(&r, "state")?,
            attempts: r.try_get("attempts")?,
        }))
    }

    /// Raw messages of a mailbox stored but not yet processed (a crash interrupted them).
    pub async fn pending_raw(&self, mailbox: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT raw_message_id FROM raw_message WHERE state = 'pending' AND mailbox = $1 \
             AND uid IS NOT NULL ORDER BY raw_message_id",
        )
        .bind(nul_free(mailbox))
        .fetch_all(&self.pool)
        .await?;
        raw_ids(&rows)
    }

    /// Ingested (UID-less) raw messages still pending: an `ingest` died before processing.
    pub async fn pending_ingested(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT raw_message_id FROM raw_message WHERE state = 'pending' AND uid IS NULL \
             ORDER BY raw_message_id",
        )
        .fetch_all(&self.pool)
        .await?;
        raw_ids(&rows)
    }

    /// An ingested (UID-less) raw message of `mailbox` with these bytes still pending: one an
    /// `ingest` stored and then died processing.
    pub async fn pending_ingested_copy(&self, mailbox: &str, sha256: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT raw_message_id FROM raw_message WHERE sha256 = $1 AND mailbox = $2 \
             AND uid IS NULL AND state = 'pending' ORDER BY raw_message_id LIMIT 1",
        )
        .bind(nul_free(sha256))
        .bind(nul_free(mailbox))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("raw_message_id")).transpose()?)
    }

    /// Handled messages of this mailbox generation not yet flagged on the server.
    pub async fn unflagged_raw(&self, mailbox: &str, uidvalidity: u32) -> Result<Vec<(i64, u32)>> {
        let rows = sqlx::query(
            "SELECT raw_message_id, uid FROM raw_message \
             WHERE mailbox = $1 AND uidvalidity = $2 AND state <> 'pending' AND server_done = 0 \
             AND uid IS NOT NULL ORDER BY uid",
        )
        .bind(nul_free(mailbox))
        .bind(i64::from(uidvalidity))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let uid: i64 = r.try_get("uid")?;
                Ok((r.try_get("raw_message_id")?, uid as u32))
            })
            .collect()
    }

    /// Records that these raw messages were flagged (and moved) on the server.
    pub async fn mark_server_done(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for id in ids {
            sqlx::query("UPDATE raw_message SET server_done = 1 WHERE raw_message_id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes a raw message: [`RawState::Processed`], [`RawState::Duplicate`] or
    /// [`RawState::Quarantined`], with the reason and
    /// the message row it became (or duplicates). Only a `pending` row changes: whoever
    /// closed it first (another process racing on the same row) keeps its outcome.
    pub async fn finish_raw(
        tx: &mut Tx,
        raw_message_id: i64,
        state: RawState,
        reason: Option<&str>,
        message_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE raw_message SET state = $1, reason = $2, message_id = $3, processed_at = $4 \
             WHERE raw_message_id = $5 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(reason.map(nul_free))
        .bind(message_id)
        .bind(now_millis())
        .bind(raw_message_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Counts a processing attempt of each of these raw messages, committed before they are
    /// parsed: if parsing crashes the process, the count survives it (the poison rule of the
    /// pipeline). Only `pending` rows count.
    pub async fn count_attempts(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE raw_message SET attempts = attempts + 1 \
                 WHERE raw_message_id = $1 AND state = 'pending'",
            )
            .bind(*id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a quarantined message dealt with: state `dropped`, and a `quarantine_drop` row
    /// saying who, when and why, in one transaction. The raw bytes stay. False when there is
    /// no quarantined (not yet dropped) message with that id.
    pub async fn drop_quarantined(
        &self,
        raw_message_id: i64,
        by: &str,
        reason: &str,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE raw_message SET state = 'dropped' \
             WHERE raw_message_id = $1 AND state = 'quarantined'",
        )
        .bind(raw_message_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO quarantine_drop (raw_message_id, dropped_at, dropped_by, reason) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(raw_message_id)
        .bind(now_millis())
        .bind(nul_free(by))
        .bind(nul_free(reason))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes back the attempt [`Store::count_attempts`] counted for each of these raw messages
    /// once reading them is over (parsed and prepared, or failed with an error returned): a
    /// process killed later, or a full attachment disk, is no reason to treat them as poison.
    pub async fn uncount_attempts(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE raw_message SET attempts = attempts - 1 \
                 WHERE raw_message_id = $1 AND state = 'pending' AND attempts > 0",
            )
            .bind(*id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a quarantined message back to `pending` so it is processed again.
    /// Returns false when there is no quarantined message with that id.
    pub async fn requeue_quarantined(&self, raw_message_id: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE raw_message SET state = 'pending', reason = NULL, attempts = 0 \
             WHERE raw_message_id = $1 AND state = 'quarantined'",
        )
        .bind(raw_message_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn insert_raw(
    tx: &mut Tx,
    mailbox: &str,
    uidvalidity: Option<u32>,
    m: &RawIn,
    now: i64,
) -> Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO raw_message (mailbox, uidvalidity, uid, sha256, size, complete, bytes, \
         received_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending') \
         ON CONFLICT DO NOTHING RETURNING raw_message_id",
    )
    .bind(nul_free(mailbox))
    .bind(uidvalidity.map(i64::from))
    .bind(m.uid.map(i64::from))
    .bind(sha256_hex(&m.bytes))
    .bind(i64::try_from(m.size).unwrap_or(i64::MAX))
    .bind(i64::from(m.complete))
    .bind(&m.bytes[..])
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get("raw_message_id")).transpose()?)
}

/// The `raw_message_id` column of each row.
fn raw_ids(rows: &[sqlx::any::AnyRow]) -> Result<Vec<i64>> {
    Ok(rows
        .iter()
        .map(|r| r.try_get("raw_message_id"))
        .collect::<Result<_, _>>()?)
}

async fn upsert_checkpoint(
    tx: &mut Tx,
    mailbox: &str,
    uidvalidity: u32,
    last_uid: u32,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (mailbox) DO UPDATE \
         SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, \
         updated_at = excluded.updated_at",
    )
    .bind(nul_free(mailbox))
    .bind(i64::from(uidvalidity))
    .bind(i64::from(last_uid))
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
