//! Where a raw message is in intake: the word stored in `raw_message.state` (see
//! docs/design-notes.md, "Processing states").

use std::fmt;
use std::str::FromStr;

use super::ticket::{stored_word, UnknownWord};

/// `pending` until intake closes it as `processed`, `duplicate` or `quarantined`; an operator
/// may then drop a quarantined one (`dropped`) or requeue it (`pending` again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawState {
    /// Stored, not yet (completely) processed: a crash leaves it here, to be taken again.
    Pending,
    /// It became a ticket or a message of one (or a receipt that changed one).
    Processed,
    /// The same mail was already stored and processed.
    Duplicate,
    /// Kept aside with a reason, for an operator.
    Quarantined,
    /// A quarantined message an operator dealt with; its bytes stay stored.
    Dropped,
}

impl RawState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RawState::Pending => "pending",
            RawState::Processed => "processed",
            RawState::Duplicate => "duplicate",
            RawState::Quarantined => "quarantined",
            RawState::Dropped => "dropped",
        }
    }

    /// In the quarantine, or was: what `quarantine show/export` may show.
    pub fn is_quarantine(&self) -> bool {
        matches!(self, RawState::Quarantined | RawState::Dropped)
    }
}

stored_word!(
    RawState,
    "raw message state",
    [
        RawState::Pending,
        RawState::Processed,
        RawState::Duplicate,
        RawState::Quarantined,
        RawState::Dropped,
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_states_read_back_as_they_are_stored() {
        for s in RawState::ALL {
            assert_eq!(s.as_str().parse::<RawState>(), Ok(*s));
        }
        assert!("Pending".parse::<RawState>().is_err());
    }
}
