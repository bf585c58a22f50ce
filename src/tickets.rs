//! Changes of a ticket's life shared by the mail commands and the web page: each writes
//! the ticket's new state and its event inside the caller's transaction.

use serde_json::Value;

use crate::domain::{escape_component, SignedIds};
use crate::store::{MessageTicket, Store, Tx};

/// The office takes the ticket ("presa in carico"). Only a `received` ticket changes;
/// returns whether it did, so taking twice records one event.
pub async fn take(
    tx: &mut Tx,
    t: &mut MessageTicket,
    actor: &str,
    details: &Value,
    at: i64,
) -> crate::store::Result<bool> {
    if t.status != "received" {
        return Ok(false);
    }
    Store::set_ticket_status(tx, t.ticket_id, "taken", at).await?;
    Store::insert_event(tx, t.ticket_id, "taken", actor, details, at).await?;
    t.status = "taken".to_owned();
    Ok(true)
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
}
