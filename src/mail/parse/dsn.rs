//! Delivery status notifications (RFC 3464, RFC 6533): which message came back, for which
//! recipients, with which status and diagnostic. A read receipt or an abuse report is a
//! report but not a DSN.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::headers::{first_id, single_line, top_headers, trace_address, unique_by};
use super::{guarded, Dsn};

/// Longest `Diagnostic-Code` kept from a DSN, in characters: it ends up in logs and the timeline.
const MAX_DIAGNOSTIC_CHARS: usize = 1000;

fn content_type_is(part: &MessagePart<'_>, types: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        let subtype = ct.subtype().unwrap_or_default();
        types.iter().any(|t| {
            t.split_once('/').is_some_and(|(ty, sub)| {
                ct.ctype().eq_ignore_ascii_case(ty) && subtype.eq_ignore_ascii_case(sub)
            })
        })
    })
}

const STATUS_TYPES: &[&str] = &["message/delivery-status", "message/global-delivery-status"];
const RETURNED_HEADER_TYPES: &[&str] = &[
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
];
const RETURNED_MESSAGE_TYPES: &[&str] = &["message/rfc822", "message/global"];

pub(super) fn dsn(message: &Message<'_>) -> Option<Dsn> {
    let root = message.parts.first()?;
    let content_type = root.content_type()?;
    if !content_type.ctype().eq_ignore_ascii_case("multipart")
        || !content_type
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    let parts = message.parts.get(1..).unwrap_or_default();
    let status_part = parts.iter().find(|p| content_type_is(p, STATUS_TYPES));
    // RFC 6522 §3: report-type names the machine-readable part; a read receipt
    // (disposition-notification) or an abuse report is a report, not a DSN.
    let is_delivery_status = match content_type.attribute("report-type") {
        Some(kind) => {
            kind.eq_ignore_ascii_case("delivery-status")
                || kind.eq_ignore_ascii_case("global-delivery-status")
        }
        None => status_part.is_some(),
    };
    if !is_delivery_status {
        return None;
    }

    let recipients = status_part
        .map(|p| status_recipients(&String::from_utf8_lossy(p.contents())))
        .unwrap_or_default();
    let failed: Vec<&StatusRecipient> = recipients.iter().filter(|r| r.failed()).collect();
    let reported = failed.first().copied().or_else(|| recipients.first());
    let failed_recipients = unique_by(failed.iter().filter_map(|r| r.address.clone()), |a| {
        a.clone()
    });

    Some(Dsn {
        original_message_id: parts.iter().find_map(returned_message_id),
        failed_recipients,
        status: reported.and_then(|r| r.status.clone()),
        diagnostic: reported.and_then(|r| r.diagnostic.clone()),
    })
}

/// The Message-ID of the returned message, from whichever form the MTA used.
fn returned_message_id(part: &MessagePart<'_>) -> Option<String> {
    if content_type_is(part, RETURNED_MESSAGE_TYPES) {
        if let PartType::Message(nested) = &part.body {
            return first_id(top_headers(nested));
        }
        return message_id_from_header_block(part.contents());
    }
    if content_type_is(part, RETURNED_HEADER_TYPES) {
        return message_id_from_header_block(part.contents());
    }
    None
}

/// Parses a bare header block (a `text/rfc822-headers` body). mail-parser drops a header whose
/// value runs to end-of-input without a newline, and the part body ends just before the
/// boundary's line break, so the last header (often Message-ID) would be lost without the
/// added newline.
fn message_id_from_header_block(block: &[u8]) -> Option<String> {
    let mut terminated = Vec::with_capacity(block.len() + 2);
    terminated.extend_from_slice(block);
    terminated.extend_from_slice(b"\n\n");
    let headers = guarded(|| MessageParser::default().parse_headers(&terminated))??;
    first_id(top_headers(&headers))
}

/// One per-recipient group of a `message/delivery-status` body.
struct StatusRecipient {
    address: Option<String>,
    action: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
}

impl StatusRecipient {
    /// RFC 3464 §2.3.3: `Action: failed` is the definitive answer; without an Action, a 5.x.x
    /// status (§2.3.4, RFC 3463) is a permanent failure.
    fn failed(&self) -> bool {
        match &self.action {
            Some(action) => action == "failed",
            None => self.status.as_deref().is_some_and(|s| s.starts_with('5')),
        }
    }
}

/// RFC 3464 §2.1: header-like field groups separated by blank lines; the first is about the
/// message, each following one about a recipient. Continuation lines are folded in.
fn status_recipients(body: &str) -> Vec<StatusRecipient> {
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }

    groups
        .iter()
        .filter_map(|fields| {
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let recipient = field("final-recipient").or_else(|| field("original-recipient"))?;
            Some(StatusRecipient {
                // `rfc822; user@example.test`: drop the address type (§2.3.2).
                address: trace_address(without_type(recipient)),
                action: field("action").map(|a| {
                    a.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                }),
                status: field("status")
                    .and_then(|s| s.split_whitespace().next())
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                    .map(str::to_owned),
                diagnostic: field("diagnostic-code")
                    .map(|d| single_line(without_type(d)).trim().to_owned())
                    .filter(|d| !d.is_empty())
                    .map(|d| {
                        let mut d = d;
                        if let Some((cut, _)) = d.char_indices().nth(MAX_DIAGNOSTIC_CHARS) {
                            d.truncate(cut);
                        }
                        d
                    }),
            })
        })
        .collect()
}

/// `type; value` → `value` (RFC 3464 address-type and diagnostic-type prefixes).
fn without_type(value: &str) -> &str {
    value.split_once(';').map_or(value, |(_, v)| v).trim()
}
