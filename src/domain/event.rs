//! The events of a ticket's timeline, with typed details.
//!
//! An event is stored as two columns: `event.kind` (the word) and `event.details` (a JSON
//! object). [`EventKind`] is the pair as one value: serde's adjacent tagging (`kind` +
//! `details`) gives the same words and the same keys the untyped `json!` blobs had, so rows
//! written before the types read back, and the stored text does not change (serde_json
//! writes object keys sorted, as the `json!` maps were). Every details field has a default,
//! so an older row that lacks one still reads; a kind this code does not know, or details
//! that do not fit, become [`EventKind::Other`] with the stored JSON as it is: never a panic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ticket::AreaSlug;

/// An event of a ticket, without its time and actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "details", rename_all = "snake_case")]
pub enum EventKind {
    /// The ticket was made from a report.
    Received(Received),
    /// The ticket carries another ticket's tag.
    Linked(Linked),
    /// No acknowledgment was sent.
    AckWithheld(Reason),
    /// The office took the ticket.
    Taken(Taken),
    /// The ticket moved to another office.
    Reassigned(Reassigned),
    /// Staff changed the kind of the ticket.
    KindChanged(KindChanged),
    /// Staff chose the Reply-To the citizen asked for.
    ReplyToChosen(ReplyToChosen),
    /// A staff reply not sent to the citizen: it was only our own quoted text, or a colleague
    /// had answered first (issue 13).
    AnswerHeld(AnswerHeld),
    /// The area's other staff got a copy of the answer sent to the citizen (issue 13).
    ColleagueCopy(ColleagueCopy),
    /// A held answer was sent after all, by its author's `#invia` (issue 13).
    HeldAnswerSent(HeldAnswerSent),
    /// The office's answer was forwarded to the citizen.
    Answered(Answered),
    /// Staff closed the ticket.
    Resolved(OfMessage),
    /// The citizen wrote again about a resolved ticket.
    Reopened(Nothing),
    /// Two different messages with one Message-ID: both kept.
    MessageIdReused(MessageIdReused),
    /// More attachments than `tickets.max_attachments`.
    AttachmentsNotExtracted(AttachmentsNotExtracted),
    /// A non-delivery report of one of our mails.
    Bounce(Bounce),
    /// Staff mail that cannot be trusted as the office's answer.
    StaffUnverified(MessageReason),
    /// A staff reply with commands that cannot be carried out: nothing done.
    CommandError(CommandError),
    /// A verified staff reply.
    StaffReply(StaffText),
    /// An internal note.
    Note(StaffText),
    /// The citizen wrote again.
    FollowUp(OfMessage),
    /// A read receipt (MDN).
    Receipt(MessageReason),
    /// An automatic answer.
    AutoReply(MessageReason),
    /// A PEC provider's receipt of one of our mails, certified.
    PecReceipt(PecReceipt),
    /// A PEC receipt whose signature did not verify: kept, nothing applied.
    PecReceiptUnverified(PecReceipt),
    /// The area's staff were reminded of the ticket, overdue without an answer (issue 14).
    Reminder(Chased),
    /// The head of office and the admin areas' staff were told of the ticket, overdue
    /// without an answer `escalate_after_days` after the reminder (issue 14).
    Escalation(Chased),
    /// A kind this code does not know (or details that do not fit it), as stored.
    #[serde(skip)]
    Other { kind: String, details: Value },
}

impl EventKind {
    /// The word stored in `event.kind`.
    pub fn kind(&self) -> &str {
        match self {
            EventKind::Received(_) => "received",
            EventKind::Linked(_) => "linked",
            EventKind::AckWithheld(_) => "ack_withheld",
            EventKind::Taken(_) => "taken",
            EventKind::Reassigned(_) => "reassigned",
            EventKind::KindChanged(_) => "kind_changed",
            EventKind::ReplyToChosen(_) => "reply_to_chosen",
            EventKind::AnswerHeld(_) => "answer_held",
            EventKind::ColleagueCopy(_) => "colleague_copy",
            EventKind::HeldAnswerSent(_) => "held_answer_sent",
            EventKind::Answered(_) => "answered",
            EventKind::Resolved(_) => "resolved",
            EventKind::Reopened(_) => "reopened",
            EventKind::MessageIdReused(_) => "message_id_reused",
            EventKind::AttachmentsNotExtracted(_) => "attachments_not_extracted",
            EventKind::Bounce(_) => "bounce",
            EventKind::StaffUnverified(_) => "staff_unverified",
            EventKind::CommandError(_) => "command_error",
            EventKind::StaffReply(_) => "staff_reply",
            EventKind::Note(_) => "note",
            EventKind::FollowUp(_) => "follow_up",
            EventKind::Receipt(_) => "receipt",
            EventKind::AutoReply(_) => "auto_reply",
            EventKind::PecReceipt(_) => "pec_receipt",
            EventKind::PecReceiptUnverified(_) => "pec_receipt_unverified",
            EventKind::Reminder(_) => "reminder",
            EventKind::Escalation(_) => "escalation",
            EventKind::Other { kind, .. } => kind,
        }
    }

    /// The JSON object stored in `event.details`.
    pub fn details(&self) -> Value {
        if let EventKind::Other { details, .. } = self {
            return details.clone();
        }
        match serde_json::to_value(self) {
            Ok(Value::Object(mut tagged)) => tagged.remove("details").unwrap_or(Value::Null),
            // Details are plain structs of strings and numbers: this does not happen.
            _ => Value::Object(serde_json::Map::new()),
        }
    }

    /// The event as stored: its kind word and its details JSON.
    pub fn from_stored(kind: &str, details: &str) -> EventKind {
        let details: Value = serde_json::from_str(details).unwrap_or(Value::Null);
        let tagged = serde_json::json!({ "kind": kind, "details": details });
        serde_json::from_value(tagged).unwrap_or_else(|_| EventKind::Other {
            kind: kind.to_owned(),
            details,
        })
    }

    /// Sets the id of the message the event is about, for the events recorded with an
    /// inbound message (`record_message`); the others have no such field and are left as
    /// they are.
    pub fn set_message(&mut self, message_id: i64) {
        let slot = match self {
            EventKind::Bounce(d) => &mut d.message,
            EventKind::StaffUnverified(d) | EventKind::Receipt(d) | EventKind::AutoReply(d) => {
                &mut d.message
            }
            EventKind::AnswerHeld(d) => &mut d.message,
            EventKind::CommandError(d) => &mut d.message,
            EventKind::StaffReply(d) | EventKind::Note(d) => &mut d.message,
            EventKind::FollowUp(d) | EventKind::Resolved(d) => &mut d.message,
            EventKind::HeldAnswerSent(d) => &mut d.message,
            EventKind::PecReceipt(d) | EventKind::PecReceiptUnverified(d) => &mut d.message,
            _ => return,
        };
        *slot = Some(message_id);
    }
}

/// Details of `reopened`: none (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Nothing {}

/// Details that are only a reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reason {
    pub reason: String,
}

/// Details that name the message the event is about, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageReason {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    pub reason: String,
}

/// Details that only name the message the event is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OfMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Received {
    pub message: Option<i64>,
    pub area: Option<AreaSlug>,
    /// The area address the report was written to.
    pub address: String,
    /// The ticket kind's word.
    pub kind: String,
    pub mailbox: String,
    pub also_addressed: Vec<String>,
    pub reply_to_asked: Option<String>,
    /// PEC reports: the certification facts (see the intake's PEC step); `null` otherwise.
    pub pec: Option<Value>,
    /// The staff member who registered a report received by phone, at the counter or by
    /// letter (`#registra`); absent otherwise, so other reports keep their stored text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Linked {
    /// The other ticket's reference.
    pub ticket: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Taken {
    pub area: Option<AreaSlug>,
    /// The office's name (a `#presa` command).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area_name: Option<String>,
    /// True when an answer or closing implied it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implied: Option<bool>,
    /// `mail` or `web`.
    pub via: String,
}

impl Taken {
    /// A `#presa` command in a staff reply.
    pub fn by_command(area: &AreaSlug, area_name: &str) -> Taken {
        Taken {
            area: Some(area.clone()),
            area_name: Some(area_name.to_owned()),
            implied: None,
            via: "mail".to_owned(),
        }
    }

    /// Implied by an answer or a closing sent by mail.
    pub fn implied(area: &AreaSlug) -> Taken {
        Taken {
            area: Some(area.clone()),
            area_name: None,
            implied: Some(true),
            via: "mail".to_owned(),
        }
    }

    /// The take link of a notification, followed on the web.
    pub fn via_web(area: &AreaSlug) -> Taken {
        Taken {
            area: Some(area.clone()),
            area_name: None,
            implied: None,
            via: "web".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reassigned {
    pub from: Option<AreaSlug>,
    pub to: Option<AreaSlug>,
    pub to_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KindChanged {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplyToChosen {
    pub reply_to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Answered {
    /// The staff reply.
    pub message: Option<i64>,
    /// Our mail to the citizen.
    pub answer: Option<i64>,
    /// Whether our own quoted text was cut from it.
    pub own_text_cut: bool,
}

/// Details of `answer_held`. The fields after `reason` are set only when a colleague had
/// answered first; an answer held for being only our quoted text stores what it always did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnswerHeld {
    /// The staff reply held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    pub reason: String,
    /// The colleague's answer to the citizen (our outbound message) that came first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_first: Option<i64>,
    /// The notice sent to the reply's author; `#invia` answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<i64>,
    /// The answer as it would have gone to the citizen (stripped and guarded): what `#invia`
    /// sends, exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The reply also closed the ticket (`#chiudi`): the close waits for `#invia` too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close: Option<bool>,
    /// Whether our own quoted text was cut from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_text_cut: Option<bool>,
}

/// Details of `colleague_copy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColleagueCopy {
    /// Our answer to the citizen that was copied.
    pub answer: Option<i64>,
    /// The copies (our outbound messages), one per colleague, in the order of `to`.
    pub copies: Vec<i64>,
    pub to: Vec<String>,
}

/// Details of `held_answer_sent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeldAnswerSent {
    /// The `#invia` reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    /// The held staff reply now sent.
    pub held: Option<i64>,
    /// Our answer to the citizen.
    pub answer: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageIdReused {
    pub message: Option<i64>,
    pub earlier_message: Option<i64>,
    pub message_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentsNotExtracted {
    pub message: Option<i64>,
    pub extracted: u64,
    pub not_extracted: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bounce {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    /// The DSN's status code, e.g. `5.1.1`.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub recipients: Vec<String>,
    pub bounced_message: Option<i64>,
    /// The bounced message's kind word.
    pub bounced_kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    pub problem: String,
}

/// Details of a staff reply or note: the note's text (empty for a reply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StaffText {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PecReceipt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
    /// The `X-Ricevuta` word, e.g. `avvenuta-consegna`.
    pub receipt: String,
    /// The certified state applied to our message (`None` when none changed).
    pub state: Option<String>,
    pub for_message: Option<i64>,
    pub pec_id: Option<String>,
    pub delivered_to: Option<String>,
    pub reason: Option<String>,
    /// RFC 3339.
    pub certified_at: Option<String>,
    pub signature: String,
    pub problem: Option<String>,
    /// Unverified receipts: why, the state the receipt claims, and `applied: false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_certified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_state: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
}

/// Details of `reminder` and `escalation` (issue 14): who was told, by which of our mails,
/// and the due date the ticket had passed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Chased {
    /// The ticket's due date, "YYYY-MM-DD".
    pub due: String,
    /// Calendar days past the due date when the mail was queued.
    pub days_overdue: u32,
    /// Our mails (outbound message ids), one per recipient, in the order of `to`.
    pub messages: Vec<i64>,
    pub to: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(e: &EventKind) -> (String, String) {
        (e.kind().to_owned(), e.details().to_string())
    }

    #[test]
    fn typed_events_store_the_same_text_the_json_blobs_did() {
        let taken = EventKind::Taken(Taken {
            area: Some(AreaSlug::parse("verde").unwrap()),
            area_name: None,
            implied: Some(true),
            via: "mail".into(),
        });
        let old = serde_json::json!({ "area": "verde", "implied": true, "via": "mail" });
        assert_eq!(stored(&taken), ("taken".into(), old.to_string()));

        let reopened = EventKind::Reopened(Nothing {});
        assert_eq!(stored(&reopened), ("reopened".into(), "{}".into()));

        let mut bounce = EventKind::Bounce(Bounce {
            status: Some("5.1.1".into()),
            diagnostic: None,
            recipients: vec!["a@b.it".into()],
            bounced_message: Some(7),
            bounced_kind: "ack".into(),
            ..Bounce::default()
        });
        bounce.set_message(9);
        let old = serde_json::json!({
            "status": "5.1.1", "diagnostic": null, "recipients": ["a@b.it"],
            "bounced_message": 7, "bounced_kind": "ack", "message": 9,
        });
        assert_eq!(stored(&bounce), ("bounce".into(), old.to_string()));
    }

    #[test]
    fn stored_events_read_back_typed_and_unknown_ones_as_they_are() {
        let e = EventKind::from_stored(
            "reassigned",
            r#"{"from":"verde","to":"anagrafe","to_name":"Anagrafe"}"#,
        );
        let EventKind::Reassigned(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.to.as_ref().unwrap(), "anagrafe");
        assert_eq!(
            e.details().to_string(),
            r#"{"from":"verde","to":"anagrafe","to_name":"Anagrafe"}"#
        );

        let odd = EventKind::from_stored("merged", r#"{"into":"2026-000001"}"#);
        assert_eq!(odd.kind(), "merged");
        assert_eq!(odd.details()["into"], "2026-000001");

        let broken = EventKind::from_stored("taken", "not json");
        assert_eq!(broken.kind(), "taken");
        assert!(matches!(broken, EventKind::Other { .. }));

        // An older row without a later field still reads as its kind.
        let old = EventKind::from_stored("taken", r#"{"area":"verde"}"#);
        assert!(matches!(old, EventKind::Taken(_)));
    }
}
