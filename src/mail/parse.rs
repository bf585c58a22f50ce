//! Parses one untrusted raw message (RFC 5322 + MIME) into what the gateway needs: addresses,
//! threading ids, decoded subject and body, attachments, loop markers and delivery status
//! notifications.
//!
//! Pure and total: no I/O, and no input can make it panic — the poller feeds it whatever the
//! internet sends, and a panic there would stop every mailbox. Best effort on broken mail
//! (mail-parser recovers what it can; a missing field is `None`/empty, never an error). It does
//! not decide what a message is (ticket, follow-up, bounce, PEC): that is the classifier's job.
//! The raw bytes stay the record; nothing here is meant to reconstruct them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{
    Addr, Encoding, Header, HeaderName, HeaderValue, Message, MessageParser, MessagePart,
    MimeHeaders, PartType,
};
use regex::{Captures, Regex};

use super::autoreply::{self, AutoReason};
use super::prescan;
use crate::domain::EmailAddress;

/// mail-parser stores offsets as `u32`: past 4 GiB they wrap silently, so refuse instead.
pub const MAX_PARSE_BYTES: usize = u32::MAX as usize;

/// Longest attachment file name kept, in bytes (ext4 and most file systems stop at 255).
const MAX_FILENAME_BYTES: usize = 200;

/// Longest `Diagnostic-Code` kept from a DSN, in characters: it ends up in logs and the timeline.
const MAX_DIAGNOSTIC_CHARS: usize = 1000;

/// A private-use character marking an HTML block boundary while mail-parser's `html_to_text`
/// runs; resolved into at most one line break afterwards.
const SOFT_BREAK: char = '\u{E000}';

/// One address from a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name, decoded (RFC 2047), control characters removed; `None` when absent.
    pub name: Option<String>,
    /// The address, trimmed and lowercased: always one valid [`EmailAddress`] (headers whose
    /// address is not one are skipped when parsing).
    pub address: String,
}

/// A MIME part that is not the text or HTML body: a real attachment, an inline image, a
/// returned or forwarded message (`message/rfc822`, whose `bytes` are that message's raw bytes,
/// so it can be fed back to [`parse`] — PEC's `postacert.eml` arrives this way).
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Safe to use as a file name: no path separators, no control or bidi-override characters,
    /// no leading dots; `allegato-N` (plus an extension for well-known types) when the sender
    /// gave none. N counts attachments from 1.
    pub filename: String,
    /// `type/subtype`, lowercased, restricted to RFC 6838 name characters. A part whose transfer
    /// encoding could not be decoded is `application/octet-stream` (the bytes are the undecoded
    /// text), unless it was text.
    pub content_type: String,
    /// The decoded content. Text parts come out of mail-parser already converted to UTF-8.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Attachment {
    // The bytes can be megabytes: show their size, not their content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A delivery status notification (RFC 3464): the report of a message that could not be
/// delivered (or was delayed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// Message-ID (without `<>`) of the returned message, read from its `message/rfc822` or
    /// `text/rfc822-headers` part. `None` if the MTA returned neither.
    pub original_message_id: Option<String>,
    /// Recipients whose `Action` is `failed` (or, without an `Action`, whose `Status` is 5.x.x),
    /// from `Final-Recipient` (else `Original-Recipient`), lowercased, without the address type.
    pub failed_recipients: Vec<String>,
    /// `Status` (e.g. `5.1.1`) of the first failed recipient, else of the first recipient.
    pub status: Option<String>,
    /// `Diagnostic-Code` of that same recipient, without its type (`smtp;`), unfolded.
    pub diagnostic: Option<String>,
}

/// What the gateway needs from one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMail {
    /// The first `Message-ID`, without angle brackets, trimmed. `None` when missing.
    pub message_id: Option<String>,
    /// Ids of `In-Reply-To`, without `<>`, in order, duplicates removed.
    pub in_reply_to: Vec<String>,
    /// Ids of `References`, without `<>`, in order, duplicates removed.
    pub references: Vec<String>,
    /// The first address of the first `From`.
    pub from: Option<Mailbox>,
    /// The first address of the first `Reply-To`.
    pub reply_to: Option<Mailbox>,
    /// Every address of every `To` (groups flattened), duplicates removed.
    pub to: Vec<Mailbox>,
    /// Every address of every `Cc` (groups flattened), duplicates removed.
    pub cc: Vec<Mailbox>,
    /// Envelope recipients stamped by the delivering MTA: the `X-Original-To` values, then the
    /// `Delivered-To` values, lowercased, duplicates removed. Not reliable on their own (Dovecot
    /// omits `Delivered-To` for multi-recipient LMTP deliveries): route by To/Cc first.
    pub original_recipients: Vec<String>,
    /// The topmost `Return-Path` (written by the final delivery agent), lowercased, without
    /// `<>`; `Some("")` for the null sender `<>`.
    pub return_path: Option<String>,
    /// The first `Subject`, decoded (RFC 2047), control characters turned into spaces, trimmed;
    /// `""` if none.
    pub subject: String,
    /// The first `Date` as Unix milliseconds, when it parses to a valid date.
    pub date_millis: Option<i64>,
    /// The text body with `\n` line ends; HTML-only mail converted to readable text; several
    /// inline text parts joined with a line break.
    pub text: String,
    /// The first HTML body part as sent (with `\n` line ends), if there is one.
    pub html: Option<String>,
    /// Real attachments and inline images, in MIME order; never the text/HTML body parts.
    pub attachments: Vec<Attachment>,
    /// Why this message must not be answered automatically (RFC 3834), if it must not.
    pub auto: Option<AutoReason>,
    /// Set for `multipart/report; report-type=delivery-status` (RFC 3464, RFC 6533).
    pub dsn: Option<Dsn>,
    /// What the citizen's page may show of `html`: `None` from [`parse`]; the inbound pipeline
    /// fills it off the async threads (sanitising costs CPU), before the message is stored.
    pub shown_html: Option<super::html::ShownHtml>,
}

/// Why some bytes could not be read as a message at all. Anything short of these parses,
/// possibly with empty fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No bytes, or only whitespace.
    #[error("the message is empty")]
    Empty,
    /// mail-parser found no header field with a valid name (RFC 5322 §3.6.8).
    #[error("the bytes are not an email message: no header field found")]
    NotAMessage,
    /// mail-parser panicked on this input. It promises not to, but 0.11.9 does in builds with
    /// overflow checks (debug, tests) on a quoted-printable part that starts with a soft line
    /// break right before its boundary. Caught so one message is quarantined instead of the
    /// poller dying.
    #[error("the mail parser failed on this message (a parser bug): keep it for inspection")]
    ParserPanicked,
    /// MIME parts nest deeper than [`prescan::MAX_NESTING_LEVELS`]: refused before mail-parser
    /// sees the bytes, because dropping a deep parsed tree overflows the stack and aborts the
    /// process (see [`prescan`]).
    #[error(
        "the message nests MIME parts (multipart and message/rfc822) more than {max} levels \
         deep: refused unparsed, as such nesting can crash the parser"
    )]
    TooDeep {
        /// [`prescan::MAX_NESTING_LEVELS`].
        max: usize,
    },
    /// Larger than mail-parser can address.
    #[error("the message is {bytes} bytes, more than the {max} bytes the parser can address")]
    TooLarge {
        /// Size of the input.
        bytes: usize,
        /// [`MAX_PARSE_BYTES`].
        max: usize,
    },
}

/// Parses one raw message. Never panics; see [`ParseError`] for the only failures.
pub fn parse(raw: &[u8]) -> Result<InboundMail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    if raw.len() > MAX_PARSE_BYTES {
        return Err(ParseError::TooLarge {
            bytes: raw.len(),
            max: MAX_PARSE_BYTES,
        });
    }
    prescan::check(raw).map_err(|e| ParseError::TooDeep { max: e.max })?;
    let prepared = transcode_8bit_header_lines(raw);
    let message = guarded(|| MessageParser::default().parse(prepared.as_ref()))
        .ok_or(ParseError::ParserPanicked)?
        .ok_or(ParseError::NotAMessage)?;
    let headers = top_headers(&message);
    if !headers.iter().any(|h| is_field_name(h.name())) {
        return Err(ParseError::NotAMessage);
    }

    Ok(InboundMail {
        message_id: first_id(headers),
        in_reply_to: ids(headers, &HeaderName::InReplyTo),
        references: ids(headers, &HeaderName::References),
        from: first_mailbox(headers, &HeaderName::From),
        reply_to: first_mailbox(headers, &HeaderName::ReplyTo),
        to: mailboxes(headers, &HeaderName::To),
        cc: mailboxes(headers, &HeaderName::Cc),
        original_recipients: original_recipients(headers),
        return_path: return_path(headers),
        subject: subject(headers),
        date_millis: date_millis(headers),
        text: body_text(&message),
        html: body_html(&message),
        attachments: attachments(&message),
        auto: autoreply::detect(&message),
        dsn: dsn(&message),
        shown_html: None,
    })
}

/// Runs a mail-parser call, turning a panic into `None` (see [`ParseError::ParserPanicked`]).
/// Needs `panic = "unwind"` (the default); the panic is still reported by the panic hook.
fn guarded<T>(call: impl FnOnce() -> T) -> Option<T> {
    // Nothing created inside the call outlives it, so no broken invariant can be observed.
    catch_unwind(AssertUnwindSafe(call)).ok()
}

// ---------------------------------------------------------------------------------------------
// Raw 8-bit headers
// ---------------------------------------------------------------------------------------------

/// Makes the top-level header block safe for mail-parser, without touching the body:
///
/// - Headers must be ASCII (RFC 5322) or UTF-8 (RFC 6532), but old clients still send raw
///   Latin-1 (`Nicolò` as byte 0xF2). mail-parser would turn those bytes into U+FFFD, so every
///   header line that is not valid UTF-8 is re-decoded as windows-1252 (the superset of Latin-1
///   that such clients actually use). Valid UTF-8 lines are left alone.
/// - Header lines ending in a bare LF (mail handed over by an MTA's pipe) get CRLF. mail-parser
///   0.11 lets a `Date` field that does not parse (`Date: x =?utf-8?b?`) swallow the NEXT
///   field when lines end in LF but not with CRLF (found by the `mime_parse` fuzz target), so a
///   pipe-delivered mail could hide its own `From` or `Message-ID` and parse differently from
///   the same mail fetched over IMAP.
///
/// Borrows when nothing needs fixing.
fn transcode_8bit_header_lines(raw: &[u8]) -> Cow<'_, [u8]> {
    let end = header_block_end(raw);
    let (header, body) = raw.split_at(end);
    let valid_utf8 = std::str::from_utf8(header).is_ok();
    let bare_lf = header
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || header.get(i - 1) != Some(&b'\r')));
    if valid_utf8 && !bare_lf {
        return Cow::Borrowed(raw);
    }
    let decode = charset_decoder(b"windows-1252");
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8);
    for line in header.split_inclusive(|b| *b == b'\n') {
        let line: Cow<'_, [u8]> = if std::str::from_utf8(line).is_ok() {
            Cow::Borrowed(line)
        } else {
            Cow::Owned(match decode {
                Some(decode) => decode(line).into_bytes(),
                None => String::from_utf8_lossy(line).into_owned().into_bytes(),
            })
        };
        match line.strip_suffix(b"\n") {
            Some(content) if !content.ends_with(b"\r") => {
                out.extend_from_slice(content);
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(&line),
        }
    }
    out.extend_from_slice(body);
    Cow::Owned(out)
}

/// Offset just past the first empty line (LF or CRLF), or the whole input when there is none.
fn header_block_end(raw: &[u8]) -> usize {
    let mut offset = 0;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        offset += line.len();
        if line == b"\n" || line == b"\r\n" {
            return offset;
        }
    }
    raw.len()
}

/// RFC 5322 §3.6.8: a field name is one or more printable ASCII characters other than `:`.
/// mail-parser turns any line of text into a header named after the whole line, so this is
/// what separates a message from arbitrary text.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

// ---------------------------------------------------------------------------------------------
// Header fields
// ---------------------------------------------------------------------------------------------

/// The top-level header. `Message::headers()` indexes `parts[0]`; `first()` cannot panic.
fn top_headers<'a, 'x>(message: &'a Message<'x>) -> &'a [Header<'x>] {
    message.parts.first().map_or(&[], |p| p.headers.as_slice())
}

/// Values of every header called `name`, in order. mail-parser's own accessors return the
/// *last* occurrence; here the first one wins where only one is wanted.
fn values<'a, 'x>(
    headers: &'a [Header<'x>],
    name: &'a HeaderName<'_>,
) -> impl Iterator<Item = &'a HeaderValue<'x>> {
    headers
        .iter()
        .filter(move |h| h.name == *name)
        .map(|h| &h.value)
}

/// Text of every header whose (unregistered) name is `name`, ASCII case-insensitive.
fn other_texts<'a>(headers: &'a [Header<'_>], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .flat_map(|h| text_list(&h.value))
}

/// A text or text-list value as a slice of strings; anything else as nothing.
fn text_list<'a>(value: &'a HeaderValue<'_>) -> impl Iterator<Item = &'a str> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|t| t.as_ref())
}

/// A message id as stored: no `<>`, trimmed; `None` when empty or when it holds whitespace or
/// control characters (never part of a valid id, and dangerous in logs and headers).
fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && !id.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| id.to_owned())
}

fn first_id(headers: &[Header<'_>]) -> Option<String> {
    values(headers, &HeaderName::MessageId)
        .flat_map(text_list)
        .find_map(clean_id)
}

fn ids(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<String> {
    let found = values(headers, name)
        .flat_map(text_list)
        .filter_map(clean_id);
    unique_by(found, |id| id.clone())
}

/// Keeps the first item for each key, in order. A set rather than `Vec::contains`: a hostile
/// header can carry hundreds of thousands of addresses or ids, and quadratic time would stall
/// the poller.
fn unique_by<T>(items: impl IntoIterator<Item = T>, key: impl Fn(&T) -> String) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

fn addrs<'a, 'x>(value: &'a HeaderValue<'x>) -> impl Iterator<Item = &'a Addr<'x>> {
    value.as_address().into_iter().flat_map(|a| a.iter())
}

/// One address of a header, or `None` when it is not exactly one valid addr-spec: mail-parser
/// keeps `Reply-To: <a@x,b@y,…>` as ONE "address", and using that string as a recipient
/// once made the comune's server relay an acknowledgment to every address in it.
fn mailbox(addr: &Addr<'_>) -> Option<Mailbox> {
    let address = EmailAddress::parse(addr.address.as_deref()?).ok()?;
    let name = addr
        .name
        .as_deref()
        .map(|n| single_line(n).trim().to_owned())
        .filter(|n| !n.is_empty());
    Some(Mailbox {
        name,
        address: address.into_string(),
    })
}

/// The first address of the first such header, if it is one valid address: an unusable
/// first address is not replaced by a later one, which a sender could pick at will.
fn first_mailbox(headers: &[Header<'_>], name: &HeaderName<'_>) -> Option<Mailbox> {
    values(headers, name)
        .flat_map(addrs)
        .next()
        .and_then(mailbox)
}

fn mailboxes(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<Mailbox> {
    let found = values(headers, name).flat_map(addrs).filter_map(mailbox);
    unique_by(found, |m| m.address.clone())
}

/// An address from a trace field (`X-Original-To`, `Delivered-To`, `Return-Path`, DSN
/// recipients): no `<>`, lowercased; `None` when empty or holding whitespace/control characters.
fn trace_address(value: &str) -> Option<String> {
    let address = value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase();
    (!address.is_empty() && !address.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then_some(address)
}

fn original_recipients(headers: &[Header<'_>]) -> Vec<String> {
    let found = other_texts(headers, "x-original-to").chain(other_texts(headers, "delivered-to"));
    unique_by(found.filter_map(trace_address), |a| a.clone())
}

/// RFC 5321 §4.4: the final delivery agent prepends `Return-Path`, so the topmost one is the
/// envelope sender of this delivery.
fn return_path(headers: &[Header<'_>]) -> Option<String> {
    let value = values(headers, &HeaderName::ReturnPath).next()?;
    // mail-parser parses the field as a message id: `<>` comes out as `Empty`.
    Some(text_list(value).find_map(trace_address).unwrap_or_default())
}

fn subject(headers: &[Header<'_>]) -> String {
    values(headers, &HeaderName::Subject)
        .find_map(|v| v.as_text())
        .map(|s| single_line(s).trim().to_owned())
        .unwrap_or_default()
}

fn date_millis(headers: &[Header<'_>]) -> Option<i64> {
    let date = values(headers, &HeaderName::Date).find_map(|v| v.as_datetime())?;
    // mail-parser keeps out-of-range days/hours (e.g. day 0 or 99); its timestamp arithmetic
    // would silently roll them over, so only valid dates count.
    date.is_valid()
        .then(|| date.to_timestamp().checked_mul(1000))
        .flatten()
}

/// Control characters (CR, LF, TAB, NUL…) become spaces: these strings go into logs, the
/// database and, for subjects and names, into headers of mail we send.
fn single_line(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// mail-parser keeps the line ends of the wire (CRLF) or of the file (LF); the gateway wants LF.
fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Joins every text body part. mail-parser lists in `text_body` the text parts, the HTML part of
/// HTML-only mail, and inline images (which have no text and are skipped here; they are in
/// the attachments). When it found no body at all, an orphaned text part (see
/// [`orphan_body_part`]) is the body.
fn body_text(message: &Message<'_>) -> String {
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
fn decoded_text<'a>(part: &'a MessagePart<'_>) -> Option<Cow<'a, str>> {
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
fn recovered_bytes(part: &MessagePart<'_>) -> Option<Vec<u8>> {
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
fn orphan_body_id(message: &Message<'_>) -> Option<u32> {
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
fn body_html(message: &Message<'_>) -> Option<String> {
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
static BLOCK_TAG: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)<(/?)(address|article|aside|blockquote|dd|div|dl|dt|footer|h[1-6]|header|hr|li|ol|p|pre|section|table|td|th|tr|ul)\b[^>]*>",
    )
    .ok()
});

/// mail-parser's `html_to_text` breaks lines only at `<br>` and `</p>`, so the `<div>` per line
/// that Gmail, Outlook and Apple Mail write would run words together ("Buongiorno,c'è…").
/// Block boundaries are marked first and turned into single line breaks afterwards; table cells
/// are separated by a space.
fn html_to_readable_text(html: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------------------------

fn attachments(message: &Message<'_>) -> Vec<Attachment> {
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
        out.push(Attachment {
            filename,
            content_type,
            bytes,
        });
    }
    out
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
fn is_media_type(value: &str) -> bool {
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
fn sanitize_filename(name: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------------
// Delivery status notifications (RFC 3464)
// ---------------------------------------------------------------------------------------------

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

fn dsn(message: &Message<'_>) -> Option<Dsn> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../../tests/fixtures/", $name, ".eml")).as_slice(),
            )
        };
    }

    /// Every fixture, with a golden `tests/fixtures/<name>.json` next to it.
    const FIXTURES: &[(&str, &[u8])] = &[
        fixture!("plain-italian-report"),
        fixture!("iso-8859-1-quoted-printable"),
        fixture!("base64-utf8-italian"),
        fixture!("html-only"),
        fixture!("alternative-with-jpeg-photo"),
        fixture!("broken-mime-unterminated-boundary"),
        fixture!("broken-mime-bad-base64"),
        fixture!("missing-message-id"),
        fixture!("missing-date"),
        fixture!("raw-8bit-headers"),
        fixture!("auto-submitted-auto-replied"),
        fixture!("out-of-office-x-autoreply"),
        fixture!("precedence-bulk"),
        fixture!("list-id-newsletter"),
        fixture!("postfix-dsn-bounce"),
        fixture!("reply-to-differs-from-from"),
        fixture!("to-cc-two-areas"),
        fixture!("x-original-to-delivered-to"),
        fixture!("follow-up-with-references"),
        fixture!("forwarded-message-rfc822"),
    ];

    /// Set to regenerate the golden files from the LF variant (then review the diff).
    const UPDATE_GOLDEN: &str = "TICKETGATE_UPDATE_GOLDEN";

    fn raw(name: &str) -> &'static [u8] {
        FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| *bytes)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }

    fn to_lf(bytes: &[u8]) -> Vec<u8> {
        bytes.iter().copied().filter(|b| *b != b'\r').collect()
    }

    fn to_crlf(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
        let mut previous = 0u8;
        for &b in bytes {
            if b == b'\n' && previous != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            previous = b;
        }
        out
    }

    /// The LF variant of a fixture, parsed.
    fn mail(name: &str) -> InboundMail {
        parse(&to_lf(raw(name))).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn addresses(list: &[Mailbox]) -> Vec<&str> {
        list.iter().map(|m| m.address.as_str()).collect()
    }

    /// Text and message attachments carry the line ends of the input (text parts are decoded
    /// by mail-parser, nested messages are raw): compare them without CR.
    fn without_cr_in_text_attachments(mut mail: InboundMail) -> InboundMail {
        for attachment in &mut mail.attachments {
            if attachment.content_type.starts_with("text/")
                || attachment.content_type.starts_with("message/")
            {
                attachment.bytes = to_lf(&attachment.bytes);
            }
        }
        mail
    }

    fn golden(mail: &InboundMail) -> String {
        let mail = without_cr_in_text_attachments(mail.clone());
        let mailbox = |m: &Mailbox| serde_json::json!({ "name": m.name, "address": m.address });
        let value = serde_json::json!({
            "message_id": mail.message_id,
            "in_reply_to": mail.in_reply_to,
            "references": mail.references,
            "from": mail.from.as_ref().map(mailbox),
            "reply_to": mail.reply_to.as_ref().map(mailbox),
            "to": mail.to.iter().map(mailbox).collect::<Vec<_>>(),
            "cc": mail.cc.iter().map(mailbox).collect::<Vec<_>>(),
            "original_recipients": mail.original_recipients,
            "return_path": mail.return_path,
            "subject": mail.subject,
            "date_millis": mail.date_millis,
            "text": mail.text,
            "html": mail.html,
            "attachments": mail.attachments.iter().map(|a| serde_json::json!({
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.bytes.len(),
                "sha256": hex::encode(Sha256::digest(&a.bytes)),
            })).collect::<Vec<_>>(),
            "auto": mail.auto.as_ref().map(AutoReason::describe),
            "dsn": mail.dsn.as_ref().map(|d| serde_json::json!({
                "original_message_id": d.original_message_id,
                "failed_recipients": d.failed_recipients,
                "status": d.status,
                "diagnostic": d.diagnostic,
            })),
        });
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }

    // --- every fixture ---------------------------------------------------------------------

    #[test]
    fn every_fixture_gives_the_same_result_with_lf_and_crlf_line_ends() {
        for (name, bytes) in FIXTURES {
            let lf = parse(&to_lf(bytes)).unwrap_or_else(|e| panic!("{name} LF: {e}"));
            let crlf = parse(&to_crlf(bytes)).unwrap_or_else(|e| panic!("{name} CRLF: {e}"));
            assert_eq!(
                without_cr_in_text_attachments(lf),
                without_cr_in_text_attachments(crlf),
                "{name}"
            );
        }
    }

    #[test]
    fn every_fixture_matches_its_golden_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for (name, bytes) in FIXTURES {
            let path = dir.join(format!("{name}.json"));
            let lf = golden(&parse(&to_lf(bytes)).unwrap_or_else(|e| panic!("{name}: {e}")));
            if std::env::var_os(UPDATE_GOLDEN).is_some() {
                std::fs::write(&path, &lf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with {UPDATE_GOLDEN}=1 to create it)",
                    path.display()
                )
            });
            assert_eq!(lf, expected, "{name} (LF) differs from {}", path.display());
            let crlf = golden(&parse(&to_crlf(bytes)).unwrap_or_else(|e| panic!("{name}: {e}")));
            assert_eq!(
                crlf,
                expected,
                "{name} (CRLF) differs from {}",
                path.display()
            );
        }
    }

    // --- one fixture each ------------------------------------------------------------------

    #[test]
    fn plain_text_italian_report_keeps_accents_and_headers() {
        let mail = mail("plain-italian-report");
        assert_eq!(mail.subject, "Buca pericolosa in via Garibaldi");
        assert_eq!(
            mail.message_id.as_deref(),
            Some("c1a2b3c4-0001@example.test")
        );
        let from = mail
            .from
            .as_ref()
            .map(|m| (m.name.as_deref(), m.address.as_str()));
        assert_eq!(
            from,
            Some((Some("Mario Rossi"), "mario.rossi@example.test"))
        );
        assert_eq!(addresses(&mail.to), ["lavori-pubblici@comune.test"]);
        assert_eq!(mail.date_millis, Some(1_795_680_760_000));
        assert_eq!(
            mail.return_path.as_deref(),
            Some("mario.rossi@example.test")
        );
        assert!(mail
            .text
            .contains("davanti al civico 12, c'è una buca profonda più di\n"));
        assert!(mail
            .text
            .contains("è pericolosa per chi va in bicicletta e già ieri sera"));
        assert_eq!(mail.html, None);
        assert!(mail.attachments.is_empty());
        assert_eq!(mail.auto, None);
        assert_eq!(mail.dsn, None);
    }

    #[test]
    fn iso_8859_1_quoted_printable_body_is_decoded() {
        let mail = mail("iso-8859-1-quoted-printable");
        assert_eq!(mail.subject, "Lampione spento in piazza Libertà");
        assert_eq!(
            mail.from.and_then(|m| m.name).as_deref(),
            Some("Lucia Ferri")
        );
        // Soft line breaks (`=` at line end) are joined.
        assert!(mail.text.contains(
            "il lampione all'angolo di piazza Libertà è spento da una settimana e la sera\n"
        ));
        assert!(mail.text.contains("Perché nessuno interviene? Lunedì ho"));
        assert!(mail
            .text
            .contains("però nessuno ha risposto. Più di così non posso fare."));
        // 0x80 is not Latin-1 but windows-1252's euro sign, which is what clients labelling
        // their text "iso-8859-1" really send (WHATWG maps the label the same way).
        assert!(mail.text.contains("Pago 1.200 € di tasse comunali"));
        assert!(!mail.text.contains('\u{fffd}'));
    }

    #[test]
    fn base64_utf8_body_and_b_encoded_subject_are_decoded() {
        let mail = mail("base64-utf8-italian");
        assert_eq!(mail.subject, "Rifiuti abbandonati: è ora di intervenire");
        assert_eq!(mail.date_millis, Some(1_795_509_000_000));
        assert!(mail.text.contains("da lunedì in via dei Mille"));
        assert!(mail
            .text
            .contains("Perché nessuno li ritira? Così la strada è sporca e però la"));
        assert!(mail
            .text
            .contains("circa 300 €, non può\nricadere sui residenti più vicini."));
    }

    #[test]
    fn html_only_mail_gets_readable_text_and_keeps_the_html() {
        let mail = mail("html-only");
        assert_eq!(
            mail.text,
            "Buongiorno,\n\nl'albero di via Verdi è caduto sul marciapiede e blocca il passaggio.\n\
             Perché nessuno l'ha ancora rimosso? La Città è ferma.\n\nGiulia Neri"
        );
        let html = mail.html.unwrap_or_default();
        assert!(html.contains("<div dir=\"ltr\">Buongiorno,<div><br></div>"));
        assert!(mail.attachments.is_empty());
    }

    #[test]
    fn multipart_alternative_prefers_the_text_part_and_lists_the_jpeg_photo() {
        let mail = mail("alternative-with-jpeg-photo");
        assert_eq!(
            mail.text,
            "Buongiorno,\n\nallego la foto della buca in via Roma: è larga quasi un metro.\n\nAnna\n"
        );
        assert!(mail
            .html
            .unwrap_or_default()
            .contains("<p>allego la foto della buca"));
        assert_eq!(mail.attachments.len(), 1);
        let photo = &mail.attachments[0];
        // RFC 2231 `filename*=UTF-8''…` wins over the Content-Type `name`.
        assert_eq!(photo.filename, "buca via Roma città.jpg");
        assert_eq!(photo.content_type, "image/jpeg");
        assert_eq!(photo.bytes.len(), 59);
        assert!(photo.bytes.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(photo.bytes.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn unterminated_boundary_still_yields_text_and_attachment() {
        let mail = mail("broken-mime-unterminated-boundary");
        assert!(mail
            .text
            .contains("Il marciapiede di corso Italia è rotto da mesi."));
        assert_eq!(mail.attachments.len(), 1);
        let pdf = &mail.attachments[0];
        assert_eq!(pdf.filename, "esposto.pdf");
        assert_eq!(pdf.content_type, "application/pdf");
        assert!(pdf.bytes.starts_with(b"%PDF-1.4"));
    }

    #[test]
    fn bad_base64_attachment_is_kept_undecoded_as_octet_stream() {
        let mail = mail("broken-mime-bad-base64");
        // Missing `=` padding is tolerated.
        assert!(mail
            .text
            .contains("C'è uno scarico abusivo nel torrente vicino al ponte."));
        assert_eq!(mail.attachments.len(), 1);
        let image = &mail.attachments[0];
        assert_eq!(image.filename, "scarico.png");
        assert_eq!(image.content_type, "application/octet-stream");
        assert!(image.bytes.starts_with(b"iVBORw0KGgo!!!"));
    }

    #[test]
    fn missing_message_id_is_none() {
        let mail = mail("missing-message-id");
        assert_eq!(mail.message_id, None);
        assert_eq!(mail.subject, "Semaforo guasto");
        assert!(mail.text.contains("via Manzoni è guasto"));
    }

    #[test]
    fn missing_date_is_none() {
        let mail = mail("missing-date");
        assert_eq!(mail.date_millis, None);
        assert_eq!(
            mail.message_id.as_deref(),
            Some("missing-date-0001@example.test")
        );
    }

    #[test]
    fn raw_8bit_headers_are_read_as_utf8_or_latin1() {
        let mail = mail("raw-8bit-headers");
        // Raw UTF-8 (RFC 6532) in Subject…
        assert_eq!(mail.subject, "Segnalazione: c'è un albero caduto in via Po");
        // …and raw Latin-1 in the From display name, on another line of the same header.
        let from = mail.from.unwrap_or_else(|| panic!("no From"));
        assert_eq!(from.name.as_deref(), Some("Nicolò Bianchi"));
        assert_eq!(from.address, "nicolo.bianchi@example.test");
        assert!(mail.text.contains("Un albero è caduto in via Po"));
    }

    #[test]
    fn auto_submitted_auto_replied_is_flagged() {
        let mail = mail("auto-submitted-auto-replied");
        assert_eq!(
            mail.auto,
            Some(AutoReason::AutoSubmitted("auto-replied".into()))
        );
        assert_eq!(mail.in_reply_to, ["t2026-000001.m1.abcdef@comune.test"]);
    }

    #[test]
    fn out_of_office_with_x_autoreply_is_flagged() {
        assert_eq!(
            mail("out-of-office-x-autoreply").auto,
            Some(AutoReason::XAutoreply)
        );
    }

    #[test]
    fn precedence_bulk_is_flagged() {
        assert_eq!(
            mail("precedence-bulk").auto,
            Some(AutoReason::Precedence("bulk".into()))
        );
    }

    #[test]
    fn list_id_newsletter_is_flagged() {
        assert_eq!(mail("list-id-newsletter").auto, Some(AutoReason::ListId));
    }

    #[test]
    fn postfix_dsn_gives_the_original_message_id_and_failed_recipient() {
        let mail = mail("postfix-dsn-bounce");
        assert_eq!(mail.auto, Some(AutoReason::Dsn));
        assert_eq!(mail.return_path.as_deref(), Some(""));
        assert_eq!(mail.subject, "Undelivered Mail Returned to Sender");
        assert_eq!(mail.date_millis, Some(1_795_684_503_000));
        let dsn = mail.dsn.unwrap_or_else(|| panic!("no DSN"));
        assert_eq!(
            dsn.original_message_id.as_deref(),
            Some("t2026-000001.m1.abcdef@comune.test")
        );
        assert_eq!(dsn.failed_recipients, ["mario.rossi@example.test"]);
        assert_eq!(dsn.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            dsn.diagnostic.as_deref(),
            Some(
                "550 5.1.1 <mario.rossi@example.test>: Recipient address rejected: \
                 User unknown in virtual mailbox table"
            )
        );
        assert!(mail
            .text
            .contains("This is the mail system at host mail.comune.test."));
        let types: Vec<&str> = mail
            .attachments
            .iter()
            .map(|a| a.content_type.as_str())
            .collect();
        assert_eq!(types, ["message/delivery-status", "text/rfc822-headers"]);
    }

    #[test]
    fn a_reply_to_holding_a_list_of_addresses_is_not_an_address() {
        let raw = b"From: Dear friend <spam@attacker.test>\r\n\
            Reply-To: <a@x.test,b@y.test,c@z.test>\r\n\
            To: lavori-pubblici@comune.test, <d@x.test;e@y.test>\r\n\
            Subject: claim your refund\r\n\r\nbody\r\n";
        let mail = parse(raw).unwrap();
        assert_eq!(mail.reply_to, None);
        assert_eq!(
            mail.from.map(|m| m.address).as_deref(),
            Some("spam@attacker.test")
        );
        assert_eq!(addresses(&mail.to), ["lavori-pubblici@comune.test"]);
        let raw = b"From: <a@x.test,b@y.test>, anna@citizen.test\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(
            parse(raw).unwrap().from,
            None,
            "a later From address is not promoted"
        );
    }

    #[test]
    fn reply_to_different_from_from_is_kept_apart() {
        let mail = mail("reply-to-differs-from-from");
        assert_eq!(
            mail.from.map(|m| m.address).as_deref(),
            Some("segreteria@studio-bianchi.example.test")
        );
        assert_eq!(
            mail.reply_to,
            Some(Mailbox {
                name: Some("Bianchi, Anna".into()),
                address: "anna.bianchi@example.test".into(),
            })
        );
    }

    #[test]
    fn to_and_cc_list_both_area_addresses() {
        let mail = mail("to-cc-two-areas");
        assert_eq!(addresses(&mail.to), ["lavori-pubblici@comune.test"]);
        assert_eq!(
            addresses(&mail.cc),
            ["ambiente@comune.test", "vicino.di.casa@example.test"]
        );
        assert_eq!(mail.cc[0].name.as_deref(), Some("Ufficio Ambiente"));
        assert_eq!(mail.cc[1].name, None);
    }

    #[test]
    fn x_original_to_and_delivered_to_are_collected_in_order() {
        let mail = mail("x-original-to-delivered-to");
        assert_eq!(
            mail.original_recipients,
            ["lavori-pubblici@comune.test", "ticketgate@comune.test"]
        );
        assert_eq!(addresses(&mail.to), ["uffici@comune.test"]);
    }

    #[test]
    fn follow_up_references_are_ids_without_brackets() {
        let mail = mail("follow-up-with-references");
        assert_eq!(mail.in_reply_to, ["t2026-000001.m1.abcdef@comune.test"]);
        assert_eq!(
            mail.references,
            [
                "c1a2b3c4-0001@example.test",
                "t2026-000001.m1.abcdef@comune.test"
            ]
        );
        assert!(mail
            .text
            .contains("> Abbiamo ricevuto la sua segnalazione."));
    }

    #[test]
    fn forwarded_message_attachment_is_the_raw_nested_message() {
        let mail = mail("forwarded-message-rfc822");
        assert!(mail.text.contains("la situazione è la stessa"));
        assert!(!mail.text.contains("scavo aperto"));
        assert_eq!(mail.attachments.len(), 1);
        let forwarded = &mail.attachments[0];
        assert_eq!(forwarded.filename, "Lavori in via Garibaldi.eml");
        assert_eq!(forwarded.content_type, "message/rfc822");
        assert!(forwarded
            .bytes
            .starts_with(b"From: Vicino <vicino@example.test>\n"));
        assert!(!forwarded.bytes.windows(5).any(|w| w == b"--fwd"));
        let nested = parse(&forwarded.bytes).unwrap_or_else(|e| panic!("nested: {e}"));
        assert_eq!(nested.subject, "Lavori in via Garibaldi");
        assert_eq!(
            nested.message_id.as_deref(),
            Some("vicino-0001@example.test")
        );
        assert!(nested.text.contains("c'è ancora lo scavo aperto"));
    }

    // --- edge cases without a fixture ------------------------------------------------------

    #[test]
    fn empty_or_blank_input_is_empty() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b" \r\n\t\n"), Err(ParseError::Empty));
    }

    #[test]
    fn text_without_header_fields_is_not_a_message() {
        assert_eq!(parse(b"hello world"), Err(ParseError::NotAMessage));
        assert_eq!(
            parse(b"just some text\nand more text\n"),
            Err(ParseError::NotAMessage)
        );
        assert_eq!(
            parse(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Err(ParseError::NotAMessage)
        );
    }

    #[test]
    fn a_message_with_headers_and_no_body_parses() {
        let mail = parse(b"From: a@example.test\nSubject: solo oggetto\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.subject, "solo oggetto");
        assert_eq!(mail.text, "");
    }

    #[test]
    fn encoded_line_breaks_in_subject_and_names_become_spaces() {
        let raw = b"From: =?UTF-8?Q?Mario=0D=0ABcc:_x@evil.test?= <m@example.test>\n\
                    Subject: =?UTF-8?Q?riga_uno=0D=0ABcc:_x@evil.test?=\n\n.\n";
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        assert!(!mail.subject.contains(['\r', '\n']), "{:?}", mail.subject);
        assert!(mail.subject.starts_with("riga uno"));
        let name = mail.from.and_then(|m| m.name).unwrap_or_default();
        assert!(!name.contains(['\r', '\n']), "{name:?}");
    }

    #[test]
    fn only_the_first_of_several_message_ids_counts() {
        let mail = parse(
            b"Message-ID: <a@example.test> <b@example.test>\nMessage-ID: <c@example.test>\n\n.\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.message_id.as_deref(), Some("a@example.test"));
    }

    #[test]
    fn an_impossible_date_is_none() {
        let mail = parse(b"From: a@example.test\nDate: Thu, 00 Nov 2026 25:61:00 +0100\n\n.\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.date_millis, None);
    }

    #[test]
    fn groups_are_flattened_and_undisclosed_recipients_skipped() {
        let mail = parse(
            b"From: a@example.test\nTo: undisclosed-recipients:;\nCc: Uffici: lavori-pubblici@comune.test, ambiente@comune.test;\n\n.\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(mail.to.is_empty());
        assert_eq!(
            addresses(&mail.cc),
            ["lavori-pubblici@comune.test", "ambiente@comune.test"]
        );
    }

    #[test]
    fn a_delay_report_has_no_failed_recipient() {
        let raw = b"Return-Path: <>\nFrom: MAILER-DAEMON@example.test\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nDelayed.\n\
            --b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.test\n\n\
            Final-Recipient: rfc822; x@example.test\nAction: delayed\nStatus: 4.4.1\n\n--b--\n";
        let dsn = parse(raw)
            .unwrap_or_else(|e| panic!("{e}"))
            .dsn
            .unwrap_or_else(|| panic!("no DSN"));
        assert!(dsn.failed_recipients.is_empty());
        assert_eq!(dsn.status.as_deref(), Some("4.4.1"));
        assert_eq!(dsn.original_message_id, None);
    }

    #[test]
    fn a_dsn_returning_the_full_message_gives_its_message_id() {
        let raw = b"Return-Path: <>\nFrom: postmaster@example.test\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nFailed.\n\
            --b\nContent-Type: message/delivery-status\n\n\
            Original-Recipient: rfc822;<X@Example.test>\nStatus: 5.2.2\n\n\
            --b\nContent-Type: message/rfc822\n\nMessage-ID: <t2026-000002.m3.k@comune.test>\nSubject: x\n\ncorpo\n--b--\n";
        let dsn = parse(raw)
            .unwrap_or_else(|e| panic!("{e}"))
            .dsn
            .unwrap_or_else(|| panic!("no DSN"));
        assert_eq!(
            dsn.original_message_id.as_deref(),
            Some("t2026-000002.m3.k@comune.test")
        );
        // No Action field: a 5.x.x status is a failure.
        assert_eq!(dsn.failed_recipients, ["x@example.test"]);
    }

    #[test]
    fn returned_headers_ending_without_newline_still_give_the_message_id() {
        // The boundary is never closed and the part ends at end-of-input.
        let raw = b"From: MAILER-DAEMON@example.test\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
            --b\nContent-Type: text/rfc822-headers\n\nSubject: x\nMessage-ID: <t2026-000003.m1.k@comune.test>";
        let dsn = parse(raw)
            .unwrap_or_else(|e| panic!("{e}"))
            .dsn
            .unwrap_or_else(|| panic!("no DSN"));
        assert_eq!(
            dsn.original_message_id.as_deref(),
            Some("t2026-000003.m1.k@comune.test")
        );
    }

    #[test]
    fn a_read_receipt_is_automatic_but_not_a_dsn() {
        let raw = b"From: a@example.test\n\
            Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nLetto.\n\
            --b\nContent-Type: message/disposition-notification\n\nDisposition: manual-action/MDN-sent-manually; displayed\n\n--b--\n";
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.auto, Some(AutoReason::Dsn));
        assert_eq!(mail.dsn, None);
    }

    #[test]
    fn deeply_nested_multiparts_are_refused_before_parsing() {
        let mut raw = b"From: a@example.test\n".to_vec();
        for depth in 0..2000 {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"b{depth}\"\n\n--b{depth}\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"Content-Type: text/plain\n\nfondo\n");
        assert!(matches!(parse(&raw), Err(ParseError::TooDeep { .. })));
    }

    #[test]
    fn the_last_part_of_an_unclosed_multipart_is_decoded_and_is_the_body() {
        let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
            --b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
            w4ggY2FkdXRvIHVuIGFsYmVyby4K\n";
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.text, "\u{c8} caduto un albero.\n");
        assert!(mail.attachments.is_empty(), "{:?}", mail.attachments);
    }

    #[test]
    fn an_unclosed_quoted_printable_html_body_is_decoded_into_html_and_text() {
        let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
            --b\nContent-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
            <div>Citt=E0</div><div>pi=F9 pulita</div>\n";
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.text, "Citt\u{e0}\npi\u{f9} pulita");
        assert_eq!(
            mail.html.as_deref(),
            Some("<div>Citt\u{e0}</div><div>pi\u{f9} pulita</div>\n")
        );
        assert!(mail.attachments.is_empty());
    }

    #[test]
    fn a_quoted_printable_soft_break_before_the_boundary_does_not_panic() {
        // mail-parser 0.11.9 subtracts past zero here (a panic with overflow checks on).
        let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
            --b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=\n--b--\n";
        // Cargo.toml turns overflow checks off for mail-parser in every profile, so debug
        // builds wrap like release ones and the message parses.
        let result = parse(raw);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn a_broken_date_hides_no_header_field_with_lf_line_ends() {
        // Found by the mime_parse fuzz target: with bare LF, mail-parser let an unparseable
        // Date swallow the next field (here From and Message-ID), not with CRLF.
        for date in ["x =?utf-8?b?", "Thu, 26 Nov 2026 06:00:00 +00A0"] {
            let lf = format!(
                "Date: {date}\nFrom: Anna <anna@example.it>\nMessage-ID: <m1@example.it>\n\
                 Subject: buca\n\ntesto\n"
            );
            let from_lf = parse(lf.as_bytes()).expect("parses");
            let from_crlf = parse(to_crlf(lf.as_bytes()).as_slice()).expect("parses");
            assert_eq!(
                from_lf.from.as_ref().map(|m| m.address.as_str()),
                Some("anna@example.it"),
                "{date}"
            );
            assert_eq!(
                from_lf.message_id.as_deref(),
                Some("m1@example.it"),
                "{date}"
            );
            assert_eq!(from_lf.from, from_crlf.from);
            assert_eq!(from_lf.message_id, from_crlf.message_id);
            assert_eq!(from_lf.text, from_crlf.text);
        }
    }

    #[test]
    fn a_huge_recipient_list_is_handled_in_linear_time() {
        let mut raw = b"From: a@example.test\nTo: ".to_vec();
        for i in 0..100_000 {
            raw.extend_from_slice(format!("u{i}@example.test, ").as_bytes());
        }
        raw.extend_from_slice(b"u0@example.test\nReferences:");
        for i in 0..50_000 {
            raw.extend_from_slice(format!(" <{i}@example.test>").as_bytes());
        }
        raw.extend_from_slice(b"\n\n.\n");
        let started = std::time::Instant::now();
        let mail = parse(&raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mail.to.len(), 100_000);
        assert_eq!(mail.references.len(), 50_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn file_names_are_sanitised() {
        assert_eq!(
            sanitize_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            sanitize_filename("C:\\Users\\a\\foto.jpg").as_deref(),
            Some("foto.jpg")
        );
        assert_eq!(
            sanitize_filename("fattura\u{202e}gpj.exe").as_deref(),
            Some("fatturagpj.exe")
        );
        assert_eq!(
            sanitize_filename("a\r\nb\0c.pdf").as_deref(),
            Some("abc.pdf")
        );
        assert_eq!(sanitize_filename(" .bashrc ").as_deref(), Some("bashrc"));
        assert_eq!(
            sanitize_filename("che? \"no\" <sì>|*.txt").as_deref(),
            Some("che_ _no_ _sì___.txt")
        );
        assert_eq!(sanitize_filename(".."), None);
        assert_eq!(sanitize_filename("dir/"), None);
        let long = format!("{}.jpeg", "è".repeat(300));
        let capped = sanitize_filename(&long).unwrap_or_default();
        assert!(capped.len() <= MAX_FILENAME_BYTES, "{}", capped.len());
        assert!(capped.ends_with("è.jpeg"));
    }

    #[test]
    fn an_attachment_without_a_name_gets_a_numbered_italian_one() {
        let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nciao\n\
            --b\nContent-Type: application/pdf\nContent-Disposition: attachment\n\n%PDF-1.4\n\
            --b\nContent-Type: application/x-weird; name=\"../\"\nContent-Disposition: attachment\n\nxx\n--b--\n";
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = mail
            .attachments
            .iter()
            .map(|a| a.filename.as_str())
            .collect();
        assert_eq!(names, ["allegato-1.pdf", "allegato-2"]);
    }

    #[test]
    fn a_malformed_content_type_becomes_octet_stream() {
        let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nciao\n\
            --b\nContent-Type: image/j\"peg\r; name=x.jpg\nContent-Disposition: attachment\n\nxx\n--b--\n";
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            mail.attachments
                .iter()
                .all(|a| is_media_type(&a.content_type)),
            "{:?}",
            mail.attachments
        );
    }

    #[test]
    fn block_tags_become_single_line_breaks() {
        assert_eq!(
            html_to_readable_text("<div>uno</div><div>due</div><div><br></div><div>tre</div>"),
            "uno\ndue\n\ntre"
        );
        assert_eq!(
            html_to_readable_text("Buongiorno,<div>c'&egrave; una buca</div>"),
            "Buongiorno,\nc'è una buca"
        );
        assert_eq!(
            html_to_readable_text("<table><tr><td>Via</td><td>Roma</td></tr></table>"),
            "Via Roma"
        );
        assert_eq!(html_to_readable_text("<p>a</p>\n\n\n<p>b</p>"), "a\nb");
    }

    #[test]
    fn the_block_tag_pattern_compiles() {
        assert!(BLOCK_TAG.is_some());
    }

    #[test]
    fn windows_1252_decoder_is_available_for_raw_headers() {
        let decode = charset_decoder(b"windows-1252").unwrap_or_else(|| panic!("missing"));
        assert_eq!(decode(b"Nicol\xf2 \x80"), "Nicolò €");
    }

    // --- never panics ----------------------------------------------------------------------

    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(prop::sample::Index),
        Flip(prop::sample::Index, u8),
        Insert(prop::sample::Index, Vec<u8>),
        Remove(prop::sample::Index, usize),
    }

    /// Bytes that steer mail-parser into its MIME, encoding and header paths.
    fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 1..24),
            prop::sample::select(vec![
                &b"\r\n"[..],
                b"\n\n",
                b"\n--",
                b"--\n",
                b"\n--b\n",
                b"=?utf-8?b?",
                b"=?iso-8859-1?q?=E0",
                b"?=",
                b"=\n",
                b"=\n--b--\n",
                b"\n--==mixed==\n",
                b"=C3",
                b"<",
                b">",
                b"\"",
                b";",
                b":",
                b"\xff\xfe\xc3",
                b"Content-Type: multipart/mixed; boundary=\"b\"\n",
                b"Content-Type: message/rfc822\n\n",
                b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
                b"Content-Transfer-Encoding: base64\n",
                b"Content-Transfer-Encoding: quoted-printable\n",
                b"Content-Disposition: attachment; filename*=UTF-8''%E0%80\n",
            ])
            .prop_map(<[u8]>::to_vec),
        ]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            any::<prop::sample::Index>().prop_map(Mutation::Truncate),
            (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
            (any::<prop::sample::Index>(), interesting_bytes())
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<prop::sample::Index>(), 1..64usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
        let len = bytes.len();
        match mutation {
            Mutation::Truncate(at) if len > 0 => bytes.truncate(at.index(len)),
            Mutation::Flip(at, mask) if len > 0 => bytes[at.index(len)] ^= mask,
            Mutation::Insert(at, inserted) => {
                let at = if len > 0 { at.index(len + 1) } else { 0 };
                bytes.splice(at..at, inserted.iter().copied());
            }
            Mutation::Remove(at, n) if len > 0 => {
                let start = at.index(len);
                bytes.drain(start..(start + n).min(len));
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn header_like_text_never_panics(
            text in "(([A-Za-z-]{1,20}|Content-Type|Content-Transfer-Encoding|Return-Path|From|Message-ID|Date): [ -~\u{e0}\u{20ac}]{0,60}\r?\n){1,8}\r?\n[ -~\r\n]{0,400}"
        ) {
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn mutated_fixtures_never_panic(
            index in 0..FIXTURES.len(),
            crlf in any::<bool>(),
            mutations in prop::collection::vec(mutation(), 1..10),
        ) {
            let (_, original) = FIXTURES[index];
            let mut bytes = if crlf { to_crlf(original) } else { to_lf(original) };
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            let _ = parse(&bytes);
        }
    }
}
