//! The outbox's write side: producers queue, the worker drains. Every mail the program sends
//! is queued here by [`queue_mail`] — intake (acknowledgments, notifications, answers,
//! notices) and the web pages (account links) — which composes the exact bytes with our
//! signed Message-ID and inserts the message and its outbox row inside the caller's
//! transaction, so a mail exists if and only if what caused it committed.
//!
//! Producers use only this module (and [`Transport`]); they never write outbox rows
//! themselves nor reach into the worker. Nothing here talks to an SMTP server: the worker
//! ([`crate::outbound::worker`]) sends later, at least once, the very bytes stored here.

use crate::domain::Transport;
use crate::domain::{Direction, EmailAddress, MessageKind, SignedIds, TicketRef};
use crate::mail::compose::{self, Envelope, OutAttachment};
use crate::store::{now_millis, raw_sha256_hex, NewMessage, Result, Store, Tx};

/// One mail to queue.
#[derive(Debug, Clone)]
pub struct Queued<'a> {
    pub ticket: Option<(i64, TicketRef)>,
    pub kind: MessageKind,
    pub from_name: &'a str,
    pub from_addr: &'a str,
    /// The recipients, each one valid address; stored and handed to SMTP as this list.
    pub to: Vec<EmailAddress>,
    pub reply_to: Option<(&'a str, &'a str)>,
    pub subject: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: Vec<String>,
    pub auto_replied: bool,
    pub text: &'a str,
    pub attachments: Vec<OutAttachment<'a>>,
    pub transport: Transport,
}

/// Composes and queues `q`; returns our message row id.
pub async fn queue_mail(tx: &mut Tx, ids: &SignedIds, q: &Queued<'_>) -> Result<i64> {
    queue(tx, ids, q, None).await
}

/// Like [`queue_mail`], with `html` as an HTML alternative of `q.text` (trusted markup: every
/// value in it escaped by the caller, e.g. an askama template). `q.attachments` must be empty.
pub async fn queue_mail_with_html(
    tx: &mut Tx,
    ids: &SignedIds,
    q: &Queued<'_>,
    html: &str,
) -> Result<i64> {
    queue(tx, ids, q, Some(html)).await
}

async fn queue(tx: &mut Tx, ids: &SignedIds, q: &Queued<'_>, html: Option<&str>) -> Result<i64> {
    // The last guard for tickets registered without the citizen's address: every producer
    // checks first (and records instead), this makes a forgotten check an error that rolls
    // the change back, never a mail to a made-up address.
    if q.to.iter().any(EmailAddress::is_none) {
        return Err(crate::store::StoreError::NoAddress);
    }
    let at = now_millis();
    // For display and the per-recipient limits only; the envelope uses the list itself.
    let to_addrs =
        q.to.iter()
            .map(EmailAddress::as_str)
            .collect::<Vec<_>>()
            .join(", ");
    let message_id = Store::insert_message(
        tx,
        &NewMessage {
            ticket_id: q.ticket.map(|t| t.0),
            direction: Direction::Out,
            kind: q.kind,
            rfc_message_id: None,
            in_reply_to: q.in_reply_to,
            dedup_key: None,
            from_addr: q.from_addr,
            to_addrs: &to_addrs,
            subject: q.subject,
            text: q.text,
            html: None,
            at,
            sha256: "",
            raw_message_id: None,
        },
    )
    .await?
    // Outbound rows have no dedup key, so the insert cannot conflict.
    .ok_or(crate::store::StoreError::Db(sqlx::Error::RowNotFound))?;
    let domain = q
        .from_addr
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("localhost");
    let rfc_id = ids.make(q.ticket.map(|t| t.1), message_id, domain);
    let envelope = Envelope {
        from_name: q.from_name,
        from_addr: q.from_addr,
        to: &q.to,
        reply_to: q.reply_to,
        subject: q.subject,
        message_id: &rfc_id,
        in_reply_to: q.in_reply_to,
        references: &q.references,
        auto_replied: q.auto_replied,
        date_millis: at,
    };
    let bytes = match html {
        Some(html) => compose::build_alternative(&envelope, q.text, html),
        None => compose::build_with_attachments(&envelope, q.text, &q.attachments),
    };
    let sha = raw_sha256_hex(&bytes);
    Store::set_outbound_bytes(tx, message_id, &rfc_id, &bytes, &sha).await?;
    Store::enqueue(tx, message_id, q.from_addr, &q.to, q.transport).await?;
    Ok(message_id)
}
