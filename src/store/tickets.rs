//! Tickets, their events, messages and attachments: the writes of one ticket change.
//!
//! These take a [`Tx`]: the inbound pipeline opens one transaction per message and puts the
//! ticket, its events, messages, attachments and outbox rows in it together.

use sqlx::Row;

use super::{now_millis, nul_free, Result, Store, Tx};

/// A ticket about to be created.
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub reference: &'a str,
    pub kind: &'a str,
    pub area: &'a str,
    pub citizen: &'a str,
    pub citizen_name: Option<&'a str>,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub channel: &'a str,
    pub at: i64,
}

/// A message row (inbound or outbound).
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub ticket_id: Option<i64>,
    pub direction: &'a str,
    pub kind: &'a str,
    pub rfc_message_id: Option<&'a str>,
    pub in_reply_to: Option<&'a str>,
    pub dedup_key: Option<&'a str>,
    pub from_addr: &'a str,
    pub to_addrs: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub at: i64,
    pub sha256: &'a str,
    pub raw_message_id: Option<i64>,
}

/// An attachment already written to the attachment store.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

/// The ticket a message of ours belongs to.
#[derive(Debug, Clone)]
pub struct MessageTicket {
    pub ticket_id: i64,
    pub reference: String,
    pub area: String,
    pub citizen: String,
    pub subject: String,
}

impl Store {
    /// Next sequence number of `year`, inside the ticket's transaction.
    pub async fn next_ticket_seq(tx: &mut Tx, year: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO ticket_counter (year, last_seq) VALUES ($1, 1) \
             ON CONFLICT (year) DO UPDATE SET last_seq = ticket_counter.last_seq + 1 \
             RETURNING last_seq",
        )
        .bind(year)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.get(0))
    }

    pub async fn insert_ticket(tx: &mut Tx, t: &NewTicket<'_>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO ticket (ref, kind, area, status, citizen, citizen_name, subject, text, \
             html, channel, created_at, updated_at) \
             VALUES ($1, $2, $3, 'received', $4, $5, $6, $7, $8, $9, $10, $10) \
             RETURNING ticket_id",
        )
        .bind(nul_free(t.reference))
        .bind(nul_free(t.kind))
        .bind(nul_free(t.area))
        .bind(nul_free(t.citizen))
        .bind(t.citizen_name.map(nul_free))
        .bind(nul_free(t.subject))
        .bind(nul_free(t.text))
        .bind(t.html.map(nul_free))
        .bind(nul_free(t.channel))
        .bind(t.at)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.get(0))
    }

    /// Inserts a message; `None` when an inbound message with the same de-duplication key
    /// exists already (the caller rolls back: it is a duplicate).
    pub async fn insert_message(tx: &mut Tx, m: &NewMessage<'_>) -> Result<Option<i64>> {
        let row = sqlx::query(
            "INSERT INTO message (ticket_id, direction, kind, rfc_message_id, in_reply_to, \
             dedup_key, from_addr, to_addrs, subject, text, html, at, sha256, raw_message_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT DO NOTHING RETURNING message_id",
        )
        .bind(m.ticket_id)
        .bind(nul_free(m.direction))
        .bind(nul_free(m.kind))
        .bind(m.rfc_message_id.map(nul_free))
        .bind(m.in_reply_to.map(nul_free))
        .bind(m.dedup_key.map(nul_free))
        .bind(nul_free(m.from_addr))
        .bind(nul_free(m.to_addrs))
        .bind(nul_free(m.subject))
        .bind(nul_free(m.text))
        .bind(m.html.map(nul_free))
        .bind(m.at)
        .bind(nul_free(m.sha256))
        .bind(m.raw_message_id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Completes an outbound message with its Message-ID and the exact bytes to send.
    pub async fn set_outbound_bytes(
        tx: &mut Tx,
        message_id: i64,
        rfc_message_id: &str,
        raw: &[u8],
        sha256: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE message SET rfc_message_id = $1, raw = $2, sha256 = $3 WHERE message_id = $4",
        )
        .bind(nul_free(rfc_message_id))
        .bind(raw)
        .bind(nul_free(sha256))
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn insert_attachment(
        tx: &mut Tx,
        message_id: i64,
        ticket_id: Option<i64>,
        a: &NewAttachment<'_>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO attachment (message_id, ticket_id, filename, content_type, size, sha256) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(message_id)
        .bind(ticket_id)
        .bind(nul_free(a.filename))
        .bind(nul_free(a.content_type))
        .bind(i64::try_from(a.size).unwrap_or(i64::MAX))
        .bind(nul_free(a.sha256))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Appends an event to a ticket's timeline; `details` is a JSON object.
    pub async fn insert_event(
        tx: &mut Tx,
        ticket_id: i64,
        kind: &str,
        actor: &str,
        details: &serde_json::Value,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO event (ticket_id, kind, at, actor, details) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ticket_id)
        .bind(nul_free(kind))
        .bind(at)
        .bind(nul_free(actor))
        .bind(details.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn touch_ticket(tx: &mut Tx, ticket_id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE ticket SET updated_at = $1 WHERE ticket_id = $2")
            .bind(at)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The inbound message already stored under this de-duplication key, if any.
    pub async fn inbound_by_dedup_key(tx: &mut Tx, key: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT message_id FROM message WHERE dedup_key = $1")
            .bind(nul_free(key))
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The ticket that message `message_id` belongs to.
    pub async fn ticket_of_message(tx: &mut Tx, message_id: i64) -> Result<Option<MessageTicket>> {
        let row = sqlx::query(
            "SELECT t.ticket_id, t.ref, t.area, t.citizen, t.subject FROM message m \
             JOIN ticket t ON t.ticket_id = m.ticket_id WHERE m.message_id = $1",
        )
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.map(|r| MessageTicket {
            ticket_id: r.get(0),
            reference: r.get(1),
            area: r.get(2),
            citizen: r.get(3),
            subject: r.get(4),
        }))
    }

    /// Acknowledgments queued for `address` at or after `since` (for the per-sender limit).
    pub async fn acks_to_since(tx: &mut Tx, address: &str, since: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM message WHERE to_addrs = $1 AND kind = 'ack' AND at >= $2",
        )
        .bind(nul_free(address))
        .bind(since)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.get(0))
    }

    /// Queues an outbound message for the outbox worker.
    pub async fn enqueue(
        tx: &mut Tx,
        message_id: i64,
        envelope_from: &str,
        recipients: &str,
    ) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO outbox (message_id, envelope_from, recipients, state, next_attempt_at, \
             created_at) VALUES ($1, $2, $3, 'queued', $4, $4)",
        )
        .bind(message_id)
        .bind(nul_free(envelope_from))
        .bind(nul_free(recipients))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
