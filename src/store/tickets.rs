//! Tickets, their events, messages and attachments: the writes of one ticket change.
//!
//! These take a [`Tx`]: the inbound pipeline opens one transaction per message and puts the
//! ticket, its events, messages, attachments and outbox rows in it together.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::read::attachment_from_row;
use super::{nul_free, parsed, AttachmentView, Result, Store, Tx};
use crate::domain::{
    AreaSlug, Direction, EmailAddress, EventKind, MessageKind, TicketKind, TicketRef, TicketStatus,
};

/// A ticket about to be created (always `received`).
#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub reference: TicketRef,
    pub kind: TicketKind,
    pub area: &'a AreaSlug,
    pub citizen: &'a EmailAddress,
    pub citizen_name: Option<&'a str>,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub channel: crate::domain::Channel,
    pub at: i64,
    /// PEC tickets only: whether the report was certified (see migration 0002).
    pub certified: Option<bool>,
    /// PEC tickets only: the PEC address it came to.
    pub pec_address: Option<&'a str>,
    /// Where mail to the citizen goes when not to `citizen`. The pipeline leaves it `None`:
    /// only staff choose another address (`#rispondi-a`).
    pub reply_to: Option<&'a str>,
    /// The Reply-To the report asked for, when it differs from From (shown to staff).
    pub reply_to_asked: Option<&'a str>,
}

/// A message row (inbound or outbound).
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub ticket_id: Option<i64>,
    pub direction: Direction,
    pub kind: MessageKind,
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
    /// The part's Content-ID, without `<>` (migration 0010).
    pub content_id: Option<&'a str>,
    /// Shown inside the mail (an HTML mail's image) rather than as a file.
    pub inline: bool,
}

/// The ticket a message of ours belongs to.
#[derive(Debug, Clone)]
pub struct MessageTicket {
    pub ticket_id: i64,
    pub reference: TicketRef,
    pub area: AreaSlug,
    pub citizen: EmailAddress,
    pub subject: String,
    pub status: TicketStatus,
    pub kind: TicketKind,
    /// The PEC address the ticket came to: mail to the citizen leaves from it, through PEC.
    pub pec_address: Option<String>,
    /// Where mail to the citizen goes when not to `citizen`: set only when staff chose the
    /// address the citizen asked for (`#rispondi-a`), or on PEC tickets from before 0005.
    pub reply_to: Option<String>,
    /// The Reply-To the citizen's first mail asked for, when it differs from From: shown to
    /// staff, never used on its own.
    pub reply_to_asked: Option<String>,
}

impl MessageTicket {
    /// The address mail to the citizen goes to.
    pub fn citizen_mail_to(&self) -> &str {
        self.reply_to.as_deref().unwrap_or(self.citizen.as_str())
    }
}

/// One of our outbound messages, found by the id a reply or bounce names.
#[derive(Debug, Clone)]
pub struct OurMessage {
    pub message_id: i64,
    pub kind: MessageKind,
    pub to_addrs: String,
    pub ticket: Option<MessageTicket>,
}

/// A line of a ticket's history, for the notification of a reassigned ticket.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub at: i64,
    pub direction: Direction,
    pub kind: MessageKind,
    pub from_addr: String,
    pub text: String,
}

/// The text of a message of a ticket, with what it is: what the guard against forwarding
/// our own text to a citizen compares an answer with.
#[derive(Debug, Clone)]
pub struct TicketText {
    pub direction: Direction,
    pub kind: MessageKind,
    pub text: String,
}

/// The columns [`message_ticket`] reads, for a ticket aliased `t` (a macro, so that queries
/// stay `&'static str` through `concat!`).
macro_rules! ticket_columns {
    () => {
        "t.ticket_id, t.ref, t.area, t.citizen, t.subject, t.status, t.kind, t.pec_address, \
         t.reply_to, t.reply_to_asked"
    };
}

/// Reads the columns of [`ticket_columns!`].
fn message_ticket(r: &AnyRow) -> Result<MessageTicket> {
    Ok(MessageTicket {
        ticket_id: r.try_get("ticket_id")?,
        reference: parsed(r, "ref")?,
        area: parsed(r, "area")?,
        citizen: parsed(r, "citizen")?,
        subject: r.try_get("subject")?,
        status: parsed(r, "status")?,
        kind: parsed(r, "kind")?,
        pec_address: r.try_get("pec_address")?,
        reply_to: r.try_get("reply_to")?,
        reply_to_asked: r.try_get("reply_to_asked")?,
    })
}

const SET_SHOWN_HTML: &str =
    "UPDATE message SET html_safe = $1, html_withheld = $2 WHERE message_id = $3";

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
        Ok(row.try_get("last_seq")?)
    }

    pub async fn insert_ticket(tx: &mut Tx, t: &NewTicket<'_>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO ticket (ref, kind, area, status, citizen, citizen_name, subject, text, \
             html, channel, created_at, updated_at, certified, pec_address, reply_to, \
             reply_to_asked) \
             VALUES ($1, $2, $3, $15, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, \
             $14) \
             RETURNING ticket_id",
        )
        .bind(t.reference.to_string())
        .bind(t.kind.as_str())
        .bind(t.area.as_str())
        .bind(t.citizen.as_str())
        .bind(t.citizen_name.map(nul_free))
        .bind(nul_free(t.subject))
        .bind(nul_free(t.text))
        .bind(t.html.map(nul_free))
        .bind(t.channel.as_str())
        .bind(t.at)
        .bind(t.certified.map(i64::from))
        .bind(t.pec_address.map(nul_free))
        .bind(t.reply_to.map(nul_free))
        .bind(t.reply_to_asked.map(nul_free))
        .bind(TicketStatus::Received.as_str())
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.try_get("ticket_id")?)
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
        .bind(m.direction.as_str())
        .bind(m.kind.as_str())
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
        Ok(row.map(|r| r.try_get("message_id")).transpose()?)
    }

    /// Stores what the citizen's page may show of an inbound message's HTML body: the
    /// sanitised HTML, or why it is withheld (migration 0006).
    pub async fn set_shown_html(
        tx: &mut Tx,
        message_id: i64,
        safe: Option<&str>,
        withheld: Option<&str>,
    ) -> Result<()> {
        sqlx::query(SET_SHOWN_HTML)
            .bind(safe.map(nul_free))
            .bind(withheld.map(nul_free))
            .bind(message_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// [`Store::set_shown_html`] outside a ticket transaction: the first view of a message
    /// stored before migration 0006.
    pub async fn set_shown_html_now(
        &self,
        message_id: i64,
        safe: Option<&str>,
        withheld: Option<&str>,
    ) -> Result<()> {
        sqlx::query(SET_SHOWN_HTML)
            .bind(safe.map(nul_free))
            .bind(withheld.map(nul_free))
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every message of a ticket with its text, oldest first.
    pub async fn ticket_texts(tx: &mut Tx, ticket_id: i64) -> Result<Vec<TicketText>> {
        let rows = sqlx::query(
            "SELECT direction, kind, text FROM message WHERE ticket_id = $1 ORDER BY message_id",
        )
        .bind(ticket_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TicketText {
                    direction: parsed(r, "direction")?,
                    kind: parsed(r, "kind")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
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
            "INSERT INTO attachment (message_id, ticket_id, filename, content_type, size, sha256, \
             content_id, inline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(message_id)
        .bind(ticket_id)
        .bind(nul_free(a.filename))
        .bind(nul_free(a.content_type))
        .bind(i64::try_from(a.size).unwrap_or(i64::MAX))
        .bind(nul_free(a.sha256))
        .bind(a.content_id.map(nul_free))
        .bind(i64::from(a.inline))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The attachments of one message, in the order they were stored (the mail's order).
    pub async fn message_attachments(tx: &mut Tx, message_id: i64) -> Result<Vec<AttachmentView>> {
        let rows = sqlx::query(
            "SELECT attachment_id, message_id, filename, content_type, size, sha256, \
                 content_id, inline FROM attachment WHERE message_id = $1 ORDER BY attachment_id",
        )
        .bind(message_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(attachment_from_row).collect()
    }

    /// What the citizen sent on a ticket (the report and each follow-up), oldest first: what a
    /// newly assigned office is sent.
    pub async fn citizen_attachments(tx: &mut Tx, ticket_id: i64) -> Result<Vec<AttachmentView>> {
        let rows = sqlx::query(
            "SELECT a.attachment_id, a.message_id, a.filename, a.content_type, a.size, \
                 a.sha256, a.content_id, a.inline FROM attachment a \
                 JOIN message m ON m.message_id = a.message_id \
                 WHERE a.ticket_id = $1 AND m.direction = 'in' \
                 AND m.kind IN ('report', 'follow_up') ORDER BY a.attachment_id",
        )
        .bind(ticket_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(attachment_from_row).collect()
    }

    /// Records that notification `message_id` carried (or, `carried` false, only listed)
    /// attachment `attachment_id`.
    pub async fn link_notification_attachment(
        tx: &mut Tx,
        message_id: i64,
        attachment_id: i64,
        carried: bool,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO notification_attachment (message_id, attachment_id, carried) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(message_id)
        .bind(attachment_id)
        .bind(i64::from(carried))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Appends an event to a ticket's timeline: its kind word and its details as JSON.
    pub async fn insert_event(
        tx: &mut Tx,
        ticket_id: i64,
        event: &EventKind,
        actor: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO event (ticket_id, kind, at, actor, details) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ticket_id)
        .bind(nul_free(event.kind()))
        .bind(at)
        .bind(nul_free(actor))
        .bind(event.details().to_string())
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
        Ok(row.map(|r| r.try_get("message_id")).transpose()?)
    }

    /// The content fingerprint of an inbound message (see `mail::fingerprint`), and when it
    /// was stored before fingerprints were (NULL), the raw bytes it was made from, so the
    /// caller can compute it.
    pub async fn inbound_fingerprint(
        tx: &mut Tx,
        message_id: i64,
    ) -> Result<(Option<String>, Option<Vec<u8>>)> {
        let row =
            sqlx::query("SELECT content_sha256, raw_message_id FROM message WHERE message_id = $1")
                .bind(message_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(row) = row else {
            return Ok((None, None));
        };
        let fingerprint: Option<String> = row.try_get("content_sha256")?;
        let raw_id: Option<i64> = row.try_get("raw_message_id")?;
        if fingerprint.is_some() {
            return Ok((fingerprint, None));
        }
        let Some(raw_id) = raw_id else {
            return Ok((None, None));
        };
        let bytes = sqlx::query("SELECT bytes FROM raw_message WHERE raw_message_id = $1")
            .bind(raw_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("bytes"))
            .transpose()?;
        Ok((None, bytes))
    }

    /// Records the content fingerprint of an inbound message.
    pub async fn set_fingerprint(tx: &mut Tx, message_id: i64, fingerprint: &str) -> Result<()> {
        sqlx::query("UPDATE message SET content_sha256 = $1 WHERE message_id = $2")
            .bind(nul_free(fingerprint))
            .bind(message_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The ticket that message `message_id` belongs to.
    pub async fn ticket_of_message(tx: &mut Tx, message_id: i64) -> Result<Option<MessageTicket>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM message m JOIN ticket t ON t.ticket_id = m.ticket_id \
                 WHERE m.message_id = $1"
        ))
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(message_ticket).transpose()
    }

    /// The outbound message `message_id` and its ticket, if it is one of ours.
    pub async fn our_message(tx: &mut Tx, message_id: i64) -> Result<Option<OurMessage>> {
        let row = sqlx::query(concat!(
            "SELECT m.message_id, m.kind AS message_kind, m.to_addrs, ",
            ticket_columns!(),
            " FROM message m LEFT JOIN ticket t ON t.ticket_id = m.ticket_id \
                 WHERE m.message_id = $1 AND m.direction = 'out'"
        ))
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let has_ticket = r.try_get::<Option<i64>, _>("ticket_id")?.is_some();
        Ok(Some(OurMessage {
            message_id: r.try_get("message_id")?,
            kind: parsed(&r, "message_kind")?,
            to_addrs: r.try_get("to_addrs")?,
            ticket: if has_ticket {
                Some(message_ticket(&r)?)
            } else {
                None
            },
        }))
    }

    /// Holds the ticket's row until `tx` ends, so that two changes of one ticket on two
    /// instances are serialised: the second waits here, then reads what the first committed
    /// (PostgreSQL, READ COMMITTED: each statement sees the latest commit). An UPDATE that
    /// changes nothing takes the row lock on PostgreSQL the way SELECT … FOR UPDATE does and is
    /// also valid SQLite, where the transaction already holds the write lock (BEGIN
    /// IMMEDIATE).
    pub async fn lock_ticket(tx: &mut Tx, ticket_id: i64) -> Result<()> {
        sqlx::query("UPDATE ticket SET updated_at = updated_at WHERE ticket_id = $1")
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A ticket by its reference, inside a transaction.
    pub async fn ticket_by_ref_in(
        tx: &mut Tx,
        reference: &TicketRef,
    ) -> Result<Option<MessageTicket>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM ticket t WHERE t.ref = $1"
        ))
        .bind(reference.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(message_ticket).transpose()
    }

    /// Writes a ticket's status; only `crate::tickets` calls it, beside the event that says
    /// why.
    pub async fn set_ticket_status(
        tx: &mut Tx,
        ticket_id: i64,
        status: TicketStatus,
        at: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE ticket SET status = $1, updated_at = $2 WHERE ticket_id = $3")
            .bind(status.as_str())
            .bind(at)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn set_ticket_area(
        tx: &mut Tx,
        ticket_id: i64,
        area: &AreaSlug,
        at: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE ticket SET area = $1, updated_at = $2 WHERE ticket_id = $3")
            .bind(area.as_str())
            .bind(at)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn set_ticket_kind(
        tx: &mut Tx,
        ticket_id: i64,
        kind: TicketKind,
        at: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE ticket SET kind = $1, updated_at = $2 WHERE ticket_id = $3")
            .bind(kind.as_str())
            .bind(at)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Staff chose the address the citizen asked for: mail to the citizen goes there.
    pub async fn set_ticket_reply_to(
        tx: &mut Tx,
        ticket_id: i64,
        reply_to: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE ticket SET reply_to = $1, updated_at = $2 WHERE ticket_id = $3")
            .bind(nul_free(reply_to))
            .bind(at)
            .bind(ticket_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Message-ID of the citizen's first message on the ticket: every mail we send the
    /// citizen threads under it.
    pub async fn first_report_id(tx: &mut Tx, ticket_id: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT rfc_message_id FROM message WHERE ticket_id = $1 AND direction = $2 \
             ORDER BY message_id LIMIT 1",
        )
        .bind(ticket_id)
        .bind(Direction::In.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>("rfc_message_id"))
            .transpose()?
            .flatten())
    }

    /// Every message of a ticket, oldest first, without bytes.
    pub async fn ticket_history(tx: &mut Tx, ticket_id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT at, direction, kind, from_addr, text FROM message WHERE ticket_id = $1 \
             ORDER BY message_id",
        )
        .bind(ticket_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at: r.try_get("at")?,
                    direction: parsed(r, "direction")?,
                    kind: parsed(r, "kind")?,
                    from_addr: r.try_get("from_addr")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    /// Marks an outbound message as bounced: its delivery becomes failed with the reason.
    pub async fn mark_bounced(tx: &mut Tx, message_id: i64, reason: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET state = 'failed', last_reply = $1, lease_until = NULL \
             WHERE message_id = $2",
        )
        .bind(nul_free(reason))
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Automatic answers (acknowledgments and "too large" notices) queued for `address` at or
    /// after `since`, for the per-recipient limit. Each of these rows has exactly one
    /// recipient, so `to_addrs` is that address.
    pub async fn acks_to_since(tx: &mut Tx, address: &str, since: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM message WHERE to_addrs = $1 AND kind IN ($3, $4) \
             AND at >= $2",
        )
        .bind(nul_free(address))
        .bind(since)
        .bind(MessageKind::Ack.as_str())
        .bind(MessageKind::Oversize.as_str())
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.try_get("n")?)
    }
}
