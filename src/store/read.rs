//! Read models for operators (`ticketgate ticket …`, `quarantine list`) and the web page.
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::{parsed, Result, Store};
use crate::domain::{
    AreaSlug, Channel, Direction, EmailAddress, EventKind, MessageKind, TicketKind, TicketRef,
    TicketStatus,
};

#[derive(Debug, Clone)]
pub struct TicketView {
    pub ticket_id: i64,
    pub reference: TicketRef,
    pub kind: TicketKind,
    pub area: AreaSlug,
    pub status: TicketStatus,
    pub citizen: EmailAddress,
    /// The citizen's name: From's display name, or the name a `#registra` line gave.
    pub citizen_name: Option<String>,
    pub subject: String,
    pub text: String,
    pub channel: Channel,
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
    /// The event, typed; a kind this code does not know is [`EventKind::Other`].
    pub event: EventKind,
    pub at: i64,
    pub actor: String,
    /// The details JSON exactly as stored, for operators' output.
    pub details: String,
}

#[derive(Debug, Clone)]
pub struct MessageView {
    pub message_id: i64,
    pub direction: Direction,
    pub kind: MessageKind,
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
    /// The part's Content-ID without `<>` (migration 0010; none before it).
    pub content_id: Option<String>,
    /// Shown inside the citizen's mail (an HTML mail's image), not as a file.
    pub inline: bool,
}

/// One attachment a notification offered (migration 0010): carried as a MIME part, or
/// listed with its size and a link because it did not fit `notifications.max_attachment_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationAttachment {
    /// The notification.
    pub message_id: i64,
    pub attachment_id: i64,
    pub carried: bool,
}

/// An attachment row read by column name.
pub(super) fn attachment_from_row(r: &AnyRow) -> Result<AttachmentView> {
    Ok(AttachmentView {
        attachment_id: r.try_get("attachment_id")?,
        message_id: r.try_get("message_id")?,
        filename: r.try_get("filename")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        content_id: r.try_get("content_id")?,
        inline: r.try_get::<i64, _>("inline")? != 0,
    })
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
             r.reason, substr(r.bytes, 1, 65536) AS head, r.state, r.complete, d.dropped_at, \
             d.dropped_by, d.reason AS drop_reason FROM raw_message r \
             LEFT JOIN quarantine_drop d ON d.raw_message_id = r.raw_message_id WHERE ",
            $where
        )
    };
}

fn quarantine_from_row(r: &AnyRow) -> Result<QuarantineView> {
    let dropped = match r.try_get::<Option<i64>, _>("dropped_at")? {
        Some(at) => Some(QuarantineDrop {
            at,
            by: r
                .try_get::<Option<String>, _>("dropped_by")?
                .unwrap_or_default(),
            reason: r
                .try_get::<Option<String>, _>("drop_reason")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(QuarantineView {
        raw_message_id: r.try_get("raw_message_id")?,
        mailbox: r.try_get("mailbox")?,
        uid: r.try_get("uid")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        received_at: r.try_get("received_at")?,
        reason: r
            .try_get::<Option<String>, _>("reason")?
            .unwrap_or_default(),
        head: r.try_get("head")?,
        state: r.try_get("state")?,
        complete: r.try_get::<i64, _>("complete")? != 0,
        dropped,
    })
}

/// The columns [`ticket_from_row`] reads (a macro, so queries stay `&'static str`).
macro_rules! ticket_view_columns {
    () => {
        "ticket_id, ref, kind, area, status, citizen, citizen_name, subject, text, channel, \
         created_at, updated_at, certified, pec_address, reply_to, reply_to_asked"
    };
}

const TICKET_COLUMNS_LIST: &str = concat!(
    "SELECT ",
    ticket_view_columns!(),
    " FROM ticket ORDER BY ticket_id DESC LIMIT $1"
);

pub(super) fn ticket_from_row(r: &AnyRow) -> Result<TicketView> {
    Ok(TicketView {
        ticket_id: r.try_get("ticket_id")?,
        reference: parsed(r, "ref")?,
        kind: parsed(r, "kind")?,
        area: parsed(r, "area")?,
        status: parsed(r, "status")?,
        citizen: parsed(r, "citizen")?,
        citizen_name: r.try_get("citizen_name")?,
        subject: r.try_get("subject")?,
        text: r.try_get("text")?,
        channel: parsed(r, "channel")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        certified: r.try_get::<Option<i64>, _>("certified")?.map(|c| c != 0),
        pec_address: r.try_get("pec_address")?,
        reply_to: r.try_get("reply_to")?,
        reply_to_asked: r.try_get("reply_to_asked")?,
    })
}

/// Which tickets `ticket list` shows (issue 14). Every field narrows; `None` does not.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub area: Option<AreaSlug>,
    pub status: Option<TicketStatus>,
    /// Created at or after these unix millis (the start of a Rome day, from `--since`).
    pub since: Option<i64>,
    /// Text the subject, the text or the citizen's address contains, any ASCII case.
    pub search: Option<String>,
}

/// `text` as a LIKE pattern matching it anywhere, with `%`, `_` and the escape character
/// itself escaped: a search for "100%" finds "100%", not every ticket with "100".
fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Tickets matching `filter`, newest first; a negative `limit` means no limit. The
    /// conditions are fixed SQL with bound values: only which of them apply varies.
    pub async fn list_tickets_filtered(
        &self,
        filter: &TicketFilter,
        limit: i64,
    ) -> Result<Vec<TicketView>> {
        let limit = if limit < 0 { i64::MAX } else { limit };
        let mut sql = String::from(concat!(
            "SELECT ",
            ticket_view_columns!(),
            " FROM ticket WHERE 1 = 1"
        ));
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.area.is_some() {
            sql.push_str(&format!(" AND area = ${}", next()));
        }
        if filter.status.is_some() {
            sql.push_str(&format!(" AND status = ${}", next()));
        }
        if filter.since.is_some() {
            sql.push_str(&format!(" AND created_at >= ${}", next()));
        }
        if filter.search.is_some() {
            // lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
            let (a, b, c) = (next(), next(), next());
            sql.push_str(&format!(
                " AND (lower(subject) LIKE ${a} ESCAPE '\\' OR lower(text) LIKE ${b} ESCAPE '\\' \
                 OR lower(citizen) LIKE ${c} ESCAPE '\\')"
            ));
        }
        sql.push_str(&format!(" ORDER BY ticket_id DESC LIMIT ${}", next()));
        // Safe: `sql` is built from the fixed fragments above; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(area) = &filter.area {
            query = query.bind(area.to_string());
        }
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(since) = filter.since {
            query = query.bind(since);
        }
        if let Some(search) = &filter.search {
            let pattern = like_contains(search);
            query = query
                .bind(pattern.clone())
                .bind(pattern.clone())
                .bind(pattern);
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Tickets, newest first; a negative `limit` means no limit.
    pub async fn list_tickets(&self, limit: i64) -> Result<Vec<TicketView>> {
        // SQLite reads a negative LIMIT as "no limit", PostgreSQL refuses it ("LIMIT must not
        // be negative"): say what we mean on both.
        let limit = if limit < 0 { i64::MAX } else { limit };
        let rows = sqlx::query(TICKET_COLUMNS_LIST)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ticket_from_row).collect()
    }

    pub async fn ticket_by_ref(&self, reference: &TicketRef) -> Result<Option<TicketView>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            ticket_view_columns!(),
            " FROM ticket WHERE ref = $1"
        ))
        .bind(reference.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    /// A ticket's events, messages and attachments as of one instant: read in one read-only
    /// snapshot, so that a message committed between two of the reads never shows with its
    /// new state but without its event (a `ticket show` taken during a PEC receipt once
    /// printed the certified state and no `pec_receipt` event).
    pub async fn ticket_timeline(&self, ticket_id: i64) -> Result<TicketTimeline> {
        // SQLite (WAL): a deferred transaction reads one snapshot from its first SELECT to its
        // end. PostgreSQL's default READ COMMITTED takes a new snapshot per statement.
        let stmt = if self.sqlite {
            "BEGIN"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        let mut tx = self.pool.begin_with(stmt).await?;
        let history = TicketTimeline {
            events: events_of(&mut tx, ticket_id).await?,
            messages: messages_of(&mut tx, ticket_id).await?,
            attachments: attachments_of(&mut tx, ticket_id).await?,
            notification_attachments: notification_attachments_of(&mut tx, ticket_id).await?,
        };
        tx.commit().await?;
        Ok(history)
    }

    /// [`Store::ticket_timeline`] inside a writing transaction: what intake reads about the
    /// ticket it is changing (which answers were sent, to whom we wrote), after
    /// [`Store::lock_ticket`].
    pub async fn ticket_timeline_in(tx: &mut super::Tx, ticket_id: i64) -> Result<TicketTimeline> {
        Ok(TicketTimeline {
            events: events_of(tx, ticket_id).await?,
            messages: messages_of(tx, ticket_id).await?,
            attachments: attachments_of(tx, ticket_id).await?,
            notification_attachments: notification_attachments_of(tx, ticket_id).await?,
        })
    }

    pub async fn ticket_events(&self, ticket_id: i64) -> Result<Vec<EventView>> {
        events_of(&mut *self.pool.acquire().await?, ticket_id).await
    }

    pub async fn ticket_messages(&self, ticket_id: i64) -> Result<Vec<MessageView>> {
        messages_of(&mut *self.pool.acquire().await?, ticket_id).await
    }

    pub async fn ticket_attachments(&self, ticket_id: i64) -> Result<Vec<AttachmentView>> {
        attachments_of(&mut *self.pool.acquire().await?, ticket_id).await
    }
}

/// What [`Store::ticket_timeline`] reads, oldest first in each list.
#[derive(Debug, Clone)]
pub struct TicketTimeline {
    pub events: Vec<EventView>,
    pub messages: Vec<MessageView>,
    pub attachments: Vec<AttachmentView>,
    /// Which attachments each notification carried or only listed (migration 0010).
    pub notification_attachments: Vec<NotificationAttachment>,
}

async fn events_of(conn: &mut AnyConnection, ticket_id: i64) -> Result<Vec<EventView>> {
    let rows = sqlx::query(
        "SELECT kind, at, actor, details FROM event WHERE ticket_id = $1 ORDER BY event_id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let details: String = r.try_get("details")?;
            Ok(EventView {
                event: EventKind::from_stored(&kind, &details),
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                details,
            })
        })
        .collect()
}

async fn messages_of(conn: &mut AnyConnection, ticket_id: i64) -> Result<Vec<MessageView>> {
    let rows = sqlx::query(
        "SELECT m.message_id, m.direction, m.kind, m.rfc_message_id, m.in_reply_to, \
             m.from_addr, m.to_addrs, m.subject, m.text, m.at, m.sha256, \
             o.state AS delivery_state, o.last_reply, o.attempts, o.sent_at, \
             m.pec_id, m.pec_state, m.pec_detail, m.certified_at, m.signature, \
             m.signature_detail, o.transport, m.html, m.html_safe, m.html_withheld \
             FROM message m LEFT JOIN outbox o ON o.message_id = m.message_id \
             WHERE m.ticket_id = $1 ORDER BY m.message_id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MessageView {
                message_id: r.try_get("message_id")?,
                direction: parsed(r, "direction")?,
                kind: parsed(r, "kind")?,
                rfc_message_id: r.try_get("rfc_message_id")?,
                in_reply_to: r.try_get("in_reply_to")?,
                from_addr: r.try_get("from_addr")?,
                to_addrs: r.try_get("to_addrs")?,
                subject: r.try_get("subject")?,
                text: r.try_get("text")?,
                at: r.try_get("at")?,
                sha256: r.try_get("sha256")?,
                delivery_state: r.try_get("delivery_state")?,
                delivery_reply: r.try_get("last_reply")?,
                delivery_attempts: r.try_get("attempts")?,
                sent_at: r.try_get("sent_at")?,
                pec_id: r.try_get("pec_id")?,
                pec_state: r.try_get("pec_state")?,
                pec_detail: r.try_get("pec_detail")?,
                certified_at: r.try_get("certified_at")?,
                signature: r.try_get("signature")?,
                signature_detail: r.try_get("signature_detail")?,
                transport: r.try_get("transport")?,
                html: r.try_get("html")?,
                html_safe: r.try_get("html_safe")?,
                html_withheld: r.try_get("html_withheld")?,
            })
        })
        .collect()
}

async fn attachments_of(conn: &mut AnyConnection, ticket_id: i64) -> Result<Vec<AttachmentView>> {
    let rows = sqlx::query(
        "SELECT attachment_id, message_id, filename, content_type, size, sha256, content_id, \
             inline FROM attachment WHERE ticket_id = $1 ORDER BY attachment_id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(attachment_from_row).collect()
}

async fn notification_attachments_of(
    conn: &mut AnyConnection,
    ticket_id: i64,
) -> Result<Vec<NotificationAttachment>> {
    let rows = sqlx::query(
        "SELECT n.message_id, n.attachment_id, n.carried FROM notification_attachment n \
             JOIN message m ON m.message_id = n.message_id \
             WHERE m.ticket_id = $1 ORDER BY n.message_id, n.attachment_id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(NotificationAttachment {
                message_id: r.try_get("message_id")?,
                attachment_id: r.try_get("attachment_id")?,
                carried: r.try_get::<i64, _>("carried")? != 0,
            })
        })
        .collect()
}

impl Store {
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
            .map_err(super::StoreError::from)
            .and_then(|r| futures::future::ready(quarantine_from_row(&r)))
    }

    /// One message in quarantine or dropped from it.
    pub async fn quarantine_entry(&self, raw_message_id: i64) -> Result<Option<QuarantineView>> {
        let row = sqlx::query(quarantine_query!(
            "r.raw_message_id = $1 AND r.state IN ('quarantined', 'dropped')"
        ))
        .bind(raw_message_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(quarantine_from_row).transpose()
    }

    /// Messages in quarantine (not those dealt with), oldest first.
    pub async fn quarantined(&self) -> Result<Vec<QuarantineView>> {
        let rows = sqlx::query(quarantine_query!(
            "r.state = 'quarantined' ORDER BY r.raw_message_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_from_row).collect()
    }

    /// Messages in quarantine and those dropped from it (with who, when and why).
    pub async fn quarantined_with_dropped(&self) -> Result<Vec<QuarantineView>> {
        let rows = sqlx::query(quarantine_query!(
            "r.state IN ('quarantined', 'dropped') ORDER BY r.raw_message_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_from_row).collect()
    }

    /// Raw-message counts by state, for `/metrics` and tests.
    pub async fn raw_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM raw_message GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::like_contains;

    #[test]
    fn a_search_pattern_escapes_the_like_wildcards_and_its_escape() {
        assert_eq!(like_contains("Buca"), "%buca%");
        assert_eq!(like_contains("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
