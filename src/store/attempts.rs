//! Attempts at the citizen forms that hash a password or send mail, counted per key, for the
//! per-client limits of the web page. An attempt is written (and committed) BEFORE the work
//! it allows and counted afterwards: the k-th request to commit its row sees at least k rows,
//! so however many arrive at once, no more than the limit pass. That holds on SQLite and on
//! PostgreSQL (READ COMMITTED) alike precisely because insert and count are separate
//! autocommitted statements: inside one transaction, two PostgreSQL requests could each
//! count only their own uncommitted row.
//!
//! The price of that: rows of parallel attempts that are about to be refused (and deleted)
//! count for the others too, so a burst from one client may see fewer than the limit pass —
//! never more. Only the bursting client is held back, and only while its burst lasts.

use sqlx::Row;

use super::{nul_free, Result, Store};

/// What the rows of one key say, read right after writing an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCount {
    /// Rows of the key since the window start, this attempt included.
    pub count: i64,
    /// The newest of the other rows of the key in the window, if any (unix millis).
    pub previous_at: Option<i64>,
}

/// How long rows are kept at most: the longest window any limit uses.
const KEEP_MILLIS: i64 = 24 * 3_600_000;

impl Store {
    /// Writes an attempt for `key` at `at`; returns its id (to forget it again).
    pub async fn record_web_attempt(&self, key: &str, at: i64) -> Result<i64> {
        // Housekeeping that needs no timer; the `at` index keeps it cheap.
        sqlx::query("DELETE FROM web_attempt WHERE at < $1")
            .bind(at - KEEP_MILLIS)
            .execute(&self.pool)
            .await?;
        let row =
            sqlx::query("INSERT INTO web_attempt (key, at) VALUES ($1, $2) RETURNING attempt_id")
                .bind(nul_free(key))
                .bind(at)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("attempt_id")?)
    }

    /// Counts the rows of `key` since `since`, after `own` was written.
    pub async fn count_web_attempts(
        &self,
        key: &str,
        since: i64,
        own: i64,
    ) -> Result<AttemptCount> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS count, MAX(CASE WHEN attempt_id <> $3 THEN at END) AS previous_at \
             FROM web_attempt WHERE key = $1 AND at >= $2",
        )
        .bind(nul_free(key))
        .bind(since)
        .bind(own)
        .fetch_one(&self.pool)
        .await?;
        Ok(AttemptCount {
            count: row.try_get("count")?,
            previous_at: row.try_get("previous_at")?,
        })
    }

    /// Forgets one attempt (refused before any work was done, or one that succeeded).
    pub async fn forget_web_attempt(&self, attempt_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM web_attempt WHERE attempt_id = $1")
            .bind(attempt_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every attempt of `key` (a successful sign-in ends the delay it built up).
    pub async fn clear_web_attempts(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_attempt WHERE key = $1")
            .bind(nul_free(key))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
