//! Mail handling: pure functions over raw message bytes (parsing, loop protection).

// Untrusted mail must never panic the poller: no indexing or slicing (of a string either: a
// byte index inside a character panics), no unwrap, outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::string_slice, clippy::unwrap_used)
)]

pub mod auth;
pub mod autoreply;
pub mod command;
pub mod compose;
pub mod fingerprint;
pub mod html;
pub mod own_text;
pub mod parse;
pub mod pec;
pub mod prescan;
pub mod quote;
pub mod registration;
pub mod route;
pub mod smime;
pub mod summary;
pub mod tag;
