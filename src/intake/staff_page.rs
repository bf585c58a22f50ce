//! What a staff member does on the staff ticket page (`/staff/tickets/{ref}`), carried out
//! exactly as its mail command: the same `tickets` functions, the same events, the same mail
//! (a reassignment notifies the new office and tells the citizen; an answer goes to the
//! citizen through [`Pipeline::send_answer`], as a mailed answer does). Each action is one
//! transaction; the web layer only checks the signed link and the form.
//!
//! What staff write on the page (a note, an answer) is kept as an inbound message of theirs
//! like a mailed one, with no raw mail behind it: its `sha256` is that of the text, and a
//! form's one-time key is its de-duplication key, so a form sent twice records once.

use super::{AnswerOptions, Pipeline};
use crate::domain::event::{self, EventKind, Taken};
use crate::domain::{AreaSlug, Direction, MessageKind, TicketRef};
use crate::mail::own_text::guard_answer;
use crate::store::{now_millis, raw_sha256_hex, MessageTicket, NewMessage, Store, Tx};
use crate::tickets;

/// One action of the staff page, already checked for form mistakes.
#[derive(Debug, Clone)]
pub enum StaffAction {
    /// `#presa`.
    Take,
    /// `#assegna AREA`: the slug of a configured area.
    Reassign(AreaSlug),
    /// `#nota`: an internal note, never sent to the citizen.
    Note { text: String, key: Option<String> },
    /// The office's answer to the citizen; `close` as `#chiudi` (the answer is the final one).
    Answer {
        text: String,
        close: bool,
        key: Option<String>,
    },
}

/// How a staff page action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffOutcome {
    /// Carried out (or nothing to do: already taken, already in that office, sent twice).
    Done,
    /// No such ticket.
    NoTicket,
    /// The staff member is not (or no longer) staff of the ticket's office nor of an admin
    /// area: nothing done.
    NotStaff,
    /// The answer still contains text we wrote for staff (a link, a note, a notification):
    /// nothing sent. The cut text is what would remain.
    OwnText,
}

impl Pipeline {
    /// Carries out `action` of `staff` on ticket `reference`, in one transaction, and wakes
    /// the outbox when mail was queued.
    pub async fn staff_page_action(
        &self,
        reference: &TicketRef,
        staff: &str,
        action: &StaffAction,
    ) -> anyhow::Result<StaffOutcome> {
        let staff = staff.trim().to_lowercase();
        let mut tx = self.store.begin().await?;
        let Some(found) = Store::ticket_by_ref_in(&mut tx, reference).await? else {
            return Ok(StaffOutcome::NoTicket);
        };
        // Serialised with every other change of the ticket (a colleague's mail, another page):
        // read again under the row lock, so status and office are the current ones.
        Store::lock_ticket(&mut tx, found.ticket_id).await?;
        let Some(mut t) = Store::ticket_by_ref_in(&mut tx, reference).await? else {
            return Ok(StaffOutcome::NoTicket);
        };
        // Checked again inside the transaction: the office may have changed since the page
        // was shown (another colleague reassigned it).
        if !self.cfg.is_staff_of(&staff, t.area.as_str()) {
            return Ok(StaffOutcome::NotStaff);
        }
        let now = now_millis();
        match action {
            StaffAction::Take => {
                let details = Taken::via_web(&t.area);
                tickets::take(&mut tx, &mut t, &staff, details, now).await?;
            }
            StaffAction::Reassign(to) => {
                let Some(area) = self.cfg.area(to.as_str()) else {
                    return Ok(StaffOutcome::Done);
                };
                let previous_name = self.area_name(t.area.as_str());
                if tickets::reassign(&mut tx, &mut t, &staff, to, &area.name, now).await? {
                    self.notify_reassigned(&mut tx, &t, &previous_name).await?;
                    self.tell_citizen_reassigned(&mut tx, &t, &previous_name)
                        .await?;
                }
            }
            StaffAction::Note { text, key } => {
                let details = event::StaffText {
                    message: None,
                    text: text.clone(),
                };
                let kind = MessageKind::Note;
                let event = EventKind::Note(details);
                let inserted = self
                    .record_page_message(&mut tx, &t, &staff, kind, event, text, key)
                    .await?;
                if inserted.is_none() {
                    return Ok(StaffOutcome::Done);
                }
            }
            StaffAction::Answer { text, close, key } => {
                // The same last guard as a mailed answer: nothing we wrote for staff reaches
                // the citizen, even pasted into the form.
                let own = self.own_text(&mut tx, t.ticket_id).await?;
                if guard_answer(text, &own).is_some() {
                    return Ok(StaffOutcome::OwnText);
                }
                let details = event::StaffText {
                    message: None,
                    text: String::new(),
                };
                let kind = MessageKind::StaffReply;
                let event = EventKind::StaffReply(details);
                let Some(message_id) = self
                    .record_page_message(&mut tx, &t, &staff, kind, event, text, key)
                    .await?
                else {
                    return Ok(StaffOutcome::Done);
                };
                let options = AnswerOptions {
                    close: *close,
                    own_text_cut: false,
                };
                self.send_answer(&mut tx, &mut t, &staff, message_id, text, &[], options)
                    .await?;
            }
        }
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(StaffOutcome::Done)
    }

    /// Keeps what `staff` wrote on the page as their inbound message with its event (as
    /// `record_message` does for mail). `None` when the form's `key` was used already.
    #[allow(clippy::too_many_arguments)]
    async fn record_page_message(
        &self,
        tx: &mut Tx,
        t: &MessageTicket,
        staff: &str,
        kind: MessageKind,
        mut event: EventKind,
        text: &str,
        key: &Option<String>,
    ) -> anyhow::Result<Option<i64>> {
        let now = now_millis();
        let dedup_key = key.as_ref().map(|k| format!("staff-page:{k}"));
        let Some(message_id) = Store::insert_message(
            tx,
            &NewMessage {
                ticket_id: Some(t.ticket_id),
                direction: Direction::In,
                kind,
                rfc_message_id: None,
                in_reply_to: None,
                dedup_key: dedup_key.as_deref(),
                from_addr: staff,
                to_addrs: "",
                subject: &t.subject,
                text,
                html: None,
                at: now,
                sha256: &raw_sha256_hex(text.as_bytes()),
                raw_message_id: None,
            },
        )
        .await?
        else {
            return Ok(None);
        };
        event.set_message(message_id);
        Store::insert_event(tx, t.ticket_id, &event, staff, now).await?;
        Store::touch_ticket(tx, t.ticket_id, now).await?;
        Ok(Some(message_id))
    }
}
