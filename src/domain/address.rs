//! `EmailAddress`: exactly one lowercased addr-spec, the only form in which an address taken
//! from mail, a form or the config may be used.
//!
//! This is deliberately narrower than RFC 5322: an address here ends up as an SMTP envelope
//! recipient, a rate-limit key and a login name, so anything that could be read as *two*
//! addresses (`,` `;`), a display part (`"` `<` `>` `(` `)`), or a header break (whitespace,
//! control characters) is refused rather than interpreted. A mail whose Reply-To holds
//! `<a@x,b@y,…>` therefore has no usable Reply-To at all, instead of two hundred recipients.
//!
//! The domain must be a host name with at least one dot, made of labels of letters, digits
//! and hyphens (internationalised letters allowed): citizens and offices write from real
//! domains. Address literals (`user@[192.0.2.1]`) and dotless names (`user@localhost`) are
//! refused: nobody legitimately writes to a comune from them, and accepting them would only
//! let a mail steer our SMTP server at arbitrary hosts.

use std::fmt;

/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including `<>`, so 254 for the address.
const MAX_ADDRESS_BYTES: usize = 254;
/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_PART_BYTES: usize = 64;
/// RFC 1035 §2.3.4.
const MAX_LABEL_BYTES: usize = 63;

/// The value a ticket's `citizen` column holds when the citizen gave no address (a report
/// registered by staff with `#registra … -`). `.invalid` is reserved by RFC 6761 §6.4 and
/// never resolves, and [`EmailAddress::parse`] refuses every `.invalid` domain, so no mail
/// header, form or configuration can produce it: only [`EmailAddress::none`] and the store
/// reading it back. `outbound::queue::queue_mail` refuses it as a recipient.
pub const NO_ADDRESS: &str = "nessun-indirizzo@nessun-indirizzo.invalid";

/// A normalised (trimmed, lowercased) e-mail address; it can only hold a valid one.
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
    #[error("a reserved domain (.invalid, RFC 6761) that receives no mail")]
    Reserved,
}

impl EmailAddress {
    /// Parses `local@domain`, optionally inside one pair of `<>`; whitespace around it is
    /// ignored, case is folded. Everything else that is not one plain addr-spec is refused.
    ///
    /// Case folding the local part is technically wrong per RFC 5321 §2.4, but every mail
    /// system a comune meets treats it case-insensitively, and citizens type it both ways.
    pub fn parse(s: &str) -> Result<EmailAddress, AddressError> {
        let s = s.trim();
        let s = match s.strip_prefix('<') {
            Some(inner) => inner.strip_suffix('>').ok_or(AddressError::Malformed)?,
            None => s,
        };
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > MAX_ADDRESS_BYTES {
            return Err(AddressError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::Malformed)?;
        if !valid_local(local) || !valid_domain(domain) {
            return Err(AddressError::Malformed);
        }
        let lower = s.to_lowercase();
        if lower.ends_with(".invalid") {
            return Err(AddressError::Reserved);
        }
        Ok(EmailAddress(lower))
    }

    /// The citizen without an address ([`NO_ADDRESS`]): never a recipient, never a sender.
    pub fn none() -> EmailAddress {
        EmailAddress(NO_ADDRESS.to_owned())
    }

    /// True for [`NO_ADDRESS`]: the citizen gave no address; nothing may be mailed to it.
    pub fn is_none(&self) -> bool {
        self.0 == NO_ADDRESS
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// Characters never allowed in an address we use: separators of address lists, the display
/// syntax, quoting, comments, and anything that could break a header or an SMTP command.
fn forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\@".contains(c)
}

/// A dot-atom local part (RFC 5322 §3.4.1) without quoting: no empty, leading, trailing or
/// doubled dots.
fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL_PART_BYTES
        && !local.chars().any(forbidden)
        && local.split('.').all(|atom| !atom.is_empty())
}

/// A host name with at least two labels of letters, digits and inner hyphens.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= MAX_LABEL_BYTES
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The stored form: what [`EmailAddress::parse`] accepts, and [`NO_ADDRESS`] (the store
/// reads a ticket's `citizen` column back through this).
impl std::str::FromStr for EmailAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == NO_ADDRESS {
            return Ok(EmailAddress::none());
        }
        EmailAddress::parse(s)
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
        assert!(EmailAddress::parse("anna+ticket@posta.città.it").is_ok());
        assert!(EmailAddress::parse("o'brien@mail-1.example.ie").is_ok());
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        assert_eq!(EmailAddress::parse(""), Err(AddressError::Empty));
        assert_eq!(EmailAddress::parse("<>"), Err(AddressError::Empty));
        for bad in [
            "nobody",
            "a@",
            "@b.it",
            "a b@c.it",
            "a@b@c.it",
            "a@.b",
            "a@b.",
            "a@localhost",
            "a@[192.0.2.1]",
            ".a@b.it",
            "a..b@c.it",
            "a@-b.it",
            "<a@b.it",
            "\"a\"@b.it",
        ] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(AddressError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_reserved_no_address_is_never_parsed_from_input_only_read_back_from_the_store() {
        assert_eq!(EmailAddress::parse(NO_ADDRESS), Err(AddressError::Reserved));
        assert_eq!(
            EmailAddress::parse("Anna@Example.INVALID"),
            Err(AddressError::Reserved)
        );
        let stored: EmailAddress = NO_ADDRESS.parse().unwrap();
        assert!(stored.is_none());
        assert!(!EmailAddress::parse("anna@example.it").unwrap().is_none());
    }

    #[test]
    fn a_list_of_addresses_is_not_one_address() {
        for bad in [
            "a@x.it,b@y.it",
            "<a@x.it,b@y.it>",
            "a@x.it;b@y.it",
            "a@x.it>,<b@y.it",
            "a@x.it b@y.it",
            "a@x.it\r\nBcc: b@y.it",
            "a@x.it\0",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlong_addresses_and_parts_are_rejected() {
        let long = format!("{}@example.it", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(AddressError::TooLong));
        let local = format!("{}@example.it", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&local), Err(AddressError::Malformed));
        let label = format!("a@{}.it", "b".repeat(64));
        assert_eq!(EmailAddress::parse(&label), Err(AddressError::Malformed));
    }
}
