//! The staff's pages, reached only by signed links in the mail we send to staff:
//! `/staff/take/{ref}` (the one-button take link, [`take`]) and the staff ticket page
//! `/staff/tickets/{ref}` ([`page`]: the whole timeline, every file, and the office's actions
//! as POST forms, [`actions`]).
//!
//! There is no staff account: the link is the credential. It is signed per ticket and per
//! staff member with an expiry (`tickets::staff_page_link`, `[security] staff_link_days`), and
//! the staff member must still be listed in the ticket's area (or an admin area) every time
//! it is used. A forged, tampered or expired link answers 404, like a ticket that does not
//! exist: the page does not tell a stranger what exists.

mod actions;
mod page;
mod take;

use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::AppState;
use crate::domain::{escape_component, now_millis, TicketRef};
use crate::tickets::verify_staff_page_link;

pub fn router() -> Router<AppState> {
    take::router()
        .route("/staff/tickets/{reference}", get(page::show))
        .route(
            "/staff/tickets/{reference}/attachments/{attachment_id}",
            get(page::attachment),
        )
        .route("/staff/tickets/{reference}/{action}", post(actions::act))
}

/// The signed fields of a staff page link, as they arrive (query or form): anything may be
/// missing or hostile, so nothing here can make the request fail before it is checked.
#[derive(Debug, Default, Deserialize)]
pub struct LinkFields {
    #[serde(default)]
    staff: Option<String>,
    #[serde(default)]
    exp: Option<String>,
    #[serde(default)]
    sig: Option<String>,
}

/// A staff page link whose signature and expiry were checked.
#[derive(Debug, Clone)]
pub struct StaffLink {
    pub reference: TicketRef,
    /// The staff member's address as signed (lowercase).
    pub staff: String,
    pub exp: i64,
    pub sig: String,
}

impl StaffLink {
    /// Checks the fields against the signature for ticket `reference`: `None` for a forged,
    /// tampered or expired link, or a reference that is not one.
    pub fn verify(state: &AppState, reference: &str, f: &LinkFields) -> Option<StaffLink> {
        let staff = f.staff.as_deref()?;
        let exp: i64 = f.exp.as_deref()?.trim().parse().ok()?;
        let sig = f.sig.as_deref()?;
        verify_staff_page_link(&state.ids, reference, staff, exp, sig, now_millis()).ok()?;
        let reference = reference.parse::<TicketRef>().ok()?;
        Some(StaffLink {
            reference,
            staff: staff.to_owned(),
            exp,
            sig: sig.to_owned(),
        })
    }

    /// The query that carries the link: `staff=…&exp=…&sig=…`.
    pub fn query(&self) -> String {
        format!(
            "staff={}&exp={}&sig={}",
            escape_component(&self.staff),
            self.exp,
            escape_component(&self.sig)
        )
    }

    /// The page's own address.
    pub fn page_path(&self) -> String {
        format!("/staff/tickets/{}?{}", self.reference, self.query())
    }
}
