//! What the reminder check reads (issue 14): the tickets still waiting for the office's
//! answer, and whether a ticket already had its reminder and its escalation. Sending each once
//! rests on the ticket's events, read again inside the transaction that queues the mail after
//! the ticket's row lock ([`Store::lock_ticket`]): no table of its own is needed.
use sqlx::Row;

use super::{parsed, Result, Store, Tx};
use crate::domain::reminder::Chased;
use crate::domain::{AreaSlug, TicketRef, TicketStatus};

/// A ticket waiting for the office's answer (`received` or `taken`), with what it already had.
#[derive(Debug, Clone)]
pub struct Unanswered {
    pub ticket_id: i64,
    pub reference: TicketRef,
    pub area: AreaSlug,
    pub status: TicketStatus,
    pub created_at: i64,
    pub chased: Chased,
}

/// `reminder` and `escalation` are the words of `EventKind::Reminder` and `::Escalation`.
const UNANSWERED: &str = "SELECT t.ticket_id, t.ref, t.area, t.status, t.created_at, \
     (SELECT COUNT(*) FROM event e WHERE e.ticket_id = t.ticket_id AND e.kind = 'reminder') \
       AS reminded, \
     (SELECT COUNT(*) FROM event e WHERE e.ticket_id = t.ticket_id AND e.kind = 'escalation') \
       AS escalated \
     FROM ticket t WHERE t.status IN ('received', 'taken') ORDER BY t.ticket_id";

const CHASED: &str = "SELECT \
     (SELECT COUNT(*) FROM event e WHERE e.ticket_id = $1 AND e.kind = 'reminder') AS reminded, \
     (SELECT COUNT(*) FROM event e WHERE e.ticket_id = $2 AND e.kind = 'escalation') \
       AS escalated";

/// A count as a flag: `COUNT(*)` is a BIGINT on both backends, where `EXISTS` would be an
/// integer on SQLite and a boolean on PostgreSQL.
fn flag(r: &sqlx::any::AnyRow, column: &str) -> Result<bool> {
    Ok(r.try_get::<i64, _>(column)? != 0)
}

fn chased_from_row(r: &sqlx::any::AnyRow) -> Result<Chased> {
    Ok(Chased {
        reminded: flag(r, "reminded")?,
        escalated: flag(r, "escalated")?,
    })
}

impl Store {
    /// Every ticket waiting for the office's answer, oldest first.
    pub async fn unanswered_tickets(&self) -> Result<Vec<Unanswered>> {
        let rows = sqlx::query(UNANSWERED).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Unanswered {
                    ticket_id: r.try_get("ticket_id")?,
                    reference: parsed(r, "ref")?,
                    area: parsed(r, "area")?,
                    status: parsed(r, "status")?,
                    created_at: r.try_get("created_at")?,
                    chased: chased_from_row(r)?,
                })
            })
            .collect()
    }

    /// Whether the ticket had its reminder and its escalation, inside a transaction (after
    /// [`Store::lock_ticket`], so that two checks cannot both see "not yet").
    pub async fn ticket_chased(tx: &mut Tx, ticket_id: i64) -> Result<Chased> {
        let row = sqlx::query(CHASED)
            .bind(ticket_id)
            .bind(ticket_id)
            .fetch_one(&mut **tx)
            .await?;
        chased_from_row(&row)
    }
}
