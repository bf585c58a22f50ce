//! Mail going out. Producers queue, the worker drains: [`queue`] is the write side every
//! producer (intake, the web pages) uses, inside its own transaction; the outbox worker
//! ([`worker`], [`smtp`]) claims the queued rows and sends the stored bytes over SMTP. Nothing
//! else in the program writes outbox rows or talks to an SMTP server.

pub mod queue;
pub mod smtp;
pub mod worker;

/// Which SMTP account sends a queued mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `[smtp]`: the comune's ordinary relay.
    Smtp,
    /// `[pec_smtp]`: the PEC provider, for mail to a citizen who wrote by PEC, so that the
    /// answer is certified too.
    Pec,
}

impl Transport {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Smtp => "smtp",
            Transport::Pec => "pec",
        }
    }
}
