//! Pure types and rules of the ticket world: no I/O, no async, no SQL.
//!
//! Everything that crosses an edge (mail, config, CLI) is parsed into these types once, so the
//! rest of the code can trust them.

mod address;
pub mod calendar;
mod clock;
mod days;
pub mod event;
mod fiscal_code;
mod message;
mod outbox;
pub mod password;
mod raw;
pub mod reminder;
pub mod rome;
mod signed_id;
pub mod stats;
mod ticket;
mod token_purpose;
mod url;

pub use address::{AddressError, EmailAddress, NO_ADDRESS};
pub use calendar::{days_overdue, due_date, is_overdue, Holidays};
pub use clock::{local_time, now_millis, rome_date, rome_datetime, rome_year};
pub use days::{parse_day, rome_day_start};
pub use event::EventKind;
pub use fiscal_code::{FiscalCode, FiscalCodeError, FiscalCodeKind};
pub use message::{Direction, MessageKind};
pub use outbox::{OutboxState, Transport};
pub use raw::RawState;
pub use signed_id::{OurMessageId, SignedIds};
pub use ticket::{
    AreaSlug, Channel, TicketKind, TicketRef, TicketRefError, TicketStatus, UnknownWord,
};
pub use token_purpose::{TokenPurpose, UnknownPurpose};
pub use url::escape_component;

/// The mailbox name under which reports made on the web page are stored raw (as a mail
/// composed by `intake::web_report`, so they go through the same intake as mail): the
/// [`Channel::Web`] of mailboxes. No `[[mailbox]]` may use it, and mail must never pose as it.
pub const WEB_MAILBOX: &str = "web";

/// Unix millis as RFC 3339 (UTC), the time format of every JSON output.
pub fn rfc3339(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}
