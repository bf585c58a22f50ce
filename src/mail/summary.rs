//! What an operator needs to recognise a quarantined message — From, Subject, Message-ID and
//! Date as written — read from the start of its stored bytes, and the header block made safe
//! to print on a terminal.
//!
//! The bytes are hostile by definition (they are in quarantine because something about them
//! was wrong): only the header block is read, only up to a cap, the body is never parsed, and
//! everything shown is stripped of control characters (a terminal escape sequence in a Subject
//! must not repaint the operator's screen) and shortened.

use mail_parser::MessageParser;

/// Header bytes read at most; a longer header block is cut (and said to be).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The recognisable fields of a message; empty strings where a field is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderSummary {
    /// `Name <address>` or the address, RFC 2047 decoded.
    pub from: String,
    /// RFC 2047 decoded.
    pub subject: String,
    /// Without angle brackets.
    pub message_id: String,
    /// The Date header, RFC 3339, when it parses.
    pub date: String,
}

/// The header block at the start of `raw`: up to the first empty line, at most
/// [`MAX_HEADER_BYTES`]. The flag is true when it was cut.
pub fn header_block(raw: &[u8]) -> (&[u8], bool) {
    let window = raw.get(..MAX_HEADER_BYTES).unwrap_or(raw);
    let end = window
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 2)
        .into_iter()
        .chain(
            window
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 4),
        )
        .min();
    match end {
        Some(end) => (window.get(..end).unwrap_or(window), false),
        None => (window, raw.len() > window.len()),
    }
}

/// Reads From, Subject, Message-ID and Date from the header block of `raw`, each cleaned by
/// [`clean`] and cut to `width` characters.
pub fn summarize(raw: &[u8], width: usize) -> HeaderSummary {
    let (block, _) = header_block(raw);
    // A block without its empty line (cut at the cap, or a message that is all header) is
    // ended here, or the parser drops its last, unterminated field.
    let mut ended = block.to_vec();
    if !ended.ends_with(b"\n\n") && !ended.ends_with(b"\r\n\r\n") {
        ended.extend_from_slice(b"\r\n\r\n");
    }
    // parse_headers stops at the end of the headers: the body, and any MIME nesting in it,
    // is never looked at.
    let Some(message) = MessageParser::default().parse_headers(&ended) else {
        return HeaderSummary::default();
    };
    let from = message
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (Some(name), None) => name.to_owned(),
            (None, Some(address)) => address.to_owned(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    HeaderSummary {
        from: clean(&from, width),
        subject: clean(message.subject().unwrap_or_default(), width),
        message_id: clean(message.message_id().unwrap_or_default(), width),
        date: message.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
    }
}

/// `s` on one line: control characters and bidirectional overrides removed (they could hide
/// or reorder what is shown), runs of white space made one space, cut to `width` characters
/// with an ellipsis.
pub fn clean(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if c.is_control() || is_bidi_control(c) {
            continue;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        if count >= width {
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Unicode's explicit direction marks (U+202A–U+202E, U+2066–U+2069): "Trojan Source".
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The header block as text for a terminal: lines kept, every other control byte (and
/// invalid UTF-8) shown as `\xNN`, bidi controls as `\u{…}`.
pub fn visible(block: &[u8]) -> String {
    let mut out = String::with_capacity(block.len());
    for chunk in block.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' | '\t' => out.push(c),
                '\r' => {}
                c if c.is_control() => {
                    out.push_str(&format!("\\x{:02x}", u32::from(c)));
                }
                c if is_bidi_control(c) => {
                    out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_decoded_and_escape_sequences_removed() {
        let raw = b"From: =?UTF-8?Q?Anna_Verd=C3=AC?= <anna@citizen.test>\r\n\
            Subject: =?UTF-8?B?QnVjYRtbMzFtIGluIHZpYSBSb21h?=\r\n\
            Message-ID: <abc@citizen.test>\r\n\
            Date: Mon, 07 Dec 2026 10:00:00 +0100\r\n\r\nbody\x1b[2J";
        let s = summarize(raw, 80);
        assert_eq!(s.from, "Anna Verdì <anna@citizen.test>");
        // ESC removed; the rest of the sequence is plain text.
        assert_eq!(s.subject, "Buca[31m in via Roma");
        assert_eq!(s.message_id, "abc@citizen.test");
        assert!(s.date.starts_with("2026-12-07T10:00:00"), "{}", s.date);
    }

    #[test]
    fn a_huge_header_is_read_only_up_to_the_cap_and_shortened() {
        let mut raw = b"Subject: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 1_000_000));
        raw.extend_from_slice(b"\r\n\r\nbody");
        let (block, cut) = header_block(&raw);
        assert_eq!(block.len(), MAX_HEADER_BYTES);
        assert!(cut);
        let s = summarize(&raw, 50);
        assert_eq!(s.subject.chars().count(), 51, "{}", s.subject);
        assert!(s.subject.ends_with('…'));
    }

    #[test]
    fn the_header_block_ends_at_the_first_empty_line_of_either_kind() {
        assert_eq!(header_block(b"A: b\n\nbody\r\n\r\n").0, b"A: b\n\n");
        assert_eq!(header_block(b"A: b\r\n\r\nbody\n\n").0, b"A: b\r\n\r\n");
        assert_eq!(header_block(b"A: b").0, b"A: b");
    }

    #[test]
    fn control_characters_are_made_visible_and_lines_kept() {
        let shown = visible(b"Subject: a\x1b[2Jb\r\nX: \xff\xe2\x80\xae\r\n");
        assert_eq!(shown, "Subject: a\\x1b[2Jb\nX: \\xff\\u{202e}\n");
        assert_eq!(clean("a\u{202E}b\t\r\n  c", 10), "ab c");
    }
}
