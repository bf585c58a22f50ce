//! Mail about an existing ticket: the office's answers and commands, unverified staff mail,
//! citizens' follow-ups, and bounces of our mail. Who may speak for whom is decided in
//! `Pipeline::apply`; this module carries it out, inside the message's transaction.

use super::answer::{
    answered_first, held_for_notice, held_sent_at, sent_answers, AnswerAttachment, AnswerAuthor,
    AnswerOptions, SentAnswer,
};
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

    /// A verified reply of the office to our mail `answers`: commands first, then the answer
    /// to the citizen — held instead when a colleague answered after `answers` was sent.
    pub(super) async fn staff_reply(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        answers: &OurMessage,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        // One staff reply of a ticket at a time, across instances: whether a colleague has
        // answered is read after the lock, and the ticket as it is now.
        Store::lock_ticket(tx, t.ticket_id).await?;
        let current = Store::ticket_by_ref_in(tx, &t.reference).await?;
        let t = current.as_ref().unwrap_or(t);
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
                Command::Send if answers.kind != MessageKind::HeldNotice => problems.push(
                    "#invia: vale solo in risposta all'avviso di una risposta trattenuta \
                     (only in a reply to the notice of a held answer)"
                        .to_owned(),
                ),
                Command::Send if reply.commands.len() > 1 => problems.push(
                    "#invia va scritto da solo: invia la risposta trattenuta così com'era \
                     (#send stands alone: it sends the held answer as it was)"
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

        if reply.has(|c| *c == Command::Send) {
            return self.send_held(tx, ctx, t, answers, from_addr).await;
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
                // #chiudi goes with the answer (held with it); #invia was handled above.
                Command::Note(_) | Command::Close(_) | Command::Send | Command::Unknown(_) => {}
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
        let mut held = answer.trim().is_empty() && (guarded || only_ours);
        if held {
            tracing::warn!(ticket = %t.reference, from = from_addr, "a staff reply held: it was only our own quoted text");
            let details = event::AnswerHeld {
                message: Some(message_id),
                reason: "the reply contained only the quoted notification; nothing was sent to \
                         the citizen"
                    .to_owned(),
                ..event::AnswerHeld::default()
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
        let own_text_cut = guarded || stripped.cut_ours;
        let first = if answer.trim().is_empty() {
            None
        } else {
            let events = Store::ticket_timeline_in(tx, t.ticket_id).await?.events;
            let sent = sent_answers(&events);
            answered_first(answers.message_id, from_addr, &sent).cloned()
        };
        answer_race_failpoint().await;
        if let Some(first) = first {
            held = true;
            let hold = Hold {
                message_id,
                text: answer.trim(),
                close: close.is_some(),
                own_text_cut,
            };
            self.hold_double_answer(tx, ctx, &t, from_addr, &first, &hold)
                .await?;
        } else if !answer.trim().is_empty() {
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
                own_text_cut,
            };
            let author = AnswerAuthor {
                address: from_addr,
                name: ctx.mail.from.as_ref().and_then(|f| f.name.as_deref()),
            };
            self.send_answer_as(
                tx,
                &mut t,
                author,
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

    /// A staff answer written without knowing of `first`, a colleague's answer sent after the
    /// mail it replies to: kept on the ticket as held (`answer_held`, with the text to send
    /// and whether it closes), never queued; its author gets the colleague's answer and how
    /// to send theirs anyway.
    async fn hold_double_answer(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        from_addr: &str,
        first: &SentAnswer,
        hold: &Hold<'_>,
    ) -> anyhow::Result<()> {
        let messages = Store::ticket_timeline_in(tx, t.ticket_id).await?.messages;
        let theirs = messages.iter().find(|m| m.message_id == first.answer);
        let first_text = theirs.map(|m| m.text.as_str()).unwrap_or_default();
        let answered_at = theirs.map(|m| m.at).unwrap_or_else(now_millis);
        tracing::info!(ticket = %t.reference, from = from_addr, colleague = %first.author, "a staff answer held: a colleague answered first");
        let notice = self
            .tell_staff_colleague_answered(
                tx,
                t,
                from_addr,
                ctx.mail,
                &first.author,
                first_text,
                answered_at,
                hold.close,
            )
            .await?;
        let details = event::AnswerHeld {
            message: Some(hold.message_id),
            reason: format!(
                "{} had already answered the citizen (message {}) after the mail this reply \
                 answers; it is sent only if its author replies #invia to the notice",
                first.author, first.answer
            ),
            answered_first: Some(first.answer),
            notice,
            text: Some(hold.text.to_owned()),
            close: Some(hold.close),
            own_text_cut: Some(hold.own_text_cut),
        };
        Store::insert_event(
            tx,
            t.ticket_id,
            &EventKind::AnswerHeld(details),
            from_addr,
            now_millis(),
        )
        .await?;
        Ok(())
    }

    /// `#invia` in a reply to the held notice `notice`: the held answer goes to the citizen
    /// exactly as it was held, with its attachments and its close — once; a second `#invia`
    /// only tells its author it was sent already.
    async fn send_held(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        notice: &OurMessage,
        from_addr: &str,
    ) -> anyhow::Result<Outcome> {
        let details = event::StaffText {
            message: None,
            text: String::new(),
        };
        let message_id = self
            .record_message(
                tx,
                ctx,
                t,
                MessageKind::StaffReply,
                EventKind::StaffReply(details),
                from_addr,
            )
            .await?;
        let timeline = Store::ticket_timeline_in(tx, t.ticket_id).await?;
        let held = held_for_notice(&timeline.events, notice.message_id)
            .filter(|(author, _)| author.eq_ignore_ascii_case(from_addr));
        let Some((_, held)) = held else {
            // The notice was not about an answer of this sender (a forwarded notice).
            let problem = "#invia: questo avviso non riguarda una sua risposta trattenuta \
                           (this notice is not about a held answer of yours)";
            self.tell_staff_command_error(tx, t, from_addr, ctx.mail, problem)
                .await?;
            return Ok(Outcome::Recorded {
                reference: t.reference.to_string(),
                kind: "command_error".to_owned(),
            });
        };
        let held_message = held.message.unwrap_or(message_id);
        if let Some(at) = held_sent_at(&timeline.events, held_message) {
            self.tell_staff_held_already_sent(tx, t, from_addr, ctx.mail, at)
                .await?;
            return Ok(Outcome::Recorded {
                reference: t.reference.to_string(),
                kind: "held_already_sent".to_owned(),
            });
        }
        // The held reply's own attachments, as stored when it arrived.
        let mut files = Vec::new();
        for a in timeline
            .attachments
            .iter()
            .filter(|a| a.message_id == held_message)
        {
            files.push((a, self.attachments.get(&a.sha256).await?));
        }
        let attachments: Vec<AnswerAttachment<'_>> = files
            .iter()
            .map(|(a, bytes)| AnswerAttachment {
                filename: &a.filename,
                content_type: &a.content_type,
                bytes,
                sha256: Some(&a.sha256),
            })
            .collect();
        let options = AnswerOptions {
            close: held.close.unwrap_or(false),
            own_text_cut: held.own_text_cut.unwrap_or(false),
        };
        let author = AnswerAuthor {
            address: from_addr,
            name: ctx.mail.from.as_ref().and_then(|f| f.name.as_deref()),
        };
        let mut t = t.clone();
        let answer = self
            .send_answer_as(
                tx,
                &mut t,
                author,
                held_message,
                held.text.as_deref().unwrap_or_default(),
                &attachments,
                options,
            )
            .await?;
        let details = event::HeldAnswerSent {
            message: Some(message_id),
            held: Some(held_message),
            answer: Some(answer),
        };
        Store::insert_event(
            tx,
            t.ticket_id,
            &EventKind::HeldAnswerSent(details),
            from_addr,
            now_millis(),
        )
        .await?;
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: "held_answer_sent".to_owned(),
        })
    }

    /// What we wrote for staff about the ticket (notifications, notices, notes), and what the
    /// citizen wrote or got from us (their words are no secret to them).
    pub(super) async fn own_text(&self, tx: &mut Tx, ticket_id: i64) -> anyhow::Result<OwnText> {
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

/// A staff answer being held: its reply, the text that would have gone, and its close.
struct Hold<'a> {
    message_id: i64,
    text: &'a str,
    close: bool,
    own_text_cut: bool,
}

/// Test-only: keeps a staff reply's transaction open for `TICKETGATE_TEST_ANSWER_PAUSE_MS`
/// milliseconds after the double-answer check, so that tests/colleagues.rs can race two
/// answers on two processes and prove the ticket's row lock. Debug builds only: a release
/// binary ignores it.
#[cfg(debug_assertions)]
async fn answer_race_failpoint() {
    let pause = std::env::var("TICKETGATE_TEST_ANSWER_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = pause {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

#[cfg(not(debug_assertions))]
async fn answer_race_failpoint() {}
