//! S/MIME clear signatures of PEC provider envelopes (RFC 6109 §3.2: every envelope and
//! receipt is a top-level `multipart/signed` signed by the provider): the pure part.
//!
//! Owns: deciding whether a raw message carries an S/MIME clear signature
//! ([`smime_signed`]), and the outcome of a signature check ([`SignatureCheck`]), recorded on
//! the message and never a reason to drop it. Nothing here panics on input.
//!
//! Does not: run anything. The check itself runs the system `openssl` binary in a child
//! process, which is intake's PEC step (`crate::intake::pec_signature`), not `mail/`'s: `mail/`
//! is pure functions over bytes. Nor does it parse PEC semantics (that is `mail::pec`).

use std::fmt;

use mail_parser::{MessageParser, MimeHeaders};

/// Longest reason or signer name kept, in characters: it is stored and shown, not parsed.
pub(crate) const MAX_TEXT_CHARS: usize = 300;

/// The outcome of checking a message's S/MIME signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The signature is valid and the signer chains to the trust store.
    Verified {
        /// Subject CN (else e-mail address) of the signer certificate, if it could be read.
        signer: Option<String>,
    },
    /// The message is signed but the signature does not hold: content altered, untrusted or
    /// expired signer, or an unreadable signature.
    NotVerified { reason: String },
    /// No verdict: the message is not signed, or the check could not be run.
    NotChecked { reason: String },
}

impl SignatureCheck {
    /// Stable label for storage and display: "verified", "not verified" or "not checked".
    pub fn as_str(&self) -> &'static str {
        match self {
            SignatureCheck::Verified { .. } => "verified",
            SignatureCheck::NotVerified { .. } => "not verified",
            SignatureCheck::NotChecked { .. } => "not checked",
        }
    }

    /// The signer for `Verified`, the reason otherwise.
    pub fn detail(&self) -> Option<&str> {
        match self {
            SignatureCheck::Verified { signer } => signer.as_deref(),
            SignatureCheck::NotVerified { reason } | SignatureCheck::NotChecked { reason } => {
                Some(reason)
            }
        }
    }

    /// `NotChecked` with `reason`.
    pub fn not_checked(reason: impl Into<String>) -> Self {
        SignatureCheck::NotChecked {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SignatureCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(detail) => write!(f, "{} ({detail})", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// `Ok` when the top-level entity is `multipart/signed` with an S/MIME (or unstated) protocol.
pub fn smime_signed(raw: &[u8]) -> Result<(), String> {
    let not_signed = || "not signed".to_string();
    let message = MessageParser::new()
        .parse_headers(raw)
        .ok_or_else(not_signed)?;
    let content_type = message.content_type().ok_or_else(not_signed)?;
    let multipart_signed = content_type.ctype().eq_ignore_ascii_case("multipart")
        && content_type
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("signed"));
    if !multipart_signed {
        return Err(not_signed());
    }
    let protocol = content_type.attributes().and_then(|attributes| {
        attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case("protocol"))
            .map(|a| a.value.as_ref())
    });
    match protocol {
        // RFC 5751 §3.5.3 name, and the pre-RFC "x-" name that openssl and older providers use.
        Some(p)
            if !p.eq_ignore_ascii_case("application/pkcs7-signature")
                && !p.eq_ignore_ascii_case("application/x-pkcs7-signature") =>
        {
            Err(format!("signed with {}, not S/MIME", clean(p)))
        }
        _ => Ok(()),
    }
}

/// Whether `pem` holds at least one PEM certificate (of any of the markers openssl reads).
pub fn has_pem_certificate(pem: &[u8]) -> bool {
    [
        &b"-----BEGIN CERTIFICATE-----"[..],
        b"-----BEGIN TRUSTED CERTIFICATE-----",
        b"-----BEGIN X509 CERTIFICATE-----",
    ]
    .iter()
    .any(|marker| find(pem, marker).is_some())
}

/// `text` without control characters, at most [`MAX_TEXT_CHARS`] characters.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_details_follow_the_outcome() {
        let verified = SignatureCheck::Verified {
            signer: Some("posta-certificata@pec.example.it".into()),
        };
        assert_eq!(verified.as_str(), "verified");
        assert_eq!(verified.detail(), Some("posta-certificata@pec.example.it"));
        assert_eq!(
            verified.to_string(),
            "verified (posta-certificata@pec.example.it)"
        );
        assert_eq!(SignatureCheck::Verified { signer: None }.detail(), None);
        let bad = SignatureCheck::NotVerified {
            reason: "content verify error".into(),
        };
        assert_eq!(bad.as_str(), "not verified");
        assert_eq!(bad.detail(), Some("content verify error"));
        let skipped = SignatureCheck::not_checked("not signed");
        assert_eq!(skipped.as_str(), "not checked");
        assert_eq!(skipped.to_string(), "not checked (not signed)");
    }

    #[test]
    fn only_a_top_level_smime_multipart_signed_counts_as_signed() {
        let signed = b"From: a@example.it\r\nContent-Type: Multipart/Signed;\r\n\
            \tprotocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n\
            \tboundary=\"b\"\r\n\r\n--b\r\n";
        assert_eq!(smime_signed(signed), Ok(()));
        let old_name = b"Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; boundary=b\n\n";
        assert_eq!(smime_signed(old_name), Ok(()));
        let no_protocol = b"Content-Type: multipart/signed; boundary=b\r\n\r\n";
        assert_eq!(smime_signed(no_protocol), Ok(()));

        let pgp = b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\r\n\r\n";
        assert_eq!(
            smime_signed(pgp),
            Err("signed with application/pgp-signature, not S/MIME".to_string())
        );
        for unsigned in [
            &b"Subject: hi\r\n\r\nbody"[..],
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n",
            b"",
            b"\x00\xff\xfe garbage",
        ] {
            assert_eq!(smime_signed(unsigned), Err("not signed".to_string()));
        }
    }
}
