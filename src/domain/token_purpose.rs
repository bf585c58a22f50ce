//! What a mailed account link is for: each purpose has its own page, lifetime and mail, and a
//! link of one purpose never works for the other.

use std::fmt;
use std::str::FromStr;

/// The purpose of a single-use link mailed to a citizen (`citizen_token.purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Confirms the address of a new account.
    Verify,
    /// Chooses a new password.
    Reset,
}

impl TokenPurpose {
    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

impl fmt::Display for TokenPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored purpose that is neither `verify` nor `reset`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown link purpose {0:?}")]
pub struct UnknownPurpose(pub String);

impl FromStr for TokenPurpose {
    type Err = UnknownPurpose;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "verify" => Ok(Self::Verify),
            "reset" => Ok(Self::Reset),
            other => Err(UnknownPurpose(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_reads_back_from_its_stored_word_and_nothing_else_is_a_purpose() {
        for p in [TokenPurpose::Verify, TokenPurpose::Reset] {
            assert_eq!(p.as_str().parse::<TokenPurpose>(), Ok(p));
        }
        assert!("Reset".parse::<TokenPurpose>().is_err());
        assert!("".parse::<TokenPurpose>().is_err());
    }
}
