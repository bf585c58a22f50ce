//! Mail about an existing ticket: the office's answers and commands, unverified staff mail,
//! citizens' follow-ups, and bounces of our mail. Who may speak for whom is decided in
//! `Pipeline::apply`; this module carries it out, inside the message's transaction.

use super::answer::{AnswerAttachment, AnswerOptions};
use super::letters::{Notification, Offered};
use super::{Ctx, Outcome, Pipeline};
use crate::domain::event::{self, EventKind, Taken};
use crate::domain::{AreaSlug, Direction, MessageKind, TicketKind};
use crate::mail::command::{parse_staff_reply, Command};
use crate::mail::own_text::{guard_answer, strip_staff_reply, OwnText};
use crate::mail::quote::strip_reply;
use crate::store::{now_millis, MessageTicket, OurMessage, Store, Tx};
use crate::tickets;

impl Pipeline {
    /// A bounce of one of our messages: its delivery becomes failed with the reason, the
    /// bounce is kept on the ticket, and if it was mail to the citizen the office is told.
    pub(super) async fn bounce(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        ours: &OurMessage,
        t: &MessageTicket,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        let dsn = ctx.mail.dsn.as_ref();
        let reason = dsn
            .and_then(|d| d.diagnostic.clone().or_else(|| d.status.clone()))
            .unwrap_or_else(|| "non-delivery report".to_owned());
        let recipients: Vec<String> = dsn
            .map(|d| d.failed_recipients.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| vec![ours.to_addrs.clone()]);
        let details = event::Bounce {
            message: None,
            status: dsn.and_then(|d| d.status.clone()),
            diagnostic: dsn.and_then(|d| d.diagnostic.clone()),
            recipients: recipients.clone(),
            bounced_message: Some(ours.message_id),
            bounced_kind: ours.kind.as_str().to_owned(),
        };
        let bounce = EventKind::Bounce(details);
        self.record_message(tx, ctx, t, MessageKind::Bounce, bounce, from_addr)
            .await?;
        Store::mark_bounced(tx, ours.message_id, &format!("bounced: {reason}")).await?;
        if ours.kind.to_citizen(Direction::Out) {
            self.tell_staff_bounce(tx, t, &recipients.join(", "), &reason)
                .await?;
        }
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: "bounce".to_owned(),
        })
    }

    /// Staff mail that cannot be trusted as the office's answer: kept, flagged, never
    /// forwarded; the sender is told how to answer properly.
    pub(super) async fn unverified_staff(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        from_addr: &str,
        reason: &str,
    ) -> anyhow::Result<Outcome> {
        let details = event::MessageReason {
            message: None,
            reason: reason.to_owned(),
        };
        self.record_message(
            tx,
            ctx,
            t,
            MessageKind::StaffUnverified,
            EventKind::StaffUnverified(details),
            from_addr,
        )
        .await?;
        tracing::warn!(ticket = %t.reference, from = from_addr, reason, "unverified staff mail kept, not forwarded");
        self.tell_staff_how_to_reply(tx, t, from_addr, ctx.mail, reason)
            .await?;
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: "staff_unverified".to_owned(),
        })
    }

    /// A verified reply of the office: commands first, then the answer to the citizen.
    pub(super) async fn staff_reply(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        // Our own text — the notification it answers with its take link, history and notes —
        // is cut away before anything is read from the reply (docs/design-notes.md, "Our own
        // text never reaches a citizen").
        let own = self.own_text(tx, t.ticket_id).await?;
        let stripped = strip_staff_reply(&ctx.mail.text, &own);
        let reply = parse_staff_reply(&stripped.text);
        let now = now_millis();

        // Check every command before doing anything: a reply is carried out whole or not at
        // all, so a typo never sends half of what the staff meant.
        let mut problems = Vec::new();
        for c in &reply.commands {
            match c {
                Command::Unknown(line) => problems.push(format!("comando sconosciuto: {line}")),
                Command::Assign(a) if self.cfg.find_area(a).is_none() => {
                    problems.push(format!("ufficio sconosciuto: {a}"))
                }
                Command::Kind(k) if TicketKind::parse(k).is_none() => {
                    problems.push(format!("tipo sconosciuto: {k}"))
                }
                Command::AnswerAtReplyTo if t.reply_to_asked.is_none() => problems.push(
                    "#rispondi-a: il cittadino non ha chiesto risposta a un altro indirizzo"
                        .to_owned(),
                ),
                _ => {}
            }
        }
        if !problems.is_empty() {
            let problem = problems.join("\n");
            let details = event::CommandError {
                message: None,
                problem: problem.clone(),
            };
            self.record_message(
                tx,
                ctx,
                t,
                MessageKind::StaffReply,
                EventKind::CommandError(details),
                from_addr,
            )
            .await?;
            self.tell_staff_command_error(tx, t, from_addr, ctx.mail, &problem)
                .await?;
            return Ok(Outcome::Recorded {
                reference: t.reference.to_string(),
                kind: "command_error".to_owned(),
            });
        }

        let note = reply.commands.iter().find_map(|c| match c {
            Command::Note(inline) => Some(reply.text_with(inline)),
            _ => None,
        });
        let close = reply.commands.iter().find_map(|c| match c {
            Command::Close(inline) => Some(reply.text_with(inline)),
            _ => None,
        });
        let details = event::StaffText {
            message: None,
            text: note.clone().unwrap_or_default(),
        };
        let (message_kind, recorded) = if note.is_some() {
            (MessageKind::Note, EventKind::Note(details))
        } else {
            (MessageKind::StaffReply, EventKind::StaffReply(details))
        };
        let message_id = self
            .record_message(tx, ctx, t, message_kind, recorded, from_addr)
            .await?;

        let mut t = t.clone();
        for c in &reply.commands {
            match c {
                Command::Take => {
                    let details = Taken::by_command(&t.area, &self.area_name(t.area.as_str()));
                    tickets::take(tx, &mut t, from_addr, details, now).await?;
                }
                Command::Assign(a) => {
                    let Some(new_area) = self.cfg.find_area(a) else {
                        continue;
                    };
                    let to = AreaSlug::parse(&new_area.slug)?;
                    let previous_name = self.area_name(t.area.as_str());
                    if !tickets::reassign(tx, &mut t, from_addr, &to, &new_area.name, now).await? {
                        continue;
                    }
                    self.notify_reassigned(tx, &t, &previous_name).await?;
                    self.tell_citizen_reassigned(tx, &t, &previous_name).await?;
                }
                Command::Kind(k) => {
                    if let Some(kind) = TicketKind::parse(k) {
                        tickets::change_kind(tx, &mut t, from_addr, kind, now).await?;
                    }
                }
                Command::AnswerAtReplyTo => {
                    // Staff chose it: only now does mail to the citizen go to the Reply-To.
                    tickets::choose_reply_to(tx, &mut t, from_addr, now).await?;
                }
                Command::Note(_) | Command::Close(_) | Command::Unknown(_) => {}
            }
        }

        // The answer: the closing text, or the body of a plain reply (a note is never sent).
        let answer = match (&close, &note) {
            (Some(text), _) => text.clone(),
            (None, Some(_)) => String::new(),
            (None, None) => reply.body.clone(),
        };
        // The last guard before the citizen: whatever the stripping missed, nothing of ours.
        let (answer, guarded) = match guard_answer(&answer, &own) {
            Some(cut) => (cut, true),
            None => (answer, false),
        };
        let only_ours = stripped.cut_ours && reply.commands.is_empty();
        let held = answer.trim().is_empty() && (guarded || only_ours);
        if held {
            tracing::warn!(ticket = %t.reference, from = from_addr, "a staff reply held: it was only our own quoted text");
            let details = event::MessageReason {
                message: Some(message_id),
                reason: "the reply contained only the quoted notification; nothing was sent to \
                         the citizen"
                    .to_owned(),
            };
            Store::insert_event(
                tx,
                t.ticket_id,
                &EventKind::AnswerHeld(details),
                from_addr,
                now,
            )
            .await?;
            self.tell_staff_answer_held(tx, &t, from_addr, ctx.mail)
                .await?;
        }
        if !answer.trim().is_empty() {
            // ctx.stored pairs an attachment's index with the sha256 it is kept under.
            let attachments: Vec<AnswerAttachment<'_>> = ctx
                .mail
                .attachments
                .iter()
                .enumerate()
                .map(|(i, a)| AnswerAttachment {
                    filename: &a.filename,
                    content_type: &a.content_type,
                    bytes: &a.bytes,
                    sha256: ctx
                        .stored
                        .iter()
                        .find(|(j, _)| *j == i)
                        .map(|(_, sha)| sha.as_str()),
                })
                .collect();
            let options = AnswerOptions {
                close: close.is_some(),
                own_text_cut: guarded || stripped.cut_ours,
            };
            self.send_answer(
                tx,
                &mut t,
                from_addr,
                message_id,
                &answer,
                &attachments,
                options,
            )
            .await?;
        } else if close.is_some() {
            tickets::resolve(tx, &mut t, from_addr, message_id, now).await?;
        }
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: if held {
                "answer_held"
            } else {
                message_kind.as_str()
            }
            .to_owned(),
        })
    }

    /// What we wrote for staff about the ticket (notifications, notices, notes), and what the
    /// citizen wrote or got from us (their words are no secret to them).
    async fn own_text(&self, tx: &mut Tx, ticket_id: i64) -> anyhow::Result<OwnText> {
        let texts = Store::ticket_texts(tx, ticket_id).await?;
        let ours = texts
            .iter()
            .filter(|m| m.direction == Direction::Out && !m.kind.to_citizen(m.direction))
            .map(|m| m.text.as_str());
        let notes = texts
            .iter()
            .filter(|m| m.direction == Direction::In && m.kind == MessageKind::Note)
            .map(|m| m.text.as_str());
        let citizens = texts
            .iter()
            .filter(|m| m.kind.citizen_may_see(m.direction))
            .map(|m| m.text.as_str());
        Ok(OwnText::new(ours, notes, citizens))
    }

    /// The citizen writing again about their ticket: kept, the office notified, a resolved
    /// ticket reopened.
    pub(super) async fn citizen_follow_up(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        let follow_up = EventKind::FollowUp(event::OfMessage::default());
        let message_id = self
            .record_message(tx, ctx, t, MessageKind::FollowUp, follow_up, from_addr)
            .await?;
        let now = now_millis();
        // The office is told about the ticket as it was when the citizen wrote.
        tickets::reopen(tx, &mut t.clone(), from_addr, now).await?;
        let text = strip_reply(&ctx.mail.text);
        let files = Offered::of_message(tx, message_id, ctx.mail, ctx.stored).await?;
        let notification = Notification {
            headline: "Nuovo messaggio del cittadino sulla pratica",
            subject: &ctx.mail.subject,
            text: &text,
            files: &files,
            not_extracted: ctx.not_extracted,
            also_areas: "",
            kind: "",
            history: "",
        };
        self.notify_staff(tx, t, &notification).await?;
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: "follow_up".to_owned(),
        })
    }
}
