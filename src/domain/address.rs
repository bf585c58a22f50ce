//! `EmailAddress`: a lowercased, syntactically plausible addr-spec.
//!
//! We do not try to implement all of RFC 5322 here: the address comes from a parsed header or
//! from the operator's config, and what matters is that comparisons (routing, rate limits,
//! "is this our own address") are done on one normalised form.

use std::fmt;

/// A normalised (trimmed, lowercased) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("not an e-mail address (expected name@domain)")]
    Malformed,
    #[error("address longer than 254 characters")]
    TooLong,
}

impl EmailAddress {
    /// Parses `local@domain`; whitespace around it is ignored, case is folded.
    ///
    /// Case folding the local part is technically wrong per RFC 5321 §2.4, but every mail
    /// system a comune meets treats it case-insensitively, and citizens type it both ways.
    pub fn parse(s: &str) -> Result<EmailAddress, AddressError> {
        let s = s
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > 254 {
            return Err(AddressError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::Malformed)?;
        let bad = |c: char| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c);
        if local.is_empty()
            || domain.is_empty()
            || local.chars().any(|c| bad(c) || c == '@')
            || domain.chars().any(|c| bad(c) || c == '@')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(AddressError::Malformed);
        }
        Ok(EmailAddress(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lowercased() {
        let a = EmailAddress::parse("  <Mario.Rossi@Comune.TEST> ").unwrap();
        assert_eq!(a.as_str(), "mario.rossi@comune.test");
        assert_eq!(a.domain(), "comune.test");
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        assert_eq!(EmailAddress::parse(""), Err(AddressError::Empty));
        for bad in ["nobody", "a@", "@b", "a b@c", "a@b@c", "a@.b"] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(AddressError::Malformed),
                "{bad}"
            );
        }
    }
}
