//! Ticket reference, kind, status and channel: the words of the ticket's life (DESIGN.md).

use std::fmt;
use std::str::FromStr;

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
        write!(f, "{:04}-{:06}", self.year, self.seq)
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

/// How the report reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Pec,
    Web,
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Pec => "pec",
            Channel::Web => "web",
        }
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
}
