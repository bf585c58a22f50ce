//! The office's answer going to the citizen, whichever way staff wrote it (a reply to a
//! notification, the staff ticket page): the implied take, the mail with its attachments,
//! the attachment rows, the `answered` event, the copy to the area's other staff, and the
//! close when the answer closes. One function, so that the mail and the page cannot drift
//! apart.
//!
//! And the rule against a double answer (issue 13; docs/design-notes.md, "Colleagues and
//! the double answer"): a staff reply to a mail of ours older than a colleague's answer is
//! held, not sent, until its author replies `#invia` to the notice about it.

use super::letters::SentCopy;
use super::Pipeline;
use crate::domain::event::{self, EventKind, Taken};
use crate::mail::compose::OutAttachment;
use crate::store::EventView;
use crate::store::{now_millis, MessageTicket, NewAttachment, Store, Tx};
use crate::tickets;

/// One file going with an answer.
#[derive(Debug, Clone, Copy)]
pub struct AnswerAttachment<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
    /// The sha256 under which the file is kept in the attachment store; `None` when it was
    /// not kept (over `tickets.max_attachments`), then it is sent but not listed on the
    /// answer.
    pub sha256: Option<&'a str>,
}

/// Who wrote an answer: their address, and their display name where known (the From of
/// their mail).
#[derive(Debug, Clone, Copy)]
pub struct AnswerAuthor<'a> {
    pub address: &'a str,
    pub name: Option<&'a str>,
}

/// How an answer is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerOptions {
    /// The answer also closes the ticket (`#chiudi`, "rispondi e chiudi" on the page).
    pub close: bool,
    /// Some of our own text was cut from the staff's words before they became the answer.
    pub own_text_cut: bool,
}

impl Pipeline {
    /// Sends `text` (already stripped and guarded, not empty) as the office's answer to the
    /// citizen of `t`, written by `author` in their message `source_message_id`, inside `tx`.
    /// Returns the id of the answer message queued for the citizen.
    ///
    /// The area's other staff get a copy naming `author` by address; [`Pipeline::send_answer_as`]
    /// names them by their display name.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_answer(
        &self,
        tx: &mut Tx,
        t: &mut MessageTicket,
        author: &str,
        source_message_id: i64,
        text: &str,
        attachments: &[AnswerAttachment<'_>],
        options: AnswerOptions,
    ) -> anyhow::Result<i64> {
        let author = AnswerAuthor {
            address: author,
            name: None,
        };
        self.send_answer_as(tx, t, author, source_message_id, text, attachments, options)
            .await
    }

    /// [`Pipeline::send_answer`], with the author's display name for the colleagues' copy.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_answer_as(
        &self,
        tx: &mut Tx,
        t: &mut MessageTicket,
        author: AnswerAuthor<'_>,
        source_message_id: i64,
        text: &str,
        attachments: &[AnswerAttachment<'_>],
        options: AnswerOptions,
    ) -> anyhow::Result<i64> {
        let AnswerAuthor {
            address: author,
            name: author_name,
        } = author;
        // Serialised with every other change of the ticket (see Store::lock_ticket).
        Store::lock_ticket(tx, t.ticket_id).await?;
        let now = now_millis();
        // A plain answer implies the office took the ticket.
        let details = Taken::implied(&t.area);
        tickets::take(tx, t, author, details, now).await?;
        let out: Vec<OutAttachment<'_>> = attachments
            .iter()
            .map(|a| OutAttachment {
                filename: a.filename,
                content_type: a.content_type,
                bytes: a.bytes,
                // The answer to the citizen is text only: every file goes as a file.
                content_id: None,
                inline: false,
            })
            .collect();
        let answer_id = self.answer_citizen(tx, t, text.trim(), &out).await?;
        if t.reply_to.is_none() && t.citizen.is_none() {
            // Registered without the citizen's address: recorded, not mailed; the author
            // must know (docs/design-notes.md, "Reports by phone, counter and letter").
            self.tell_staff_no_address(tx, t, author, None).await?;
        }
        for a in attachments {
            let Some(sha) = a.sha256 else { continue };
            Store::insert_attachment(
                tx,
                answer_id,
                Some(t.ticket_id),
                &NewAttachment {
                    filename: a.filename,
                    content_type: a.content_type,
                    size: a.bytes.len() as u64,
                    sha256: sha,
                    content_id: None,
                    inline: false,
                },
            )
            .await?;
        }
        let details = event::Answered {
            message: Some(source_message_id),
            answer: Some(answer_id),
            own_text_cut: options.own_text_cut,
        };
        tickets::answer(tx, t, author, details, options.close, now).await?;
        let names: Vec<String> = attachments.iter().map(|a| a.filename.to_owned()).collect();
        let copy = SentCopy {
            author,
            author_name,
            answer: answer_id,
            text: text.trim(),
            attachments: &names,
        };
        self.copy_answer_to_colleagues(tx, t, &copy).await?;
        if options.close {
            tickets::resolve(tx, t, author, source_message_id, now).await?;
        }
        Ok(answer_id)
    }
}

/// An answer already sent to a ticket's citizen: our outbound message and its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SentAnswer {
    pub answer: i64,
    pub author: String,
}

/// The answers sent on a ticket, from its `answered` events.
pub(super) fn sent_answers(events: &[EventView]) -> Vec<SentAnswer> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::Answered(a) => Some(SentAnswer {
                answer: a.answer?,
                author: e.actor.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The colleague's answer that makes `author`'s reply to our message `replied_to` a double
/// answer, if any: the newest answer sent after that message (message ids grow with time)
/// by somebody else. `None` when no answer came after it, or only `author`'s own (answering
/// twice in a row), or when the reply answers a mail newer than every colleague's answer (a
/// colleague's copy, a later notification, the held notice): its author knew.
pub(super) fn answered_first<'a>(
    replied_to: i64,
    author: &str,
    sent: &'a [SentAnswer],
) -> Option<&'a SentAnswer> {
    sent.iter()
        .filter(|s| s.answer > replied_to && !s.author.trim().eq_ignore_ascii_case(author.trim()))
        .max_by_key(|s| s.answer)
}

/// The `answer_held` event that the held notice `notice` was sent for, with its author.
pub(super) fn held_for_notice(
    events: &[EventView],
    notice: i64,
) -> Option<(String, event::AnswerHeld)> {
    events.iter().find_map(|e| match &e.event {
        EventKind::AnswerHeld(h) if h.notice == Some(notice) => Some((e.actor.clone(), h.clone())),
        _ => None,
    })
}

/// When the held staff reply `held` was sent after all (`held_answer_sent`), if it was.
pub(super) fn held_sent_at(events: &[EventView], held: i64) -> Option<i64> {
    events.iter().find_map(|e| match &e.event {
        EventKind::HeldAnswerSent(s) if s.held == Some(held) => Some(e.at),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(answer: i64, author: &str) -> SentAnswer {
        SentAnswer {
            answer,
            author: author.to_owned(),
        }
    }

    #[test]
    fn a_reply_to_a_mail_older_than_a_colleague_s_answer_is_stale() {
        let answers = [sent(10, "mario@comune.test")];
        let first = answered_first(5, "lucia@comune.test", &answers);
        assert_eq!(first, Some(&answers[0]));
    }

    #[test]
    fn no_answer_yet_or_only_the_author_s_own_is_not_stale() {
        assert_eq!(answered_first(5, "lucia@comune.test", &[]), None);
        let own = [sent(10, "Lucia@Comune.test"), sent(14, "lucia@comune.test")];
        assert_eq!(answered_first(5, "lucia@comune.test", &own), None);
    }

    #[test]
    fn a_reply_to_the_copy_or_the_held_notice_newer_than_the_answer_is_not_stale() {
        // Mario answered (10); Lucia's copy (11) or her held notice (12) came after it.
        let answers = [sent(10, "mario@comune.test")];
        assert_eq!(answered_first(11, "lucia@comune.test", &answers), None);
        assert_eq!(answered_first(12, "lucia@comune.test", &answers), None);
    }

    #[test]
    fn the_newest_colleague_answer_after_the_mail_is_named() {
        let answers = [
            sent(3, "anna@comune.test"),
            sent(10, "mario@comune.test"),
            sent(12, "lucia@comune.test"),
            sent(15, "anna@comune.test"),
        ];
        // Lucia answers the first notification (2): Anna's 15 is the newest not hers.
        assert_eq!(
            answered_first(2, "lucia@comune.test", &answers),
            Some(&answers[3])
        );
        // Anna answers the copy of Lucia's answer (13): her own 15 does not count.
        assert_eq!(answered_first(13, "anna@comune.test", &answers), None);
    }
}
