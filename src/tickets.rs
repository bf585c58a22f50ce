//! Changes of a ticket's life shared by the mail commands and the web page: each writes
//! the ticket's new state and its event inside the caller's transaction.

use serde_json::Value;

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
