//! The top-level header block as bytes, before mail-parser sees it: raw 8-bit header lines
//! re-decoded, bare LF line ends made CRLF, and the test that tells a message from arbitrary
//! text. Touches nothing past the first empty line.

use std::borrow::Cow;

use mail_parser::decoders::charsets::map::charset_decoder;

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
pub(super) fn transcode_8bit_header_lines(raw: &[u8]) -> Cow<'_, [u8]> {
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
pub(super) fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}
