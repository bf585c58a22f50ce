//! Mail coming in: the IMAP pollers, `ticketgate ingest` (MTA pipe delivery), and the
//! pipeline both feed, which turns a stored raw message into its outcome.

pub mod imap;
pub mod ingest;
pub mod pipeline;
pub mod utf7;
