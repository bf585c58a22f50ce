//! The top-level header block, read by hand (not through mail-parser) so that the class
//! depends on nothing but the first header block and survives input mail-parser gives up on:
//! the fields, unfolded, and the class they declare (RFC 6109 §3).

use super::{PecClass, ReceiptType};

/// The top-level header fields, unfolded, in order. Read here rather than through mail-parser so
/// that classification depends on nothing but the first header block (and still works on input
/// mail-parser gives up on).
pub(super) fn top_headers(raw: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (index, line) in raw.split_inclusive(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // RFC 5322 §2.2.3: unfolding removes the line break only.
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        if index == 0 && line.starts_with(b"From ") {
            continue; // mbox separator
        }
        // A line without a colon is not a field; skipping it keeps the rest readable.
        let mut halves = line.splitn(2, |b| *b == b':');
        if let (Some(name), Some(value)) = (halves.next(), halves.next()) {
            let name = String::from_utf8_lossy(name).trim().to_owned();
            let value = String::from_utf8_lossy(value).into_owned();
            if !name.is_empty() {
                fields.push((name, value));
            }
        }
    }
    for (_, value) in &mut fields {
        *value = value.trim().to_owned();
    }
    fields
}

/// The first non-empty value of a field, by case-insensitive name.
pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
        .find(|value| !value.is_empty())
}

/// `type/subtype` of a Content-Type value, parameters dropped.
pub(super) fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// RFC 6109 §3: `X-Trasporto` first, then `X-Ricevuta`. An unknown `X-Trasporto` value without
/// `X-Ricevuta` is an anomaly: it is a provider envelope (so not a citizen's ordinary mail to
/// ingest as from the provider's address), but nothing in it is certified.
pub(super) fn class_of(headers: &[(String, String)]) -> Option<(PecClass, Option<String>)> {
    let receipt = header(headers, "X-Ricevuta").map(ReceiptType::from_header);
    match header(headers, "X-Trasporto") {
        Some(value) if value.eq_ignore_ascii_case("posta-certificata") => {
            Some((PecClass::Transport, None))
        }
        Some(value) if value.eq_ignore_ascii_case("errore") => Some((PecClass::Anomaly, None)),
        Some(value) => match receipt {
            Some(kind) => Some((PecClass::Receipt(kind), None)),
            None => Some((
                PecClass::Anomaly,
                Some(format!("unknown X-Trasporto value \"{value}\"")),
            )),
        },
        None => receipt.map(|kind| (PecClass::Receipt(kind), None)),
    }
}
