//! Our outbound Message-IDs, `<t2026-000123.m42.K@domain>`, and their verification.
//!
//! K is a truncated HMAC-SHA256 (key `security.secret`) over the ticket reference and our
//! message number. Mail clients copy our ids into In-Reply-To/References, so a reply that
//! names a verifying id provably answers a message we sent; a guessed id does not verify.
//! Messages that belong to no ticket (e.g. "your mail was too large") use `n` for the ticket.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::TicketRef;

/// Hex digits of the HMAC kept in the id: 64 bits, ample against guessing by mail.
const TAG_HEX_LEN: usize = 16;

/// Signs and verifies our Message-IDs.
#[derive(Clone)]
pub struct SignedIds {
    key: Vec<u8>,
}

impl std::fmt::Debug for SignedIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedIds(..)")
    }
}

/// A verified id of ours, as found in a reference header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurMessageId {
    /// `None` for messages outside any ticket.
    pub ticket: Option<TicketRef>,
    /// Our `message` row number.
    pub message: i64,
}

impl SignedIds {
    pub fn new(key: &[u8]) -> SignedIds {
        SignedIds { key: key.to_vec() }
    }

    fn tag(&self, local: &str) -> String {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(local.as_bytes());
        let mut tag = hex::encode(mac.finalize().into_bytes());
        tag.truncate(TAG_HEX_LEN);
        tag
    }

    /// A signature of `data` for `purpose` (e.g. a link in a mail), 32 hex digits.
    pub fn sign(&self, purpose: &str, data: &str) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        // The purpose is part of the signed text, so a signature made for one use never
        // verifies for another.
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        let mut sig = hex::encode(mac.finalize().into_bytes());
        sig.truncate(32);
        sig
    }

    /// Constant-time check of a [`SignedIds::sign`] signature.
    pub fn verify_sig(&self, purpose: &str, data: &str, sig: &str) -> bool {
        let expected = self.sign(purpose, data);
        expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
                == 0
    }

    /// The id (without angle brackets) for our message `message` on `ticket`.
    pub fn make(&self, ticket: Option<TicketRef>, message: i64, domain: &str) -> String {
        let local = local_part(ticket, message);
        format!("{local}.{}@{domain}", self.tag(&local))
    }

    /// Recognises one of our ids (with or without brackets) and checks its HMAC.
    pub fn verify(&self, id: &str) -> Option<OurMessageId> {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, _domain) = id.split_once('@')?;
        let (body, tag) = local.rsplit_once('.')?;
        let (t, m) = body.split_once(".m")?;
        let t = t.strip_prefix('t')?;
        let ticket = if t == "n" {
            None
        } else {
            Some(t.parse::<TicketRef>().ok()?)
        };
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let message: i64 = m.parse().ok()?;
        let expected = self.tag(&local_part(ticket, message));
        // Constant-time comparison: the tag is a secret-derived value.
        let ok = expected.len() == tag.len()
            && expected
                .bytes()
                .zip(tag.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
                == 0;
        ok.then_some(OurMessageId { ticket, message })
    }
}

fn local_part(ticket: Option<TicketRef>, message: i64) -> String {
    match ticket {
        Some(t) => format!("t{t}.m{message}"),
        None => format!("tn.m{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_ids_verify_and_forged_ones_do_not() {
        let ids = SignedIds::new(b"0123456789abcdef0123456789abcdef");
        let r: TicketRef = "2026-000123".parse().unwrap();
        let id = ids.make(Some(r), 42, "comune.test");
        assert!(id.starts_with("t2026-000123.m42."), "{id}");
        assert_eq!(
            ids.verify(&format!("<{id}>")),
            Some(OurMessageId {
                ticket: Some(r),
                message: 42
            })
        );
        let forged = id.replace(".m42.", ".m43.");
        assert_eq!(ids.verify(&forged), None);
        let sig = ids.sign("take", "2026-000123 mario@comune.test");
        assert!(ids.verify_sig("take", "2026-000123 mario@comune.test", &sig));
        assert!(!ids.verify_sig("take", "2026-000124 mario@comune.test", &sig));
        assert!(!ids.verify_sig("other", "2026-000123 mario@comune.test", &sig));
        let other_key = SignedIds::new(b"another key another key another k");
        assert_eq!(other_key.verify(&id), None);
        assert_eq!(ids.verify("CAFx123@mail.gmail.com"), None);
        let loose = ids.make(None, 7, "comune.test");
        assert_eq!(
            ids.verify(&loose),
            Some(OurMessageId {
                ticket: None,
                message: 7
            })
        );
    }
}
