//! The content fingerprint of a raw message: what de-duplication compares besides the
//! Message-ID, so that a stranger who sends a mail carrying the (predictable) Message-ID of
//! a later genuine mail does not make the genuine one a silent duplicate.
//!
//! The same mail reaches the gateway with different bytes depending on the path: the MTA and
//! the delivery agent prepend trace fields (`Return-Path`, `Delivered-To`, `X-Original-To`,
//! `Received`, `Authentication-Results`…), IMAP gives CRLF line ends where a pipe delivery
//! gives LF, and a pipe may add or drop a final newline. So the fingerprint covers only what
//! the author wrote and no relay changes: the author fields below (unfolded, runs of
//! whitespace collapsed) and the body (line ends normalised, trailing blanks and final empty
//! lines dropped). Pure; linear in the input.

use sha2::{Digest, Sha256};

/// Header fields set by the author's client, in the order they appear. Trace and
/// authentication fields, which relays add, are left out on purpose.
const AUTHOR_FIELDS: [&str; 8] = [
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
];

/// Hex sha256 of the author fields and the body of `raw` (see the module documentation).
pub fn content_fingerprint(raw: &[u8]) -> String {
    let mut hash = Sha256::new();
    let mut lines = raw.split(|b| *b == b'\n');
    // Header: fields are collected unfolded, then fed if they are author fields.
    let mut field: Vec<u8> = Vec::new();
    let feed_field = |field: &mut Vec<u8>, hash: &mut Sha256| {
        if let Some(colon) = field.iter().position(|b| *b == b':') {
            let (name, value) = field.split_at(colon);
            let name = name.trim_ascii().to_ascii_lowercase();
            if AUTHOR_FIELDS
                .iter()
                .any(|f| f.as_bytes() == name.as_slice())
            {
                hash.update(&name);
                hash.update(b":");
                let value = value.get(1..).unwrap_or_default();
                for (i, word) in value
                    .split(u8::is_ascii_whitespace)
                    .filter(|w| !w.is_empty())
                    .enumerate()
                {
                    if i > 0 {
                        hash.update(b" ");
                    }
                    hash.update(word);
                }
                hash.update(b"\n");
            }
        }
        field.clear();
    };
    for line in lines.by_ref() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            field.push(b' ');
            field.extend_from_slice(line);
        } else {
            feed_field(&mut field, &mut hash);
            field.extend_from_slice(line);
        }
    }
    feed_field(&mut field, &mut hash);
    hash.update(b"\n");
    // Body: empty lines are held back until a non-empty line follows, so final ones vanish.
    let mut held_empty = 0usize;
    for line in lines {
        let line = line.trim_ascii_end();
        if line.is_empty() {
            held_empty += 1;
            continue;
        }
        for _ in 0..held_empty {
            hash.update(b"\n");
        }
        held_empty = 0;
        hash.update(line);
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::content_fingerprint;

    const MAIL: &str = "From: Anna <anna@example.test>\nTo: lavori@comune.test\nSubject: Buca\n\
                        Message-ID: <1@example.test>\nDate: Thu, 26 Nov 2026 10:00:00 +0100\n\n\
                        C'è una buca.\n\nGrazie\n";

    #[test]
    fn trace_fields_line_ends_and_final_newlines_do_not_change_it() {
        let delivered = format!(
            "Return-Path: <anna@example.test>\nDelivered-To: lavori@comune.test\n\
             Received: from mx (mx [127.0.0.1])\n\tby imap; Thu, 26 Nov 2026 10:00:01 +0100\n\
             {MAIL}\n\n"
        )
        .replace('\n', "\r\n");
        assert_eq!(
            content_fingerprint(MAIL.as_bytes()),
            content_fingerprint(delivered.as_bytes())
        );
    }

    #[test]
    fn another_body_or_sender_with_the_same_message_id_differs() {
        let other_body = MAIL.replace("una buca", "un rimborso");
        let other_from = MAIL.replace("anna@", "mallory@");
        let base = content_fingerprint(MAIL.as_bytes());
        assert_ne!(base, content_fingerprint(other_body.as_bytes()));
        assert_ne!(base, content_fingerprint(other_from.as_bytes()));
    }
}
