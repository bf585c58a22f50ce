//! Mail going out. Producers queue, the worker drains: [`queue`] is the write side every
//! producer (intake, the web pages) uses, inside its own transaction; the outbox worker
//! ([`worker`], [`smtp`]) claims the queued rows and sends the stored bytes over SMTP. Nothing
//! else in the program writes outbox rows or talks to an SMTP server.

pub mod queue;
pub mod smtp;
pub mod worker;
