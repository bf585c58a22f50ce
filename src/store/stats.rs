//! What the figures are computed from (issue 14, `domain::stats`): each ticket received in a
//! period with the times of its `taken`, `answered`, `resolved` and `reopened` events, read in
//! one query.
use sqlx::Row;

use super::{parsed, Result, Store};
use crate::domain::stats::TicketFacts;
use crate::domain::AreaSlug;

impl Store {
    /// The facts of the tickets created in `[from, to)` (unix millis), of one area or all.
    pub async fn ticket_facts(
        &self,
        from: i64,
        to: i64,
        area: Option<&AreaSlug>,
    ) -> Result<Vec<TicketFacts>> {
        // Fixed SQL: with no area, `$3` is NULL and matches every ticket.
        let rows = sqlx::query(
            "SELECT t.area, t.kind, t.channel, t.status, t.created_at, \
             (SELECT MIN(e.at) FROM event e WHERE e.ticket_id = t.ticket_id \
              AND e.kind = 'taken') AS taken_at, \
             (SELECT MIN(e.at) FROM event e WHERE e.ticket_id = t.ticket_id \
              AND e.kind = 'answered') AS answered_at, \
             (SELECT MAX(e.at) FROM event e WHERE e.ticket_id = t.ticket_id \
              AND e.kind = 'resolved') AS resolved_at, \
             (SELECT COUNT(*) FROM event e WHERE e.ticket_id = t.ticket_id \
              AND e.kind = 'reopened') AS reopened \
             FROM ticket t WHERE t.created_at >= $1 AND t.created_at < $2 \
             AND ($3 IS NULL OR t.area = $3) ORDER BY t.ticket_id",
        )
        .bind(from)
        .bind(to)
        .bind(area.map(|a| a.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TicketFacts {
                    area: parsed(r, "area")?,
                    kind: parsed(r, "kind")?,
                    channel: parsed(r, "channel")?,
                    status: parsed(r, "status")?,
                    created_at: r.try_get("created_at")?,
                    taken_at: r.try_get("taken_at")?,
                    answered_at: r.try_get("answered_at")?,
                    resolved_at: r.try_get("resolved_at")?,
                    reopened: u32::try_from(r.try_get::<i64, _>("reopened")?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }
}
