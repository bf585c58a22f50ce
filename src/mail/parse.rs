//! Parses one untrusted raw message (RFC 5322 + MIME) into what the gateway needs: addresses,
//! threading ids, decoded subject and body, attachments, loop markers and delivery status
//! notifications.
//!
//! Pure and total: no I/O, and no input can make it panic — the poller feeds it whatever the
//! internet sends, and a panic there would stop every mailbox. Best effort on broken mail
//! (mail-parser recovers what it can; a missing field is `None`/empty, never an error). It does
//! not decide what a message is (ticket, follow-up, bounce, PEC): that is the classifier's job.
//! The raw bytes stay the record; nothing here is meant to reconstruct them.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{HeaderName, MessageParser};

use super::autoreply::{self, AutoReason};
use super::prescan;

mod attachments;
mod body;
mod dsn;
mod headers;
mod raw_header;
#[cfg(test)]
mod tests;

use attachments::attachments;
use body::{body_html, body_text};
use dsn::dsn;
use headers::{
    date_millis, first_id, first_mailbox, ids, mailboxes, original_recipients, return_path,
    subject, top_headers,
};
use raw_header::{is_field_name, transcode_8bit_header_lines};

/// mail-parser stores offsets as `u32`: past 4 GiB they wrap silently, so refuse instead.
pub const MAX_PARSE_BYTES: usize = u32::MAX as usize;

/// One address from a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name, decoded (RFC 2047), control characters removed; `None` when absent.
    pub name: Option<String>,
    /// The address, trimmed and lowercased: always one valid [`EmailAddress`](crate::domain::EmailAddress) (headers whose
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
    /// The part's `Content-ID` without the angle brackets (what an HTML body's `cid:` URLs
    /// name), when it has a usable one: printable ASCII without spaces or `<>`, at most
    /// [`MAX_CONTENT_ID_BYTES`].
    pub content_id: Option<String>,
    /// Shown inside the message rather than as a file: `Content-Disposition: inline`, or no
    /// disposition and a `Content-ID` (the images of an HTML mail in `multipart/related`).
    pub inline: bool,
}

/// Longest `Content-ID` kept, in bytes (RFC 5322 gives no bound; ours are ~60).
pub const MAX_CONTENT_ID_BYTES: usize = 250;

impl fmt::Debug for Attachment {
    // The bytes can be megabytes: show their size, not their content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .field("content_id", &self.content_id)
            .field("inline", &self.inline)
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
