//! Mail going out: queueing inside the caller's transaction ([`queue`]), and the outbox
//! worker that sends the stored bytes over SMTP ([`worker`], [`smtp`]). Nothing else in the
//! program talks to an SMTP server.

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
