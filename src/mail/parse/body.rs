//! The text and HTML bodies: text parts joined with LF line ends, HTML turned into readable
//! text, and the parts mail-parser left undecoded (a truncated multipart, a bad character)
//! decoded again from their declared transfer encoding.

use std::borrow::Cow;
use std::sync::LazyLock;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use regex::{Captures, Regex};

use super::guarded;

/// A private-use character marking an HTML block boundary while mail-parser's `html_to_text`
/// runs; resolved into at most one line break afterwards.
const SOFT_BREAK: char = '\u{E000}';

/// mail-parser keeps the line ends of the wire (CRLF) or of the file (LF); the gateway wants LF.
fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Joins every text body part. mail-parser lists in `text_body` the text parts, the HTML part of
/// HTML-only mail, and inline images (which have no text and are skipped here; they are in
/// the attachments). When it found no body at all, an orphaned text part (see
/// [`orphan_body_id`]) is the body.
pub(super) fn body_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    for id in &message.text_body {
        let Some(piece) = message.parts.get(*id as usize).and_then(readable_text) else {
            continue;
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&piece);
    }
    if text.is_empty() {
        if let Some(piece) = orphan_body_id(message)
            .and_then(|id| message.parts.get(id as usize))
            .and_then(readable_text)
        {
            text = piece;
        }
    }
    text
}

/// The text of a text or HTML part, as the reader should see it.
fn readable_text(part: &MessagePart<'_>) -> Option<String> {
    let text = decoded_text(part)?;
    Some(if is_html_part(part) {
        html_to_readable_text(&text)
    } else {
        normalize_newlines(&text)
    })
}

/// HTML by mail-parser's account or by its declared type: on an encoding problem mail-parser
/// demotes a `text/html` part to `PartType::Text`.
fn is_html_part(part: &MessagePart<'_>) -> bool {
    matches!(part.body, PartType::Html(_)) || part.is_content_type("text", "html")
}

/// The decoded text of a text or HTML part, re-decoding it when mail-parser gave up on its
/// transfer encoding (see [`recovered_bytes`]).
pub(super) fn decoded_text<'a>(part: &'a MessagePart<'_>) -> Option<Cow<'a, str>> {
    let text = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.as_ref(),
        _ => return None,
    };
    match recovered_bytes(part) {
        Some(bytes) => {
            let charset = part
                .content_type()
                .and_then(|ct| ct.attribute("charset"))
                .and_then(|c| charset_decoder(c.as_bytes()));
            Some(Cow::Owned(match charset {
                Some(decode) => decode(&bytes),
                None => String::from_utf8_lossy(&bytes).into_owned(),
            }))
        }
        None => Some(Cow::Borrowed(text)),
    }
}

/// mail-parser decodes base64 and quoted-printable only up to a boundary: a part that runs to
/// end-of-input inside a multipart (a truncated message, a missing closing boundary) is flagged
/// `is_encoding_problem` and kept *undecoded*, and so is a part with a bad character. This
/// decodes such a part again, strictly, from its declared Content-Transfer-Encoding; `None`
/// when the part is fine or really is undecodable.
pub(super) fn recovered_bytes(part: &MessagePart<'_>) -> Option<Vec<u8>> {
    if !part.is_encoding_problem {
        return None;
    }
    let encoding = part.content_transfer_encoding()?.trim();
    let raw = part.contents();
    if encoding.eq_ignore_ascii_case("base64") {
        base64_decode(raw)
    } else if encoding.eq_ignore_ascii_case("quoted-printable") {
        quoted_printable_decode(raw)
    } else {
        None
    }
}

/// A part mail-parser filed as an attachment only because of an encoding problem: the
/// text/plain (or HTML, or untyped) body of a truncated multipart. It has no file name and no
/// `Content-Disposition: attachment`. Only when no body was found; its part id.
pub(super) fn orphan_body_id(message: &Message<'_>) -> Option<u32> {
    let has_body = message.text_body.iter().any(|id| {
        message
            .parts
            .get(*id as usize)
            .is_some_and(|p| matches!(p.body, PartType::Text(_) | PartType::Html(_)))
    });
    if has_body {
        return None;
    }
    message
        .attachments
        .iter()
        .copied()
        .find(|id| message.parts.get(*id as usize).is_some_and(is_orphan_body))
}

fn is_orphan_body(part: &MessagePart<'_>) -> bool {
    part.is_encoding_problem
        && matches!(part.body, PartType::Text(_) | PartType::Html(_))
        && part.attachment_name().is_none()
        && !part
            .content_disposition()
            .is_some_and(|d| d.is_attachment())
        && part.content_type().is_none_or(|ct| {
            ct.ctype().eq_ignore_ascii_case("text")
                && ct.subtype().is_none_or(|s| {
                    s.eq_ignore_ascii_case("plain") || s.eq_ignore_ascii_case("html")
                })
        })
}

/// The first HTML body part (mail-parser also lists a text/plain part in `html_body` when there
/// is no HTML; that one is not HTML). Falls back to an orphaned HTML body like [`body_text`].
pub(super) fn body_html(message: &Message<'_>) -> Option<String> {
    let html_of = |id: &u32| {
        let part = message.parts.get(*id as usize)?;
        is_html_part(part)
            .then(|| decoded_text(part))
            .flatten()
            .map(|h| normalize_newlines(&h))
    };
    message
        .html_body
        .iter()
        .find_map(html_of)
        .or_else(|| orphan_body_id(message).as_ref().and_then(html_of))
}

/// Block elements whose boundaries are line breaks when the HTML is rendered.
pub(super) static BLOCK_TAG: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)<(/?)(address|article|aside|blockquote|dd|div|dl|dt|footer|h[1-6]|header|hr|li|ol|p|pre|section|table|td|th|tr|ul)\b[^>]*>",
    )
    .ok()
});

/// mail-parser's `html_to_text` breaks lines only at `<br>` and `</p>`, so the `<div>` per line
/// that Gmail, Outlook and Apple Mail write would run words together ("Buongiorno,c'è…").
/// Block boundaries are marked first and turned into single line breaks afterwards; table cells
/// are separated by a space.
pub(super) fn html_to_readable_text(html: &str) -> String {
    let marked = match BLOCK_TAG.as_ref() {
        Some(re) => re.replace_all(html, |caps: &Captures<'_>| {
            let tag = caps.get(0).map_or("", |m| m.as_str());
            let closing = caps.get(1).is_some_and(|m| !m.as_str().is_empty());
            let name = caps.get(2).map_or("", |m| m.as_str());
            if name.eq_ignore_ascii_case("td") || name.eq_ignore_ascii_case("th") {
                if closing {
                    format!("{tag} ")
                } else {
                    tag.to_owned()
                }
            } else if closing {
                format!("{tag}{SOFT_BREAK}")
            } else {
                format!("{SOFT_BREAK}{tag}")
            }
        }),
        None => Cow::Borrowed(html),
    };
    // `html_to_text` has an `unwrap` inside; keep the raw HTML rather than fail the message.
    match guarded(|| html_to_text(&marked)) {
        Some(text) => resolve_soft_breaks(&text),
        None => normalize_newlines(html),
    }
}

/// A soft break becomes a line break unless the line is already empty; spaces at the start and
/// end of lines go, NBSP becomes a space, and runs of blank lines shrink to one.
fn resolve_soft_breaks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in normalize_newlines(text).chars() {
        match c {
            SOFT_BREAK | '\n' => {
                let trimmed = out.trim_end_matches([' ', '\t']).len();
                out.truncate(trimmed);
                if c == '\n' || (!out.is_empty() && !out.ends_with('\n')) {
                    out.push('\n');
                }
            }
            ' ' | '\t' | '\u{a0}' if out.is_empty() || out.ends_with('\n') => {}
            '\u{a0}' => out.push(' '),
            c => out.push(c),
        }
    }
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out.trim().to_owned()
}
