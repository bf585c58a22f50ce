//! Mail going out: queueing inside the caller's transaction ([`queue`]), and the outbox
//! worker that sends the stored bytes over SMTP ([`worker`], [`smtp`]). Nothing else in the
//! program talks to an SMTP server.

pub mod queue;
pub mod smtp;
pub mod worker;
