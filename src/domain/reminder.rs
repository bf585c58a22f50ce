//! When an unanswered ticket's office is reminded and its head of office told (issue 14): the
//! pure decision, from how many days the ticket is overdue and what was already sent. The
//! check that runs it (`ticketgate remind`, the task of `serve`) lives in `intake::remind`;
//! whether something was already sent is read from the ticket's events under its row lock, so
//! that this decision is taken once per ticket even with several instances.

use super::TicketStatus;

/// A mail that chases an overdue ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chase {
    /// To the area's staff, the first day the ticket is overdue.
    Reminder,
    /// To the area's head of office and the admin areas' staff, `escalate_after_days` days
    /// after the reminder's day.
    Escalation,
}

/// What a ticket already had: a `reminder` event, an `escalation` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chased {
    pub reminded: bool,
    pub escalated: bool,
}

/// The chases due now for a ticket in `status` that is `days_overdue` calendar days past its
/// due date (0: not overdue; 1: the first day after it), given what it already had and the
/// area's `escalate_after_days` (0: never escalate). Answered and resolved tickets get
/// nothing, whatever their dates. A ticket first seen long after its due date (a check that
/// did not run for a while) gets its reminder and, when that day is past too, its escalation
/// in the same run: each is owed once, and late is better than never.
pub fn chases_due(
    status: TicketStatus,
    days_overdue: u32,
    escalate_after_days: u32,
    chased: Chased,
) -> Vec<Chase> {
    let mut due = Vec::new();
    if !matches!(status, TicketStatus::Received | TicketStatus::Taken) || days_overdue == 0 {
        return due;
    }
    if !chased.reminded {
        due.push(Chase::Reminder);
    }
    // The reminder goes on overdue day 1; the escalation `escalate_after_days` days later.
    if escalate_after_days > 0 && !chased.escalated && days_overdue > escalate_after_days {
        due.push(Chase::Escalation);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: Chased = Chased {
        reminded: false,
        escalated: false,
    };
    const REMINDED: Chased = Chased {
        reminded: true,
        escalated: false,
    };

    #[test]
    fn a_ticket_not_yet_overdue_is_left_alone() {
        assert!(chases_due(TicketStatus::Received, 0, 7, NOTHING).is_empty());
    }

    #[test]
    fn the_first_overdue_day_reminds_the_office_once() {
        assert_eq!(
            chases_due(TicketStatus::Taken, 1, 7, NOTHING),
            [Chase::Reminder]
        );
        assert!(chases_due(TicketStatus::Taken, 1, 7, REMINDED).is_empty());
        assert!(chases_due(TicketStatus::Taken, 5, 7, REMINDED).is_empty());
    }

    #[test]
    fn the_head_is_told_escalate_after_days_after_the_reminder_s_day_and_once() {
        assert!(chases_due(TicketStatus::Received, 7, 7, REMINDED).is_empty());
        assert_eq!(
            chases_due(TicketStatus::Received, 8, 7, REMINDED),
            [Chase::Escalation]
        );
        let both = Chased {
            reminded: true,
            escalated: true,
        };
        assert!(chases_due(TicketStatus::Received, 30, 7, both).is_empty());
    }

    #[test]
    fn zero_escalate_after_days_never_escalates() {
        assert!(chases_due(TicketStatus::Received, 400, 0, REMINDED).is_empty());
    }

    #[test]
    fn a_ticket_found_long_overdue_gets_its_reminder_and_its_escalation_together() {
        assert_eq!(
            chases_due(TicketStatus::Received, 20, 7, NOTHING),
            [Chase::Reminder, Chase::Escalation]
        );
    }

    #[test]
    fn answered_and_resolved_tickets_are_never_chased() {
        for status in [TicketStatus::Answered, TicketStatus::Resolved] {
            assert!(chases_due(status, 20, 7, NOTHING).is_empty());
        }
    }
}
