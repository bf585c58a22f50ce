//! Ticket reference, kind, status, channel and area: the words of the ticket's life
//! (docs/design-notes.md, "Ticket life"). Each is stored as the word its `as_str` gives and read
//! back with `FromStr`.

use std::fmt;
use std::str::FromStr;

/// A stored word that names none of the values of its type (`what` says which type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {what}: {value:?}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
}

impl UnknownWord {
    pub(crate) fn new(what: &'static str, value: &str) -> UnknownWord {
        UnknownWord {
            what,
            value: value.to_owned(),
        }
    }
}

/// `FromStr` (the stored word, exactly), `Display` and a string `Serialize` for an enum whose
/// `as_str` gives that word.
macro_rules! stored_word {
    ($ty:ty, $what:literal, [$($v:expr),+ $(,)?]) => {
        impl $ty {
            /// Every value, in order.
            pub const ALL: &'static [$ty] = &[$($v),+];
        }
        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord::new($what, s))
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_word;

/// `YYYY-NNNNNN`: year and sequence within the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketRef {
    year: u16,
    seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a ticket reference (expected YYYY-NNNNNN, e.g. 2026-000123)")]
pub struct TicketRefError;

impl TicketRef {
    pub fn new(year: u16, seq: u32) -> Result<TicketRef, TicketRefError> {
        if !(2000..=9999).contains(&year) || seq == 0 || seq > 999_999 {
            return Err(TicketRefError);
        }
        Ok(TicketRef { year, seq })
    }
    pub fn year(&self) -> u16 {
        self.year
    }
    pub fn seq(&self) -> u32 {
        self.seq
    }
}

impl FromStr for TicketRef {
    type Err = TicketRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (y, n) = s.trim().split_once('-').ok_or(TicketRefError)?;
        if y.len() != 4 || n.len() != 6 || !y.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(TicketRefError);
        }
        let year = y.parse().map_err(|_| TicketRefError)?;
        let seq = n.parse().map_err(|_| TicketRefError)?;
        TicketRef::new(year, seq)
    }
}

impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths in operators' tables (`{:<12}`) apply as to a string.
        f.pad(&format!("{:04}-{:06}", self.year, self.seq))
    }
}

impl serde::Serialize for TicketRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The three kinds of report the comune accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    Segnalazione,
    Suggerimento,
    Reclamo,
}

impl TicketKind {
    /// Italian or English word, any case.
    pub fn parse(s: &str) -> Option<TicketKind> {
        match s.trim().to_lowercase().as_str() {
            "segnalazione" | "report" => Some(TicketKind::Segnalazione),
            "suggerimento" | "suggestion" => Some(TicketKind::Suggerimento),
            "reclamo" | "complaint" => Some(TicketKind::Reclamo),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            TicketKind::Segnalazione => "segnalazione",
            TicketKind::Suggerimento => "suggerimento",
            TicketKind::Reclamo => "reclamo",
        }
    }
    pub fn english(&self) -> &'static str {
        match self {
            TicketKind::Segnalazione => "report",
            TicketKind::Suggerimento => "suggestion",
            TicketKind::Reclamo => "complaint",
        }
    }
}

stored_word!(
    TicketKind,
    "ticket kind",
    [
        TicketKind::Segnalazione,
        TicketKind::Suggerimento,
        TicketKind::Reclamo
    ]
);

/// `received` → `taken` → `answered` → `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    Received,
    Taken,
    Answered,
    Resolved,
}

impl TicketStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TicketStatus::Received => "received",
            TicketStatus::Taken => "taken",
            TicketStatus::Answered => "answered",
            TicketStatus::Resolved => "resolved",
        }
    }
}

stored_word!(
    TicketStatus,
    "ticket status",
    [
        TicketStatus::Received,
        TicketStatus::Taken,
        TicketStatus::Answered,
        TicketStatus::Resolved
    ]
);

/// How the report reached us. `Phone`, `Counter` and `Letter` are reports a staff member
/// registered on the citizen's behalf (`#registra`, docs/design-notes.md "Reports by phone,
/// counter and letter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Pec,
    Web,
    Phone,
    Counter,
    Letter,
}

impl Channel {
    /// The stored word, also the word in the CLI's JSON (English).
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Pec => "pec",
            Channel::Web => "web",
            Channel::Phone => "phone",
            Channel::Counter => "counter",
            Channel::Letter => "letter",
        }
    }

    /// The Italian word, as staff write it after `#registra` and the pages show it.
    pub fn italian(&self) -> &'static str {
        match self {
            Channel::Email => "e-mail",
            Channel::Pec => "PEC",
            Channel::Web => "sito web",
            Channel::Phone => "telefono",
            Channel::Counter => "sportello",
            Channel::Letter => "lettera",
        }
    }

    /// True for the channels a staff member registers on the citizen's behalf.
    pub fn is_registered(&self) -> bool {
        matches!(self, Channel::Phone | Channel::Counter | Channel::Letter)
    }
}

stored_word!(
    Channel,
    "channel",
    [
        Channel::Email,
        Channel::Pec,
        Channel::Web,
        Channel::Phone,
        Channel::Counter,
        Channel::Letter
    ]
);

/// The slug of an office (`[[area]] slug` in the configuration): lowercase ASCII letters,
/// digits and `-`, 1 to 64 characters. A ticket's `area` column holds one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AreaSlug(String);

impl AreaSlug {
    pub fn parse(s: &str) -> Result<AreaSlug, UnknownWord> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(AreaSlug(s.to_owned()))
        } else {
            Err(UnknownWord::new("area slug", s))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AreaSlug {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AreaSlug::parse(s)
    }
}

impl fmt::Display for AreaSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for AreaSlug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AreaSlug {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for AreaSlug {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for AreaSlug {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl serde::Serialize for AreaSlug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AreaSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AreaSlug::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_refs_round_trip_and_reject_garbage() {
        let r: TicketRef = "2026-000123".parse().unwrap();
        assert_eq!(r.to_string(), "2026-000123");
        assert_eq!(TicketRef::new(2026, 7).unwrap().to_string(), "2026-000007");
        for bad in [
            "",
            "2026-123",
            "2026-0001234",
            "abcd-000001",
            "2026-000000",
            "2026_000001",
        ] {
            assert!(bad.parse::<TicketRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_accept_italian_and_english_words() {
        assert_eq!(TicketKind::parse("Reclamo"), Some(TicketKind::Reclamo));
        assert_eq!(
            TicketKind::parse("suggestion"),
            Some(TicketKind::Suggerimento)
        );
        assert_eq!(TicketKind::parse("x"), None);
    }

    #[test]
    fn stored_words_round_trip_and_unknown_words_are_errors() {
        for s in TicketStatus::ALL {
            assert_eq!(s.as_str().parse::<TicketStatus>().unwrap(), *s);
        }
        for k in TicketKind::ALL {
            assert_eq!(k.as_str().parse::<TicketKind>().unwrap(), *k);
        }
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
        }
        assert!("closed".parse::<TicketStatus>().is_err());
        assert!("Reclamo".parse::<TicketKind>().is_err());
        assert!("fax".parse::<Channel>().is_err());
    }

    #[test]
    fn area_slugs_follow_the_configuration_rule() {
        assert_eq!(
            AreaSlug::parse("lavori-pubblici").unwrap(),
            "lavori-pubblici"
        );
        for bad in ["", "Verde", "verde pubblico", "ü", &"a".repeat(65)] {
            assert!(AreaSlug::parse(bad).is_err(), "{bad}");
        }
    }
}
