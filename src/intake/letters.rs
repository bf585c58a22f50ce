//! The mails the pipeline writes: acknowledgment, staff notifications, the office's answer
//! forwarded to the citizen, and the short notices to staff (how to reply, a command that
//! failed, a bounce). Each is composed from a template under `templates/mail/` and queued in
//! the caller's transaction; nothing here sends.

use std::borrow::Cow;

use anyhow::Context;
use askama::Template;

use super::Pipeline;
use crate::domain::{calendar, Transport};
use crate::domain::{rfc3339, Direction, EmailAddress, MessageKind, TicketKind, TicketRef};
use crate::mail::compose::{
    self, AckText, AnswerHeldText, BounceNoticeText, CommandErrorText, HowToReplyText,
    NotificationText, OutAttachment, ReassignedText,
};
use crate::mail::parse::InboundMail;
use crate::mail::route::RoutedArea;
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{
    now_millis, raw_sha256_hex, AttachmentView, HistoryEntry, MessageTicket, NewMessage, Store, Tx,
};
use crate::tickets::{staff_page_link, take_link, TAKE_LINK_VALIDITY_MILLIS};

/// What one staff notification says about its ticket, besides the ticket's own fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct Notification<'a> {
    /// The first line: what happened ("Nuova pratica", a citizen's new message, …).
    pub headline: &'a str,
    /// The subject and text of the message the notification is about.
    pub subject: &'a str,
    pub text: &'a str,
    /// The citizen's files this notification offers (issue 13): carried as attachments
    /// while they fit `notifications.max_attachment_bytes`, else listed with a link.
    pub files: &'a Offered<'a>,
    /// Attachments over `tickets.max_attachments` left in the raw message, or 0.
    pub not_extracted: usize,
    /// The other offices the report was addressed to, comma-separated, or "".
    pub also_areas: &'a str,
    /// The ticket's kind, or "" when the notification does not name it.
    pub kind: &'a str,
    /// The ticket's history as text (a reassigned ticket), or "".
    pub history: &'a str,
}

/// The ticket's files a notification offers, as stored, and the bytes of those already in
/// memory (the mail just parsed): the rest are read from the attachment store.
#[derive(Debug, Default)]
pub(super) struct Offered<'a> {
    /// In the citizen's order.
    pub files: Vec<AttachmentView>,
    /// (sha256, bytes) of files at hand.
    pub at_hand: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Offered<'a> {
    /// The files stored with message `message_id` of `mail`, whose bytes are at hand:
    /// `stored` pairs each index into `mail.attachments` with its sha256.
    pub(super) async fn of_message(
        tx: &mut Tx,
        message_id: i64,
        mail: &'a InboundMail,
        stored: &'a [(usize, String)],
    ) -> anyhow::Result<Offered<'a>> {
        let files = Store::message_attachments(tx, message_id).await?;
        let at_hand = stored
            .iter()
            .filter_map(|(i, sha)| Some((sha.as_str(), mail.attachments.get(*i)?.bytes.as_slice())))
            .collect();
        Ok(Offered { files, at_hand })
    }
}

/// One offered file with what the notification does with it: its bytes when it is carried.
struct Offer<'a> {
    file: &'a AttachmentView,
    bytes: Option<Cow<'a, [u8]>>,
}

/// Whom an acknowledgment greets and how it threads.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckFor<'a> {
    /// The citizen's name: From's display name, or the name a `#registra` line gave.
    pub citizen_name: Option<&'a str>,
    /// Thread under the report's Message-ID: the citizen's own mail. Not for a report staff
    /// registered: the citizen never saw that mail.
    pub thread_under_report: bool,
    /// When the ticket was created (unix millis): the start of its due date.
    pub created_at: i64,
}

impl Pipeline {
    /// The offered files, the ones that fit with their bytes: read once for all the staff
    /// members (never once each), borrowed from the parsed mail when it is at hand. A file
    /// that cannot be read from storage is listed rather than carried, never a reason to
    /// lose the notification.
    async fn load_offers<'a>(&self, offered: &'a Offered<'a>) -> Vec<Offer<'a>> {
        let sizes: Vec<u64> = offered
            .files
            .iter()
            .map(|f| u64::try_from(f.size).unwrap_or(u64::MAX))
            .collect();
        let fits = compose::fit_attachments(&sizes, self.cfg.notifications.max_attachment_bytes);
        let mut offers = Vec::with_capacity(offered.files.len());
        for (file, fits) in offered.files.iter().zip(fits) {
            let bytes = if !fits {
                None
            } else if let Some((_, b)) = offered.at_hand.iter().find(|(sha, _)| *sha == file.sha256)
            {
                Some(Cow::Borrowed(*b))
            } else {
                match self.attachments.get(&file.sha256).await {
                    // The notification's part must be the stored file: a damaged copy in
                    // storage.dir is listed, never sent under the stored name and hash.
                    Ok(b) if raw_sha256_hex(&b) == file.sha256 => Some(Cow::Owned(b)),
                    Ok(_) => {
                        tracing::warn!(
                            attachment_id = file.attachment_id,
                            sha256 = %file.sha256,
                            "an attachment in storage no longer has its sha256: listed, not carried"
                        );
                        None
                    }
                    Err(e) => {
                        tracing::warn!(
                            attachment_id = file.attachment_id,
                            sha256 = %file.sha256,
                            error = %format!("{e:#}"),
                            "an attachment could not be read for a notification: listed, not carried"
                        );
                        None
                    }
                }
            };
            offers.push(Offer { file, bytes });
        }
        offers
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn acknowledge(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        reference: TicketRef,
        owner: &RoutedArea,
        kind: TicketKind,
        mail: &InboundMail,
        to: &AckFor<'_>,
    ) -> anyhow::Result<()> {
        let area_name = self.area_name(&owner.area);
        let citizen_name = to
            .citizen_name
            .map(str::to_owned)
            .unwrap_or_else(|| "cittadina, gentile cittadino".to_owned());
        let prefix = &self.cfg.tickets.tag_prefix;
        let due = self.cfg.due_date(&owner.area, to.created_at);
        let text = AckText {
            citizen_name: &citizen_name,
            kind_it: kind.as_str(),
            kind_en: kind.english(),
            subject: &mail.subject,
            reference: &t.reference.to_string(),
            area_name: &area_name,
            response_days: self.cfg.response_days(&owner.area),
            due_date_it: &calendar::long_date_it(due),
            due_date_en: &calendar::long_date_en(due),
            tag_prefix: prefix,
            base_url: &self.cfg.server.base_url,
        }
        .render()?;
        let subject = compose::tagged_subject(prefix, &t.reference.to_string(), &mail.subject);
        // Thread under the citizen's message: their id ends our References (RFC 5322 §3.6.4).
        let (in_reply_to, references) = if to.thread_under_report {
            let mut references = mail.references.clone();
            references.extend(mail.message_id.iter().cloned());
            (mail.message_id.as_deref(), references)
        } else {
            (None, Vec::new())
        };
        queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: Some((t.ticket_id, reference)),
                kind: MessageKind::Ack,
                from_name: &area_name,
                from_addr: t.pec_address.as_deref().unwrap_or(&owner.address),
                to: vec![recipient(t.citizen_mail_to())?],
                reply_to: None,
                subject: &subject,
                in_reply_to,
                references,
                auto_replied: true,
                text: &text,
                attachments: Vec::new(),
                transport: citizen_transport(t),
            },
        )
        .await?;
        Ok(())
    }

    /// One notification per staff member of `t.area`, Reply-To the area address so that
    /// pressing Reply comes back to us.
    pub(super) async fn notify_staff(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        n: &Notification<'_>,
    ) -> anyhow::Result<()> {
        let Some(area) = self.cfg.area(t.area.as_str()) else {
            return Ok(());
        };
        if area.staff.is_empty() {
            return Ok(());
        }
        let Some(area_addr) = area.addresses.first().map(|a| a.address().to_lowercase()) else {
            return Ok(());
        };
        let reference: TicketRef = t.reference;
        let prefix = &self.cfg.tickets.tag_prefix;
        let mail_subject = compose::tagged_subject(prefix, &t.reference.to_string(), &t.subject);
        let received_at = rfc3339(now_millis());
        let expires = now_millis() + TAKE_LINK_VALIDITY_MILLIS;
        // Read once here, borrowed by each staff member's mail below: the bytes of one
        // composed notification live only until it is stored (docs/design-notes.md,
        // "Attachments reach the office").
        let offers = self.load_offers(n.files).await;
        let listed = |carried: bool| -> Vec<(String, String)> {
            offers
                .iter()
                .filter(|o| o.bytes.is_some() == carried)
                .map(|o| {
                    let size = u64::try_from(o.file.size).unwrap_or_default();
                    (o.file.filename.clone(), compose::human_size(size))
                })
                .collect()
        };
        let (carried_list, not_carried_list) = (listed(true), listed(false));
        let parts: Vec<OutAttachment<'_>> = offers
            .iter()
            .filter_map(|o| {
                Some(OutAttachment {
                    filename: &o.file.filename,
                    content_type: &o.file.content_type,
                    bytes: o.bytes.as_deref()?,
                    content_id: o.file.content_id.as_deref(),
                    inline: o.file.inline,
                })
            })
            .collect();
        let limit = compose::human_size(self.cfg.notifications.max_attachment_bytes);
        for staff in &area.staff {
            let staff = staff.trim().to_lowercase();
            // Each staff member gets a link in their own name, signed with an expiry.
            let take_link = take_link(
                &self.ids,
                &self.cfg.server.base_url,
                &t.reference.to_string(),
                &staff,
                expires,
            );
            let staff_link = self.staff_link(t, &staff);
            let text = NotificationText {
                headline: n.headline,
                reference: &t.reference.to_string(),
                area_name: &area.name,
                also_areas: n.also_areas,
                citizen: if t.citizen.is_none() {
                    "(nessun indirizzo e-mail / no email address)"
                } else {
                    t.citizen.as_str()
                },
                reply_to_asked: t.reply_to_asked.as_deref().unwrap_or(""),
                received_at: &received_at,
                kind_it: n.kind,
                subject: n.subject,
                text: n.text,
                attachments: carried_list.clone(),
                not_carried: not_carried_list.clone(),
                attachment_limit: &limit,
                // The staff ticket page lists every file for download.
                files_link: &staff_link,
                not_extracted: n.not_extracted,
                history: n.history,
                take_link: &take_link,
                staff_link: &staff_link,
            }
            .render()?;
            let notification_id = queue_mail(
                tx,
                &self.ids,
                &Queued {
                    ticket: Some((t.ticket_id, reference)),
                    kind: MessageKind::Notification,
                    from_name: &area.name,
                    from_addr: &area_addr,
                    to: vec![recipient(&staff)?],
                    reply_to: Some((&area.name, &area_addr)),
                    subject: &mail_subject,
                    in_reply_to: None,
                    references: Vec::new(),
                    auto_replied: false,
                    text: &text,
                    attachments: parts.clone(),
                    transport: Transport::Smtp,
                },
            )
            .await?;
            for o in &offers {
                Store::link_notification_attachment(
                    tx,
                    notification_id,
                    o.file.attachment_id,
                    o.bytes.is_some(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The area's display name and first address (From of everything we send for it).
    pub(super) fn area_sender(&self, slug: &str) -> Option<(String, String)> {
        let area = self.cfg.area(slug)?;
        let addr = area.addresses.first()?.address().to_lowercase();
        Some((area.name.clone(), addr))
    }

    /// Threading for mail to the citizen: under their first message (RFC 5322 §3.6.4).
    async fn citizen_thread(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
    ) -> anyhow::Result<(Option<String>, Vec<String>)> {
        let first = Store::first_report_id(tx, t.ticket_id).await?;
        let refs = first.iter().cloned().collect();
        Ok((first, refs))
    }

    /// The office's answer, From the area address, exactly the text the staff wrote
    /// (quotes and signature stripped), with their attachments.
    pub(super) async fn answer_citizen(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        text: &str,
        attachments: &[OutAttachment<'_>],
    ) -> anyhow::Result<i64> {
        self.mail_citizen(tx, t, MessageKind::Answer, text, attachments)
            .await
    }

    /// Tells the citizen which office now handles the ticket.
    pub(super) async fn tell_citizen_reassigned(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        previous_area: &str,
    ) -> anyhow::Result<()> {
        let area_name = self.area_name(t.area.as_str());
        let text = ReassignedText {
            reference: &t.reference.to_string(),
            subject: &t.subject,
            area_name: &area_name,
            previous_area,
        }
        .render()?;
        self.mail_citizen(tx, t, MessageKind::Status, &text, &[])
            .await?;
        Ok(())
    }

    /// A mail to the ticket's citizen From the area now handling it, with the ticket's tag,
    /// threaded under the citizen's first message.
    async fn mail_citizen(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        kind: MessageKind,
        text: &str,
        attachments: &[OutAttachment<'_>],
    ) -> anyhow::Result<i64> {
        let (area_name, mut area_addr) = self
            .area_sender(t.area.as_str())
            .unwrap_or_else(|| (t.area.to_string(), String::new()));
        if let Some(pec) = &t.pec_address {
            // A PEC ticket is answered by PEC, from the PEC box it came to, whichever office
            // now handles it: the answer must be certified like the report.
            area_addr = pec.clone();
        }
        if t.reply_to.is_none() && t.citizen.is_none() {
            // The citizen gave no address (a report registered by staff): the text is kept
            // on the ticket as an outbound message that never reaches the outbox.
            return record_unsent(tx, t, kind, &area_addr, text).await;
        }
        let (in_reply_to, references) = self.citizen_thread(tx, t).await?;
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &t.reference.to_string(),
            &t.subject,
        );
        let reference: TicketRef = t.reference;
        let id = queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: Some((t.ticket_id, reference)),
                kind,
                from_name: &area_name,
                from_addr: &area_addr,
                to: vec![recipient(t.citizen_mail_to())?],
                reply_to: None,
                subject: &subject,
                in_reply_to: in_reply_to.as_deref(),
                references,
                auto_replied: false,
                text,
                attachments: attachments.to_vec(),
                transport: citizen_transport(t),
            },
        )
        .await?;
        Ok(id)
    }

    /// The new office's staff get the ticket with its whole history.
    pub(super) async fn notify_reassigned(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        previous_area: &str,
    ) -> anyhow::Result<()> {
        let history = Store::ticket_history(tx, t.ticket_id).await?;
        let first_text = history
            .iter()
            .find(|h| h.direction == Direction::In)
            .map(|h| h.text.clone())
            .unwrap_or_default();
        let headline = format!("Pratica assegnata al vostro ufficio da {previous_area}:");
        let history = render_history(&history);
        // The new office has seen none of the citizen's files: all of them, from storage.
        let files = Offered {
            files: Store::citizen_attachments(tx, t.ticket_id).await?,
            at_hand: Vec::new(),
        };
        let notification = Notification {
            headline: &headline,
            subject: &t.subject,
            text: &first_text,
            files: &files,
            not_extracted: 0,
            also_areas: "",
            kind: t.kind.as_str(),
            history: &history,
        };
        self.notify_staff(tx, t, &notification).await
    }

    /// The signed link to the staff page of `t` for `staff`, valid `security.staff_link_days`
    /// from now.
    pub(super) fn staff_link(&self, t: &MessageTicket, staff: &str) -> String {
        staff_page_link(
            &self.ids,
            &self.cfg.server.base_url,
            &t.reference.to_string(),
            &staff.trim().to_lowercase(),
            now_millis() + self.cfg.security.staff_link_millis(),
        )
    }

    /// A short notice to one staff member, from the area address of the ticket (with the
    /// staff page link when they are staff of its office).
    pub(super) async fn notice_to_staff(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        to: &str,
        subject: &str,
        text: &str,
        in_reply_to: Option<&str>,
    ) -> anyhow::Result<()> {
        let Some((area_name, area_addr)) = self.area_sender(t.area.as_str()) else {
            return Ok(());
        };
        let reference: TicketRef = t.reference;
        // Every mail of the office side carries the staff page link, but only to someone who
        // may open it: a notice can go to a sender who is not (or no longer) staff there.
        let with_link;
        let text = if self.cfg.is_staff_of(to, t.area.as_str()) {
            with_link = format!(
                "{}\n\nLa pratica completa (messaggi, allegati, azioni) / the whole case:\n{}\n",
                text.trim_end(),
                self.staff_link(t, to)
            );
            with_link.as_str()
        } else {
            text
        };
        queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: Some((t.ticket_id, reference)),
                kind: MessageKind::Notice,
                from_name: &area_name,
                from_addr: &area_addr,
                to: vec![recipient(to)?],
                reply_to: None,
                subject,
                in_reply_to,
                references: in_reply_to.iter().map(|s| s.to_string()).collect(),
                auto_replied: true,
                text,
                attachments: Vec::new(),
                transport: Transport::Smtp,
            },
        )
        .await?;
        Ok(())
    }

    /// Tells a staff member their mail was kept but not forwarded, and how to reply.
    pub(super) async fn tell_staff_how_to_reply(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        to: &str,
        mail: &InboundMail,
        reason: &str,
    ) -> anyhow::Result<()> {
        let text = HowToReplyText {
            reference: &t.reference.to_string(),
            subject: &mail.subject,
            reason,
            tag_prefix: &self.cfg.tickets.tag_prefix,
        }
        .render()?;
        let subject = format!("Non inoltrato / Not forwarded: {}", mail.subject);
        self.notice_to_staff(tx, t, to, &subject, &text, mail.message_id.as_deref())
            .await
    }

    /// Tells a staff member their reply was only our quoted notification and was held.
    pub(super) async fn tell_staff_answer_held(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        to: &str,
        mail: &InboundMail,
    ) -> anyhow::Result<()> {
        let text = AnswerHeldText {
            reference: &t.reference.to_string(),
            subject: &mail.subject,
        }
        .render()?;
        let subject = format!("Non inviato / Not sent: {}", mail.subject);
        self.notice_to_staff(tx, t, to, &subject, &text, mail.message_id.as_deref())
            .await
    }

    /// Tells a staff member their commands could not be carried out.
    pub(super) async fn tell_staff_command_error(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        to: &str,
        mail: &InboundMail,
        problem: &str,
    ) -> anyhow::Result<()> {
        let areas: Vec<&str> = self.cfg.areas.iter().map(|a| a.slug.as_str()).collect();
        let text = CommandErrorText {
            reference: &t.reference.to_string(),
            problem,
            areas: &areas.join(", "),
        }
        .render()?;
        let subject = format!(
            "Comando non eseguito / Command not executed: {}",
            mail.subject
        );
        self.notice_to_staff(tx, t, to, &subject, &text, mail.message_id.as_deref())
            .await
    }

    /// Tells the office's staff a mail to the citizen bounced.
    pub(super) async fn tell_staff_bounce(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        recipient: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let Some(area) = self.cfg.area(t.area.as_str()) else {
            return Ok(());
        };
        let text = BounceNoticeText {
            reference: &t.reference.to_string(),
            recipient,
            bounced_subject: &t.subject,
            reason,
        }
        .render()?;
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &t.reference.to_string(),
            &format!("Mancata consegna / Undelivered: {recipient}"),
        );
        for staff in &area.staff {
            self.notice_to_staff(tx, t, &staff.trim().to_lowercase(), &subject, &text, None)
                .await?;
        }
        Ok(())
    }
}

/// The copy of an answer to the area's other staff (issue 13).
#[derive(Template)]
#[template(path = "mail/colleague_copy.txt")]
struct ColleagueCopyText<'a> {
    author: &'a str,
    reference: &'a str,
    area_name: &'a str,
    subject: &'a str,
    citizen: &'a str,
    text: &'a str,
    attachments: &'a [String],
    /// The recipient's signed link to the staff ticket page.
    staff_link: &'a str,
}

/// To a staff member whose answer was held because a colleague had answered first.
#[derive(Template)]
#[template(path = "mail/colleague_answered_first.txt")]
struct ColleagueAnsweredFirstText<'a> {
    subject: &'a str,
    reference: &'a str,
    colleague: &'a str,
    answered_at: &'a str,
    first_answer: &'a str,
    close: bool,
    /// The recipient's signed link to the staff ticket page.
    staff_link: &'a str,
}

/// To a staff member whose `#invia` came after their held answer had already been sent.
#[derive(Template)]
#[template(path = "mail/held_already_sent.txt")]
struct HeldAlreadySentText<'a> {
    reference: &'a str,
    sent_at: &'a str,
}

/// What the area's other staff are told of an answer sent to the citizen.
#[derive(Debug, Clone, Copy)]
pub(super) struct SentCopy<'a> {
    /// The answering staff member's address, and their display name where known.
    pub author: &'a str,
    pub author_name: Option<&'a str>,
    /// Our answer to the citizen (outbound message id) and its text, as sent.
    pub answer: i64,
    pub text: &'a str,
    /// File names of the attachments sent with it.
    pub attachments: &'a [String],
}

impl Pipeline {
    /// A copy of the answer just sent to the citizen for each staff member of the ticket's
    /// area but its author, threaded under the last notification or copy that staff member
    /// got for the ticket (else the ticket's first notification), so that it lands in the
    /// ticket's thread in their mail client; Reply-To the area, so that answering the copy
    /// is an answer of the office. Recorded as one `colleague_copy` event.
    pub(super) async fn copy_answer_to_colleagues(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        sent: &SentCopy<'_>,
    ) -> anyhow::Result<()> {
        let Some(area) = self.cfg.area(t.area.as_str()) else {
            return Ok(());
        };
        let Some(area_addr) = area.addresses.first().map(|a| a.address().to_lowercase()) else {
            return Ok(());
        };
        let author = sent.author.trim().to_lowercase();
        let colleagues: Vec<String> = area
            .staff
            .iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| *s != author)
            .collect();
        if colleagues.is_empty() {
            return Ok(());
        }
        let messages = Store::ticket_timeline_in(tx, t.ticket_id).await?.messages;
        let staff_side = |m: &&crate::store::MessageView| {
            m.direction == Direction::Out
                && matches!(
                    m.kind,
                    MessageKind::Notification | MessageKind::ColleagueCopy
                )
        };
        let first_notification = messages
            .iter()
            .filter(staff_side)
            .find_map(|m| m.rfc_message_id.clone());
        let reference: TicketRef = t.reference;
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &t.reference.to_string(),
            &t.subject,
        );
        let author_shown = match sent.author_name.map(str::trim) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => author.clone(),
        };
        // A ticket registered without the citizen's address: the answer was only recorded.
        let citizen = if t.reply_to.is_none() && t.citizen.is_none() {
            "nessun indirizzo email: risposta solo registrata / no email address: only recorded"
                .to_owned()
        } else {
            t.citizen_mail_to().to_owned()
        };
        let mut copies = Vec::new();
        for staff in &colleagues {
            let staff_link = self.staff_link(t, staff);
            let text = ColleagueCopyText {
                author: &author_shown,
                reference: &t.reference.to_string(),
                area_name: &area.name,
                subject: &t.subject,
                citizen: &citizen,
                text: sent.text,
                attachments: sent.attachments,
                staff_link: &staff_link,
            }
            .render()?;
            let theirs = messages
                .iter()
                .filter(staff_side)
                .filter(|m| m.to_addrs.eq_ignore_ascii_case(staff))
                .filter_map(|m| m.rfc_message_id.clone())
                .next_back();
            let parent = theirs.or_else(|| first_notification.clone());
            let mut references: Vec<String> = first_notification.iter().cloned().collect();
            if let Some(p) = &parent {
                if !references.contains(p) {
                    references.push(p.clone());
                }
            }
            let id = queue_mail(
                tx,
                &self.ids,
                &Queued {
                    ticket: Some((t.ticket_id, reference)),
                    kind: MessageKind::ColleagueCopy,
                    from_name: &area.name,
                    from_addr: &area_addr,
                    to: vec![recipient(staff)?],
                    reply_to: Some((&area.name, &area_addr)),
                    subject: &subject,
                    in_reply_to: parent.as_deref(),
                    references,
                    auto_replied: false,
                    text: &text,
                    attachments: Vec::new(),
                    transport: Transport::Smtp,
                },
            )
            .await?;
            copies.push(id);
        }
        let details = crate::domain::event::ColleagueCopy {
            answer: Some(sent.answer),
            copies,
            to: colleagues,
        };
        Store::insert_event(
            tx,
            t.ticket_id,
            &crate::domain::EventKind::ColleagueCopy(details),
            &author,
            now_millis(),
        )
        .await?;
        Ok(())
    }

    /// Tells a staff member their answer was held because `colleague` answered first, with
    /// that answer, and how to send theirs anyway. Returns the notice's message id: a reply
    /// to it with `#invia` finds the held answer by it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn tell_staff_colleague_answered(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        to: &str,
        mail: &InboundMail,
        colleague: &str,
        first_answer: &str,
        answered_at: i64,
        close: bool,
    ) -> anyhow::Result<Option<i64>> {
        let Some((area_name, area_addr)) = self.area_sender(t.area.as_str()) else {
            return Ok(None);
        };
        let staff_link = self.staff_link(t, to);
        let text = ColleagueAnsweredFirstText {
            subject: &mail.subject,
            reference: &t.reference.to_string(),
            colleague,
            answered_at: &crate::domain::local_time(answered_at),
            first_answer,
            close,
            staff_link: &staff_link,
        }
        .render()?;
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &t.reference.to_string(),
            &format!("Risposta non inviata / Answer not sent: {}", t.subject),
        );
        let in_reply_to = mail.message_id.as_deref();
        let reference: TicketRef = t.reference;
        let id = queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: Some((t.ticket_id, reference)),
                kind: MessageKind::HeldNotice,
                from_name: &area_name,
                from_addr: &area_addr,
                to: vec![recipient(to)?],
                reply_to: Some((&area_name, &area_addr)),
                subject: &subject,
                in_reply_to,
                references: in_reply_to.iter().map(|s| s.to_string()).collect(),
                auto_replied: true,
                text: &text,
                attachments: Vec::new(),
                transport: Transport::Smtp,
            },
        )
        .await?;
        Ok(Some(id))
    }

    /// Tells a staff member that the held answer their `#invia` names was sent already.
    pub(super) async fn tell_staff_held_already_sent(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        to: &str,
        mail: &InboundMail,
        sent_at: i64,
    ) -> anyhow::Result<()> {
        let text = HeldAlreadySentText {
            reference: &t.reference.to_string(),
            sent_at: &crate::domain::local_time(sent_at),
        }
        .render()?;
        let subject = format!("Già inviata / Already sent: {}", mail.subject);
        self.notice_to_staff(tx, t, to, &subject, &text, mail.message_id.as_deref())
            .await
    }
}

/// One recipient, checked again here: a ticket stored before addresses were validated may
/// hold a string that is not one address, and it must never reach SMTP as a list.
pub(super) fn recipient(address: &str) -> anyhow::Result<EmailAddress> {
    EmailAddress::parse(address)
        .with_context(|| format!("recipient {address:?} is not one valid address"))
}

/// What would have been mailed to a citizen who gave no address, kept on the ticket as an
/// outbound message with no recipient and no outbox row: nothing is ever sent to it.
async fn record_unsent(
    tx: &mut Tx,
    t: &MessageTicket,
    kind: MessageKind,
    from_addr: &str,
    text: &str,
) -> anyhow::Result<i64> {
    let id = Store::insert_message(
        tx,
        &NewMessage {
            ticket_id: Some(t.ticket_id),
            direction: Direction::Out,
            kind,
            rfc_message_id: None,
            in_reply_to: None,
            dedup_key: None,
            from_addr,
            to_addrs: "",
            subject: &t.subject,
            text,
            html: None,
            at: now_millis(),
            sha256: "",
            raw_message_id: None,
        },
    )
    .await?
    .context("recording a message for a citizen without an address")?;
    Ok(id)
}

/// Mail to the citizen of a PEC ticket leaves through the PEC provider.
fn citizen_transport(t: &MessageTicket) -> Transport {
    if t.pec_address.is_some() {
        Transport::Pec
    } else {
        Transport::Smtp
    }
}

/// The history of a ticket as plain text, oldest first.
fn render_history(history: &[HistoryEntry]) -> String {
    let mut out = String::new();
    for h in history {
        let Some(who) = h.kind.history_label(h.direction) else {
            continue;
        };
        out.push_str(&format!(
            "\n--- {} · {} · {}\n{}\n",
            rfc3339(h.at).get(..16).unwrap_or(""),
            who,
            h.from_addr,
            h.text.trim()
        ));
    }
    out
}
