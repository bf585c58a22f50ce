//! Which way a message went and what it is: the words stored in `message.direction` and
//! `message.kind`, and what each means for the citizen and in a ticket's history.

use std::fmt;
use std::str::FromStr;

use super::ticket::{stored_word, UnknownWord};

/// `in`: mail (or a web report) that reached us; `out`: mail we wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

stored_word!(
    Direction,
    "message direction",
    [Direction::In, Direction::Out]
);

/// What a message is. Inbound kinds are given by intake, outbound ones by whoever queues
/// the mail; a kind belongs to one direction (see [`MessageKind::direction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// The citizen's first message: the report the ticket was made from.
    Report,
    /// The citizen writing again about the ticket.
    FollowUp,
    /// A verified reply of the office.
    StaffReply,
    /// Staff mail that could not be trusted as the office's answer.
    StaffUnverified,
    /// An internal note of the office (`#nota`).
    Note,
    /// A non-delivery report of one of our mails.
    Bounce,
    /// A read receipt (MDN).
    Receipt,
    /// A PEC provider's receipt of one of our mails.
    PecReceipt,
    /// An automatic answer (vacation, auto-submitted…).
    AutoReply,
    /// Our acknowledgment to the citizen.
    Ack,
    /// Our notification of a ticket to the office.
    Notification,
    /// The office's answer, forwarded to the citizen.
    Answer,
    /// A change of the ticket told to the citizen.
    Status,
    /// A notice to staff (how to reply, a held answer, a bounce, a PEC failure…).
    Notice,
    /// The "too large" notice to a sender.
    Oversize,
    /// Mail about a citizen's web account (verification, password reset).
    Account,
    /// The copy of a colleague's answer to the area's other staff (issue 13).
    ColleagueCopy,
    /// The notice to a staff member that their answer was held because a colleague had
    /// answered first, carrying that answer (issue 13); `#invia` in a reply to it sends theirs.
    HeldNotice,
    /// The reminder to the area's staff of a ticket overdue without an answer (issue 14).
    Reminder,
    /// The escalation of an overdue ticket to the head of office and the admin areas' staff
    /// (issue 14).
    Escalation,
    /// An office's daily digest of its queue to one staff member (issue 14); about no one
    /// ticket.
    Digest,
}

impl MessageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageKind::Report => "report",
            MessageKind::FollowUp => "follow_up",
            MessageKind::StaffReply => "staff_reply",
            MessageKind::StaffUnverified => "staff_unverified",
            MessageKind::Note => "note",
            MessageKind::Bounce => "bounce",
            MessageKind::Receipt => "receipt",
            MessageKind::PecReceipt => "pec_receipt",
            MessageKind::AutoReply => "auto_reply",
            MessageKind::Ack => "ack",
            MessageKind::Notification => "notification",
            MessageKind::Answer => "answer",
            MessageKind::Status => "status",
            MessageKind::Notice => "notice",
            MessageKind::Oversize => "oversize",
            MessageKind::Account => "account",
            MessageKind::ColleagueCopy => "colleague_copy",
            MessageKind::HeldNotice => "held_notice",
            MessageKind::Reminder => "reminder",
            MessageKind::Escalation => "escalation",
            MessageKind::Digest => "digest",
        }
    }

    /// The direction every message of this kind has.
    pub fn direction(&self) -> Direction {
        match self {
            MessageKind::Report
            | MessageKind::FollowUp
            | MessageKind::StaffReply
            | MessageKind::StaffUnverified
            | MessageKind::Note
            | MessageKind::Bounce
            | MessageKind::Receipt
            | MessageKind::PecReceipt
            | MessageKind::AutoReply => Direction::In,
            MessageKind::Ack
            | MessageKind::Notification
            | MessageKind::Answer
            | MessageKind::Status
            | MessageKind::Notice
            | MessageKind::Oversize
            | MessageKind::Account
            | MessageKind::ColleagueCopy
            | MessageKind::HeldNotice
            | MessageKind::Reminder
            | MessageKind::Escalation
            | MessageKind::Digest => Direction::Out,
        }
    }

    /// The citizen wrote it (their report or a follow-up), going `direction`.
    pub fn from_citizen(&self, direction: Direction) -> bool {
        direction == Direction::In && matches!(self, MessageKind::Report | MessageKind::FollowUp)
    }

    /// We wrote it to the citizen (acknowledgment, forwarded answer, status), going
    /// `direction`.
    pub fn to_citizen(&self, direction: Direction) -> bool {
        direction == Direction::Out
            && matches!(
                self,
                MessageKind::Ack | MessageKind::Answer | MessageKind::Status
            )
    }

    /// Mail of ours to staff about the ticket that a staff reply may answer as the office:
    /// a notification, a colleague's answer copied, a held-answer notice, a reminder or an
    /// escalation of an overdue ticket (issue 14). Each went to staff only, under a signed
    /// Message-ID; the citizen's ack and answer never count.
    pub fn answerable_by_staff(&self, direction: Direction) -> bool {
        direction == Direction::Out
            && matches!(
                self,
                MessageKind::Notification
                    | MessageKind::ColleagueCopy
                    | MessageKind::HeldNotice
                    | MessageKind::Reminder
                    | MessageKind::Escalation
            )
    }

    /// Whether the citizen's page shows it: their own messages and ours to them. Staff
    /// notifications, staff mail, notes and provider receipts stay internal (receipts appear
    /// as certified events).
    pub fn citizen_may_see(&self, direction: Direction) -> bool {
        self.from_citizen(direction) || self.to_citizen(direction)
    }

    /// Who or what the message is, in the words of the ticket's timeline (`ticket show`).
    pub fn role(&self, direction: Direction) -> &'static str {
        if direction != self.direction() {
            return "other";
        }
        match self {
            MessageKind::Report | MessageKind::FollowUp => "citizen",
            MessageKind::StaffReply => "staff verified",
            MessageKind::StaffUnverified => "staff unverified",
            MessageKind::Note => "note",
            MessageKind::Bounce => "bounce",
            MessageKind::Receipt => "receipt",
            MessageKind::PecReceipt => "PEC receipt",
            MessageKind::AutoReply => "auto-reply",
            MessageKind::Ack => "ack",
            MessageKind::Notification => "notification",
            MessageKind::Answer => "forwarded answer",
            MessageKind::Status => "status",
            MessageKind::Notice | MessageKind::Oversize | MessageKind::HeldNotice => "notice",
            MessageKind::ColleagueCopy => "colleague copy",
            MessageKind::Reminder => "reminder",
            MessageKind::Escalation => "escalation",
            MessageKind::Account => "other",
            MessageKind::Digest => "digest",
        }
    }

    /// Who wrote it, in the Italian history sent to a new office with a reassigned ticket;
    /// `None` for our other outbound mail, which the history leaves out.
    pub fn history_label(&self, direction: Direction) -> Option<&'static str> {
        Some(match (direction, self) {
            (Direction::In, MessageKind::Report | MessageKind::FollowUp) => "cittadino",
            (Direction::In, MessageKind::StaffReply) => "ufficio",
            (Direction::In, MessageKind::Note) => "nota interna",
            (Direction::Out, MessageKind::Answer) => "risposta inviata",
            (Direction::Out, _) => return None,
            _ => "messaggio",
        })
    }
}

stored_word!(
    MessageKind,
    "message kind",
    [
        MessageKind::Report,
        MessageKind::FollowUp,
        MessageKind::StaffReply,
        MessageKind::StaffUnverified,
        MessageKind::Note,
        MessageKind::Bounce,
        MessageKind::Receipt,
        MessageKind::PecReceipt,
        MessageKind::AutoReply,
        MessageKind::Ack,
        MessageKind::Notification,
        MessageKind::Answer,
        MessageKind::Status,
        MessageKind::Notice,
        MessageKind::Oversize,
        MessageKind::Account,
        MessageKind::ColleagueCopy,
        MessageKind::HeldNotice,
        MessageKind::Reminder,
        MessageKind::Escalation,
        MessageKind::Digest,
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_stored_word() {
        for k in MessageKind::ALL {
            assert_eq!(k.as_str().parse::<MessageKind>().unwrap(), *k);
        }
        assert!("letter".parse::<MessageKind>().is_err());
        assert_eq!("out".parse::<Direction>().unwrap(), Direction::Out);
        assert!("both".parse::<Direction>().is_err());
    }

    #[test]
    fn the_citizen_sees_their_messages_and_ours_to_them_only() {
        let seen: Vec<&str> = MessageKind::ALL
            .iter()
            .filter(|k| k.citizen_may_see(k.direction()))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(seen, ["report", "follow_up", "ack", "answer", "status"]);
        assert!(!MessageKind::Answer.citizen_may_see(Direction::In));
    }

    #[test]
    fn staff_may_answer_our_staff_side_mail_and_never_the_citizen_s() {
        let answerable: Vec<&str> = MessageKind::ALL
            .iter()
            .filter(|k| k.answerable_by_staff(k.direction()))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            answerable,
            [
                "notification",
                "colleague_copy",
                "held_notice",
                "reminder",
                "escalation"
            ]
        );
    }

    #[test]
    fn roles_name_a_kind_only_in_its_own_direction() {
        assert_eq!(MessageKind::Answer.role(Direction::Out), "forwarded answer");
        assert_eq!(MessageKind::Answer.role(Direction::In), "other");
        assert_eq!(MessageKind::Oversize.role(Direction::Out), "notice");
        assert_eq!(
            MessageKind::ColleagueCopy.role(Direction::Out),
            "colleague copy"
        );
        assert_eq!(MessageKind::HeldNotice.history_label(Direction::Out), None);
        assert_eq!(MessageKind::Notice.history_label(Direction::Out), None);
        assert_eq!(
            MessageKind::Bounce.history_label(Direction::In),
            Some("messaggio")
        );
    }
}
