//! IMAP's modified UTF-7 (RFC 3501 §5.1.3): how folder names travel on the wire.
//!
//! IMAP4rev1 names are 7-bit: printable ASCII stands for itself (`&` is written `&-`), and
//! any run of other characters is written `&` + base64 of its UTF-16 (with `,` for `/`, no
//! padding) + `-`. A name such as `INBOX.Già elaborati` sent as raw UTF-8 is refused by
//! Dovecot ("Mailbox name is not valid mUTF-7") and by Cyrus ("Invalid mailbox name").
//!
//! Pure functions over strings; the poller encodes every name it sends and decodes names
//! the server answers (LIST). Decoding untrusted input never panics: a name that is not
//! valid modified UTF-7 is an error the caller handles.

/// Base64 alphabet of RFC 3501 §5.1.3 (RFC 2152's, with `,` in place of `/`).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Why a wire name is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Utf7Error {
    #[error("byte {0:#04x} is not allowed in a modified UTF-7 name")]
    BadByte(u8),
    #[error("a `&` shift is not closed by `-`")]
    Unterminated,
    #[error("`{0}` is not a modified base64 character")]
    BadBase64(char),
    #[error("the base64 run does not decode to whole UTF-16 units")]
    BadLength,
    #[error("the base64 run encodes an unpaired UTF-16 surrogate")]
    BadSurrogate,
    #[error("the base64 run encodes printable ASCII, which must stand for itself")]
    NotMinimal,
}

fn is_direct(c: char) -> bool {
    // Printable US-ASCII stands for itself; `&` is the shift character.
    (' '..='~').contains(&c)
}

/// Encodes a folder name (UTF-8) for the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Writes a pending run of UTF-16 units as `&…-`.
fn flush(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // 2 base64 characters for 1 byte, 3 for 2, 4 for 3: no padding (§5.1.3).
        for k in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * k)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out.push('-');
    run.clear();
}

/// Decodes a wire name to UTF-8.
pub fn decode(wire: &str) -> Result<String, Utf7Error> {
    let bytes = wire.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'&' {
            let start = i + 1;
            let len = bytes
                .get(start..)
                .and_then(|rest| rest.iter().position(|&c| c == b'-'))
                .ok_or(Utf7Error::Unterminated)?;
            let run = bytes.get(start..start + len).unwrap_or_default();
            if run.is_empty() {
                out.push('&');
            } else {
                out.push_str(&decode_run(run)?);
            }
            i = start + len + 1;
        } else if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
            i += 1;
        } else {
            return Err(Utf7Error::BadByte(b));
        }
    }
    Ok(out)
}

/// Decodes the base64 between `&` and `-`.
fn decode_run(run: &[u8]) -> Result<String, Utf7Error> {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut units: Vec<u16> = Vec::with_capacity(run.len() * 6 / 16);
    let mut pending: Option<u8> = None;
    for &c in run {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(Utf7Error::BadBase64(char::from(c)))?;
        bits = (bits << 6) | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            let byte = ((bits >> nbits) & 0xff) as u8;
            bits &= (1 << nbits) - 1;
            match pending.take() {
                None => pending = Some(byte),
                Some(hi) => units.push(u16::from_be_bytes([hi, byte])),
            }
        }
    }
    // Leftover bits are padding: fewer than 6 and all zero, and no half UTF-16 unit.
    if pending.is_some() || nbits >= 6 || bits != 0 {
        return Err(Utf7Error::BadLength);
    }
    let text: String = char::decode_utf16(units.iter().copied())
        .collect::<Result<_, _>>()
        .map_err(|_| Utf7Error::BadSurrogate)?;
    if text.chars().any(is_direct) {
        return Err(Utf7Error::NotMinimal);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_3501_examples_encode_and_decode() {
        // RFC 3501 §5.1.3 and its examples.
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Ok("Entwürfe"));
        assert_eq!(encode("日本語"), "&ZeVnLIqe-");
        assert_eq!(decode("&ZeVnLIqe-").as_deref(), Ok("日本語"));
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Ok("~peter/mail/台北/日本語")
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
    }

    #[test]
    fn ascii_names_are_unchanged_and_the_ampersand_is_escaped() {
        assert_eq!(encode("INBOX.Processed"), "INBOX.Processed");
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Ok("Tom & Jerry"));
    }

    #[test]
    fn italian_and_astral_names_round_trip() {
        for name in [
            "INBOX.Già elaborati",
            "Posta già letta & archiviata",
            "àèìòù",
            "Pratiche 📎",
            "",
        ] {
            assert_eq!(decode(&encode(name)).as_deref(), Ok(name), "{name}");
        }
        assert_eq!(encode("INBOX.Già elaborati"), "INBOX.Gi&AOA- elaborati");
    }

    #[test]
    fn malformed_wire_names_are_errors_not_panics() {
        assert_eq!(decode("Gi\u{e0}"), Err(Utf7Error::BadByte(0xc3)));
        assert_eq!(decode("abc&AOA"), Err(Utf7Error::Unterminated));
        assert_eq!(decode("&AO!-"), Err(Utf7Error::BadBase64('!')));
        // One byte's worth of bits: not a whole UTF-16 unit.
        assert_eq!(decode("&AO-"), Err(Utf7Error::BadLength));
        // Non-zero padding bits.
        assert_eq!(decode("&AOB-"), Err(Utf7Error::BadLength));
        // A lone high surrogate (U+D800).
        assert_eq!(decode("&2AA-"), Err(Utf7Error::BadSurrogate));
        // "A" (U+0041) must be written directly.
        assert_eq!(decode("&AEE-"), Err(Utf7Error::NotMinimal));
        assert_eq!(decode("tab\there"), Err(Utf7Error::BadByte(b'\t')));
    }
}
