//! Read models for operators (`ticketgate ticket …`, `quarantine list`) and the web page.

use sqlx::Row;

use super::{nul_free, Result, Store};

#[derive(Debug, Clone)]
pub struct TicketView {
    pub ticket_id: i64,
    pub reference: String,
    pub kind: String,
    pub area: String,
    pub status: String,
    pub citizen: String,
    pub subject: String,
    pub text: String,
    pub channel: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// PEC tickets: true for a certified PEC, false for an anomaly; `None` otherwise.
    pub certified: Option<bool>,
    pub pec_address: Option<String>,
    pub reply_to: Option<String>,
    /// The Reply-To the report asked for, when it differs from From (see migration 0005).
    pub reply_to_asked: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EventView {
    pub kind: String,
    pub at: i64,
    pub actor: String,
    pub details: String,
}

#[derive(Debug, Clone)]
pub struct MessageView {
    pub message_id: i64,
    pub direction: String,
    pub kind: String,
    pub rfc_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub from_addr: String,
    pub to_addrs: String,
    pub subject: String,
    pub text: String,
    pub at: i64,
    pub sha256: String,
    /// Outbound only: queued | sent | failed.
    pub delivery_state: Option<String>,
    pub delivery_reply: Option<String>,
    pub delivery_attempts: Option<i64>,
    pub sent_at: Option<i64>,
    /// PEC: the provider's identificativo of this message.
    pub pec_id: Option<String>,
    /// Outbound over PEC: accettata | non accettata | consegnata | non consegnata.
    pub pec_state: Option<String>,
    /// JSON object: the receipt behind `pec_state`.
    pub pec_detail: Option<String>,
    pub certified_at: Option<i64>,
    /// Inbound PEC: verified | not verified | not checked.
    pub signature: Option<String>,
    pub signature_detail: Option<String>,
    /// Outbound: smtp | pec.
    pub transport: Option<String>,
    /// The HTML body as received (untrusted: never shown as it is).
    pub html: Option<String>,
    /// `html` sanitised at intake (migration 0006), safe to show.
    pub html_safe: Option<String>,
    /// Why `html` is not shown (`too_large`, `too_deep`, `unusual_markup`).
    pub html_withheld: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AttachmentView {
    pub attachment_id: i64,
    pub message_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct QuarantineView {
    pub raw_message_id: i64,
    pub mailbox: String,
    pub uid: Option<i64>,
    pub size: i64,
    pub sha256: String,
    pub received_at: i64,
    pub reason: String,
    /// The first [`QUARANTINE_HEAD_BYTES`] of the stored bytes: enough for the header block
    /// an operator recognises a message by, never the whole (possibly huge) message.
    pub head: Vec<u8>,
    /// `quarantined`, or `dropped` (dealt with: see `dropped`).
    pub state: String,
    /// False when only the header was kept (an over-limit message left on the server).
    pub complete: bool,
    pub dropped: Option<QuarantineDrop>,
}

/// Who dealt with a quarantined message, when and why (`quarantine drop`).
#[derive(Debug, Clone)]
pub struct QuarantineDrop {
    pub at: i64,
    pub by: String,
    pub reason: String,
}

/// Bytes of each quarantined message read for the list: headers longer than this are cut.
/// Written as a literal in [`quarantine_query`]: PostgreSQL has `substr(bytea, int, int)`
/// only, and a bound BIGINT would not match it.
pub const QUARANTINE_HEAD_BYTES: usize = 65536;

/// The columns [`quarantine_from_row`] reads.
macro_rules! quarantine_query {
    ($where:literal) => {
        concat!(
            "SELECT r.raw_message_id, r.mailbox, r.uid, r.size, r.sha256, r.received_at, \
             r.reason, substr(r.bytes, 1, 65536), r.state, r.complete, d.dropped_at, \
             d.dropped_by, d.reason FROM raw_message r \
             LEFT JOIN quarantine_drop d ON d.raw_message_id = r.raw_message_id WHERE ",
            $where
        )
    };
}

fn quarantine_from_row(r: &sqlx::any::AnyRow) -> QuarantineView {
    QuarantineView {
        raw_message_id: r.get(0),
        mailbox: r.get(1),
        uid: r.get(2),
        size: r.get(3),
        sha256: r.get(4),
        received_at: r.get(5),
        reason: r.get::<Option<String>, _>(6).unwrap_or_default(),
        head: r.get(7),
        state: r.get(8),
        complete: r.get::<i64, _>(9) != 0,
        dropped: r.get::<Option<i64>, _>(10).map(|at| QuarantineDrop {
            at,
            by: r.get::<Option<String>, _>(11).unwrap_or_default(),
            reason: r.get::<Option<String>, _>(12).unwrap_or_default(),
        }),
    }
}

/// The columns [`ticket_from_row`] reads (a macro, so queries stay `&'static str`).
macro_rules! ticket_view_columns {
    () => {
        "ticket_id, ref, kind, area, status, citizen, subject, text, channel, created_at, \
         updated_at, certified, pec_address, reply_to, reply_to_asked"
    };
}

const TICKET_COLUMNS_LIST: &str = concat!(
    "SELECT ",
    ticket_view_columns!(),
    " FROM ticket ORDER BY ticket_id DESC LIMIT $1"
);

pub(super) fn ticket_from_row(r: &sqlx::any::AnyRow) -> TicketView {
    TicketView {
        ticket_id: r.get(0),
        reference: r.get(1),
        kind: r.get(2),
        area: r.get(3),
        status: r.get(4),
        citizen: r.get(5),
        subject: r.get(6),
        text: r.get(7),
        channel: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        certified: r.get::<Option<i64>, _>(11).map(|c| c != 0),
        pec_address: r.get(12),
        reply_to: r.get(13),
        reply_to_asked: r.get(14),
    }
}

impl Store {
    /// Tickets, newest first; a negative `limit` means no limit.
    pub async fn list_tickets(&self, limit: i64) -> Result<Vec<TicketView>> {
        // SQLite reads a negative LIMIT as "no limit", PostgreSQL refuses it ("LIMIT must not
        // be negative"): say what we mean on both.
        let limit = if limit < 0 { i64::MAX } else { limit };
        let rows = sqlx::query(TICKET_COLUMNS_LIST)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(ticket_from_row).collect())
    }

    pub async fn ticket_by_ref(&self, reference: &str) -> Result<Option<TicketView>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            ticket_view_columns!(),
            " FROM ticket WHERE ref = $1"
        ))
        .bind(nul_free(reference))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(ticket_from_row))
    }

    pub async fn ticket_events(&self, ticket_id: i64) -> Result<Vec<EventView>> {
        let rows = sqlx::query(
            "SELECT kind, at, actor, details FROM event WHERE ticket_id = $1 ORDER BY event_id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| EventView {
                kind: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                details: r.get(3),
            })
            .collect())
    }

    pub async fn ticket_messages(&self, ticket_id: i64) -> Result<Vec<MessageView>> {
        let rows = sqlx::query(
            "SELECT m.message_id, m.direction, m.kind, m.rfc_message_id, m.in_reply_to, \
             m.from_addr, m.to_addrs, m.subject, m.text, m.at, m.sha256, \
             o.state, o.last_reply, o.attempts, o.sent_at, \
             m.pec_id, m.pec_state, m.pec_detail, m.certified_at, m.signature, \
             m.signature_detail, o.transport, m.html, m.html_safe, m.html_withheld \
             FROM message m LEFT JOIN outbox o ON o.message_id = m.message_id \
             WHERE m.ticket_id = $1 ORDER BY m.message_id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| MessageView {
                message_id: r.get(0),
                direction: r.get(1),
                kind: r.get(2),
                rfc_message_id: r.get(3),
                in_reply_to: r.get(4),
                from_addr: r.get(5),
                to_addrs: r.get(6),
                subject: r.get(7),
                text: r.get(8),
                at: r.get(9),
                sha256: r.get(10),
                delivery_state: r.get(11),
                delivery_reply: r.get(12),
                delivery_attempts: r.get(13),
                sent_at: r.get(14),
                pec_id: r.get(15),
                pec_state: r.get(16),
                pec_detail: r.get(17),
                certified_at: r.get(18),
                signature: r.get(19),
                signature_detail: r.get(20),
                transport: r.get(21),
                html: r.get(22),
                html_safe: r.get(23),
                html_withheld: r.get(24),
            })
            .collect())
    }

    pub async fn ticket_attachments(&self, ticket_id: i64) -> Result<Vec<AttachmentView>> {
        let rows = sqlx::query(
            "SELECT attachment_id, message_id, filename, content_type, size, sha256 \
             FROM attachment WHERE ticket_id = $1 ORDER BY attachment_id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AttachmentView {
                attachment_id: r.get(0),
                message_id: r.get(1),
                filename: r.get(2),
                content_type: r.get(3),
                size: r.get(4),
                sha256: r.get(5),
            })
            .collect())
    }

    /// [`Store::quarantined`] (or, with `all`, [`Store::quarantined_with_dropped`]) one row
    /// at a time: each row carries up to [`QUARANTINE_HEAD_BYTES`], so a long quarantine is
    /// read without holding all of it in memory.
    pub fn quarantine_stream(
        &self,
        all: bool,
    ) -> impl futures::Stream<Item = Result<QuarantineView>> + '_ {
        use futures::TryStreamExt;
        let query = if all {
            quarantine_query!("r.state IN ('quarantined', 'dropped') ORDER BY r.raw_message_id")
        } else {
            quarantine_query!("r.state = 'quarantined' ORDER BY r.raw_message_id")
        };
        sqlx::query(query)
            .fetch(&self.pool)
            .map_ok(|r| quarantine_from_row(&r))
            .map_err(super::StoreError::from)
    }

    /// One message in quarantine or dropped from it.
    pub async fn quarantine_entry(&self, raw_message_id: i64) -> Result<Option<QuarantineView>> {
        let row = sqlx::query(quarantine_query!(
            "r.raw_message_id = $1 AND r.state IN ('quarantined', 'dropped')"
        ))
        .bind(raw_message_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(quarantine_from_row))
    }

    /// Messages in quarantine (not those dealt with), oldest first.
    pub async fn quarantined(&self) -> Result<Vec<QuarantineView>> {
        let rows = sqlx::query(quarantine_query!(
            "r.state = 'quarantined' ORDER BY r.raw_message_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(quarantine_from_row).collect())
    }

    /// Messages in quarantine and those dropped from it (with who, when and why).
    pub async fn quarantined_with_dropped(&self) -> Result<Vec<QuarantineView>> {
        let rows = sqlx::query(quarantine_query!(
            "r.state IN ('quarantined', 'dropped') ORDER BY r.raw_message_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(quarantine_from_row).collect())
    }

    /// Raw-message counts by state, for `/metrics` and tests.
    pub async fn raw_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM raw_message GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
