//! From a stored raw message to its outcome: ticket, duplicate, record on a ticket, or
//! quarantine — in one transaction with every outbox row it causes.
//!
//! The poller and `ticketgate ingest` both store the raw bytes first and then call
//! [`Pipeline::process`]; processing a raw message twice is harmless (it is `pending` only
//! until its transaction commits, and de-duplication keys catch the rest).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use tokio::sync::Notify;

use crate::attachments::AttachmentStore;
use crate::config::{AddressRoute, Config};
use crate::domain::{rfc3339, Channel, OurMessageId, SignedIds, TicketKind, TicketRef};
use crate::mail::autoreply::AutoReason;
use crate::mail::compose::{self, AckText, NotificationText, OversizeText};
use crate::mail::parse::{self, InboundMail};
use crate::mail::route::{route, RoutedArea};
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{
    now_millis, MessageTicket, NewAttachment, NewMessage, NewTicket, RawRow, Store, Tx,
};
use askama::Template;
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

/// Milliseconds in the acknowledgment rate-limit window.
const ACK_WINDOW_MILLIS: i64 = 3_600_000;

impl Pipeline {
    pub fn new(store: Store, cfg: Arc<Config>, outbox_wake: Arc<Notify>) -> Pipeline {
        let routes = cfg.address_routes();
        let own_addresses = routes.keys().cloned().collect();
        let ids = SignedIds::new(cfg.security.secret.expose_secret().as_bytes());
        let attachments = AttachmentStore::new(&cfg.storage.dir);
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

    /// `tickets.max_message_bytes`.
    pub fn max_message_bytes(&self) -> u64 {
        self.cfg.tickets.max_message_bytes
    }

    /// Processes one stored raw message to its outcome.
    pub async fn process(&self, raw_message_id: i64) -> anyhow::Result<Outcome> {
        let raw = self
            .store
            .raw(raw_message_id)
            .await?
            .with_context(|| format!("raw message {raw_message_id} not found"))?;
        if raw.state != "pending" {
            return Ok(Outcome::AlreadyDone { state: raw.state });
        }
        let outcome = self.decide_and_apply(&raw).await?;
        match &outcome {
            Outcome::Ticket { .. } => {
                metrics::counter!("ticketgate_tickets_created_total").increment(1)
            }
            Outcome::Duplicate { .. } => {
                metrics::counter!("ticketgate_duplicates_total").increment(1)
            }
            Outcome::Recorded { .. } => metrics::counter!("ticketgate_recorded_total").increment(1),
            Outcome::Quarantined { .. } => {
                metrics::counter!("ticketgate_quarantined_total").increment(1)
            }
            Outcome::AlreadyDone { .. } => {}
        }
        Ok(outcome)
    }

    async fn decide_and_apply(&self, raw: &RawRow) -> anyhow::Result<Outcome> {
        let limit = self.cfg.tickets.max_message_bytes;
        if !raw.complete || u64::try_from(raw.size).unwrap_or(u64::MAX) > limit {
            return self.oversize(raw).await;
        }
        let mail = match parse::parse(&raw.bytes) {
            Ok(m) => m,
            Err(e) => {
                return self
                    .quarantine(raw, &format!("the message cannot be parsed: {e}"))
                    .await
            }
        };
        let dedup_key = match &mail.message_id {
            Some(id) if !id.trim().is_empty() => format!("mid:{}", id.trim()),
            _ => format!("sha256:{}", raw.sha256),
        };
        if let Some(orig) = self.store.inbound_by_dedup_key(&dedup_key).await? {
            return self.duplicate(raw, orig).await;
        }
        let Some(sender) = mail.reply_to.as_ref().or(mail.from.as_ref()) else {
            return self
                .quarantine(
                    raw,
                    "no sender address (From/Reply-To missing or unreadable)",
                )
                .await;
        };
        let sender = sender.address.clone();
        let from_addr = mail
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .unwrap_or_else(|| sender.clone());

        // A DSN names the bounced message in its returned headers; anything else in its
        // reference headers.
        let dsn_ref = mail
            .dsn
            .as_ref()
            .and_then(|d| d.original_message_id.clone());
        let ours = dsn_ref
            .iter()
            .chain(mail.in_reply_to.iter())
            .chain(mail.references.iter().rev())
            .find_map(|id| self.ids.verify(id));
        let matched = match &ours {
            Some(OurMessageId { message, .. }) => self.store.ticket_of_message(*message).await?,
            None => None,
        };
        let is_own = self.own_addresses.contains(&from_addr);

        if let Some(dsn) = &mail.dsn {
            return match matched {
                Some(t) => {
                    let details = json!({
                        "status": dsn.status,
                        "diagnostic": dsn.diagnostic,
                        "recipients": dsn.failed_recipients,
                        "bounced_message_id": dsn_ref,
                    });
                    self.record(raw, &mail, &dedup_key, &t, "bounce", details, &from_addr)
                        .await
                }
                None => {
                    self.quarantine(
                        raw,
                        "delivery status notification (bounce) that matches none of our messages",
                    )
                    .await
                }
            };
        }
        // X-Auto-Response-Suppress asks us not to answer, but Outlook also puts it on mail a
        // person wrote: such a mail is handled as a person's, only without acknowledgment.
        let suppress_only = matches!(mail.auto, Some(AutoReason::AutoResponseSuppress(_)));
        let machine = mail.auto.is_some() && !suppress_only;
        if machine || is_own {
            let reason = match &mail.auto {
                Some(a) => a.describe(),
                None => format!("sent from our own address {from_addr}"),
            };
            return match matched {
                Some(t) => {
                    let details = json!({ "reason": reason });
                    self.record(
                        raw,
                        &mail,
                        &dedup_key,
                        &t,
                        "auto_reply",
                        details,
                        &from_addr,
                    )
                    .await
                }
                None if is_own => {
                    self.quarantine(
                        raw,
                        &format!("{reason}: possible mail loop, not made into a ticket"),
                    )
                    .await
                }
                None => {
                    self.new_ticket(raw, &mail, &dedup_key, &sender, Some(reason))
                        .await
                }
            };
        }
        if let Some(t) = matched {
            // A person answering one of our messages. Who may speak for whom is the
            // threading issue's business; here the reply is kept on its ticket and the
            // office is told, so nobody's follow-up becomes a second ticket.
            let details = json!({ "from": from_addr });
            return self
                .record(raw, &mail, &dedup_key, &t, "follow_up", details, &from_addr)
                .await;
        }
        let no_ack = mail.auto.as_ref().map(|a| a.describe());
        self.new_ticket(raw, &mail, &dedup_key, &sender, no_ack)
            .await
    }

    async fn quarantine(&self, raw: &RawRow, reason: &str) -> anyhow::Result<Outcome> {
        tracing::warn!(raw_message_id = raw.raw_message_id, mailbox = %raw.mailbox, reason, "message quarantined");
        let mut tx = self.store.begin().await?;
        Store::finish_raw(
            &mut tx,
            raw.raw_message_id,
            "quarantined",
            Some(reason),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Quarantined {
            reason: reason.to_owned(),
        })
    }

    async fn duplicate(&self, raw: &RawRow, orig: i64) -> anyhow::Result<Outcome> {
        tracing::info!(
            raw_message_id = raw.raw_message_id,
            of_message = orig,
            "duplicate message"
        );
        let mut tx = self.store.begin().await?;
        Store::finish_raw(&mut tx, raw.raw_message_id, "duplicate", None, Some(orig)).await?;
        tx.commit().await?;
        Ok(Outcome::Duplicate { of_message: orig })
    }

    /// An over-limit message: only its header was kept; the message itself stays on the
    /// server. The sender is told the limit, unless the mail was automatic.
    async fn oversize(&self, raw: &RawRow) -> anyhow::Result<Outcome> {
        let limit = self.cfg.tickets.max_message_bytes;
        let reason = format!(
            "message of {} bytes is over the limit of {} bytes (tickets.max_message_bytes); \
             header kept, the whole message stays on the server",
            raw.size, limit
        );
        let header = parse::parse(&raw.bytes).ok();
        let mut tx = self.store.begin().await?;
        Store::finish_raw(
            &mut tx,
            raw.raw_message_id,
            "quarantined",
            Some(&reason),
            None,
        )
        .await?;
        if let Some(mail) = header
            .as_ref()
            .filter(|m| m.auto.is_none() && m.dsn.is_none())
        {
            let to = mail.reply_to.as_ref().or(mail.from.as_ref());
            let area = route(mail, &self.routes).into_iter().next();
            if let (Some(to), Some(area)) = (to, area) {
                if !self.own_addresses.contains(&to.address) {
                    let area_name = self.area_name(&area.area);
                    let text = OversizeText {
                        subject: &mail.subject,
                        size_mb: compose::human_size(u64::try_from(raw.size).unwrap_or(0)),
                        limit_mb: compose::human_size(limit),
                    }
                    .render()?;
                    let subject = format!(
                        "Messaggio troppo grande / Message too large: {}",
                        mail.subject
                    );
                    queue_mail(
                        &mut tx,
                        &self.ids,
                        &Queued {
                            ticket: None,
                            kind: "notice",
                            from_name: &area_name,
                            from_addr: &area.address,
                            to: vec![to.address.clone()],
                            reply_to: None,
                            subject: &subject,
                            in_reply_to: mail.message_id.as_deref(),
                            references: mail.message_id.iter().cloned().collect(),
                            auto_replied: true,
                            text: &text,
                        },
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        self.outbox_wake.notify_one();
        tracing::warn!(raw_message_id = raw.raw_message_id, %reason, "message quarantined");
        Ok(Outcome::Quarantined { reason })
    }

    fn area_name(&self, slug: &str) -> String {
        self.cfg
            .area(slug)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| slug.to_owned())
    }

    /// Stores attachments as files, before the transaction that references them.
    async fn store_attachments(&self, mail: &InboundMail) -> anyhow::Result<Vec<(usize, String)>> {
        let mut out = Vec::with_capacity(mail.attachments.len());
        for (i, a) in mail.attachments.iter().enumerate() {
            let sha = self
                .attachments
                .put(&a.bytes)
                .await
                .context("writing an attachment to storage.dir")?;
            out.push((i, sha));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_inbound(
        &self,
        tx: &mut Tx,
        raw: &RawRow,
        mail: &InboundMail,
        dedup_key: &str,
        ticket_id: i64,
        kind: &str,
        from_addr: &str,
        stored: &[(usize, String)],
    ) -> anyhow::Result<Option<i64>> {
        let to_addrs = mail
            .to
            .iter()
            .chain(mail.cc.iter())
            .map(|m| m.address.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let in_reply_to = mail.in_reply_to.first().map(|s| s.as_str());
        let Some(message_id) = Store::insert_message(
            tx,
            &NewMessage {
                ticket_id: Some(ticket_id),
                direction: "in",
                kind,
                rfc_message_id: mail.message_id.as_deref(),
                in_reply_to,
                dedup_key: Some(dedup_key),
                from_addr,
                to_addrs: &to_addrs,
                subject: &mail.subject,
                text: &mail.text,
                html: mail.html.as_deref(),
                at: raw.received_at,
                sha256: &raw.sha256,
                raw_message_id: Some(raw.raw_message_id),
            },
        )
        .await?
        else {
            return Ok(None);
        };
        for (i, sha) in stored {
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
                    },
                )
                .await?;
            }
        }
        Ok(Some(message_id))
    }

    /// Records a message on an existing ticket (bounce, auto-reply, follow-up).
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        raw: &RawRow,
        mail: &InboundMail,
        dedup_key: &str,
        t: &MessageTicket,
        kind: &str,
        details: serde_json::Value,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        let stored = self.store_attachments(mail).await?;
        let mut tx = self.store.begin().await?;
        let Some(message_id) = self
            .insert_inbound(
                &mut tx,
                raw,
                mail,
                dedup_key,
                t.ticket_id,
                kind,
                from_addr,
                &stored,
            )
            .await?
        else {
            tx.rollback().await?;
            return self.already_stored(raw, dedup_key).await;
        };
        let now = now_millis();
        let mut details = details;
        if let Some(obj) = details.as_object_mut() {
            obj.insert("message".into(), json!(message_id));
        }
        Store::insert_event(&mut tx, t.ticket_id, kind, from_addr, &details, now).await?;
        Store::touch_ticket(&mut tx, t.ticket_id, now).await?;
        if kind == "follow_up" {
            self.notify_staff(
                &mut tx,
                t,
                mail,
                &[],
                "",
                "Nuovo messaggio sulla pratica",
                "",
            )
            .await?;
        }
        Store::finish_raw(
            &mut tx,
            raw.raw_message_id,
            "processed",
            None,
            Some(message_id),
        )
        .await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        tracing::info!(ticket = %t.reference, kind, "message recorded on ticket");
        Ok(Outcome::Recorded {
            reference: t.reference.clone(),
            kind: kind.to_owned(),
        })
    }

    /// Lost the race for a dedup key to another poller (the same mail in two mailboxes).
    async fn already_stored(&self, raw: &RawRow, dedup_key: &str) -> anyhow::Result<Outcome> {
        let orig = self
            .store
            .inbound_by_dedup_key(dedup_key)
            .await?
            .context("dedup key conflict without a stored message")?;
        self.duplicate(raw, orig).await
    }

    async fn new_ticket(
        &self,
        raw: &RawRow,
        mail: &InboundMail,
        dedup_key: &str,
        sender: &str,
        no_ack_reason: Option<String>,
    ) -> anyhow::Result<Outcome> {
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
                    return self
                        .quarantine(
                            raw,
                            &format!(
                                "no area: no recipient is an area address and mailbox {:?} has \
                                 no default_area",
                                raw.mailbox
                            ),
                        )
                        .await
                }
            }
        }
        let owner = &areas[0];
        let kind = owner.route.kind.unwrap_or(TicketKind::Segnalazione);
        let stored = self.store_attachments(mail).await?;
        let from_addr = mail
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .unwrap_or_else(|| sender.to_owned());
        let citizen_name = mail
            .reply_to
            .as_ref()
            .or(mail.from.as_ref())
            .and_then(|m| m.name.clone());
        let now = now_millis();
        let year = current_year();

        let mut tx = self.store.begin().await?;
        let seq = Store::next_ticket_seq(&mut tx, i64::from(year)).await?;
        let reference = TicketRef::new(year, u32::try_from(seq).unwrap_or(u32::MAX))
            .context("ticket sequence exhausted for this year")?;
        let ref_str = reference.to_string();
        let ticket_id = Store::insert_ticket(
            &mut tx,
            &NewTicket {
                reference: &ref_str,
                kind: kind.as_str(),
                area: &owner.area,
                citizen: sender,
                citizen_name: citizen_name.as_deref(),
                subject: &mail.subject,
                text: &mail.text,
                html: mail.html.as_deref(),
                channel: Channel::Email.as_str(),
                at: now,
            },
        )
        .await?;
        let Some(message_id) = self
            .insert_inbound(
                &mut tx, raw, mail, dedup_key, ticket_id, "report", &from_addr, &stored,
            )
            .await?
        else {
            tx.rollback().await?;
            return self.already_stored(raw, dedup_key).await;
        };
        let also: Vec<&str> = areas[1..].iter().map(|a| a.area.as_str()).collect();
        Store::insert_event(
            &mut tx,
            ticket_id,
            "received",
            sender,
            &json!({
                "message": message_id,
                "area": owner.area,
                "address": owner.address,
                "kind": kind.as_str(),
                "mailbox": raw.mailbox,
                "also_addressed": also,
            }),
            now,
        )
        .await?;

        let mut ack_withheld = no_ack_reason;
        if ack_withheld.is_none() {
            let limit = i64::from(self.cfg.tickets.acks_per_sender_per_hour);
            let sent = Store::acks_to_since(&mut tx, sender, now - ACK_WINDOW_MILLIS).await?;
            if sent >= limit {
                ack_withheld = Some(format!(
                    "{sent} acknowledgments sent to {sender} in the last hour \
                     (tickets.acks_per_sender_per_hour = {limit})"
                ));
            }
        }
        let t = MessageTicket {
            ticket_id,
            reference: ref_str.clone(),
            area: owner.area.clone(),
            citizen: sender.to_owned(),
            subject: mail.subject.clone(),
        };
        match &ack_withheld {
            None => {
                self.acknowledge(&mut tx, &t, reference, owner, kind, mail)
                    .await?
            }
            Some(reason) => {
                Store::insert_event(
                    &mut tx,
                    ticket_id,
                    "ack_withheld",
                    "system",
                    &json!({ "reason": reason }),
                    now,
                )
                .await?
            }
        }
        let attachment_list: Vec<(String, String)> = mail
            .attachments
            .iter()
            .map(|a| {
                (
                    a.filename.clone(),
                    compose::human_size(a.bytes.len() as u64),
                )
            })
            .collect();
        for (i, area) in areas.iter().enumerate() {
            let others: Vec<String> = areas
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| self.area_name(&a.area))
                .collect();
            let t_area = MessageTicket {
                area: area.area.clone(),
                ..t.clone()
            };
            self.notify_staff(
                &mut tx,
                &t_area,
                mail,
                &attachment_list,
                &others.join(", "),
                "Nuova pratica",
                kind.as_str(),
            )
            .await?;
        }
        Store::finish_raw(
            &mut tx,
            raw.raw_message_id,
            "processed",
            None,
            Some(message_id),
        )
        .await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        tracing::info!(ticket = %ref_str, area = %owner.area, acknowledged = ack_withheld.is_none(), "ticket created");
        Ok(Outcome::Ticket {
            reference: ref_str,
            acknowledged: ack_withheld.is_none(),
        })
    }

    async fn acknowledge(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        reference: TicketRef,
        owner: &RoutedArea,
        kind: TicketKind,
        mail: &InboundMail,
    ) -> anyhow::Result<()> {
        let area = self.cfg.area(&owner.area);
        let area_name = self.area_name(&owner.area);
        let citizen_name = mail
            .reply_to
            .as_ref()
            .or(mail.from.as_ref())
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| "cittadina, gentile cittadino".to_owned());
        let prefix = &self.cfg.tickets.tag_prefix;
        let text = AckText {
            citizen_name: &citizen_name,
            kind_it: kind.as_str(),
            kind_en: kind.english(),
            subject: &mail.subject,
            reference: &t.reference,
            area_name: &area_name,
            response_days: area.map(|a| a.response_days).unwrap_or(30),
            tag_prefix: prefix,
            base_url: &self.cfg.server.base_url,
        }
        .render()?;
        let subject = compose::tagged_subject(prefix, &t.reference, &mail.subject);
        // Thread under the citizen's message: their id ends our References (RFC 5322 §3.6.4).
        let mut references = mail.references.clone();
        references.extend(mail.message_id.iter().cloned());
        queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: Some((t.ticket_id, reference)),
                kind: "ack",
                from_name: &area_name,
                from_addr: &owner.address,
                to: vec![t.citizen.clone()],
                reply_to: None,
                subject: &subject,
                in_reply_to: mail.message_id.as_deref(),
                references,
                auto_replied: true,
                text: &text,
            },
        )
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    /// One notification per staff member of `t.area`, Reply-To the area address so that
    /// pressing Reply comes back to us.
    async fn notify_staff(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        mail: &InboundMail,
        attachments: &[(String, String)],
        also_areas: &str,
        headline: &str,
        kind: &str,
    ) -> anyhow::Result<()> {
        let Some(area) = self.cfg.area(&t.area) else {
            return Ok(());
        };
        if area.staff.is_empty() {
            return Ok(());
        }
        let Some(area_addr) = area.addresses.first().map(|a| a.address().to_lowercase()) else {
            return Ok(());
        };
        let reference: TicketRef = t.reference.parse()?;
        let prefix = &self.cfg.tickets.tag_prefix;
        let text = NotificationText {
            headline,
            reference: &t.reference,
            area_name: &area.name,
            also_areas,
            citizen: &t.citizen,
            received_at: &rfc3339(now_millis()),
            kind_it: kind,
            subject: &mail.subject,
            text: &mail.text,
            attachments: attachments.to_vec(),
        }
        .render()?;
        let subject = compose::tagged_subject(prefix, &t.reference, &t.subject);
        for staff in &area.staff {
            queue_mail(
                tx,
                &self.ids,
                &Queued {
                    ticket: Some((t.ticket_id, reference)),
                    kind: "notification",
                    from_name: &area.name,
                    from_addr: &area_addr,
                    to: vec![staff.trim().to_lowercase()],
                    reply_to: Some((&area.name, &area_addr)),
                    subject: &subject,
                    in_reply_to: None,
                    references: Vec::new(),
                    auto_replied: false,
                    text: &text,
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// The current year (UTC), for ticket references.
fn current_year() -> u16 {
    let year = time::OffsetDateTime::now_utc().year();
    u16::try_from(year).unwrap_or(2026)
}
