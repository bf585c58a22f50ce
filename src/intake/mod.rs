//! Intake, the one door every report enters: from a stored raw message to its outcome —
//! ticket, duplicate, record on a ticket, or quarantine — in one transaction with every
//! outbox row it causes.
//!
//! The IMAP poller and `ticketgate ingest` (in [`crate::inbound`]) and the web form all
//! store the raw bytes first and then call [`Pipeline::process_batch`] (or
//! [`Pipeline::process`]); processing a raw message twice is harmless (it is `pending` only
//! until its transaction commits, and de-duplication keys catch the rest).
//!
//! A batch is read, parsed and its attachments written outside the write lock, then the
//! outcomes of all its messages commit in ONE transaction: a commit costs an fsync (SQLite
//! runs with `synchronous = FULL`), and one per message would cap the drain at a few hundred
//! messages a second. Each message's outcome is still all-or-nothing. If the batch
//! transaction fails, every message is retried in a transaction of its own, and a message
//! whose processing keeps failing is quarantined with the error instead of blocking its
//! mailbox.

mod answer;
mod classify;
mod letters;
mod pec;
pub mod pec_signature;
mod registration;
mod remind;
mod reply;
mod staff_page;
pub mod web_report;

pub use answer::{AnswerAttachment, AnswerAuthor, AnswerOptions};
pub use remind::{as_of_millis, ChaseLine};
pub use staff_page::{StaffAction, StaffOutcome};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Notify;

use crate::attachments::AttachmentStore;
use crate::config::{AddressRoute, Config};
use crate::domain::event::{self, EventKind};
use crate::domain::{
    AreaSlug, Channel, Direction, EmailAddress, MessageKind, OurMessageId, SignedIds, TicketKind,
    TicketRef, TicketStatus, WEB_MAILBOX,
};
use crate::domain::{RawState, Transport};
use crate::mail::compose::{self, OversizeText};
use crate::mail::html::{self, ShownHtml};
use crate::mail::parse::{self, InboundMail};
use crate::mail::prescan;
use crate::mail::registration::Registration;
use crate::mail::route::{route, RoutedArea};
use crate::mail::{fingerprint, tag};
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{
    now_millis, InboundPec, MessageTicket, NewAttachment, NewMessage, NewTicket, RawRow, Store, Tx,
};
use askama::Template;
use classify::{classify, Arrival, Decision, Referenced, Rules};
use letters::{Notification, Offered};
use pec::{PecFacts, ReceiptWork};
use secrecy::ExposeSecret;

/// What became of one raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new ticket; `acknowledged` false when the acknowledgment was withheld (loop
    /// protection or rate limit).
    Ticket {
        reference: String,
        acknowledged: bool,
    },
    /// Seen before (same Message-ID, else same bytes): nothing new was made.
    Duplicate { of_message: i64 },
    /// Recorded on an existing ticket (auto-reply, bounce, follow-up).
    Recorded { reference: String, kind: String },
    /// Kept aside with the reason, for an operator.
    Quarantined { reason: String },
    /// Processed earlier (e.g. by another process).
    AlreadyDone { state: String },
}

/// The inbound processing step, shared by every mailbox poller and by `ingest`.
#[derive(Debug)]
pub struct Pipeline {
    store: Store,
    cfg: Arc<Config>,
    routes: HashMap<String, AddressRoute>,
    own_addresses: HashSet<String>,
    ids: SignedIds,
    attachments: AttachmentStore,
    outbox_wake: Arc<Notify>,
}

/// Messages of a batch prepared at the same time. Preparing writes and fsyncs each attachment
/// file; one after the other, those waits were a fifth of a drain's time.
const PREPARE_CONCURRENCY: usize = 8;

/// Processing attempts of one raw message that may end with the process dying before it is
/// quarantined unread at the next start (the poison rule, see [`Pipeline::process_batch`]).
const MAX_CRASHED_ATTEMPTS: i64 = 2;

/// Attachment files of one message written at the same time (each waits for its fsync).
const ATTACHMENT_WRITE_CONCURRENCY: usize = 8;

/// Milliseconds in the acknowledgment rate-limit window.
const ACK_WINDOW_MILLIS: i64 = 3_600_000;

impl Pipeline {
    pub fn new(
        store: Store,
        cfg: Arc<Config>,
        outbox_wake: Arc<Notify>,
        attachments: AttachmentStore,
    ) -> Pipeline {
        let routes = cfg.address_routes();
        let own_addresses = routes.keys().cloned().collect();
        let ids = SignedIds::new(cfg.security.secret.expose_secret().as_bytes());
        Pipeline {
            store,
            cfg,
            routes,
            own_addresses,
            ids,
            attachments,
            outbox_wake,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration intake was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Where mail to `address` (lowercase) is routed, if it is one of the areas' addresses.
    pub fn route(&self, address: &str) -> Option<&AddressRoute> {
        self.routes.get(address)
    }

    /// `tickets.max_message_bytes`.
    pub fn max_message_bytes(&self) -> u64 {
        self.cfg.tickets.max_message_bytes
    }

    /// Processes one stored raw message to its outcome.
    pub async fn process(&self, raw_message_id: i64) -> anyhow::Result<Outcome> {
        let mut outcomes = self.process_batch(&[raw_message_id]).await?;
        outcomes
            .pop()
            .context("no outcome for the processed message")
    }

    /// Processes stored raw messages, committing their outcomes together.
    ///
    /// The poison rule: an attempt is counted (and committed) for each message before it is
    /// parsed. A message already attempted was being processed when the process died, so it
    /// is processed alone, never in a batch, where it would take its neighbours down with it
    /// again; one whose [`MAX_CRASHED_ATTEMPTS`] attempts all crashed is quarantined unread.
    /// The count is taken back as soon as parsing and preparing are done (or failed with an
    /// error returned), so only a death while the message is read counts against it.
    pub async fn process_batch(&self, raw_message_ids: &[i64]) -> anyhow::Result<Vec<Outcome>> {
        let mut slots: Vec<Option<Outcome>> = Vec::with_capacity(raw_message_ids.len());
        let mut fresh: Vec<(usize, RawRow)> = Vec::new();
        let mut retried: Vec<(usize, RawRow)> = Vec::new();
        for &id in raw_message_ids {
            let raw = self
                .store
                .raw(id)
                .await?
                .with_context(|| format!("raw message {id} not found"))?;
            if raw.state != RawState::Pending {
                slots.push(Some(Outcome::AlreadyDone {
                    state: raw.state.to_string(),
                }));
                continue;
            }
            if raw.attempts >= MAX_CRASHED_ATTEMPTS {
                let outcome = self.quarantine_crasher(&raw).await?;
                report(&raw, &outcome);
                slots.push(Some(outcome));
                continue;
            }
            if raw.attempts > 0 {
                retried.push((slots.len(), raw));
            } else {
                fresh.push((slots.len(), raw));
            }
            slots.push(None);
        }
        let ids: Vec<i64> = fresh.iter().map(|(_, r)| r.raw_message_id).collect();
        let mailbox = fresh.first().map(|(_, r)| r.mailbox.clone());
        self.store.count_attempts(&ids).await?;
        if let Err(e) = self.process_rows(fresh, &mut slots).await {
            return Err(self.defer(&ids, mailbox.as_deref(), e));
        }
        for row in retried {
            let id = row.1.raw_message_id;
            let mailbox = row.1.mailbox.clone();
            self.store.count_attempts(&[id]).await?;
            if let Err(e) = self.process_rows(vec![row], &mut slots).await {
                return Err(self.defer(&[id], Some(&mailbox), e));
            }
        }
        Ok(slots
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::AlreadyDone {
                    state: "unknown".into(),
                })
            })
            .collect())
    }

    /// Leaves messages whose processing failed without a verdict (the attachment directory
    /// full or unwritable, the database busy or failing) pending, to be tried again by the
    /// caller's retry, and says so in one WARN. Their attempt was taken back already
    /// ([`Pipeline::process_rows`]), so a disk that stays full for a while does not get the
    /// message quarantined as a crasher. Whatever of the batch had committed already stays;
    /// nothing of the rest was stored (files written before the failure are unreferenced,
    /// see `attachments`).
    fn defer(&self, ids: &[i64], mailbox: Option<&str>, error: anyhow::Error) -> anyhow::Error {
        metrics::counter!("ticketgate_messages_deferred_total").increment(ids.len() as u64);
        tracing::warn!(
            mailbox = mailbox.unwrap_or_default(),
            raw_message_ids = ?ids,
            error = format!("{error:#}"),
            "messages deferred: kept unprocessed (no ticket, nothing half-stored), tried again later"
        );
        error
    }

    /// Takes back the attempts counted for `ids` once their parsing is behind them, or when
    /// it failed with an error returned. The poison rule is for mail that kills the process
    /// while it is read (nesting, sizes: all in `prepare`); a process killed from outside
    /// (SIGKILL, a restart, the OOM killer for another reason) while the batch waits for the
    /// database must not count against its messages: in the kill rehearsal (20 SIGKILLs
    /// while 1,000 mails arrived, on PostgreSQL) two innocent mails were quarantined as
    /// crashers that way. One more commit per batch, not per message.
    async fn take_back_attempts(&self, ids: &[i64]) {
        if let Err(e) = self.store.uncount_attempts(ids).await {
            tracing::warn!(
                error = %e,
                raw_message_ids = ?ids,
                "could not take back the processing attempt of these messages"
            );
        }
    }

    /// Prepares pending rows (their attempt already counted) and commits their outcomes
    /// together, into their `slots`.
    async fn process_rows(
        &self,
        pending: Vec<(usize, RawRow)>,
        slots: &mut [Option<Outcome>],
    ) -> anyhow::Result<()> {
        let ids: Vec<i64> = pending.iter().map(|(_, r)| r.raw_message_id).collect();
        let prepared: anyhow::Result<Vec<(usize, Prepared)>> = futures::stream::iter(pending)
            .map(|(slot, raw)| async move { anyhow::Ok((slot, self.prepare(raw).await?)) })
            .buffered(PREPARE_CONCURRENCY)
            .try_collect()
            .await;
        if !ids.is_empty() {
            self.take_back_attempts(&ids).await;
        }
        let prepared = prepared?;
        if prepared.is_empty() {
            return Ok(());
        }
        let outcomes = match self.apply_together(&prepared).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    messages = prepared.len(),
                    "batch transaction failed; processing its messages one by one"
                );
                let mut one_by_one = Vec::with_capacity(prepared.len());
                for (_, p) in &prepared {
                    one_by_one.push(self.apply_alone(p).await?);
                }
                one_by_one
            }
        };
        for ((slot, p), outcome) in prepared.iter().zip(outcomes) {
            report(&p.raw, &outcome);
            if let Some(s) = slots.get_mut(*slot) {
                *s = Some(outcome);
            }
        }
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Quarantines a message whose every processing attempt ended with the process dying.
    async fn quarantine_crasher(&self, raw: &RawRow) -> anyhow::Result<Outcome> {
        let reason = format!(
            "crashed the gateway while being processed ({} attempts, each ended with the \
             process dying): kept unread; `quarantine retry` tries it again",
            raw.attempts
        );
        let mut tx = self.store.begin().await?;
        let outcome = quarantine(&mut tx, raw, &reason).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Everything that can be done before taking the write lock: parse, write attachments.
    async fn prepare(&self, raw: RawRow) -> anyhow::Result<Prepared> {
        crash_failpoint(&raw);
        let limit = self.cfg.tickets.max_message_bytes;
        // `parse::parse` refuses deep nesting itself (the nesting pre-scan); PEC classification
        // and the S/MIME check read a PEC box's mail with parsers of their own, so there the
        // pre-scan runs first, once, before any of them sees the bytes.
        let oversize = !raw.complete || u64::try_from(raw.size).unwrap_or(u64::MAX) > limit;
        let pec_box = !oversize && self.is_pec_box(&raw);
        let work = if let Some(e) = pec_box.then(|| prescan::check(&raw.bytes).err()).flatten() {
            let e = parse::ParseError::TooDeep { max: e.max };
            Work::Unparseable(format!("the message cannot be parsed: {e}"))
        } else if oversize {
            Work::Oversize {
                header: parse::parse(&raw.bytes).ok().map(Box::new),
            }
        } else if pec_box {
            return self.prepare_pec(raw).await;
        } else {
            match parse::parse(&raw.bytes) {
                Err(e) => Work::Unparseable(format!("the message cannot be parsed: {e}")),
                Ok(mail) => self.mail_work(&raw, mail, None, None).await?,
            }
        };
        Ok(Prepared { raw, work })
    }

    /// A parsed message ready to apply: its de-duplication key (`key`, else its Message-ID,
    /// else the sha256 of the raw bytes) and its attachments written to storage.
    async fn mail_work(
        &self,
        raw: &RawRow,
        mut mail: InboundMail,
        key: Option<String>,
        pec: Option<PecFacts>,
    ) -> anyhow::Result<Work> {
        let dedup_key = match (key, &mail.message_id) {
            (Some(k), _) => k,
            (None, Some(id)) if !id.trim().is_empty() => format!("mid:{}", id.trim()),
            _ => format!("sha256:{}", raw.sha256),
        };
        // Beyond the cap the parts stay in the raw message (kept whole) and are only counted.
        let cap = usize::try_from(self.cfg.tickets.max_attachments).unwrap_or(usize::MAX);
        let not_extracted = mail.attachments.len().saturating_sub(cap);
        mail.attachments.truncate(cap);
        let attachments = self.store_attachments(&mail).await?;
        let mut mail = mail;
        mail.shown_html = match mail.html.clone().filter(|h| !h.trim().is_empty()) {
            // Sanitising is CPU work that grows with the input: never on an async worker.
            Some(h) => Some(
                tokio::task::spawn_blocking(move || html::prepare(&h))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "sanitising an HTML body failed; text only");
                        ShownHtml::Withheld(html::Withheld::Unusual)
                    }),
            ),
            None => None,
        };
        Ok(Work::Mail {
            mail: Box::new(mail),
            fingerprint: fingerprint::content_fingerprint(&raw.bytes),
            dedup_key,
            attachments,
            not_extracted,
            pec: pec.map(Box::new),
        })
    }

    async fn apply_together(&self, prepared: &[(usize, Prepared)]) -> anyhow::Result<Vec<Outcome>> {
        let mut tx = self.store.begin().await?;
        let mut outcomes = Vec::with_capacity(prepared.len());
        for (_, p) in prepared {
            outcomes.push(self.apply(&mut tx, p).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// One message in its own transaction; a second try after losing a de-duplication
    /// race; quarantine with the error when it still fails.
    async fn apply_alone(&self, p: &Prepared) -> anyhow::Result<Outcome> {
        let mut last = None;
        for _ in 0..2 {
            let mut tx = self.store.begin().await?;
            match self.apply(&mut tx, p).await {
                Ok(outcome) => {
                    tx.commit().await?;
                    return Ok(outcome);
                }
                Err(e) => {
                    tx.rollback().await.ok();
                    let conflict = e.is::<Conflict>();
                    last = Some(e);
                    if !conflict {
                        break;
                    }
                }
            }
        }
        let reason = match last {
            Some(e) => format!("processing failed: {e:#}"),
            None => "processing failed".to_owned(),
        };
        let mut tx = self.store.begin().await?;
        Store::finish_raw(
            &mut tx,
            p.raw.raw_message_id,
            RawState::Quarantined,
            Some(&reason),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Quarantined { reason })
    }

    /// Decides the outcome of one prepared message and writes it in `tx`.
    async fn apply(&self, tx: &mut Tx, p: &Prepared) -> anyhow::Result<Outcome> {
        let raw = &p.raw;
        let (mail, dedup_key, fingerprint, stored, not_extracted, pec) = match &p.work {
            Work::Oversize { header } => return self.oversize(tx, raw, header.as_deref()).await,
            Work::Unparseable(reason) => return quarantine(tx, raw, reason).await,
            Work::PecReceipt(r) => return self.pec_receipt(tx, raw, r).await,
            Work::Mail {
                mail,
                dedup_key,
                fingerprint,
                attachments,
                not_extracted,
                pec,
            } => (
                mail.as_ref(),
                dedup_key.as_str(),
                fingerprint.as_str(),
                attachments.as_slice(),
                *not_extracted,
                pec.as_deref(),
            ),
        };
        // The same key is a duplicate only with the same content: a stranger can send a mail
        // with the (predictable) Message-ID of a genuine mail before it arrives. Another
        // content under a taken key is a new message, stored under the key plus its
        // fingerprint and flagged (a re-delivery of it is then a duplicate of it).
        let reused_key;
        let mut reused_of = None;
        let dedup_key = match Store::inbound_by_dedup_key(tx, dedup_key).await? {
            None => dedup_key,
            Some(orig) => {
                let earlier = match Store::inbound_fingerprint(tx, orig).await? {
                    (Some(f), _) => Some(f),
                    (None, Some(bytes)) => Some(fingerprint::content_fingerprint(&bytes)),
                    (None, None) => None,
                };
                // Unknown content (no raw kept): the old rule, same key is the same message.
                if earlier.as_deref().is_none_or(|e| e == fingerprint) {
                    return duplicate(tx, raw, orig).await;
                }
                reused_key = format!("{dedup_key}#{fingerprint}");
                if let Some(again) = Store::inbound_by_dedup_key(tx, &reused_key).await? {
                    return duplicate(tx, raw, again).await;
                }
                reused_of = Some(orig);
                reused_key.as_str()
            }
        };
        let from_addr = classify::sender(mail);
        let referenced = self.referenced(tx, raw, mail, pec, &from_addr).await?;
        let ctx = Ctx {
            raw,
            mail,
            dedup_key,
            stored,
            not_extracted,
            fingerprint,
            reused_of,
            pec,
        };
        let arrival = Arrival {
            mailbox: &raw.mailbox,
            bytes: &raw.bytes,
            pec: pec.is_some(),
        };
        let rules = Rules {
            cfg: &self.cfg,
            own_addresses: &self.own_addresses,
        };
        match classify(&arrival, mail, referenced, &rules) {
            Decision::Bounce { ours, ticket } => {
                self.bounce(tx, &ctx, &ours, &ticket, &from_addr).await
            }
            Decision::Automatic {
                ticket,
                kind,
                reason,
            } => {
                let details = event::MessageReason {
                    message: None,
                    reason,
                };
                let (kind, recorded) = match kind.parse::<MessageKind>()? {
                    MessageKind::Receipt => (MessageKind::Receipt, EventKind::Receipt(details)),
                    _ => (MessageKind::AutoReply, EventKind::AutoReply(details)),
                };
                self.record(tx, &ctx, &ticket, kind, recorded, &from_addr)
                    .await
            }
            Decision::StaffReply { ticket, answers } => {
                self.staff_reply(tx, &ctx, &ticket, &answers, &from_addr)
                    .await
            }
            Decision::UnverifiedStaff { ticket, reason } => {
                self.unverified_staff(tx, &ctx, &ticket, &from_addr, &reason)
                    .await
            }
            Decision::FollowUp { ticket } => {
                self.citizen_follow_up(tx, &ctx, &ticket, &from_addr).await
            }
            Decision::NewTicket { no_ack, linked_to } => {
                let linked_to = linked_to.as_deref().map(str::parse).transpose()?;
                self.new_ticket(tx, &ctx, &from_addr, no_ack, linked_to, None)
                    .await
            }
            Decision::Register { registration } => {
                let on_behalf = OnBehalf {
                    registration: &registration,
                    staff: &from_addr,
                };
                self.new_ticket(tx, &ctx, &from_addr, None, None, Some(on_behalf))
                    .await
            }
            Decision::RegistrationRefused { problem } => {
                self.refuse_registration(tx, &ctx, &from_addr, &problem)
                    .await
            }
            Decision::Quarantine(reason) => quarantine(tx, raw, &reason).await,
        }
    }

    /// What the store knows about the mail's references: which of our messages it answers
    /// (a DSN names the bounced message in its returned headers; a bounce that is no DSN
    /// carries our id somewhere in its text; anything else in its reference headers, newest
    /// first; by PEC, the provider's id of our certified mail), else the ticket its subject's
    /// tag names.
    async fn referenced(
        &self,
        tx: &mut Tx,
        raw: &RawRow,
        mail: &InboundMail,
        pec: Option<&PecFacts>,
        from_addr: &str,
    ) -> anyhow::Result<Referenced> {
        let dsn_ref = mail
            .dsn
            .as_ref()
            .and_then(|d| d.original_message_id.clone());
        let bounce = classify::is_bounce(mail, from_addr);
        let ours = dsn_ref
            .iter()
            .chain(mail.in_reply_to.iter())
            .chain(mail.references.iter().rev())
            .find_map(|id| self.ids.verify(id))
            .or_else(|| {
                bounce
                    .then(|| find_our_id_in(&raw.bytes, &self.ids))
                    .flatten()
            });
        let mut referenced = match &ours {
            Some(OurMessageId { message, .. }) => Store::our_message(tx, *message).await?,
            None => None,
        };
        if referenced.is_none() && pec.is_some() {
            // By PEC, the citizen's client answers the provider's identificativo of our
            // certified mail, not our own Message-ID.
            let ids = mail.in_reply_to.iter().chain(mail.references.iter().rev());
            referenced = self.our_message_by_pec_id(tx, ids).await?;
        }
        // Not answering a message of ours: a ticket tag in the subject still names a ticket.
        let tagged = match referenced.as_ref().and_then(|m| m.ticket.as_ref()) {
            Some(_) => None,
            None => match tag::find_ticket_ref(&mail.subject, &self.cfg.tickets.tag_prefix) {
                Some(r) => Store::ticket_by_ref_in(tx, &r).await?,
                None => None,
            },
        };
        Ok(Referenced {
            ours: referenced,
            tagged,
        })
    }

    /// An over-limit message: only its header was kept; the message itself stays on the
    /// server. The sender is told the limit, unless the mail was automatic.
    async fn oversize(
        &self,
        tx: &mut Tx,
        raw: &RawRow,
        header: Option<&InboundMail>,
    ) -> anyhow::Result<Outcome> {
        let limit_bytes = self.cfg.tickets.max_message_bytes;
        let reason = format!(
            "message of {} bytes is over the limit of {} bytes (tickets.max_message_bytes); \
             header kept, the whole message stays on the server",
            raw.size, limit_bytes
        );
        Store::finish_raw(
            tx,
            raw.raw_message_id,
            RawState::Quarantined,
            Some(&reason),
            None,
        )
        .await?;
        let Some(mail) = header.filter(|m| m.auto.is_none() && m.dsn.is_none()) else {
            return Ok(Outcome::Quarantined { reason });
        };
        // The same rules as the acknowledgment: only to From (one valid address), never to
        // our own addresses, within the per-recipient limit, never when From looks forged.
        // In a PEC box the header is the provider's transport envelope: its From is the
        // provider's robot and the provider states the certified sender in Reply-To (the same
        // reading as `set_certified_sender`).
        let to = if self.is_pec_box(raw) {
            mail.reply_to.as_ref().or(mail.from.as_ref())
        } else {
            mail.from.as_ref()
        };
        let Some(to) = to else {
            return Ok(Outcome::Quarantined { reason });
        };
        let Ok(to_addr) = EmailAddress::parse(&to.address) else {
            return Ok(Outcome::Quarantined { reason });
        };
        if self.own_addresses.contains(to_addr.as_str())
            || classify::forged_from(
                &self.cfg,
                &Arrival {
                    mailbox: &raw.mailbox,
                    bytes: &raw.bytes,
                    pec: false,
                },
                to_addr.as_str(),
            )
            .is_some()
        {
            return Ok(Outcome::Quarantined { reason });
        }
        let Some(area) = route(mail, &self.routes).into_iter().next() else {
            return Ok(Outcome::Quarantined { reason });
        };
        let now = now_millis();
        let limit = i64::from(self.cfg.tickets.acks_per_sender_per_hour);
        if Store::acks_to_since(tx, to_addr.as_str(), now - ACK_WINDOW_MILLIS).await? >= limit {
            tracing::info!(
                raw_message_id = raw.raw_message_id,
                to = %to_addr,
                "too-large notice withheld (tickets.acks_per_sender_per_hour)"
            );
            return Ok(Outcome::Quarantined { reason });
        }
        let area_name = self.area_name(&area.area);
        // The sender's subject is not echoed: it is a stranger's text, and this notice goes
        // out before anyone read the mail. In-Reply-To threads the notice under the message,
        // which is how the sender's mail client shows which one it is about.
        let text = OversizeText {
            size_mb: compose::human_size(u64::try_from(raw.size).unwrap_or(0)),
            limit_mb: compose::human_size(limit_bytes),
        }
        .render()?;
        queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: None,
                kind: MessageKind::Oversize,
                from_name: &area_name,
                from_addr: &area.address,
                to: vec![to_addr],
                reply_to: None,
                subject: "Messaggio troppo grande / Message too large",
                in_reply_to: mail.message_id.as_deref(),
                references: mail.message_id.iter().cloned().collect(),
                auto_replied: true,
                text: &text,
                attachments: Vec::new(),
                transport: Transport::Smtp,
            },
        )
        .await?;
        Ok(Outcome::Quarantined { reason })
    }

    fn area_name(&self, slug: &str) -> String {
        classify::area_name(&self.cfg, slug)
    }

    /// Stores attachments as files, before the transaction that references them.
    async fn store_attachments(&self, mail: &InboundMail) -> anyhow::Result<Vec<(usize, String)>> {
        // A few at a time: each write waits for its own fsync.
        let mut out = Vec::with_capacity(mail.attachments.len());
        for chunk in mail.attachments.chunks(ATTACHMENT_WRITE_CONCURRENCY) {
            let writes = chunk.iter().map(|a| self.attachments.put(&a.bytes));
            let shas = futures::future::try_join_all(writes)
                .await
                .context("writing an attachment to storage.dir")?;
            for sha in shas {
                out.push((out.len(), sha));
            }
        }
        Ok(out)
    }

    /// The inbound message row and its attachments; `Err(Conflict)` when another process
    /// stored a message with the same de-duplication key meanwhile.
    async fn insert_inbound(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        ticket_id: i64,
        kind: MessageKind,
        from_addr: &str,
    ) -> anyhow::Result<i64> {
        let mail = ctx.mail;
        let to_addrs = mail
            .to
            .iter()
            .chain(mail.cc.iter())
            .map(|m| m.address.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let in_reply_to = mail.in_reply_to.first().map(|s| s.as_str());
        let message_id = Store::insert_message(
            tx,
            &NewMessage {
                ticket_id: Some(ticket_id),
                direction: Direction::In,
                kind,
                rfc_message_id: mail.message_id.as_deref(),
                in_reply_to,
                dedup_key: Some(ctx.dedup_key),
                from_addr,
                to_addrs: &to_addrs,
                subject: &mail.subject,
                text: &mail.text,
                html: mail.html.as_deref(),
                at: ctx.raw.received_at,
                sha256: &ctx.raw.sha256,
                raw_message_id: Some(ctx.raw.raw_message_id),
            },
        )
        .await?
        .ok_or(Conflict)?;
        if let Some(shown) = &mail.shown_html {
            let (safe, withheld) = match shown {
                ShownHtml::Safe(h) => (Some(h.as_str()), None),
                ShownHtml::Withheld(why) => (None, Some(why.as_str())),
            };
            Store::set_shown_html(tx, message_id, safe, withheld).await?;
        }
        if let Some(pec) = ctx.pec {
            Store::set_inbound_pec(
                tx,
                message_id,
                &InboundPec {
                    pec_id: pec.identificativo.as_deref(),
                    certified_at: pec.certified_at,
                    signature: pec.signature.as_str(),
                    signature_detail: pec.signature.detail(),
                },
            )
            .await?;
        }
        for (i, sha) in ctx.stored {
            if let Some(a) = mail.attachments.get(*i) {
                Store::insert_attachment(
                    tx,
                    message_id,
                    Some(ticket_id),
                    &NewAttachment {
                        filename: &a.filename,
                        content_type: &a.content_type,
                        size: a.bytes.len() as u64,
                        sha256: sha,
                        content_id: a.content_id.as_deref(),
                        inline: a.inline,
                    },
                )
                .await?;
            }
        }
        if !ctx.fingerprint.is_empty() {
            Store::set_fingerprint(tx, message_id, ctx.fingerprint).await?;
        }
        if let Some(earlier) = ctx.reused_of {
            tracing::warn!(
                raw_message_id = ctx.raw.raw_message_id,
                earlier_message = earlier,
                "same Message-ID as an earlier message, other content: kept as a new message"
            );
            let details = event::MessageIdReused {
                message: Some(message_id),
                earlier_message: Some(earlier),
                message_id: mail.message_id.clone(),
                reason: "an earlier message carried the same Message-ID with other content \
                         (one of the two may be forged): both are kept"
                    .to_owned(),
            };
            let reused = EventKind::MessageIdReused(details);
            Store::insert_event(tx, ticket_id, &reused, "system", now_millis()).await?;
        }
        if ctx.not_extracted > 0 {
            let details = event::AttachmentsNotExtracted {
                message: Some(message_id),
                extracted: ctx.stored.len() as u64,
                not_extracted: ctx.not_extracted as u64,
                reason: format!(
                    "more than tickets.max_attachments = {}: the rest are kept in the original \
                     message",
                    self.cfg.tickets.max_attachments
                ),
            };
            let not_extracted = EventKind::AttachmentsNotExtracted(details);
            Store::insert_event(tx, ticket_id, &not_extracted, "system", now_millis()).await?;
        }
        Ok(message_id)
    }

    /// Records a message on an existing ticket (bounce, auto-reply, receipt…) with an
    /// event of the same kind.
    async fn record(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        kind: MessageKind,
        event: EventKind,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        self.record_message(tx, ctx, t, kind, event, from_addr)
            .await?;
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: kind.as_str().to_owned(),
        })
    }

    /// Stores the inbound message on `t` as `kind`, adds the event (naming the message),
    /// closes the raw message.
    async fn record_message(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        kind: MessageKind,
        mut event: EventKind,
        from_addr: &str,
    ) -> anyhow::Result<i64> {
        let message_id = self
            .insert_inbound(tx, ctx, t.ticket_id, kind, from_addr)
            .await?;
        let now = now_millis();
        event.set_message(message_id);
        Store::insert_event(tx, t.ticket_id, &event, from_addr, now).await?;
        Store::touch_ticket(tx, t.ticket_id, now).await?;
        Store::finish_raw(
            tx,
            ctx.raw.raw_message_id,
            RawState::Processed,
            None,
            Some(message_id),
        )
        .await?;
        Ok(message_id)
    }

    /// A new ticket from the mail in `ctx`: its citizen is `sender` (the From), or — for a
    /// report a staff member registers (`on_behalf`) — the person the `#registra` line names.
    async fn new_ticket(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        sender: &str,
        no_ack_reason: Option<String>,
        linked_to: Option<TicketRef>,
        on_behalf: Option<OnBehalf<'_>>,
    ) -> anyhow::Result<Outcome> {
        let (raw, mail) = (ctx.raw, ctx.mail);
        let mut areas = route(mail, &self.routes);
        if areas.is_empty() {
            let default = self
                .cfg
                .mailbox(&raw.mailbox)
                .and_then(|m| m.default_area.clone());
            match default.and_then(|slug| self.cfg.area(&slug)) {
                Some(area) => {
                    let address = area
                        .addresses
                        .first()
                        .map(|a| a.address().to_lowercase())
                        .unwrap_or_default();
                    let route = self.routes.get(&address).cloned().unwrap_or(AddressRoute {
                        area: area.slug.clone(),
                        kind: None,
                    });
                    areas.push(RoutedArea {
                        area: area.slug.clone(),
                        address,
                        route,
                    });
                }
                None => {
                    let reason = format!(
                        "no area: no recipient is an area address and mailbox {:?} has no \
                         default_area",
                        raw.mailbox
                    );
                    return quarantine(tx, raw, &reason).await;
                }
            }
        }
        let owner = &areas[0];
        // A report from the web form names its kind; only the web page stores raw messages
        // under the reserved mailbox name, so the header is trusted there and nowhere else.
        let web = raw.mailbox == WEB_MAILBOX;
        let kind = web
            .then(|| web_report::kind_of(&raw.bytes))
            .flatten()
            .or(owner.route.kind)
            .unwrap_or(TicketKind::Segnalazione);
        let from_addr = mail
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .unwrap_or_else(|| sender.to_owned());
        let registered = on_behalf.as_ref().map(|b| b.registration);
        let citizen_name = match registered {
            Some(r) => r.name.clone(),
            None => mail.from.as_ref().and_then(|m| m.name.clone()),
        };
        // Kept and shown to staff; answers go there only when staff choose it (`#rispondi-a`).
        // A registering staff member's Reply-To is no wish of the citizen's.
        let reply_to_asked = mail
            .reply_to
            .as_ref()
            .map(|m| m.address.clone())
            .filter(|a| a != sender && registered.is_none());
        let citizen = match registered {
            // No address given: the reserved no-address, which nothing is ever mailed to.
            Some(r) => r.citizen.clone().unwrap_or_else(EmailAddress::none),
            // Senders come from a parsed From (always one valid address) or the account of
            // the web form: this refuses nothing those let through.
            None => match EmailAddress::parse(sender) {
                Ok(c) => c,
                Err(_) => {
                    let reason = format!("the sender {sender:?} is not one valid address");
                    return quarantine(tx, raw, &reason).await;
                }
            },
        };
        // A registered report is what follows the `#registra` line; the HTML form of the
        // staff member's mail (line included) stays on the message.
        let (report_text, report_html) = match registered {
            Some(r) => (r.body.as_str(), None),
            None => (mail.text.as_str(), mail.html.as_deref()),
        };
        let area = AreaSlug::parse(&owner.area)?;
        let now = now_millis();
        let year = reference_year(now);

        let seq = Store::next_ticket_seq(tx, i64::from(year)).await?;
        let reference = TicketRef::new(year, u32::try_from(seq).unwrap_or(u32::MAX))
            .context("ticket sequence exhausted for this year")?;
        let ticket_id = Store::insert_ticket(
            tx,
            &NewTicket {
                reference,
                kind,
                area: &area,
                citizen: &citizen,
                citizen_name: citizen_name.as_deref(),
                subject: &mail.subject,
                text: report_text,
                html: report_html,
                channel: if let Some(r) = registered {
                    r.channel
                } else if ctx.pec.is_some() {
                    Channel::Pec
                } else if web {
                    Channel::Web
                } else {
                    Channel::Email
                },
                at: now,
                certified: ctx.pec.map(|p| p.certified),
                pec_address: ctx.pec.map(|_| owner.address.as_str()),
                reply_to: None,
                reply_to_asked: reply_to_asked.as_deref(),
            },
        )
        .await?;
        let message_id = self
            .insert_inbound(tx, ctx, ticket_id, MessageKind::Report, &from_addr)
            .await?;
        let received = EventKind::Received(event::Received {
            message: Some(message_id),
            area: Some(area.clone()),
            address: owner.address.clone(),
            kind: kind.as_str().to_owned(),
            mailbox: raw.mailbox.clone(),
            also_addressed: areas[1..].iter().map(|a| a.area.clone()).collect(),
            reply_to_asked: reply_to_asked.clone(),
            pec: ctx.pec.map(|p| p.details.clone()),
            registered_by: on_behalf.as_ref().map(|b| b.staff.to_owned()),
        });
        Store::insert_event(tx, ticket_id, &received, sender, now).await?;
        if let Some(other) = linked_to {
            let linked = EventKind::Linked(event::Linked {
                ticket: other.to_string(),
                reason: "the message carries the other ticket's tag".to_owned(),
            });
            Store::insert_event(tx, ticket_id, &linked, sender, now).await?;
        }

        let mut ack_withheld = no_ack_reason;
        if ack_withheld.is_none() && citizen.is_none() {
            ack_withheld = Some("the citizen gave no email address".to_owned());
        }
        if ack_withheld.is_none() {
            let limit = i64::from(self.cfg.tickets.acks_per_sender_per_hour);
            let to = citizen.as_str();
            let sent = Store::acks_to_since(tx, to, now - ACK_WINDOW_MILLIS).await?;
            if sent >= limit {
                ack_withheld = Some(format!(
                    "{sent} acknowledgments sent to {to} in the last hour \
                     (tickets.acks_per_sender_per_hour = {limit})"
                ));
            }
        }
        let t = MessageTicket {
            ticket_id,
            reference,
            area,
            citizen,
            subject: mail.subject.clone(),
            status: TicketStatus::Received,
            kind,
            pec_address: ctx.pec.map(|_| owner.address.clone()),
            reply_to: None,
            reply_to_asked: reply_to_asked.clone(),
        };
        match &ack_withheld {
            None => {
                let ack = letters::AckFor {
                    citizen_name: citizen_name.as_deref(),
                    thread_under_report: registered.is_none(),
                    created_at: now,
                };
                self.acknowledge(tx, &t, reference, owner, kind, mail, &ack)
                    .await?
            }
            Some(reason) => {
                let withheld = EventKind::AckWithheld(event::Reason {
                    reason: reason.clone(),
                });
                Store::insert_event(tx, ticket_id, &withheld, "system", now).await?
            }
        }
        let files = Offered::of_message(tx, message_id, mail, ctx.stored).await?;
        let headline = match (&on_behalf, registered) {
            (Some(b), Some(r)) => format!(
                "Nuova pratica ({}, registrata da {}{}):",
                r.channel.italian(),
                b.staff,
                r.name
                    .as_deref()
                    .map(|n| format!(", per {n}"))
                    .unwrap_or_default()
            ),
            _ => "Nuova pratica".to_owned(),
        };
        for (i, area) in areas.iter().enumerate() {
            let others: Vec<String> = areas
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| self.area_name(&a.area))
                .collect();
            let t_area = MessageTicket {
                area: AreaSlug::parse(&area.area)?,
                ..t.clone()
            };
            let also_areas = others.join(", ");
            let notification = Notification {
                headline: &headline,
                subject: &mail.subject,
                text: report_text,
                files: &files,
                not_extracted: ctx.not_extracted,
                also_areas: &also_areas,
                kind: kind.as_str(),
                history: "",
            };
            self.notify_staff(tx, &t_area, &notification).await?;
        }
        if let (Some(b), Some(r)) = (&on_behalf, registered) {
            let confirmation = registration::Confirmation {
                registration: r,
                staff: b.staff,
                ack_withheld: ack_withheld.as_deref(),
            };
            self.confirm_registration(tx, ctx, &t, &confirmation)
                .await?;
        }
        Store::finish_raw(
            tx,
            raw.raw_message_id,
            RawState::Processed,
            None,
            Some(message_id),
        )
        .await?;
        Ok(Outcome::Ticket {
            reference: reference.to_string(),
            acknowledged: ack_withheld.is_none(),
        })
    }
}

/// A raw message with everything done to it that needs no write lock.
#[derive(Debug)]
struct Prepared {
    raw: RawRow,
    work: Work,
}

#[derive(Debug)]
enum Work {
    /// Over `max_message_bytes`: only the header is stored (parsed if possible).
    Oversize {
        header: Option<Box<InboundMail>>,
    },
    Unparseable(String),
    Mail {
        mail: Box<InboundMail>,
        dedup_key: String,
        /// `mail::fingerprint::content_fingerprint` of the raw message.
        fingerprint: String,
        /// (index into `mail.attachments`, sha256 of the stored file)
        attachments: Vec<(usize, String)>,
        /// Attachments over `tickets.max_attachments`, left in the raw message.
        not_extracted: usize,
        /// Set for mail from a PEC box (the citizen's message unwrapped from its envelope).
        pec: Option<Box<PecFacts>>,
    },
    /// A PEC provider's receipt for one of our messages.
    PecReceipt(Box<ReceiptWork>),
}

/// A report a staff member registers on the citizen's behalf (`#registra`): who they are
/// and what the line said.
#[derive(Debug, Clone, Copy)]
struct OnBehalf<'a> {
    registration: &'a Registration,
    /// The registering staff member (the mail's From).
    staff: &'a str,
}

/// What the writing steps of one message share.
struct Ctx<'a> {
    raw: &'a RawRow,
    mail: &'a InboundMail,
    dedup_key: &'a str,
    stored: &'a [(usize, String)],
    /// Attachments over `tickets.max_attachments`, left in the raw message.
    not_extracted: usize,
    /// Content fingerprint of the raw message (`""` when there is none to keep).
    fingerprint: &'a str,
    /// The earlier message with the same Message-ID (de-duplication key) but other content.
    reused_of: Option<i64>,
    pec: Option<&'a PecFacts>,
}

/// Another process stored a message with the same de-duplication key first; retrying
/// the message in a fresh transaction finds it and records a duplicate.
#[derive(Debug, thiserror::Error)]
#[error("a message with the same de-duplication key was stored concurrently")]
struct Conflict;

async fn quarantine(tx: &mut Tx, raw: &RawRow, reason: &str) -> anyhow::Result<Outcome> {
    Store::finish_raw(
        tx,
        raw.raw_message_id,
        RawState::Quarantined,
        Some(reason),
        None,
    )
    .await?;
    Ok(Outcome::Quarantined {
        reason: reason.to_owned(),
    })
}

async fn duplicate(tx: &mut Tx, raw: &RawRow, orig: i64) -> anyhow::Result<Outcome> {
    Store::finish_raw(
        tx,
        raw.raw_message_id,
        RawState::Duplicate,
        None,
        Some(orig),
    )
    .await?;
    Ok(Outcome::Duplicate { of_message: orig })
}

/// Test-only: aborts the process, as a stack overflow would, when the raw message contains
/// the bytes of the environment variable `TICKETGATE_TEST_CRASH_MARKER`, so the poison rule
/// can be proved end to end. Compiled into debug builds only: a release binary ignores it.
#[cfg(debug_assertions)]
fn crash_failpoint(raw: &RawRow) {
    if let Some(marker) = std::env::var_os("TICKETGATE_TEST_CRASH_MARKER") {
        let marker = marker.as_encoded_bytes();
        if !marker.is_empty() && raw.bytes.windows(marker.len()).any(|w| w == marker) {
            eprintln!("ticketgate: test crash marker found, aborting");
            std::process::abort();
        }
    }
}

#[cfg(not(debug_assertions))]
fn crash_failpoint(_raw: &RawRow) {}

/// Logs and counts an outcome once it is committed.
fn report(raw: &RawRow, outcome: &Outcome) {
    let id = raw.raw_message_id;
    match outcome {
        Outcome::Ticket {
            reference,
            acknowledged,
        } => {
            metrics::counter!("ticketgate_tickets_created_total").increment(1);
            tracing::info!(raw_message_id = id, ticket = %reference, acknowledged, "ticket created");
        }
        Outcome::Duplicate { of_message } => {
            metrics::counter!("ticketgate_duplicates_total").increment(1);
            tracing::info!(raw_message_id = id, of_message, "duplicate message");
        }
        Outcome::Recorded { reference, kind } => {
            metrics::counter!("ticketgate_recorded_total").increment(1);
            tracing::info!(raw_message_id = id, ticket = %reference, kind, "message recorded on ticket");
        }
        Outcome::Quarantined { reason } => {
            metrics::counter!("ticketgate_quarantined_total").increment(1);
            tracing::warn!(raw_message_id = id, mailbox = %raw.mailbox, reason, "message quarantined");
        }
        Outcome::AlreadyDone { .. } => {}
    }
}

/// Our signed Message-ID anywhere in a raw message (a bounce quoting our mail).
fn find_our_id_in(raw: &[u8], ids: &SignedIds) -> Option<OurMessageId> {
    let text = String::from_utf8_lossy(raw);
    text.split(|c: char| c.is_whitespace() || "<>\"'();,".contains(c))
        .filter(|w| w.starts_with('t') && w.contains(".m") && w.contains('@'))
        .find_map(|w| ids.verify(w))
}

/// The year of a ticket created at `now`: its year in Rome (issue 14), so that the reference
/// and the creation date shown to everyone agree at New Year.
fn reference_year(now: i64) -> u16 {
    u16::try_from(crate::domain::rome_year(now)).unwrap_or(2026)
}
