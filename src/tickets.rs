//! Every change of a ticket's life, shared by the mail commands and the web page: each writes
//! the ticket's new state and its event together, inside the caller's transaction, and keeps
//! the caller's [`MessageTicket`] in step. Nothing else writes a ticket's status.

use crate::domain::event::{self, EventKind, Taken};
use crate::domain::{escape_component, AreaSlug, SignedIds, TicketKind, TicketStatus};
use crate::store::{MessageTicket, Result, Store, Tx};

/// The office takes the ticket ("presa in carico"). Only a `received` ticket changes;
/// returns whether it did, so taking twice records one event.
pub async fn take(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    details: Taken,
    at: i64,
) -> Result<bool> {
    if t.status != TicketStatus::Received {
        return Ok(false);
    }
    set_status(tx, t, TicketStatus::Taken, at).await?;
    Store::insert_event(tx, t.ticket_id, &EventKind::Taken(details), actor, at).await?;
    Ok(true)
}

/// The office's answer went to the citizen: the `answered` event, and the status
/// `answered` unless the same reply also closes the ticket (see [`resolve`]).
pub async fn answer(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    details: event::Answered,
    closing: bool,
    at: i64,
) -> Result<()> {
    Store::insert_event(tx, t.ticket_id, &EventKind::Answered(details), actor, at).await?;
    if !closing {
        set_status(tx, t, TicketStatus::Answered, at).await?;
    }
    Ok(())
}

/// Staff closed the ticket with their reply `message_id` (taking it first if nobody had).
pub async fn resolve(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    message_id: i64,
    at: i64,
) -> Result<()> {
    let implied = Taken::implied(&t.area);
    take(tx, t, actor, implied, at).await?;
    set_status(tx, t, TicketStatus::Resolved, at).await?;
    let details = event::OfMessage {
        message: Some(message_id),
    };
    Store::insert_event(tx, t.ticket_id, &EventKind::Resolved(details), actor, at).await
}

/// The citizen wrote again: a resolved ticket goes back to `taken`. Returns whether it did.
pub async fn reopen(tx: &mut Tx, t: &mut MessageTicket, actor: &str, at: i64) -> Result<bool> {
    if t.status != TicketStatus::Resolved {
        return Ok(false);
    }
    set_status(tx, t, TicketStatus::Taken, at).await?;
    let reopened = EventKind::Reopened(event::Nothing {});
    Store::insert_event(tx, t.ticket_id, &reopened, actor, at).await?;
    Ok(true)
}

/// The ticket moves to the office `to` (named `to_name`). Returns whether it moved: the
/// office it is in already is no move.
pub async fn reassign(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    to: &AreaSlug,
    to_name: &str,
    at: i64,
) -> Result<bool> {
    if &t.area == to {
        return Ok(false);
    }
    let from = std::mem::replace(&mut t.area, to.clone());
    Store::set_ticket_area(tx, t.ticket_id, to, at).await?;
    let details = event::Reassigned {
        from: Some(from),
        to: Some(to.clone()),
        to_name: to_name.to_owned(),
    };
    Store::insert_event(tx, t.ticket_id, &EventKind::Reassigned(details), actor, at).await?;
    Ok(true)
}

/// Staff changed the ticket's kind. Returns whether it changed.
pub async fn change_kind(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    kind: TicketKind,
    at: i64,
) -> Result<bool> {
    if t.kind == kind {
        return Ok(false);
    }
    Store::set_ticket_kind(tx, t.ticket_id, kind, at).await?;
    let details = event::KindChanged {
        from: t.kind.as_str().to_owned(),
        to: kind.as_str().to_owned(),
    };
    Store::insert_event(tx, t.ticket_id, &EventKind::KindChanged(details), actor, at).await?;
    t.kind = kind;
    Ok(true)
}

/// Staff chose the address the citizen asked for (`#rispondi-a`): mail to the citizen goes
/// there from now on. Returns whether there was one to choose.
pub async fn choose_reply_to(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    at: i64,
) -> Result<bool> {
    let Some(asked) = t.reply_to_asked.clone() else {
        return Ok(false);
    };
    Store::set_ticket_reply_to(tx, t.ticket_id, &asked, at).await?;
    let details = event::ReplyToChosen {
        reply_to: asked.clone(),
    };
    Store::insert_event(
        tx,
        t.ticket_id,
        &EventKind::ReplyToChosen(details),
        actor,
        at,
    )
    .await?;
    t.reply_to = Some(asked);
    Ok(true)
}

async fn set_status(
    tx: &mut Tx,
    t: &mut MessageTicket,
    status: TicketStatus,
    at: i64,
) -> Result<()> {
    Store::set_ticket_status(tx, t.ticket_id, status, at).await?;
    t.status = status;
    Ok(())
}

/// What a take link signs: the ticket and the staff member it was sent to, and until when
/// it is valid (unix millis).
pub fn take_link_data(reference: &str, staff: &str, expires: i64) -> String {
    format!("{reference} {staff} {expires}")
}

/// Purpose label of take-link signatures.
pub const TAKE_LINK: &str = "take-link";

/// Take links are valid this long after the notification was written.
pub const TAKE_LINK_VALIDITY_MILLIS: i64 = 90 * 24 * 3_600_000;

/// The signed take link mailed to `staff` (lowercase address) for ticket `reference`, valid
/// until `expires` (unix millis): the staff page at `/staff/take/{reference}` checks it
/// against [`take_link_data`].
pub fn take_link(
    ids: &SignedIds,
    base_url: &str,
    reference: &str,
    staff: &str,
    expires: i64,
) -> String {
    let sig = ids.sign(TAKE_LINK, &take_link_data(reference, staff, expires));
    format!(
        "{}/staff/take/{reference}?staff={}&exp={expires}&sig={sig}",
        base_url.trim_end_matches('/'),
        escape_component(staff),
    )
}

/// Purpose label of staff-page link signatures: distinct from [`TAKE_LINK`], so a take link's
/// signature never opens the page (or the reverse).
pub const STAFF_PAGE_LINK: &str = "staff-page-link";

/// What a staff page link signs: ticket, staff member and expiry (unix millis). The purpose
/// label ([`STAFF_PAGE_LINK`]) is added by [`SignedIds::sign`].
pub fn staff_page_link_data(reference: &str, staff: &str, expires: i64) -> String {
    format!("{reference} {staff} {expires}")
}

/// The signed link to the staff ticket page `/staff/tickets/{reference}` for `staff`
/// (lowercase address), valid until `expires` (unix millis; mailers use now +
/// `cfg.security.staff_link_millis()`). Every mail of the office side carries one.
pub fn staff_page_link(
    ids: &SignedIds,
    base_url: &str,
    reference: &str,
    staff: &str,
    expires: i64,
) -> String {
    let sig = ids.sign(
        STAFF_PAGE_LINK,
        &staff_page_link_data(reference, staff, expires),
    );
    format!(
        "{}/staff/tickets/{reference}?staff={}&exp={expires}&sig={sig}",
        base_url.trim_end_matches('/'),
        escape_component(staff),
    )
}

/// Why a staff page link is not accepted. Both answer 404: a stranger learns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffLinkError {
    /// The signature does not match ticket, staff member and expiry.
    Forged,
    /// Signed, but past its expiry.
    Expired,
}

/// Checks a staff page link's signature (first: an expiry the link could have changed is
/// never trusted before it) and then its expiry against `now` (unix millis).
pub fn verify_staff_page_link(
    ids: &SignedIds,
    reference: &str,
    staff: &str,
    expires: i64,
    sig: &str,
    now: i64,
) -> std::result::Result<(), StaffLinkError> {
    let data = staff_page_link_data(reference, staff, expires);
    if !ids.verify_sig(STAFF_PAGE_LINK, &data, sig) {
        return Err(StaffLinkError::Forged);
    }
    if expires < now {
        return Err(StaffLinkError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_link_names_the_staff_member_escaped_and_its_signature_checks() {
        let ids = SignedIds::new(b"a test secret of enough length");
        let link = take_link(
            &ids,
            "https://comune.example/",
            "2026-000001",
            "mario+uff@comune.example",
            1_800_000_000_000,
        );
        let prefix = "https://comune.example/staff/take/2026-000001?\
                      staff=mario%2Buff%40comune.example&exp=1800000000000&sig=";
        let sig = link.strip_prefix(prefix).expect(&link);
        let data = take_link_data("2026-000001", "mario+uff@comune.example", 1_800_000_000_000);
        assert!(ids.verify_sig(TAKE_LINK, &data, sig));
    }

    fn query_of(link: &str) -> (String, i64, String) {
        let query = link.split_once('?').expect(link).1;
        let mut staff = String::new();
        let mut exp = 0;
        let mut sig = String::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').expect(pair);
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .expect("utf-8")
                .into_owned();
            match k {
                "staff" => staff = v,
                "exp" => exp = v.parse().expect("exp is a number"),
                "sig" => sig = v,
                other => panic!("unexpected field {other}"),
            }
        }
        (staff, exp, sig)
    }

    #[test]
    fn a_staff_page_link_verifies_until_it_expires_and_not_after() {
        let ids = SignedIds::new(b"a test secret of enough length");
        let exp = 1_800_000_000_000;
        let link = staff_page_link(
            &ids,
            "https://comune.example/",
            "2026-000001",
            "mario+uff@comune.example",
            exp,
        );
        assert!(
            link.starts_with(
                "https://comune.example/staff/tickets/2026-000001?\
                 staff=mario%2Buff%40comune.example&exp=1800000000000&sig="
            ),
            "{link}"
        );
        let (staff, exp_back, sig) = query_of(&link);
        assert_eq!(
            (staff.as_str(), exp_back),
            ("mario+uff@comune.example", exp)
        );
        let check = |r: &str, s: &str, e: i64, sig: &str, now: i64| {
            verify_staff_page_link(&ids, r, s, e, sig, now)
        };
        assert_eq!(check("2026-000001", &staff, exp, &sig, exp - 1), Ok(()));
        assert_eq!(check("2026-000001", &staff, exp, &sig, exp), Ok(()));
        assert_eq!(
            check("2026-000001", &staff, exp, &sig, exp + 1),
            Err(StaffLinkError::Expired)
        );
        // Each signed field is bound: another ticket, staff member or a later expiry fails.
        assert_eq!(
            check("2026-000002", &staff, exp, &sig, 0),
            Err(StaffLinkError::Forged)
        );
        assert_eq!(
            check("2026-000001", "lucia@comune.example", exp, &sig, 0),
            Err(StaffLinkError::Forged)
        );
        assert_eq!(
            check("2026-000001", &staff, exp + 1, &sig, 0),
            Err(StaffLinkError::Forged)
        );
        assert_eq!(
            check("2026-000001", &staff, exp, "", 0),
            Err(StaffLinkError::Forged)
        );
    }

    #[test]
    fn a_take_link_signature_never_opens_the_staff_page_nor_the_reverse() {
        let ids = SignedIds::new(b"a test secret of enough length");
        let exp = 1_800_000_000_000;
        let take = take_link(&ids, "https://c.example", "2026-000001", "m@c.example", exp);
        let (_, _, take_sig) = query_of(&take);
        assert_eq!(
            verify_staff_page_link(&ids, "2026-000001", "m@c.example", exp, &take_sig, 0),
            Err(StaffLinkError::Forged)
        );
        let page = staff_page_link(&ids, "https://c.example", "2026-000001", "m@c.example", exp);
        let (_, _, page_sig) = query_of(&page);
        let data = take_link_data("2026-000001", "m@c.example", exp);
        assert!(!ids.verify_sig(TAKE_LINK, &data, &page_sig));
    }
}
