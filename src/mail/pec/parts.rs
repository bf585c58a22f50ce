//! The envelope's MIME parts: `daticert.xml` and the `message/rfc822` part, found among the
//! parts of the *outer* message by file name, then by content type, never by position, and
//! returned as bytes (transfer-decoded, no charset conversion).

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::fallback::Facts;
use super::{guarded, MAX_PARSE_BYTES};

/// What the MIME walk found in the outer message.
#[derive(Default)]
pub(super) struct Found {
    pub(super) daticert: Option<Vec<u8>>,
    pub(super) inner: Option<Vec<u8>>,
    pub(super) top: Facts,
}

/// Finds `daticert.xml` and the `message/rfc822` part among the parts of the *outer* message.
/// mail-parser gives a nested message its own part list, so nothing inside `postacert.eml` (a
/// citizen may attach a PEC of their own) can be taken for the envelope's parts.
pub(super) fn find_parts(raw: &[u8]) -> Result<Found, String> {
    if raw.len() > MAX_PARSE_BYTES {
        return Err(format!(
            "message too large to parse ({} bytes), classified from its headers only",
            raw.len()
        ));
    }
    // The same bound as every parse (see `prescan`): a deep tree would crash in its drop.
    if let Err(e) = crate::mail::prescan::check(raw) {
        return Err(format!("{e}: classified from its headers only"));
    }
    guarded(|| {
        let message = MessageParser::default().parse(raw)?;
        let parts = message.parts.get(1..).unwrap_or_default();
        let daticert =
            pick(parts, is_daticert_by_name, is_xml).map(|part| transfer_decoded(&message, part));
        let inner = pick(parts, is_postacert_by_name, is_message)
            .map(|part| inner_message_bytes(&message, part));
        Some(Found {
            daticert,
            inner,
            top: Facts::from_message(&message),
        })
    })
    .flatten()
    .ok_or_else(|| "MIME structure could not be parsed".to_owned())
}

/// The first part the file-name test accepts, else the first the content-type test accepts.
fn pick<'a, 'x>(
    parts: &'a [MessagePart<'x>],
    by_name: fn(&MessagePart<'_>) -> bool,
    by_type: fn(&MessagePart<'_>) -> bool,
) -> Option<&'a MessagePart<'x>> {
    let leaf = |part: &&MessagePart<'_>| !matches!(part.body, PartType::Multipart(_));
    parts
        .iter()
        .filter(leaf)
        .find(|part| by_name(part))
        .or_else(|| parts.iter().filter(leaf).find(|part| by_type(part)))
}

fn has_name(part: &MessagePart<'_>, name: &str) -> bool {
    part.attachment_name()
        .is_some_and(|found| found.trim().eq_ignore_ascii_case(name))
}

fn has_type(part: &MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|sub| subtypes.iter().any(|s| sub.eq_ignore_ascii_case(s)))
    })
}

fn is_daticert_by_name(part: &MessagePart<'_>) -> bool {
    has_name(part, "daticert.xml")
}

fn is_xml(part: &MessagePart<'_>) -> bool {
    has_type(part, "application", &["xml"]) || has_type(part, "text", &["xml"])
}

fn is_postacert_by_name(part: &MessagePart<'_>) -> bool {
    has_name(part, "postacert.eml")
}

fn is_message(part: &MessagePart<'_>) -> bool {
    matches!(part.body, PartType::Message(_)) || has_type(part, "message", &["rfc822", "global"])
}

/// The part's body span in the outer message's raw bytes.
fn body_span<'a>(message: &'a Message<'_>, part: &MessagePart<'_>) -> Option<&'a [u8]> {
    message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
}

/// A leaf part's content with its transfer encoding undone and nothing else: mail-parser turns
/// `text/*` into UTF-8 by the declared charset, so text is decoded again from the raw span.
fn transfer_decoded(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
        PartType::Message(_) => inner_message_bytes(message, part),
        PartType::Multipart(_) => Vec::new(),
        PartType::Text(text) | PartType::Html(text) => {
            let span = body_span(message, part);
            let decoded = match part.encoding {
                Encoding::None => span.map(<[u8]>::to_vec),
                Encoding::Base64 => span.and_then(base64_decode),
                Encoding::QuotedPrintable => span.and_then(quoted_printable_decode),
            };
            decoded.unwrap_or_else(|| text.as_bytes().to_vec())
        }
    }
}

/// The raw bytes of a `message/rfc822` part. A 7bit/8bit one is parsed in place, so its bytes
/// are the part's body span in the outer raw message (its nested `Message::raw_message` is the
/// *whole* outer message, and its `raw_message()` uses offsets that can run to the end of it). A
/// base64/QP one (not allowed by RFC 2046 §5.2.1, sent anyway) was decoded into a buffer the
/// nested message owns. When the nested parse failed, the part is text or binary instead.
fn inner_message_bytes(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    match (&part.body, part.encoding) {
        (PartType::Message(_), Encoding::None) => {
            body_span(message, part).unwrap_or_default().to_vec()
        }
        (PartType::Message(nested), _) => nested.raw_message.to_vec(),
        (PartType::Binary(bytes) | PartType::InlineBinary(bytes), _) => bytes.to_vec(),
        (PartType::Text(text) | PartType::Html(text), Encoding::None) => body_span(message, part)
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| text.as_bytes().to_vec()),
        (PartType::Text(text) | PartType::Html(text), _) => text.as_bytes().to_vec(),
        (PartType::Multipart(_), _) => Vec::new(),
    }
}
