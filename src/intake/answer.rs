//! The office's answer going to the citizen, whichever way staff wrote it (a reply to a
//! notification, the staff ticket page): the implied take, the mail with its attachments,
//! the attachment rows, the `answered` event, and the close when the answer closes. One
//! function, so that the mail and the page cannot drift apart.

use super::Pipeline;
use crate::domain::event::{self, Taken};
use crate::mail::compose::OutAttachment;
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
        if options.close {
            tickets::resolve(tx, t, author, source_message_id, now).await?;
        }
        Ok(answer_id)
    }
}
