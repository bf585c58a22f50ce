//! A cheap look at the MIME structure of untrusted bytes before any parser builds a tree of
//! them: how deeply `multipart/*` and `message/rfc822` parts nest.
//!
//! Why: mail-parser builds nested messages as a tree of `Message` values, and dropping that
//! tree recurses once per level. A 1.9 MB mail of 40,000 nested `message/rfc822` parts (each
//! level only `Content-Type: message/rfc822` and a blank line) overflowed a 2 MiB thread stack
//! in that drop, and a stack overflow aborts the process: no `catch_unwind` helps. So the
//! nesting is measured here, without recursion and in one pass over the bytes, and a message
//! nested deeper than [`MAX_NESTING_LEVELS`] never reaches a parser.
//!
//! The scan follows what mail-parser does closely enough to count its levels (header block,
//! `Content-Type` with its boundary, a part without type in a `multipart/digest` being a
//! message, base64/quoted-printable `message/rfc822` parts decoded and parsed again, at most
//! [`MAX_ENCODED_LEVELS`] times), but it is only a bound: where it and the parser disagree the
//! parsing threads' large stacks and the poison rule of the pipeline are the next defences.
//! It must not decide anything else about the message.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;

/// Deepest nesting accepted, in levels of `multipart/*` and `message/rfc822` parts together
/// (the top-level message's own multipart counts as one). Real mail uses a handful: a reply
/// with a forwarded message with attachments is about six.
pub const MAX_NESTING_LEVELS: usize = 32;

/// mail-parser decodes an encoded (base64, quoted-printable) `message/rfc822` part and parses
/// it again at most this many times (its `MAX_NESTED_ENCODED`); deeper ones stay bytes.
const MAX_ENCODED_LEVELS: usize = 3;

/// Longest `Content-Type` value looked at, in bytes: type, subtype and boundary are near its
/// start, and a longer value is no reason to copy megabytes.
const MAX_CONTENT_TYPE_BYTES: usize = 4096;

/// Why the bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MIME parts nested more than {max} levels deep (multipart and message/rfc822 together)")]
pub struct TooDeep {
    /// [`MAX_NESTING_LEVELS`].
    pub max: usize,
}

/// Checks that `raw` nests no deeper than [`MAX_NESTING_LEVELS`]. Linear in the input (each
/// line is compared with at most `MAX_NESTING_LEVELS` boundaries; encoded nested messages are
/// decoded at most [`MAX_ENCODED_LEVELS`] deep), no recursion deeper than that.
pub fn check(raw: &[u8]) -> Result<(), TooDeep> {
    scan(raw, 0, MAX_ENCODED_LEVELS)
}

/// One open container.
enum Frame {
    Multipart { boundary: Vec<u8>, digest: bool },
    Message,
}

/// What a header block declares.
enum Declared {
    Multipart { boundary: Vec<u8>, digest: bool },
    Message { encoded: bool },
    Leaf,
}

fn scan(raw: &[u8], base_depth: usize, encoded_budget: usize) -> Result<(), TooDeep> {
    let too_deep = TooDeep {
        max: MAX_NESTING_LEVELS,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0;
    let mut in_header = true;
    // Start of the body of an encoded message part being skipped (decoded when it ends).
    let mut encoded_body: Option<(usize, usize)> = None;
    while pos <= raw.len() {
        if in_header {
            let in_digest = matches!(stack.last(), Some(Frame::Multipart { digest: true, .. }));
            let (declared, body) = read_header(raw, pos, in_digest);
            pos = body;
            match declared {
                Declared::Multipart { boundary, digest } => {
                    stack.push(Frame::Multipart { boundary, digest });
                    in_header = false;
                }
                Declared::Message { encoded: false } => stack.push(Frame::Message),
                Declared::Message { encoded: true } => {
                    encoded_body = Some((pos, base_depth + stack.len() + 1));
                    in_header = false;
                }
                Declared::Leaf => in_header = false,
            }
            if base_depth + stack.len() > MAX_NESTING_LEVELS {
                return Err(too_deep);
            }
            if in_header && pos >= raw.len() {
                return Ok(());
            }
            continue;
        }
        // In a body: the next line that is a boundary of an open multipart ends it.
        let Some((line_start, next, frame, close)) = next_boundary(raw, pos, &stack) else {
            if let Some((start, depth)) = encoded_body.take() {
                scan_encoded(raw.get(start..).unwrap_or_default(), depth, encoded_budget)?;
            }
            return Ok(());
        };
        if let Some((start, depth)) = encoded_body.take() {
            let body = raw.get(start..line_start).unwrap_or_default();
            scan_encoded(body, depth, encoded_budget)?;
        }
        stack.truncate(frame + 1);
        if close {
            stack.truncate(frame);
        } else {
            in_header = true;
        }
        pos = next;
        if pos >= raw.len() {
            return Ok(());
        }
    }
    Ok(())
}

/// The body of an encoded `message/rfc822` part, decoded and scanned as mail-parser would
/// parse it, `depth` levels down already.
fn scan_encoded(body: &[u8], depth: usize, encoded_budget: usize) -> Result<(), TooDeep> {
    if encoded_budget == 0 {
        return Ok(());
    }
    // Either decoding may apply; which one the header named does not matter for a bound.
    let decoded = base64_decode(body).or_else(|| quoted_printable_decode(body));
    match decoded {
        Some(inner) => scan(&inner, depth, encoded_budget - 1),
        None => Ok(()),
    }
}

/// Reads the header block starting at `pos`: what its `Content-Type` declares and where the
/// body starts (just past the empty line, or the end of input).
fn read_header(raw: &[u8], mut pos: usize, in_digest: bool) -> (Declared, usize) {
    let mut content_type: Option<Vec<u8>> = None;
    let mut encoding: Option<&[u8]> = None;
    // Which field the continuation lines belong to.
    let mut current: Option<Field> = None;
    while pos < raw.len() {
        let (line, next) = line_at(raw, pos);
        pos = next;
        let trimmed = strip_eol(line);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if current == Some(Field::ContentType) {
                if let Some(ct) = content_type.as_mut() {
                    let room = MAX_CONTENT_TYPE_BYTES.saturating_sub(ct.len());
                    ct.extend(trimmed.iter().take(room));
                }
            }
            continue;
        }
        current = None;
        let Some(colon) = trimmed.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = trimmed.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        let name = name.trim_ascii();
        // The last occurrence wins, as in mail-parser (checked: a first `text/plain` and a
        // second `multipart/mixed` make a multipart there).
        if name.eq_ignore_ascii_case(b"content-type") {
            current = Some(Field::ContentType);
            content_type = Some(value.iter().take(MAX_CONTENT_TYPE_BYTES).copied().collect());
        } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            encoding = Some(value.trim_ascii());
        }
    }
    let encoded = encoding.is_some_and(|e| {
        e.eq_ignore_ascii_case(b"base64") || e.eq_ignore_ascii_case(b"quoted-printable")
    });
    let declared = match content_type {
        None if in_digest => Declared::Message { encoded },
        None => Declared::Leaf,
        Some(ct) => declared_by(&ct, encoded),
    };
    (declared, pos)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentType,
}

/// What a `Content-Type` value declares; a multipart without a boundary is a leaf, as it is
/// for mail-parser.
fn declared_by(ct: &[u8], encoded: bool) -> Declared {
    let ct = ct.trim_ascii();
    let media_end = ct.iter().position(|b| *b == b';').unwrap_or(ct.len());
    let media = ct.get(..media_end).unwrap_or_default().trim_ascii();
    let (ctype, subtype) = match media.iter().position(|b| *b == b'/') {
        Some(slash) => (
            media.get(..slash).unwrap_or_default().trim_ascii(),
            media.get(slash + 1..).unwrap_or_default().trim_ascii(),
        ),
        None => (media, &b""[..]),
    };
    if ctype.eq_ignore_ascii_case(b"message")
        && (subtype.eq_ignore_ascii_case(b"rfc822") || subtype.eq_ignore_ascii_case(b"global"))
    {
        return Declared::Message { encoded };
    }
    if !ctype.eq_ignore_ascii_case(b"multipart") {
        return Declared::Leaf;
    }
    match boundary_param(ct) {
        Some(boundary) => Declared::Multipart {
            boundary,
            digest: subtype.eq_ignore_ascii_case(b"digest"),
        },
        None => Declared::Leaf,
    }
}

/// The `boundary` parameter of a Content-Type value, unquoted. mail-parser also reads the
/// RFC 2231 forms (`boundary*=utf-8''b`, `boundary*0="a"; boundary*1="b"`), so they are
/// read here too: missing them would let every such level pass uncounted.
fn boundary_param(ct: &[u8]) -> Option<Vec<u8>> {
    let mut pieces: Vec<(usize, Vec<u8>)> = Vec::new();
    for param in ct.split(|b| *b == b';').skip(1) {
        let Some(eq) = param.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (name, value) = param.split_at(eq);
        let name = name.trim_ascii().to_ascii_lowercase();
        let Some(rest) = name.strip_prefix(b"boundary") else {
            continue;
        };
        let value = unquoted(value.get(1..).unwrap_or_default().trim_ascii());
        if rest.is_empty() {
            return (!value.is_empty()).then(|| value.to_vec());
        }
        // `*` alone, `*N` or `*N*`: a trailing `*` means charset'language'percent-encoded.
        let Some(rest) = rest.strip_prefix(b"*") else {
            continue;
        };
        let (index, encoded) = match rest.strip_suffix(b"*") {
            Some(number) => (number, true),
            None if rest.is_empty() => (rest, true),
            None => (rest, false),
        };
        let index = std::str::from_utf8(index).ok().and_then(|i| {
            if i.is_empty() {
                Some(0)
            } else {
                i.parse().ok()
            }
        });
        let Some(index) = index else {
            continue;
        };
        let value = if encoded {
            percent_decoded(without_charset(value))
        } else {
            value.to_vec()
        };
        pieces.push((index, value));
    }
    pieces.sort_by_key(|(i, _)| *i);
    let joined: Vec<u8> = pieces.into_iter().flat_map(|(_, v)| v).collect();
    (!joined.is_empty()).then_some(joined)
}

fn unquoted(value: &[u8]) -> &[u8] {
    match value.strip_prefix(b"\"") {
        Some(rest) => rest.split(|b| *b == b'"').next().unwrap_or_default(),
        None => value,
    }
}

/// `utf-8'it'value` → `value` (RFC 2231 §4); a value without two quotes is returned whole.
fn without_charset(value: &[u8]) -> &[u8] {
    let mut quotes = value.iter().enumerate().filter(|(_, b)| **b == b'\'');
    match (quotes.next(), quotes.next()) {
        (Some(_), Some((second, _))) => value.get(second + 1..).unwrap_or_default(),
        _ => value,
    }
}

fn percent_decoded(value: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        let pair = (
            value.get(i + 1).copied().and_then(hex),
            value.get(i + 2).copied().and_then(hex),
        );
        match (b, pair) {
            (b'%', (Some(h), Some(l))) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The next line from `pos` that starts with `--` and a boundary of an open multipart:
/// `(line start, next line start, index of that multipart frame, is a close delimiter)`.
/// The innermost match wins, as in mail-parser.
fn next_boundary(
    raw: &[u8],
    mut pos: usize,
    stack: &[Frame],
) -> Option<(usize, usize, usize, bool)> {
    if !stack.iter().any(|f| matches!(f, Frame::Multipart { .. })) {
        return None;
    }
    while pos < raw.len() {
        let (line, next) = line_at(raw, pos);
        if let Some(rest) = line.strip_prefix(b"--") {
            for (index, frame) in stack.iter().enumerate().rev() {
                let Frame::Multipart { boundary, .. } = frame else {
                    continue;
                };
                if let Some(after) = rest.strip_prefix(boundary.as_slice()) {
                    return Some((pos, next, index, after.starts_with(b"--")));
                }
            }
        }
        pos = next;
    }
    None
}

/// The line starting at `pos` (with its line end) and where the next one starts.
fn line_at(raw: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = raw.get(pos..).unwrap_or_default();
    match rest.iter().position(|b| *b == b'\n') {
        Some(nl) => (rest.get(..=nl).unwrap_or_default(), pos + nl + 1),
        None => (rest, raw.len()),
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nested_messages(levels: usize) -> Vec<u8> {
        let mut raw = b"From: a@example.test\nSubject: x\n".to_vec();
        for _ in 0..levels {
            raw.extend_from_slice(b"Content-Type: message/rfc822\n\n");
        }
        raw.extend_from_slice(b"From: b@example.test\n\nfondo\n");
        raw
    }

    fn nested_multiparts(levels: usize, crlf: bool) -> Vec<u8> {
        let mut raw = b"From: a@example.test\n".to_vec();
        for depth in 0..levels {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed;\n boundary=\"b{depth}\"\n\n--b{depth}\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"Content-Type: text/plain\n\nfondo\n");
        for depth in (0..levels).rev() {
            raw.extend_from_slice(format!("--b{depth}--\n").as_bytes());
        }
        if crlf {
            String::from_utf8_lossy(&raw)
                .replace('\n', "\r\n")
                .into_bytes()
        } else {
            raw
        }
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn forty_thousand_nested_messages_are_refused() {
        assert_eq!(
            check(&nested_messages(40_000)),
            Err(TooDeep {
                max: MAX_NESTING_LEVELS
            })
        );
    }

    #[test]
    fn nesting_up_to_the_bound_is_accepted_and_one_more_is_not() {
        assert_eq!(check(&nested_messages(MAX_NESTING_LEVELS)), Ok(()));
        assert!(check(&nested_messages(MAX_NESTING_LEVELS + 1)).is_err());
        for crlf in [false, true] {
            assert_eq!(check(&nested_multiparts(MAX_NESTING_LEVELS, crlf)), Ok(()));
            assert!(check(&nested_multiparts(MAX_NESTING_LEVELS + 1, crlf)).is_err());
        }
    }

    #[test]
    fn many_sibling_parts_are_not_depth() {
        let mut raw =
            b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for i in 0..1000 {
            raw.extend_from_slice(
                format!(
                    "--b\nContent-Type: message/rfc822\n\nFrom: x{i}@example.test\n\
                     Content-Type: multipart/alternative; boundary=c{i}\n\n\
                     --c{i}\nContent-Type: text/plain\n\nciao\n--c{i}--\n"
                )
                .as_bytes(),
            );
        }
        raw.extend_from_slice(b"--b--\n");
        assert_eq!(check(&raw), Ok(()));
    }

    #[test]
    fn rfc_2231_boundaries_are_read_as_mail_parser_reads_them() {
        for form in [
            "boundary*0=\"b{n}\"",
            "boundary*=utf-8''b{n}",
            "boundary*0*=utf-8''%62; boundary*1={n}",
            "BOUNDARY=b{n}",
            "boundary = \"b{n}\"",
        ] {
            let mut raw = b"From: a@example.test\n".to_vec();
            for n in 0..=MAX_NESTING_LEVELS {
                let param = form.replace("{n}", &n.to_string());
                raw.extend_from_slice(
                    format!("Content-Type: multipart/mixed; {param}\n\n--b{n}\n").as_bytes(),
                );
            }
            raw.extend_from_slice(b"Content-Type: text/plain\n\nfondo\n");
            assert!(check(&raw).is_err(), "{form}");
        }
    }

    #[test]
    fn the_last_content_type_counts_as_in_mail_parser() {
        let mut raw = b"From: a@example.test\n".to_vec();
        for n in 0..=MAX_NESTING_LEVELS {
            raw.extend_from_slice(
                format!(
                    "Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=b{n}\n\n--b{n}\n"
                )
                .as_bytes(),
            );
        }
        assert!(check(&raw).is_err());
    }

    #[test]
    fn digest_parts_without_a_type_are_messages() {
        let mut raw = b"From: a@example.test\n".to_vec();
        for depth in 0..MAX_NESTING_LEVELS {
            raw.extend_from_slice(
                format!("Content-Type: multipart/digest; boundary=d{depth}\n\n--d{depth}\n\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"fondo\n");
        assert!(check(&raw).is_err());
    }

    #[test]
    fn encoded_nested_messages_are_looked_into() {
        let inner = nested_messages(MAX_NESTING_LEVELS);
        let encoded = base64(&inner);
        let raw = format!(
            "From: a@example.test\nContent-Type: message/rfc822\n\
             Content-Transfer-Encoding: base64\n\n{encoded}\n"
        );
        assert!(check(raw.as_bytes()).is_err());
    }

    #[test]
    fn ordinary_mail_passes() {
        for raw in [
            &b""[..],
            b"From: a@example.test\n\nciao\n",
            b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n",
            b"Content-Type: multipart/mixed; boundary=b",
        ] {
            assert_eq!(check(raw), Ok(()));
        }
    }

    /// One container level of a generated message.
    #[derive(Debug, Clone, Copy)]
    enum Level {
        Mixed,
        Digest,
        Rfc822,
        Base64Rfc822,
    }

    /// A message nesting `levels` (outermost first) around a text leaf, with `siblings` text
    /// parts beside each nested part of a multipart, in CRLF or LF.
    fn build(levels: &[Level], siblings: usize) -> Vec<u8> {
        fn body(levels: &[Level], siblings: usize, n: usize) -> String {
            let Some((level, inner)) = levels.split_first() else {
                return "Content-Type: text/plain\n\n--foglia\n".to_owned();
            };
            let nested = body(inner, siblings, n + 1);
            match level {
                Level::Mixed | Level::Digest => {
                    let sub = if matches!(level, Level::Mixed) {
                        "mixed"
                    } else {
                        "digest"
                    };
                    let mut out = format!("Content-Type: multipart/{sub}; boundary=\"b{n}\"\n\n");
                    for i in 0..siblings {
                        out.push_str(&format!("--b{n}\nContent-Type: text/plain\n\nparte {i}\n"));
                    }
                    out.push_str(&format!("--b{n}\n{nested}\n--b{n}--\n"));
                    out
                }
                Level::Rfc822 => {
                    format!("Content-Type: message/rfc822\n\nFrom: x@example.test\n{nested}")
                }
                Level::Base64Rfc822 => format!(
                    "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{}\n",
                    base64(format!("From: x@example.test\n{nested}").as_bytes())
                ),
            }
        }
        format!("From: a@example.test\n{}", body(levels, siblings, 0)).into_bytes()
    }

    fn level() -> impl Strategy<Value = Level> {
        prop_oneof![
            Just(Level::Mixed),
            Just(Level::Digest),
            Just(Level::Rfc822),
            Just(Level::Base64Rfc822),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn the_scan_counts_exactly_the_levels_built(
            levels in prop::collection::vec(level(), 0..48),
            siblings in 0..3usize,
            crlf in any::<bool>(),
        ) {
            // mail-parser decodes at most three encoded messages deep: keep within that.
            let encoded = levels.iter().filter(|l| matches!(l, Level::Base64Rfc822)).count();
            prop_assume!(encoded <= MAX_ENCODED_LEVELS);
            let mut raw = build(&levels, siblings);
            if crlf {
                raw = String::from_utf8_lossy(&raw).replace('\n', "\r\n").into_bytes();
            }
            prop_assert_eq!(check(&raw).is_ok(), levels.len() <= MAX_NESTING_LEVELS);
        }
    }
}
