//! PEC boxes: a provider envelope becomes the citizen's own message with certification facts;
//! a receipt is matched to our outbound mail and never becomes a ticket.
//!
//! Everything here keys on what the provider certifies (top-level `X-Trasporto` /
//! `X-Ricevuta`, daticert.xml), never on Subject text, and never on headers inside the
//! citizen's message: a citizen cannot forge a receipt by writing `X-Ricevuta` in their mail.

use serde_json::json;

use super::pec_signature;
use super::{duplicate, quarantine, Ctx, Outcome, Pipeline, Prepared, Work};
use crate::domain::event::{self, EventKind};
use crate::domain::{rfc3339, EmailAddress, MessageKind, RawState};
use crate::mail::compose::PecNoticeText;
use crate::mail::parse::{self, InboundMail, Mailbox};
use crate::mail::pec::{self, PecClass, PecMail, ReceiptType};
use crate::mail::smime::SignatureCheck;
use crate::store::{OurMessage, RawRow, ReceiptEffect, Store, Tx};
use askama::Template;

/// Certification facts of a message that came through a PEC box, carried with the citizen's
/// message into the ticket.
#[derive(Debug, Clone)]
pub(super) struct PecFacts {
    /// True for a transport envelope whose provider signature verified (or was not asked to
    /// be checked); false for an anomaly (ordinary mail in the PEC box) and, with
    /// `pec.verify_signatures` on, for an envelope whose signature did not verify. The reason
    /// is `details["not_certified"]`.
    pub certified: bool,
    /// The provider's identificativo (the envelope's Message-ID), for a transport envelope.
    pub identificativo: Option<String>,
    /// daticert.xml `data`, unix millis.
    pub certified_at: Option<i64>,
    pub signature: SignatureCheck,
    /// What the timeline's `received` event says about the certification.
    pub details: serde_json::Value,
}

/// A receipt, prepared for matching.
#[derive(Debug)]
pub(super) struct ReceiptWork {
    pub pec: PecMail,
    pub receipt: ReceiptType,
    /// The envelope itself, parsed (subject and human-readable text for the record).
    pub envelope: InboundMail,
    pub facts: PecFacts,
    /// Why the receipt is not certified (with `pec.verify_signatures` on, its signature did
    /// not verify), or `None`. Such a receipt is recorded but changes nothing.
    pub not_certified: Option<String>,
}

impl Pipeline {
    /// Whether `raw` came in through a mailbox marked `pec = true`.
    pub(super) fn is_pec_box(&self, raw: &RawRow) -> bool {
        self.cfg.mailbox(&raw.mailbox).is_some_and(|m| m.pec)
    }

    /// The provider's signature, when the operator asked for it to be checked.
    async fn check_signature(&self, raw: &[u8]) -> SignatureCheck {
        match (&self.cfg.pec.verify_signatures, &self.cfg.pec.trust_store) {
            (true, Some(trust)) => pec_signature::verify(raw, trust).await,
            (true, None) => SignatureCheck::NotChecked {
                reason: "pec.trust_store is not set".to_owned(),
            },
            (false, _) => SignatureCheck::NotChecked {
                reason: "pec.verify_signatures is off".to_owned(),
            },
        }
    }

    /// Why a provider message does *not* count as certified, or `None` when it does. An anomaly
    /// never does. With `pec.verify_signatures` on, a transport envelope or a receipt counts
    /// only when the provider's signature verified (docs/design-notes.md, "Fuzzing, PEC
    /// certification, plaintext transports"): anyone can write
    /// `X-Trasporto: posta-certificata` into a mail, only the provider can sign it. With it
    /// off, the PEC box itself is what the operator trusts, as before.
    fn not_certified(&self, transport: bool, signature: &SignatureCheck) -> Option<String> {
        if !transport {
            return Some(
                "ordinary mail in the PEC box (an anomaly envelope), not a certified PEC"
                    .to_owned(),
            );
        }
        if !self.cfg.pec.verify_signatures {
            return None;
        }
        let detail = signature.detail().unwrap_or("no detail");
        match signature {
            SignatureCheck::Verified { .. } => None,
            SignatureCheck::NotVerified { .. } => Some(format!(
                "the PEC provider's signature did not verify: {detail}"
            )),
            SignatureCheck::NotChecked { .. } => Some(format!(
                "the PEC provider's signature could not be verified: {detail}"
            )),
        }
    }

    /// Reads a message from a PEC box: unwraps an envelope to the citizen's message, or
    /// prepares a receipt. Never fails on content: what cannot be read is quarantined.
    pub(super) async fn prepare_pec(&self, raw: RawRow) -> anyhow::Result<Prepared> {
        let signature = self.check_signature(&raw.bytes).await;
        let Some(pm) = pec::classify(&raw.bytes) else {
            // Neither X-Trasporto nor X-Ricevuta: not something a PEC provider delivered.
            // Handled as an anomaly: a ticket, flagged as not certified.
            let work = match parse::parse(&raw.bytes) {
                Err(e) => Work::Unparseable(format!("the message cannot be parsed: {e}")),
                Ok(mail) => {
                    let facts = PecFacts {
                        certified: false,
                        identificativo: None,
                        certified_at: None,
                        details: json!({
                            "certified": false,
                            "not_certified": "no X-Trasporto or X-Ricevuta header: not a PEC envelope",
                            "problem": "no X-Trasporto or X-Ricevuta header: not a PEC envelope",
                            "signature": signature.as_str(),
                        }),
                        signature,
                    };
                    self.mail_work(&raw, mail, None, Some(facts)).await?
                }
            };
            return Ok(Prepared { raw, work });
        };
        let work = match pm.class.clone() {
            PecClass::Receipt(receipt) => match parse::parse(&raw.bytes) {
                Err(e) => Work::Unparseable(format!("PEC receipt cannot be parsed: {e}")),
                Ok(envelope) => {
                    let d = pm.daticert.as_ref();
                    let not_certified = self.not_certified(true, &signature);
                    let facts = PecFacts {
                        certified: not_certified.is_none(),
                        identificativo: None,
                        certified_at: d.and_then(|d| d.data.as_ref()).and_then(|t| t.millis),
                        details: json!({
                            "problem": pm.problem,
                            "not_certified": not_certified,
                        }),
                        signature,
                    };
                    Work::PecReceipt(Box::new(ReceiptWork {
                        pec: pm,
                        receipt,
                        envelope,
                        facts,
                        not_certified,
                    }))
                }
            },
            PecClass::Transport | PecClass::Anomaly => {
                let transport = matches!(pm.class, PecClass::Transport);
                let what = if transport { "transport" } else { "anomaly" };
                match pm.inner.as_deref().map(parse::parse) {
                    None => Work::Unparseable(format!(
                        "PEC {what} envelope without the original message (postacert.eml)"
                    )),
                    Some(Err(e)) => Work::Unparseable(format!(
                        "the message inside the PEC {what} envelope cannot be parsed: {e}"
                    )),
                    Some(Ok(mut mail)) => {
                        let envelope = parse::parse(&raw.bytes).ok();
                        if transport {
                            set_certified_sender(&mut mail, &pm, envelope.as_ref());
                        }
                        let d = pm.daticert.as_ref();
                        let certified_at = d.and_then(|d| d.data.as_ref()).and_then(|t| t.millis);
                        let identificativo =
                            transport.then(|| pm.envelope_message_id.clone()).flatten();
                        let not_certified = self.not_certified(transport, &signature);
                        let facts = PecFacts {
                            certified: not_certified.is_none(),
                            identificativo: identificativo.clone(),
                            certified_at,
                            details: json!({
                                "certified": not_certified.is_none(),
                                "not_certified": not_certified,
                                "envelope": what,
                                "pec_id": identificativo,
                                "certified_at": certified_at.map(rfc3339),
                                "provider": d.and_then(|d| d.gestore_emittente.clone()),
                                "sender": d.and_then(|d| d.mittente.clone()),
                                "problem": pm.problem,
                                "signature": signature.as_str(),
                                "signature_detail": signature.detail(),
                            }),
                            signature,
                        };
                        // The envelope's Message-ID is the identificativo: the same envelope
                        // delivered twice is one ticket. An anomaly keeps the original's id.
                        let key = pm
                            .envelope_message_id
                            .as_deref()
                            .map(|id| format!("mid:{id}"));
                        self.mail_work(&raw, mail, key, Some(facts)).await?
                    }
                }
            }
        };
        Ok(Prepared { raw, work })
    }

    /// Records a provider receipt on the ticket of the outbound message it certifies and
    /// updates that message's certified state. Never a ticket, never answered.
    ///
    /// With `pec.verify_signatures` on, a receipt whose signature did not verify is kept (a
    /// `pec_receipt` message and a `pec_receipt_unverified` event with the reason) but
    /// changes nothing: not the state, `pec_id` or certified time of our message, and no
    /// failure notice to the office. Anyone who can put mail into the PEC box can write
    /// `X-Ricevuta: avvenuta-consegna`; only the provider can sign it (docs/design-notes.md,
    /// "Fuzzing, PEC certification, plaintext transports").
    pub(super) async fn pec_receipt(
        &self,
        tx: &mut Tx,
        raw: &RawRow,
        r: &ReceiptWork,
    ) -> anyhow::Result<Outcome> {
        // An unverified receipt is keyed by its content, never by its Message-ID: otherwise a
        // forged receipt carrying the (predictable) Message-ID of the provider's genuine one
        // would make the genuine receipt a silent duplicate, and the state would never change.
        let dedup_key = match (&r.pec.envelope_message_id, &r.not_certified) {
            (Some(id), None) => format!("mid:{id}"),
            _ => format!("sha256:{}", raw.sha256),
        };
        if let Some(orig) = Store::inbound_by_dedup_key(tx, &dedup_key).await? {
            return duplicate(tx, raw, orig).await;
        }
        let d = r.pec.daticert.as_ref();
        let kind = r.receipt.as_str().to_owned();
        let Some(ours) = self.receipt_target(tx, &r.pec).await? else {
            let reason = format!("PEC receipt ({kind}) that matches none of our messages");
            return quarantine(tx, raw, &reason).await;
        };
        let delivered_to = d.and_then(|d| d.consegna.clone());
        let reason = d.and_then(|d| d.errore_esteso.clone()).or_else(|| {
            d.and_then(|d| d.errore.clone())
                .filter(|e| !e.eq_ignore_ascii_case("nessuno"))
        });
        let certified_at = r.facts.certified_at;
        let claimed_state = receipt_state(&r.receipt);
        let identificativo = d.and_then(|d| d.identificativo.clone());
        let state = match &r.not_certified {
            None => {
                let detail = json!({
                    "receipt": kind,
                    "delivered_to": delivered_to,
                    "reason": reason,
                    "certified_at": certified_at.map(rfc3339),
                    "provider": d.and_then(|d| d.gestore_emittente.clone()),
                });
                Store::apply_receipt(
                    tx,
                    ours.message_id,
                    &ReceiptEffect {
                        state: claimed_state,
                        detail: &detail,
                        pec_id: identificativo.as_deref(),
                        certified_at,
                    },
                )
                .await?;
                claimed_state
            }
            Some(why) => {
                // For the operator: the office sees it on the ticket's timeline.
                tracing::warn!(
                    raw_message_id = raw.raw_message_id,
                    for_message = ours.message_id,
                    receipt = %kind,
                    reason = %why,
                    "PEC receipt not certified: recorded, our message's delivery state unchanged"
                );
                None
            }
        };
        let outcome_kind = match r.not_certified {
            None => "pec_receipt",
            Some(_) => "pec_receipt_unverified",
        };
        let Some(t) = &ours.ticket else {
            Store::finish_raw(tx, raw.raw_message_id, RawState::Processed, None, None).await?;
            return Ok(Outcome::Recorded {
                reference: String::new(),
                kind: outcome_kind.to_owned(),
            });
        };
        let from_addr = r
            .envelope
            .from
            .as_ref()
            .map(|f| f.address.clone())
            .unwrap_or_default();
        let ctx = Ctx {
            raw,
            mail: &r.envelope,
            dedup_key: &dedup_key,
            stored: &[],
            not_extracted: 0,
            fingerprint: "",
            reused_of: None,
            pec: Some(&r.facts),
        };
        let mut details = event::PecReceipt {
            message: None,
            receipt: kind.clone(),
            state: state.map(str::to_owned),
            for_message: Some(ours.message_id),
            pec_id: identificativo,
            delivered_to,
            reason: reason.clone(),
            certified_at: certified_at.map(rfc3339),
            signature: r.facts.signature.as_str().to_owned(),
            problem: r.pec.problem.clone(),
            ..event::PecReceipt::default()
        };
        if let Some(why) = &r.not_certified {
            // What it claims, kept apart from `state`: nothing was applied.
            details.not_certified = Some(why.clone());
            details.claimed_state = Some(claimed_state.map(str::to_owned));
            details.applied = Some(false);
        }
        // A separate event kind, so no reader of `pec_receipt` events (the citizen's
        // timeline says "risposta consegnata" for one) takes it for a certified fact.
        self.record_message(
            tx,
            &ctx,
            t,
            MessageKind::PecReceipt,
            match r.not_certified {
                None => EventKind::PecReceipt(details),
                Some(_) => EventKind::PecReceiptUnverified(details),
            },
            &from_addr,
        )
        .await?;
        if r.not_certified.is_none() && r.receipt.is_failure() {
            self.tell_staff_pec(tx, t, &ours, &r.receipt, reason.as_deref(), certified_at)
                .await?;
        }
        Ok(Outcome::Recorded {
            reference: t.reference.to_string(),
            kind: outcome_kind.to_owned(),
        })
    }

    /// The outbound message a receipt certifies: by `X-Riferimento-Message-ID` (our signed
    /// id), then daticert's `msgid`, then the provider's identificativo.
    async fn receipt_target(
        &self,
        tx: &mut Tx,
        pm: &PecMail,
    ) -> anyhow::Result<Option<OurMessage>> {
        let d = pm.daticert.as_ref();
        let signed = pm
            .riferimento_message_id
            .iter()
            .chain(d.and_then(|d| d.msgid.as_ref()))
            .find_map(|id| self.ids.verify(id));
        if let Some(id) = signed {
            if let Some(m) = Store::our_message(tx, id.message).await? {
                return Ok(Some(m));
            }
        }
        if let Some(pec_id) = d.and_then(|d| d.identificativo.as_deref()) {
            if let Some(id) = Store::outbound_by_pec_id(tx, pec_id).await? {
                return Ok(Store::our_message(tx, id).await?);
            }
        }
        Ok(None)
    }

    /// Our outbound message that the provider knows by one of `ids` (the citizen's PEC
    /// client answers our certified mail with the provider's identificativo in In-Reply-To).
    pub(super) async fn our_message_by_pec_id<'a>(
        &self,
        tx: &mut Tx,
        ids: impl Iterator<Item = &'a String>,
    ) -> anyhow::Result<Option<OurMessage>> {
        for id in ids {
            if let Some(m) = Store::outbound_by_pec_id(tx, id.trim_matches(['<', '>', ' '])).await?
            {
                return Ok(Store::our_message(tx, m).await?);
            }
        }
        Ok(None)
    }

    /// Tells the office's staff that a certified mail to the citizen failed or is late.
    async fn tell_staff_pec(
        &self,
        tx: &mut Tx,
        t: &crate::store::MessageTicket,
        ours: &OurMessage,
        receipt: &ReceiptType,
        reason: Option<&str>,
        certified_at: Option<i64>,
    ) -> anyhow::Result<()> {
        let Some(area) = self.cfg.area(t.area.as_str()) else {
            return Ok(());
        };
        let (receipt_it, advice_it, advice_en) = match receipt {
            ReceiptType::NonAccettazione => (
                "non accettazione",
                "Il gestore non ha accettato il messaggio: non è partito. Verificate \
                 l'indirizzo e il contenuto e rispondete di nuovo.",
                "The provider did not accept the message: it was not sent.",
            ),
            ReceiptType::PreavvisoErroreConsegna => (
                "preavviso di mancata consegna",
                "Il messaggio non risulta ancora consegnato dopo 12 ore: se entro 24 ore non \
                 arriva la ricevuta di consegna, il cittadino non l'ha ricevuto.",
                "Not delivered yet after 12 hours; without a delivery receipt within 24 hours \
                 the citizen did not receive it.",
            ),
            ReceiptType::RilevazioneVirus => (
                "rilevazione virus",
                "Il gestore ha rilevato un virus e non ha consegnato il messaggio.",
                "The provider found a virus and did not deliver the message.",
            ),
            _ => (
                "mancata consegna",
                "Il cittadino non ha ricevuto la risposta certificata: valutate di \
                 contattarlo per altra via.",
                "The citizen did not receive the certified answer.",
            ),
        };
        let at = certified_at.map(rfc3339).unwrap_or_else(|| "-".to_owned());
        let text = PecNoticeText {
            reference: &t.reference.to_string(),
            receipt: receipt.as_str(),
            receipt_it,
            recipient: &ours.to_addrs,
            subject: &t.subject,
            certified_at: &at,
            reason: reason.unwrap_or("-"),
            advice_it,
            advice_en,
        }
        .render()?;
        let subject = crate::mail::compose::tagged_subject(
            &self.cfg.tickets.tag_prefix,
            &t.reference.to_string(),
            &format!("PEC {receipt_it}: {}", ours.to_addrs),
        );
        for staff in &area.staff {
            self.notice_to_staff(tx, t, &staff.trim().to_lowercase(), &subject, &text, None)
                .await?;
        }
        Ok(())
    }
}

/// The certified state a receipt gives our outbound message; `None` for receipts that
/// change nothing final (taken in charge between providers, 12-hour warning, unknown).
fn receipt_state(r: &ReceiptType) -> Option<&'static str> {
    match r {
        ReceiptType::Accettazione => Some("accettata"),
        ReceiptType::NonAccettazione => Some("non accettata"),
        ReceiptType::AvvenutaConsegna => Some("consegnata"),
        ReceiptType::ErroreConsegna | ReceiptType::RilevazioneVirus => Some("non consegnata"),
        ReceiptType::PresaInCarico
        | ReceiptType::PreavvisoErroreConsegna
        | ReceiptType::Other(_) => None,
    }
}

/// The requester of a certified PEC is daticert's `mittente` (the envelope's From is the
/// provider's robot); answers go to `risposte` when it differs. Without daticert: the
/// envelope's Reply-To (providers put the real sender there), then the inner From.
fn set_certified_sender(mail: &mut InboundMail, pm: &PecMail, envelope: Option<&InboundMail>) {
    let d = pm.daticert.as_ref();
    let mittente = d
        .and_then(|d| d.mittente.clone())
        .or_else(|| {
            envelope
                .and_then(|e| e.reply_to.as_ref())
                .map(|m| m.address.clone())
        })
        .or_else(|| mail.from.as_ref().map(|m| m.address.clone()));
    // Exactly one valid address, like every address from mail: daticert is XML a sender's
    // provider wrote, but without signature checks anyone can write one. Not one address:
    // no usable sender (quarantined), never a list of recipients.
    let Some(mittente) = mittente
        .and_then(|m| EmailAddress::parse(&m).ok())
        .map(EmailAddress::into_string)
    else {
        mail.from = None;
        mail.reply_to = None;
        return;
    };
    let name = mail
        .from
        .as_ref()
        .filter(|f| f.address == mittente)
        .and_then(|f| f.name.clone());
    mail.from = Some(Mailbox {
        name: name.clone(),
        address: mittente.clone(),
    });
    mail.reply_to = d
        .and_then(|d| d.risposte.clone())
        .and_then(|r| EmailAddress::parse(&r).ok())
        .map(EmailAddress::into_string)
        .filter(|r| *r != mittente)
        .map(|address| Mailbox { name, address });
}
