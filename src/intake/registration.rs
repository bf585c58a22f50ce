//! Reports a staff member registers on the citizen's behalf (`#registra`, issue 13): the
//! mails around the ticket that `Pipeline::new_ticket` makes with the citizen replaced — the
//! registering staff member's confirmation, the notice when the line is wrong, and the notice
//! when an answer cannot reach a citizen who gave no address. The decision is
//! `classify::classify`'s, the line's parsing `mail::registration`'s.

use anyhow::Context;
use askama::Template;

use super::{classify, quarantine, Ctx, Outcome, Pipeline};
use crate::domain::{EmailAddress, MessageKind, Transport};
use crate::mail::compose::{self, RegisteredText, RegistrationRefusedText};
use crate::mail::registration::Registration;
use crate::mail::route::route;
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{MessageTicket, Tx};

/// What the registering staff member is told about the ticket just made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Confirmation<'a> {
    pub registration: &'a Registration,
    /// The registering staff member.
    pub staff: &'a str,
    /// Why no acknowledgment went to the citizen, if none did.
    pub ack_withheld: Option<&'a str>,
}

impl Pipeline {
    /// The short mail to the registering staff member with the ticket's reference, threaded
    /// under the mail they wrote, in the ticket's transaction.
    pub(super) async fn confirm_registration(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        t: &MessageTicket,
        c: &Confirmation<'_>,
    ) -> anyhow::Result<()> {
        let r = c.registration;
        let reference = t.reference.to_string();
        let citizen = r.citizen.as_ref().map(EmailAddress::as_str).unwrap_or("");
        let text = RegisteredText {
            reference: &reference,
            area_name: &self.area_name(t.area.as_str()),
            channel_it: r.channel.italian(),
            channel_en: r.channel.as_str(),
            citizen_name: r.name.as_deref().unwrap_or(citizen),
            citizen,
            has_address: r.citizen.is_some(),
            acknowledged: c.ack_withheld.is_none(),
            ack_withheld: c.ack_withheld.unwrap_or(""),
            subject: &t.subject,
        }
        .render()?;
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &reference,
            &format!("Pratica registrata / Case registered: {}", t.subject),
        );
        let in_reply_to = ctx.mail.message_id.as_deref();
        self.notice_to_staff(tx, t, c.staff, &subject, &text, in_reply_to)
            .await
    }

    /// A `#registra` line a staff member wrote wrong: no ticket; the mail is kept in
    /// quarantine with the problem (an operator sees it, `quarantine retry` reads it again)
    /// and the staff member is told what is wrong, from the address they wrote to.
    pub(super) async fn refuse_registration(
        &self,
        tx: &mut Tx,
        ctx: &Ctx<'_>,
        staff: &str,
        problem: &str,
    ) -> anyhow::Result<Outcome> {
        let reason = format!("#registra line refused, no ticket made: {problem}");
        let outcome = quarantine(tx, ctx.raw, &reason).await?;
        let mail = ctx.mail;
        // Classify found the office this way, so there is one; from its first address.
        let Some(area) = route(mail, &self.routes).into_iter().next() else {
            return Ok(outcome);
        };
        let to = EmailAddress::parse(staff)
            .with_context(|| format!("staff address {staff:?} is not one valid address"))?;
        let text = RegistrationRefusedText {
            subject: &mail.subject,
            problem,
        }
        .render()?;
        let subject = format!(
            "Pratica NON registrata / Case NOT registered: {}",
            mail.subject
        );
        queue_mail(
            tx,
            &self.ids,
            &Queued {
                ticket: None,
                kind: MessageKind::Notice,
                from_name: &classify::area_name(&self.cfg, &area.area),
                from_addr: &area.address,
                to: vec![to],
                reply_to: None,
                subject: &subject,
                in_reply_to: mail.message_id.as_deref(),
                references: mail.message_id.iter().cloned().collect(),
                auto_replied: true,
                text: &text,
                attachments: Vec::new(),
                transport: Transport::Smtp,
            },
        )
        .await?;
        Ok(outcome)
    }

    /// Tells the staff member whose answer was recorded on a ticket whose citizen gave no
    /// address that nothing was mailed: the answer must reach the citizen another way.
    pub(super) async fn tell_staff_no_address(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        staff: &str,
        in_reply_to: Option<&str>,
    ) -> anyhow::Result<()> {
        let reference = t.reference.to_string();
        let text = format!(
            "La risposta alla pratica {reference} è registrata, ma NON è stata inviata: il \
             cittadino non ha dato un indirizzo e-mail. Gli comunichi l'esito per telefono, \
             allo sportello o per lettera.\n\n\
             Your answer to case {reference} is recorded but was NOT sent: the citizen gave \
             no email address. Tell them the outcome by phone, at the counter or by letter.\n"
        );
        let subject = compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &reference,
            &format!("Risposta non inviata / Answer not sent: {}", t.subject),
        );
        self.notice_to_staff(tx, t, staff, &subject, &text, in_reply_to)
            .await
    }
}
