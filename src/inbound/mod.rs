//! Mail coming in: the IMAP pollers and `ticketgate ingest` (MTA pipe delivery). Both store
//! the raw bytes first and hand them to [`crate::intake`], which turns a stored raw message
//! into its outcome; nothing here decides what a mail is.

pub mod imap;
pub mod ingest;
pub mod utf7;
