//! The words of the outbox: which account sends a mail ([`Transport`]) and where its row is
//! ([`OutboxState`]), stored in `outbox.transport` and `outbox.state` as the words `as_str`
//! gives and read back with `FromStr` (a word this code does not know is an error, never a
//! guess).

use std::fmt;
use std::str::FromStr;

use super::ticket::{stored_word, UnknownWord};

/// Which SMTP account sends a queued mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

stored_word!(Transport, "transport", [Transport::Smtp, Transport::Pec]);

/// Where an outbox row is: `queued` → `sent`, or `failed` once given up. A queued row is
/// due, waiting for a retry, or leased by a worker sending it (see `store::outbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutboxState {
    /// Still to send.
    Queued,
    /// The server accepted it.
    Sent,
    /// Given up: a permanent failure, or too many attempts.
    Failed,
}

impl OutboxState {
    pub fn as_str(&self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }
}

stored_word!(
    OutboxState,
    "outbox state",
    [OutboxState::Queued, OutboxState::Sent, OutboxState::Failed]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_words_read_back_as_they_are_stored() {
        for t in Transport::ALL {
            assert_eq!(t.as_str().parse::<Transport>(), Ok(*t));
        }
        for s in OutboxState::ALL {
            assert_eq!(s.to_string().parse::<OutboxState>(), Ok(*s));
        }
        assert!("SMTP".parse::<Transport>().is_err());
        assert!("delivered".parse::<OutboxState>().is_err());
    }
}
