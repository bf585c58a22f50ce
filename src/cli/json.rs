//! The JSON documents the CLI prints (`ticket list`, `ticket show`, `quarantine list`), as
//! types: a contract with operators' scripts (docs/design-notes.md, "The CLI's JSON is a
//! contract"), so names and values never change and new fields may only be added. Tests read
//! the output back into the same types.
//!
//! Field order is part of the bytes. These documents were once built with `json!`, whose
//! maps (serde_json without `preserve_order`) print their keys sorted; serde prints a
//! struct's fields in declaration order, so every struct here declares its fields in
//! alphabetical order (`ref` sorts as `ref`, not as `reference`). The unit test
//! `every_document_prints_its_keys_sorted` holds that.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::domain::stats::Figures;
use crate::domain::{calendar, rfc3339, EventKind, MessageKind};
use crate::mail::summary::HeaderSummary;
use crate::store::{
    AttachmentView, EventView, MessageView, NotificationAttachment, QuarantineView, TicketView,
};

/// One ticket: an element of `ticket list`, and the `ticket` of `ticket show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub area: String,
    /// PEC tickets: true for a certified PEC, false for an anomaly; null otherwise.
    pub certified: Option<bool>,
    pub channel: String,
    /// The stored address; `domain::NO_ADDRESS` when the citizen gave none (a report staff
    /// registered with `#registra … -`).
    pub citizen: String,
    /// The citizen's name when known (added in issue 13; absent in older output).
    #[serde(default)]
    pub citizen_name: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `YYYY-MM-DD`, the last day (Europe/Rome) of the answer's time (issue 14,
    /// `domain::calendar`).
    pub due_date: String,
    pub kind: String,
    /// `ticket show` only (there always, null when there is nothing to say): why a PEC
    /// ticket is not certified, from its `received` event. `ticket list` has no such key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub not_certified_because: Option<Option<String>>,
    /// Awaiting the office's answer past its due date (`domain::calendar::is_overdue`).
    pub overdue: bool,
    pub pec_address: Option<String>,
    /// `YYYY-NNNNNN`.
    #[serde(rename = "ref")]
    pub reference: String,
    pub reply_to: Option<String>,
    pub reply_to_asked: Option<String>,
    pub status: String,
    pub subject: String,
    pub text: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// `stats --format json` (issue 14): the figures of the tickets received from `from` to `to`
/// (days in Rome, both included; null: unbounded), in all and per area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub all: Figures,
    pub areas: BTreeMap<String, Figures>,
    pub from: Option<String>,
    /// RFC 3339, UTC: the "now" of `open_now` and `overdue_now`.
    pub generated_at: String,
    pub to: Option<String>,
}

/// `ticket show REF --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketShow {
    pub attachments: Vec<Attachment>,
    pub events: Vec<Event>,
    pub messages: Vec<Message>,
    pub ticket: Ticket,
}

/// One event of a ticket's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub actor: String,
    pub at: String,
    /// The event's stored details as they are (null if they are not JSON).
    pub details: Value,
    pub kind: String,
}

/// One message of a ticket, in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub at: String,
    /// The files that came with this message (issue 13): a citizen's report or follow-up, a
    /// staff answer's files. Empty for the rest.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Notifications only (null otherwise): the ticket's attachments this notification did
    /// not carry because they did not fit `notifications.max_attachment_bytes` (listed in
    /// its text with their size and a link).
    #[serde(default)]
    pub attachments_not_carried: Option<Vec<NotCarried>>,
    /// Notifications only (null otherwise): the sha256 of each attachment it carried as a
    /// MIME part, in the order of the parts.
    #[serde(default)]
    pub carried_attachments: Option<Vec<String>>,
    /// Outbound only: the outbox row sending it.
    pub delivery: Option<Delivery>,
    /// `in` or `out`.
    pub direction: String,
    pub from: String,
    /// A staff reply kept on the ticket and not sent to the citizen (event `answer_held`),
    /// and not sent since by `#invia` (issue 13).
    #[serde(default)]
    pub held: bool,
    /// Why it was held, as its `answer_held` event says; null when not held.
    #[serde(default)]
    pub held_reason: Option<String>,
    pub in_reply_to: Option<String>,
    pub kind: String,
    /// The Message-ID header.
    pub message_id: Option<String>,
    /// PEC facts: outbound over PEC, or inbound from a PEC box.
    pub pec: Option<Pec>,
    /// Who or what the message is, in the words of the ticket's timeline.
    pub role: String,
    pub sha256: String,
    pub subject: String,
    pub text: String,
    pub to: String,
}

/// How the outbox is doing with an outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub attempts: Option<i64>,
    pub sent_at: Option<String>,
    pub smtp_reply: Option<String>,
    /// `queued`, `sent` or `failed`.
    pub state: String,
    /// `smtp` or `pec`.
    pub transport: Option<String>,
}

/// The certified side of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pec {
    pub certified_at: Option<String>,
    /// These three: as the receipt behind `state` recorded them.
    pub delivered_to: Option<Value>,
    pub identificativo: Option<String>,
    pub reason: Option<Value>,
    pub receipt: Option<Value>,
    pub signature: Option<String>,
    pub signature_detail: Option<String>,
    pub state: Option<String>,
}

/// One attachment of a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The part's Content-ID without `<>`, when it had one (issue 13).
    #[serde(default)]
    pub content_id: Option<String>,
    pub content_type: String,
    pub filename: String,
    /// Shown inside the citizen's mail (an HTML mail's image) rather than as a file.
    #[serde(default)]
    pub inline: bool,
    pub sha256: String,
    pub size: i64,
}

/// An attachment a notification only listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotCarried {
    pub filename: String,
    pub sha256: String,
    pub size: i64,
}

/// One element of `quarantine list --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub complete: bool,
    /// These four from the message's header, cleaned and cut for display.
    pub date: String,
    pub dropped: Option<Dropped>,
    pub from: String,
    /// The raw message id `quarantine show/export/retry/drop` take.
    pub id: i64,
    pub mailbox: String,
    pub message_id: String,
    pub reason: String,
    pub received_at: String,
    pub sha256: String,
    pub size: i64,
    /// `quarantined` or `dropped`.
    pub state: String,
    pub subject: String,
    pub uid: Option<i64>,
}

/// Who dropped a quarantined message, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// A key that is present is `Some`, even when its value is null.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl Ticket {
    /// The document of `t`, whose due date is `due`, seen at `now` (unix millis).
    pub fn new(t: &TicketView, due: time::Date, now: i64) -> Ticket {
        Ticket {
            area: t.area.to_string(),
            certified: t.certified,
            channel: t.channel.to_string(),
            citizen: t.citizen.to_string(),
            citizen_name: t.citizen_name.clone(),
            created_at: rfc3339(t.created_at),
            due_date: calendar::iso_date(due),
            kind: t.kind.to_string(),
            not_certified_because: None,
            overdue: calendar::is_overdue(t.status, due, now),
            pec_address: t.pec_address.clone(),
            reference: t.reference.to_string(),
            reply_to: t.reply_to.clone(),
            reply_to_asked: t.reply_to_asked.clone(),
            status: t.status.to_string(),
            subject: t.subject.clone(),
            text: t.text.clone(),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

impl From<&EventView> for Event {
    fn from(e: &EventView) -> Event {
        Event {
            actor: e.actor.clone(),
            at: rfc3339(e.at),
            details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
            kind: e.event.kind().to_owned(),
        }
    }
}

impl Message {
    /// `m` as `ticket show` prints it; `role` is what the timeline calls it.
    pub fn new(m: &MessageView, role: &str) -> Message {
        let delivery = m.delivery_state.as_ref().map(|state| Delivery {
            attempts: m.delivery_attempts,
            sent_at: m.sent_at.map(rfc3339),
            smtp_reply: m.delivery_reply.clone(),
            state: state.clone(),
            transport: m.transport.clone(),
        });
        // Outbound over PEC: the certified state its receipts gave it. Inbound from a PEC
        // box: the provider's certified time and signature check.
        let pec = (m.pec_id.is_some()
            || m.pec_state.is_some()
            || m.signature.is_some()
            || m.transport.as_deref() == Some("pec"))
        .then(|| {
            let detail = m
                .pec_detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .unwrap_or(Value::Null);
            Pec {
                certified_at: m.certified_at.map(rfc3339),
                delivered_to: detail.get("delivered_to").cloned(),
                identificativo: m.pec_id.clone(),
                reason: detail.get("reason").cloned(),
                receipt: detail.get("receipt").cloned(),
                signature: m.signature.clone(),
                signature_detail: m.signature_detail.clone(),
                state: m.pec_state.clone(),
            }
        });
        Message {
            at: rfc3339(m.at),
            attachments: Vec::new(),
            attachments_not_carried: None,
            carried_attachments: None,
            delivery,
            direction: m.direction.to_string(),
            from: m.from_addr.clone(),
            held: false,
            held_reason: None,
            in_reply_to: m.in_reply_to.clone(),
            kind: m.kind.to_string(),
            message_id: m.rfc_message_id.clone(),
            pec,
            role: role.to_owned(),
            sha256: m.sha256.clone(),
            subject: m.subject.clone(),
            text: m.text.clone(),
            to: m.to_addrs.clone(),
        }
    }
}

impl Message {
    /// Adds what `files` and `links` (the whole ticket's) say about message `m`: its own
    /// files, and for a notification which of the ticket's files it carried.
    pub fn with_attachments(
        mut self,
        m: &MessageView,
        files: &[AttachmentView],
        links: &[NotificationAttachment],
    ) -> Message {
        self.attachments = files
            .iter()
            .filter(|a| a.message_id == m.message_id)
            .map(Attachment::from)
            .collect();
        if m.kind == MessageKind::Notification {
            let mut carried = Vec::new();
            let mut not_carried = Vec::new();
            let offered = links.iter().filter(|l| l.message_id == m.message_id);
            for link in offered {
                let Some(a) = files.iter().find(|a| a.attachment_id == link.attachment_id) else {
                    continue;
                };
                if link.carried {
                    carried.push(a.sha256.clone());
                } else {
                    not_carried.push(NotCarried {
                        filename: a.filename.clone(),
                        sha256: a.sha256.clone(),
                        size: a.size,
                    });
                }
            }
            self.carried_attachments = Some(carried);
            self.attachments_not_carried = Some(not_carried);
        }
        self
    }

    /// Marks the message held when `events` hold it (`answer_held` naming it) and no
    /// `held_answer_sent` sent it after all.
    pub fn with_held(mut self, events: &[EventView], message_id: i64) -> Message {
        let reason = events.iter().find_map(|e| match &e.event {
            EventKind::AnswerHeld(h) if h.message == Some(message_id) => Some(h.reason.clone()),
            _ => None,
        });
        let sent = events.iter().any(
            |e| matches!(&e.event, EventKind::HeldAnswerSent(s) if s.held == Some(message_id)),
        );
        if let (Some(reason), false) = (reason, sent) {
            self.held = true;
            self.held_reason = Some(reason);
        }
        self
    }
}

impl From<&AttachmentView> for Attachment {
    fn from(a: &AttachmentView) -> Attachment {
        Attachment {
            content_id: a.content_id.clone(),
            content_type: a.content_type.clone(),
            filename: a.filename.clone(),
            inline: a.inline,
            sha256: a.sha256.clone(),
            size: a.size,
        }
    }
}

impl QuarantineEntry {
    /// `q` with `h`, the summary of its header.
    pub fn new(q: &QuarantineView, h: HeaderSummary) -> QuarantineEntry {
        QuarantineEntry {
            complete: q.complete,
            date: h.date,
            dropped: q.dropped.as_ref().map(|d| Dropped {
                at: rfc3339(d.at),
                by: d.by.clone(),
                reason: d.reason.clone(),
            }),
            from: h.from,
            id: q.raw_message_id,
            mailbox: q.mailbox.clone(),
            message_id: h.message_id,
            reason: q.reason.clone(),
            received_at: rfc3339(q.received_at),
            sha256: q.sha256.clone(),
            size: q.size,
            state: q.state.clone(),
            subject: h.subject,
            uid: q.uid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(not_certified_because: Option<Option<String>>) -> Ticket {
        Ticket {
            area: "lavori-pubblici".into(),
            certified: Some(false),
            channel: "pec".into(),
            citizen: "anna@citizen.test".into(),
            citizen_name: Some("Anna".into()),
            created_at: rfc3339(0),
            due_date: "1970-02-12".into(),
            kind: "segnalazione".into(),
            not_certified_because,
            overdue: true,
            pec_address: Some("protocollo@pec.comune.test".into()),
            reference: "2026-000001".into(),
            reply_to: None,
            reply_to_asked: Some("other@citizen.test".into()),
            status: "received".into(),
            subject: "Buca".into(),
            text: "In via Roma".into(),
            updated_at: rfc3339(1),
        }
    }

    fn show() -> TicketShow {
        TicketShow {
            attachments: vec![Attachment {
                content_id: Some("buca@citizen.test".into()),
                content_type: "image/png".into(),
                filename: "buca.png".into(),
                inline: true,
                sha256: "ab".into(),
                size: 3,
            }],
            events: vec![Event {
                actor: "system".into(),
                at: rfc3339(2),
                details: serde_json::json!({"z": 1, "a": {"y": null, "b": [1]}}),
                kind: "received".into(),
            }],
            messages: vec![Message {
                at: rfc3339(3),
                attachments: Vec::new(),
                attachments_not_carried: Some(vec![NotCarried {
                    filename: "video.mp4".into(),
                    sha256: "cd".into(),
                    size: 30_000_000,
                }]),
                carried_attachments: Some(vec!["ab".into()]),
                delivery: Some(Delivery {
                    attempts: Some(1),
                    sent_at: None,
                    smtp_reply: Some("250 ok".into()),
                    state: "sent".into(),
                    transport: Some("pec".into()),
                }),
                direction: "out".into(),
                from: "lavori@comune.test".into(),
                held: false,
                held_reason: None,
                in_reply_to: None,
                kind: "ack".into(),
                message_id: Some("<x@comune.test>".into()),
                pec: Some(Pec {
                    certified_at: None,
                    delivered_to: Some(Value::String("anna@citizen.test".into())),
                    identificativo: Some("opec.1".into()),
                    reason: None,
                    receipt: None,
                    signature: None,
                    signature_detail: None,
                    state: Some("consegnata".into()),
                }),
                role: "ack".into(),
                sha256: "cd".into(),
                subject: "Ricevuta".into(),
                text: "Grazie".into(),
                to: "anna@citizen.test".into(),
            }],
            ticket: ticket(Some(Some("ordinary mail".into()))),
        }
    }

    fn quarantine_entry() -> QuarantineEntry {
        QuarantineEntry {
            complete: true,
            date: "2026-01-01T00:00:00Z".into(),
            dropped: Some(Dropped {
                at: rfc3339(4),
                by: "operatore".into(),
                reason: "seen".into(),
            }),
            from: "anna@citizen.test".into(),
            id: 7,
            mailbox: "INBOX".into(),
            message_id: "m@citizen.test".into(),
            reason: "no From".into(),
            received_at: rfc3339(5),
            sha256: "ef".into(),
            size: 10,
            state: "dropped".into(),
            subject: "?".into(),
            uid: None,
        }
    }

    /// The bytes the old `json!` documents printed: the same value through a sorted map.
    fn sorted_bytes<T: Serialize>(doc: &T) -> String {
        let value = serde_json::to_value(doc).expect("to value");
        serde_json::to_string_pretty(&value).expect("print")
    }

    #[test]
    fn every_document_prints_its_keys_sorted() {
        let list = vec![ticket(None)];
        let shown = show();
        let quarantine = vec![quarantine_entry()];
        let mut figures = crate::domain::stats::Figures::default();
        figures.by_kind.insert("reclamo".into(), 1);
        let stats = Stats {
            all: figures.clone(),
            areas: [("tributi".to_string(), figures)].into(),
            from: None,
            generated_at: "2026-12-08T00:00:00Z".into(),
            to: Some("2026-12-08".into()),
        };
        for (printed, sorted) in [
            (
                serde_json::to_string_pretty(&stats).unwrap(),
                sorted_bytes(&stats),
            ),
            (
                serde_json::to_string_pretty(&list).unwrap(),
                sorted_bytes(&list),
            ),
            (
                serde_json::to_string_pretty(&shown).unwrap(),
                sorted_bytes(&shown),
            ),
            (
                serde_json::to_string_pretty(&quarantine).unwrap(),
                sorted_bytes(&quarantine),
            ),
        ] {
            assert_eq!(printed, sorted);
        }
    }

    #[test]
    fn the_list_has_no_not_certified_key_and_show_always_has_it() {
        let listed = serde_json::to_value(ticket(None)).unwrap();
        assert!(listed.get("not_certified_because").is_none(), "{listed}");
        let shown = serde_json::to_value(ticket(Some(None))).unwrap();
        assert_eq!(shown["not_certified_because"], Value::Null, "{shown}");
        assert_eq!(shown["ref"], "2026-000001");
    }

    #[test]
    fn documents_read_back_into_their_types() {
        let shown = show();
        let text = serde_json::to_string_pretty(&shown).unwrap();
        assert_eq!(serde_json::from_str::<TicketShow>(&text).unwrap(), shown);
        let mut unsaid = show();
        unsaid.ticket.not_certified_because = Some(None);
        let text = serde_json::to_string(&unsaid).unwrap();
        assert_eq!(serde_json::from_str::<TicketShow>(&text).unwrap(), unsaid);
        let listed = ticket(None);
        let text = serde_json::to_string(&listed).unwrap();
        assert_eq!(serde_json::from_str::<Ticket>(&text).unwrap(), listed);
        let q = quarantine_entry();
        let text = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<QuarantineEntry>(&text).unwrap(), q);
    }
}
