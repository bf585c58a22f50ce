//! S/MIME verification of PEC envelopes against a trust store, with the real openssl binary and
//! a throwaway PKI: what verifies (SHA-256, SHA-1, LF storage, provider envelope headers) and
//! what must not (altered content, another CA, no signature, garbage).

#[path = "support/pki.rs"]
mod pki;

use ticketgate::intake::pec_signature;
use ticketgate::mail::smime::SignatureCheck;

const PROVIDER: &str = "posta-certificata@pec.example.it";

const TEXT_ENTITY: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n\
    Content-Transfer-Encoding: 8bit\r\n\
    \r\n\
    Il giorno 26/11/2026 alle ore 10:15:02 (+0100) il messaggio\r\n\
    \"Segnalazione buca in via Garibaldi\" \xc3\xa8 stato inviato da \"mario.rossi@pec.example.it\"\r\n\
    indirizzato a: protocollo@pec.comune.example.it\r\n";

/// The body of a PEC transport envelope: human text, daticert.xml and the original message.
const PEC_ENTITY: &[u8] = b"Content-Type: multipart/mixed; boundary=\"----=_Part_1\"\r\n\
    \r\n\
    ------=_Part_1\r\n\
    Content-Type: text/plain; charset=iso-8859-1\r\n\
    Content-Transfer-Encoding: quoted-printable\r\n\
    \r\n\
    Messaggio di posta certificata\r\n\
    Il messaggio originale =E8 incluso in allegato.\r\n\
    ------=_Part_1\r\n\
    Content-Type: application/xml; name=\"daticert.xml\"\r\n\
    Content-Disposition: inline; filename=\"daticert.xml\"\r\n\
    Content-Transfer-Encoding: base64\r\n\
    \r\n\
    PD94bWwgdmVyc2lvbj0iMS4wIj8+PHBvc3RhY2VydCB0aXBvPSJwb3N0YS1jZXJ0aWZpY2F0YSIvPg==\r\n\
    ------=_Part_1\r\n\
    Content-Type: message/rfc822; name=\"postacert.eml\"\r\n\
    Content-Disposition: inline; filename=\"postacert.eml\"\r\n\
    \r\n\
    From: mario.rossi@pec.example.it\r\n\
    To: protocollo@pec.comune.example.it\r\n\
    Subject: Segnalazione buca in via Garibaldi\r\n\
    \r\n\
    C'e' una buca profonda davanti al civico 12.\r\n\
    ------=_Part_1--\r\n";

/// Top-level headers a PEC provider puts on the envelope above the signed entity.
const ENVELOPE_HEADERS: &[u8] = b"Return-Path: <posta-certificata@pec.example.it>\r\n\
    Received: from smtp.pec.example.it (smtp.pec.example.it [192.0.2.10])\r\n\
    \tby mx.pec.comune.example.it with ESMTPS; Thu, 26 Nov 2026 10:15:03 +0100\r\n\
    X-Trasporto: posta-certificata\r\n\
    Date: Thu, 26 Nov 2026 10:15:02 +0100\r\n\
    Subject: POSTA CERTIFICATA: Segnalazione buca in via Garibaldi\r\n\
    From: \"Per conto di: mario.rossi@pec.example.it\" <posta-certificata@pec.example.it>\r\n\
    Reply-To: mario.rossi@pec.example.it\r\n\
    To: protocollo@pec.comune.example.it\r\n\
    Message-ID: <opec21.20261126101502.12345.67.1.8@pec.example.it>\r\n\
    X-Riferimento-Message-ID: <abc123@client.example.it>\r\n\
    X-TipoRicevuta: completa\r\n";

fn verified_by(check: &SignatureCheck, signer: &str) {
    assert_eq!(
        check,
        &SignatureCheck::Verified {
            signer: Some(signer.to_string())
        }
    );
}

fn with_envelope_headers(signed: &[u8]) -> Vec<u8> {
    [ENVELOPE_HEADERS, signed].concat()
}

#[tokio::test]
async fn a_sha256_signed_entity_is_verified_with_the_signer_named() {
    let pki = pki::make_pki(PROVIDER);
    let signed = pki::sign(&pki, TEXT_ENTITY, "sha256");
    assert!(
        String::from_utf8_lossy(&signed).contains("micalg=\"sha-256\""),
        "not the expected signed entity:\n{}",
        String::from_utf8_lossy(&signed)
    );

    let check = pec_signature::verify(&signed, &pki.ca_pem).await;

    verified_by(&check, PROVIDER);
    assert_eq!(check.as_str(), "verified");
    assert_eq!(check.detail(), Some(PROVIDER));
}

#[tokio::test]
async fn a_sha1_signed_entity_is_verified_as_real_providers_sign() {
    let pki = pki::make_pki(PROVIDER);
    let signed = pki::sign(&pki, TEXT_ENTITY, "sha1");
    assert!(String::from_utf8_lossy(&signed).contains("micalg=\"sha1\""));

    verified_by(&pec_signature::verify(&signed, &pki.ca_pem).await, PROVIDER);
}

#[tokio::test]
async fn sha1_certificates_with_a_1024_bit_key_are_still_verified() {
    let pki = pki::make_legacy_pki(PROVIDER);
    let signed = pki::sign(&pki, PEC_ENTITY, "sha1");

    verified_by(&pec_signature::verify(&signed, &pki.ca_pem).await, PROVIDER);
}

#[tokio::test]
async fn a_signed_message_stored_with_lf_line_endings_is_verified() {
    let pki = pki::make_pki(PROVIDER);
    for md in ["sha1", "sha256"] {
        let lf = pki::to_lf(&pki::sign(&pki, PEC_ENTITY, md));
        assert!(!lf.contains(&b'\r'));

        verified_by(&pec_signature::verify(&lf, &pki.ca_pem).await, PROVIDER);
    }
}

#[tokio::test]
async fn a_pec_envelope_with_provider_headers_above_the_signature_is_verified() {
    let pki = pki::make_pki(PROVIDER);
    let envelope = with_envelope_headers(&pki::sign(&pki, PEC_ENTITY, "sha1"));

    verified_by(
        &pec_signature::verify(&envelope, &pki.ca_pem).await,
        PROVIDER,
    );
    // The same envelope as Dovecot keeps it in a Maildir.
    let stored = pki::to_lf(&envelope);
    verified_by(&pec_signature::verify(&stored, &pki.ca_pem).await, PROVIDER);
}

#[tokio::test]
async fn a_folded_content_type_header_is_verified() {
    let pki = pki::make_pki(PROVIDER);
    let signed = pki::sign(&pki, TEXT_ENTITY, "sha1");
    let text = String::from_utf8(signed).expect("openssl output is ASCII");
    let folded = text.replacen("; boundary=", ";\r\n\tboundary=", 1);
    assert_ne!(folded, text);

    let envelope = with_envelope_headers(folded.as_bytes());
    verified_by(
        &pec_signature::verify(&envelope, &pki.ca_pem).await,
        PROVIDER,
    );
}

#[tokio::test]
async fn lines_longer_than_openssls_line_buffer_are_verified() {
    let pki = pki::make_pki(PROVIDER);
    let mut entity = b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>".to_vec();
    entity.extend(std::iter::repeat_n(b'x', 5000));
    entity.extend_from_slice(b"</p>\r\n");
    let signed = pki::sign(&pki, &entity, "sha256");

    verified_by(&pec_signature::verify(&signed, &pki.ca_pem).await, PROVIDER);
    verified_by(
        &pec_signature::verify(&pki::to_lf(&signed), &pki.ca_pem).await,
        PROVIDER,
    );
}

#[tokio::test]
async fn a_body_changed_by_one_byte_is_not_verified() {
    let pki = pki::make_pki(PROVIDER);
    let signed = pki::sign(&pki, TEXT_ENTITY, "sha1");
    let at = find(&signed, b"via Garibaldi").expect("signed text is in the clear");
    let mut tampered = signed.clone();
    tampered[at + 4] = b'g'; // "via Garibaldi" -> "via garibaldi"

    let check = pec_signature::verify(&with_envelope_headers(&tampered), &pki.ca_pem).await;

    let reason = check.detail().unwrap_or_default();
    assert!(reason.contains("verif"), "unexpected reason {reason:?}");
    // And the untouched copy still verifies, so it was the byte that mattered.
    verified_by(&pec_signature::verify(&signed, &pki.ca_pem).await, PROVIDER);
}

#[tokio::test]
async fn a_message_signed_under_another_ca_is_not_verified() {
    let trusted = pki::make_pki(PROVIDER);
    let other = pki::make_pki(PROVIDER);
    let signed = pki::sign(&other, TEXT_ENTITY, "sha256");

    let check = pec_signature::verify(&signed, &trusted.ca_pem).await;

    assert_eq!(
        check,
        SignatureCheck::NotVerified {
            reason: "certificate verify error: unable to get local issuer certificate".into()
        }
    );
}

#[tokio::test]
async fn a_trust_store_with_several_cas_verifies_each_providers_mail() {
    let first = pki::make_pki(PROVIDER);
    let second = pki::make_pki("posta-certificata@pec.altro.example.it");
    let bundle = first.dir.path().join("bundle.pem");
    let pem = [
        std::fs::read(&first.ca_pem).expect("read CA"),
        std::fs::read(&second.ca_pem).expect("read CA"),
    ]
    .concat();
    std::fs::write(&bundle, pem).expect("write bundle");

    verified_by(
        &pec_signature::verify(&pki::sign(&first, TEXT_ENTITY, "sha1"), &bundle).await,
        PROVIDER,
    );
    verified_by(
        &pec_signature::verify(&pki::sign(&second, TEXT_ENTITY, "sha1"), &bundle).await,
        "posta-certificata@pec.altro.example.it",
    );
}

#[tokio::test]
async fn an_unsigned_message_is_not_checked() {
    let pki = pki::make_pki(PROVIDER);
    let unsigned = [ENVELOPE_HEADERS, b"MIME-Version: 1.0\r\n", TEXT_ENTITY].concat();

    let check = pec_signature::verify(&unsigned, &pki.ca_pem).await;

    assert_eq!(
        check,
        SignatureCheck::NotChecked {
            reason: "not signed".into()
        }
    );
}

#[tokio::test]
async fn a_missing_trust_store_file_is_not_checked() {
    let pki = pki::make_pki(PROVIDER);
    let signed = pki::sign(&pki, TEXT_ENTITY, "sha256");
    let missing = pki.dir.path().join("no-such-trust-store.pem");

    let check = pec_signature::verify(&signed, &missing).await;

    assert_eq!(check.as_str(), "not checked", "{check:?}");
    let reason = check.detail().unwrap_or_default();
    assert!(
        reason.contains("no-such-trust-store.pem") && reason.contains("unreadable"),
        "unexpected reason {reason:?}"
    );
}

#[tokio::test]
async fn garbage_never_verifies_and_never_panics() {
    let pki = pki::make_pki(PROVIDER);
    let signed = pki::sign(&pki, TEXT_ENTITY, "sha256");
    let signed_text = String::from_utf8_lossy(&signed).into_owned();
    let boundary_line = signed_text
        .lines()
        .find(|l| l.starts_with("------"))
        .expect("a boundary line")
        .to_string();

    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\x01\x02\xff\xfe\xfd".repeat(1000),
        // Claims to be signed, carries nothing.
        b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x--\r\n".to_vec(),
        // Signed headers, body cut off in the middle of the signature.
        signed[..signed.len() / 2].to_vec(),
        // The signature part's base64 replaced by noise.
        signed_text
            .replacen("MII", "@@@", 1)
            .into_bytes(),
        // Boundaries gone.
        signed_text.replace(&boundary_line, "").into_bytes(),
    ];
    // Pseudo-random bytes under a multipart/signed header.
    let mut state: u32 = 0x1234_5678;
    let mut noise = b"Content-Type: multipart/signed; boundary=\"b\"\r\n\r\n".to_vec();
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        noise.push(state.to_le_bytes()[0]);
    }
    inputs.push(noise);

    for input in inputs {
        let check = pec_signature::verify(&input, &pki.ca_pem).await;
        assert_ne!(check.as_str(), "verified", "{check:?}");
        assert!(check.detail().is_some_and(|d| !d.is_empty()), "{check:?}");
    }
}

/// Verifications run side by side (each is its own openssl process) and each gives the
/// same answer as alone. Timing is for the benchmark notes, not asserted here.
#[tokio::test]
async fn concurrent_verifications_each_give_the_same_answer() {
    let pki = pki::make_pki(PROVIDER);
    let envelope = with_envelope_headers(&pki::sign(&pki, PEC_ENTITY, "sha1"));
    let rounds = 10;
    let checks = futures::future::join_all(
        (0..rounds).map(|_| pec_signature::verify(&envelope, &pki.ca_pem)),
    )
    .await;
    assert_eq!(checks.len(), rounds);
    for check in &checks {
        verified_by(check, PROVIDER);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
