//! Reminders and escalation of overdue tickets (issue 14): `ticketgate remind` and the task of
//! `serve` run [`Pipeline::remind`].
//!
//! The day after a ticket's due date, still unanswered, the area's staff get one reminder in
//! the ticket's thread (In-Reply-To and References its first notification), Reply-To the area,
//! with their staff page link; `escalate_after_days` days later the area's `head` and the
//! admin areas' staff get one escalation. What is due is the pure `domain::reminder` rule;
//! "once" is the ticket's `reminder` / `escalation` event, read again after the ticket's row
//! lock in the very transaction that queues the mails and writes the event: two instances, or
//! a check run by hand while `serve` runs its own, cannot both send.

use anyhow::Context;
use askama::Template;

use super::letters::recipient;
use super::Pipeline;
use crate::config::AreaConfig;
use crate::domain::calendar::{days_overdue, due_date, iso_date};
use crate::domain::event::Chased as ChasedEvent;
use crate::domain::reminder::{chases_due, Chase};
use crate::domain::{
    local_time, EventKind, Holidays, MessageKind, TicketRef, TicketStatus, Transport,
};
use crate::mail::compose;
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{MessageTicket, Store, Tx, Unanswered};

/// One mail a check queued, or would queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaseLine {
    pub reference: TicketRef,
    pub chase: Chase,
    /// The ticket's due date, "YYYY-MM-DD".
    pub due: String,
    pub days_overdue: u32,
    /// The recipients, lowercase.
    pub to: Vec<String>,
}

impl std::fmt::Display for ChaseLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.chase {
            Chase::Reminder => "reminder",
            Chase::Escalation => "escalation",
        };
        write!(
            f,
            "{} {what} to {} (due {}, {} day(s) overdue)",
            self.reference,
            self.to.join(", "),
            self.due,
            self.days_overdue
        )
    }
}

#[derive(Template)]
#[template(path = "mail/reminder.txt")]
struct ReminderText<'a> {
    reference: &'a str,
    area_name: &'a str,
    subject: &'a str,
    citizen: &'a str,
    received_at: &'a str,
    due: &'a str,
    days_overdue: u32,
    escalate_after_days: u32,
    staff_link: &'a str,
}

#[derive(Template)]
#[template(path = "mail/escalation.txt")]
struct EscalationText<'a> {
    reference: &'a str,
    area_name: &'a str,
    subject: &'a str,
    citizen: &'a str,
    received_at: &'a str,
    due: &'a str,
    days_overdue: u32,
    staff: &'a str,
    staff_link: &'a str,
}

impl Pipeline {
    /// Checks every unanswered ticket at `now` (unix millis): with `send`, queues each
    /// reminder and escalation due and records it; without, only says what it would queue.
    /// Returns the mails, in ticket order.
    pub async fn remind(&self, now: i64, send: bool) -> anyhow::Result<Vec<ChaseLine>> {
        let mut lines = Vec::new();
        let holidays = self.cfg.holidays();
        let tickets = self
            .store
            .unanswered_tickets()
            .await
            .context("reading the unanswered tickets")?;
        for u in &tickets {
            let Some(area) = self.cfg.area(u.area.as_str()) else {
                continue;
            };
            let (due, late) = lateness(u.created_at, u.status, area, &holidays, now);
            let chases = chases_due(u.status, late, area.escalate_after_days, u.chased);
            if chases.is_empty() {
                continue;
            }
            if !send {
                for chase in chases {
                    let to = self.chase_recipients(area, chase);
                    if !to.is_empty() {
                        lines.push(line(u.reference, chase, due.clone(), late, to));
                    }
                }
                continue;
            }
            // Decided again under the ticket's lock: this read only picks the candidates.
            let sent = self
                .chase_ticket(u, now)
                .await
                .with_context(|| format!("reminding of ticket {}", u.reference))?;
            lines.extend(sent);
        }
        if send && !lines.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(lines)
    }

    /// One ticket, in one transaction: the row lock first, then the ticket and its events as
    /// they are now (it may have been answered, reassigned or chased since the list was read).
    async fn chase_ticket(&self, u: &Unanswered, now: i64) -> anyhow::Result<Vec<ChaseLine>> {
        let mut tx = self.store.begin().await?;
        Store::lock_ticket(&mut tx, u.ticket_id).await?;
        let Some(t) = Store::ticket_by_ref_in(&mut tx, &u.reference).await? else {
            return Ok(Vec::new());
        };
        let Some(area) = self.cfg.area(t.area.as_str()) else {
            return Ok(Vec::new());
        };
        let chased = Store::ticket_chased(&mut tx, t.ticket_id).await?;
        let (due, late) = lateness(u.created_at, t.status, area, &self.cfg.holidays(), now);
        let mut lines = Vec::new();
        for chase in chases_due(t.status, late, area.escalate_after_days, chased) {
            let to = self.chase_recipients(area, chase);
            // Nobody to tell (no staff, no head nor admin staff): nothing is recorded, so a
            // recipient configured later still gets it.
            if to.is_empty() {
                continue;
            }
            let facts = Facts {
                area,
                due: &due,
                days_overdue: late,
                created_at: u.created_at,
                now,
            };
            self.queue_chase(&mut tx, &t, chase, &facts, &to).await?;
            lines.push(line(t.reference, chase, due.clone(), late, to));
        }
        tx.commit().await?;
        Ok(lines)
    }

    /// Who gets `chase` for a ticket of `area`: its staff for the reminder; its head and the
    /// admin areas' staff for the escalation. Lowercase, each once.
    fn chase_recipients(&self, area: &AreaConfig, chase: Chase) -> Vec<String> {
        let all: Vec<String> = match chase {
            Chase::Reminder => area.staff.clone(),
            Chase::Escalation => area
                .head
                .iter()
                .cloned()
                .chain(
                    self.cfg
                        .areas
                        .iter()
                        .filter(|a| a.admin)
                        .flat_map(|a| a.staff.iter().cloned()),
                )
                .collect(),
        };
        let mut to: Vec<String> = Vec::new();
        for a in all {
            let a = a.trim().to_lowercase();
            if !to.contains(&a) {
                to.push(a);
            }
        }
        to
    }

    /// Queues one mail per recipient of `chase`, threaded under the ticket's first
    /// notification, and records the event.
    async fn queue_chase(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        chase: Chase,
        f: &Facts<'_>,
        to: &[String],
    ) -> anyhow::Result<()> {
        let area_addr = f
            .area
            .addresses
            .first()
            .map(|a| a.address().to_lowercase())
            .context("the area has no address")?;
        let messages = Store::ticket_timeline_in(tx, t.ticket_id).await?.messages;
        let first_notification = messages
            .iter()
            .filter(|m| m.kind == MessageKind::Notification && m.direction == m.kind.direction())
            .find_map(|m| m.rfc_message_id.clone());
        let reference = t.reference.to_string();
        let citizen = if t.reply_to.is_none() && t.citizen.is_none() {
            "nessun indirizzo email / no email address".to_owned()
        } else {
            t.citizen_mail_to().to_owned()
        };
        let received_at = local_time(f.created_at);
        let (kind, headline) = match chase {
            Chase::Reminder => (MessageKind::Reminder, "Promemoria: scaduta / Overdue"),
            Chase::Escalation => (
                MessageKind::Escalation,
                "Senza risposta / Escalation: overdue",
            ),
        };
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &reference,
            &format!("{headline}: {}", t.subject),
        );
        let staff = f.area.staff.join(", ");
        let mut ids = Vec::new();
        for addr in to {
            // The staff page opens only for staff of the ticket's office or an admin area: a
            // head who is neither gets no link that would answer 404.
            let staff_link = if self.cfg.is_staff_of(addr, t.area.as_str()) {
                self.staff_link(t, addr)
            } else {
                String::new()
            };
            let text = match chase {
                Chase::Reminder => ReminderText {
                    reference: &reference,
                    area_name: &f.area.name,
                    subject: &t.subject,
                    citizen: &citizen,
                    received_at: &received_at,
                    due: f.due,
                    days_overdue: f.days_overdue,
                    escalate_after_days: f.area.escalate_after_days,
                    staff_link: &staff_link,
                }
                .render()?,
                Chase::Escalation => EscalationText {
                    reference: &reference,
                    area_name: &f.area.name,
                    subject: &t.subject,
                    citizen: &citizen,
                    received_at: &received_at,
                    due: f.due,
                    days_overdue: f.days_overdue,
                    staff: &staff,
                    staff_link: &staff_link,
                }
                .render()?,
            };
            let id = queue_mail(
                tx,
                &self.ids,
                &Queued {
                    ticket: Some((t.ticket_id, t.reference)),
                    kind,
                    from_name: &f.area.name,
                    from_addr: &area_addr,
                    to: vec![recipient(addr)?],
                    // Answering it is answering the ticket: the reply must reach the area's
                    // mailbox, which is what reads it.
                    reply_to: Some((&f.area.name, &area_addr)),
                    subject: &subject,
                    in_reply_to: first_notification.as_deref(),
                    references: first_notification.iter().cloned().collect(),
                    auto_replied: false,
                    text: &text,
                    attachments: Vec::new(),
                    transport: Transport::Smtp,
                },
            )
            .await?;
            ids.push(id);
        }
        let details = ChasedEvent {
            due: f.due.to_owned(),
            days_overdue: f.days_overdue,
            messages: ids,
            to: to.to_vec(),
        };
        let event = match chase {
            Chase::Reminder => EventKind::Reminder(details),
            Chase::Escalation => EventKind::Escalation(details),
        };
        Store::insert_event(tx, t.ticket_id, &event, "system", f.now).await?;
        Ok(())
    }
}

/// What a chase mail says of the ticket's lateness.
struct Facts<'a> {
    area: &'a AreaConfig,
    /// "YYYY-MM-DD".
    due: &'a str,
    days_overdue: u32,
    created_at: i64,
    now: i64,
}

fn line(reference: TicketRef, chase: Chase, due: String, late: u32, to: Vec<String>) -> ChaseLine {
    ChaseLine {
        reference,
        chase,
        due,
        days_overdue: late,
        to,
    }
}

/// A ticket's due date ("YYYY-MM-DD", by the one rule of `domain::calendar`) and how many
/// days past it it is at `now`.
fn lateness(
    created_at: i64,
    status: TicketStatus,
    area: &AreaConfig,
    holidays: &Holidays,
    now: i64,
) -> (String, u32) {
    let due = due_date(created_at, area.response_days, holidays);
    let late = days_overdue(status, due, now);
    (iso_date(due), late)
}

/// An operator's `--as-of "YYYY-MM-DD HH:MM"`, Rome time, as unix millis; `None` when it is
/// not such a time. The same reading as `ticketgate digest --as-of` (`domain::rome`).
pub fn as_of_millis(text: &str) -> Option<i64> {
    crate::domain::rome::parse_local(text).map(crate::domain::rome::to_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_read_as_rome_time_in_winter_and_in_summer() {
        // 2026-01-15 13:00 in Rome is 12:00 UTC; 2026-07-15 14:00 is 12:00 UTC.
        assert_eq!(as_of_millis("2026-01-15 13:00"), Some(1_768_478_400_000));
        assert_eq!(as_of_millis("2026-07-15 14:00"), Some(1_784_116_800_000));
        assert_eq!(as_of_millis("15/01/2026 13:00"), None);
        assert_eq!(as_of_millis("2026-02-30 10:00"), None);
    }

    #[test]
    fn a_ticket_is_one_day_overdue_the_day_after_its_due_date() {
        // Friday 2026-01-16 13:00 Rome + 2 working days: due Tuesday 20.
        let created = 1_768_564_800_000;
        let due = due_date(created, 2, &Holidays::none());
        assert_eq!(iso_date(due), "2026-01-20");
        let at = |s: &str| as_of_millis(s).unwrap();
        assert_eq!(
            days_overdue(TicketStatus::Taken, due, at("2026-01-20 23:59")),
            0
        );
        assert_eq!(
            days_overdue(TicketStatus::Taken, due, at("2026-01-21 00:00")),
            1
        );
        assert_eq!(
            days_overdue(TicketStatus::Answered, due, at("2026-02-21 00:00")),
            0
        );
    }
}
