//! The daily digest's reads and its once-per-day record (migration 0011).

use sqlx::Row;

use super::read::ticket_from_row;
use super::{Result, Store, Tx};
use crate::domain::{AreaSlug, TicketStatus};
use crate::store::TicketView;

impl Store {
    /// The open tickets (not resolved) of `area`, oldest first.
    pub async fn open_tickets_of_area(&self, area: &AreaSlug) -> Result<Vec<TicketView>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            ticket_view_columns!(),
            " FROM ticket WHERE area = $1 AND status <> $2 ORDER BY created_at, ticket_id"
        ))
        .bind(area.as_str())
        .bind(TicketStatus::Resolved.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// When the last digest of `area` was recorded before the day `day` ("YYYY-MM-DD"), unix
    /// millis: where "new since the last digest" starts.
    pub async fn last_digest_before(&self, area: &AreaSlug, day: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(sent_at) AS last FROM digest_sent WHERE area = $1 AND day < $2",
        )
        .bind(area.as_str())
        .bind(day)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?)
    }

    /// Whether the digest of `area` for `day` is recorded already.
    pub async fn digest_recorded(&self, area: &AreaSlug, day: &str) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM digest_sent WHERE area = $1 AND day = $2")
            .bind(area.as_str())
            .bind(day)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Records the digest of `area` for `day`, inside the transaction that queues its mails.
    /// Returns false when it was recorded already (by another instance, or before a
    /// restart): the caller then queues nothing and rolls back.
    pub async fn record_digest(tx: &mut Tx, area: &AreaSlug, day: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO digest_sent (area, day, sent_at) VALUES ($1, $2, $3) \
             ON CONFLICT (area, day) DO NOTHING",
        )
        .bind(area.as_str())
        .bind(day)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
