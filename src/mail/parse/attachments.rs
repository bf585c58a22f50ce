//! Attachments: every MIME part that is not the body, with a file name that is safe to use
//! (no path, no control or bidi characters, capped length) and a media type restricted to
//! RFC 6838 name characters; attached messages as their raw bytes.

use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};

use super::body::{decoded_text, orphan_body_id, recovered_bytes};
use super::{Attachment, MAX_CONTENT_ID_BYTES};

/// Longest attachment file name kept, in bytes (ext4 and most file systems stop at 255).
pub(super) const MAX_FILENAME_BYTES: usize = 200;

pub(super) fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    // The orphaned body of a truncated message is shown as the text, not listed twice.
    let orphan = orphan_body_id(message);
    let mut out = Vec::new();
    for id in &message.attachments {
        let Some(part) = message.parts.get(*id as usize) else {
            continue;
        };
        if orphan == Some(*id) {
            continue;
        }
        let recovered = recovered_bytes(part);
        let bytes = match (&part.body, recovered.as_ref()) {
            (PartType::Multipart(_), _) => continue,
            (PartType::Text(_) | PartType::Html(_), Some(_)) if is_text_part(part) => {
                decoded_text(part).unwrap_or_default().as_bytes().to_vec()
            }
            (_, Some(bytes)) => bytes.clone(),
            (PartType::Text(t) | PartType::Html(t), None) => t.as_bytes().to_vec(),
            (PartType::Binary(b) | PartType::InlineBinary(b), None) => b.to_vec(),
            (PartType::Message(nested), None) => {
                nested_message_bytes(message, part, nested).to_vec()
            }
        };
        let content_type = attachment_content_type(part, recovered.is_some());
        let number = out.len() + 1;
        let filename = part
            .attachment_name()
            .and_then(sanitize_filename)
            .unwrap_or_else(|| fallback_filename(number, &content_type));
        let content_id = part.content_id().and_then(clean_content_id);
        let inline = match part.content_disposition() {
            Some(disposition) => disposition.is_inline(),
            None => content_id.is_some(),
        };
        out.push(Attachment {
            filename,
            content_type,
            bytes,
            content_id,
            inline,
        });
    }
    out
}

/// `<foto1@mail>` → `foto1@mail`: the id an HTML body's `cid:` URL names (RFC 2392). `None`
/// for an empty one or one that could not be written back into a header as it is (spaces,
/// controls, non-ASCII, brackets inside, longer than [`MAX_CONTENT_ID_BYTES`]).
pub(super) fn clean_content_id(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let inner = trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed)
        .trim();
    let usable = !inner.is_empty()
        && inner.len() <= MAX_CONTENT_ID_BYTES
        && inner
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    usable.then(|| inner.to_owned())
}

/// Declared as text (or undeclared, which RFC 2045 §5.2 makes text/plain).
fn is_text_part(part: &MessagePart<'_>) -> bool {
    part.content_type()
        .is_none_or(|ct| ct.ctype().eq_ignore_ascii_case("text"))
}

/// The raw bytes of an attached message. A 7bit/8bit `message/rfc822` part is parsed in place,
/// so its bytes are the part's body span in the outer message (the nested `Message` carries the
/// *whole* outer message as its `raw_message`). A base64/QP one was decoded into its own buffer,
/// which the nested message owns.
fn nested_message_bytes<'a>(
    outer: &'a Message<'_>,
    part: &MessagePart<'_>,
    nested: &'a Message<'_>,
) -> &'a [u8] {
    let span = |raw: &'a [u8], start: u32, end: u32| raw.get(start as usize..end as usize);
    let in_place = || span(&outer.raw_message, part.offset_body, part.offset_end);
    let own = || {
        nested
            .parts
            .first()
            .and_then(|root| span(&nested.raw_message, root.offset_header, root.offset_end))
    };
    let found = if part.encoding == Encoding::None {
        in_place().or_else(own)
    } else {
        own().or_else(in_place)
    };
    found.unwrap_or_default()
}

fn attachment_content_type(part: &MessagePart<'_>, recovered: bool) -> String {
    let declared = part.content_type().and_then(|ct| {
        let subtype = ct.subtype()?;
        let value = format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase();
        is_media_type(&value).then_some(value)
    });
    let fallback = match &part.body {
        PartType::Text(_) => "text/plain",
        PartType::Html(_) => "text/html",
        PartType::Message(_) => "message/rfc822",
        _ => "application/octet-stream",
    };
    match declared {
        // A part whose base64/QP could not be decoded is kept as its undecoded text: calling
        // that `image/jpeg` would hand a viewer bytes that are not a JPEG.
        Some(value) if part.is_encoding_problem && !recovered && !value.starts_with("text/") => {
            "application/octet-stream".to_owned()
        }
        Some(value) => value,
        None => fallback.to_owned(),
    }
}

/// RFC 6838 §4.2: `type/subtype`, each 1–127 of letters, digits and ``!#$&-^_.+``.
pub(super) fn is_media_type(value: &str) -> bool {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    value
        .split_once('/')
        .is_some_and(|(t, s)| valid(t) && valid(s))
}

/// Keeps the last path component only (so `../../etc/passwd` is `passwd`), drops control and
/// bidi-override characters (U+202E turns `gpj.exe` into an apparent `exe.jpg`), replaces the
/// characters Windows refuses, strips leading/trailing dots and spaces, and caps the length
/// keeping the extension. `None` when nothing is left.
pub(super) fn sanitize_filename(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return None;
    }
    Some(cap_filename(trimmed))
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Truncates to [`MAX_FILENAME_BYTES`] on a character boundary, keeping a short extension.
fn cap_filename(name: &str) -> String {
    if name.len() <= MAX_FILENAME_BYTES {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.len() <= 16);
    let keep = MAX_FILENAME_BYTES - extension.map_or(0, |ext| ext.len() + 1);
    let stem = truncate_on_char_boundary(name, keep);
    match extension {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

fn truncate_on_char_boundary(s: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn fallback_filename(number: usize, content_type: &str) -> String {
    let extension = match content_type {
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        "image/gif" => ".gif",
        "application/pdf" => ".pdf",
        "text/plain" | "text/rfc822-headers" | "message/delivery-status" => ".txt",
        "text/html" => ".html",
        "message/rfc822" => ".eml",
        _ => "",
    };
    format!("allegato-{number}{extension}")
}
