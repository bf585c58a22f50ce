//! The PEC builders of `tests/support/pec.rs` make what `mail::pec::classify` recognises: if
//! they drifted from RFC 6109, the end-to-end PEC tests would test nothing.

// pec.rs encodes with base64.rs (`super::base64`).
#[path = "support/base64.rs"]
mod base64;
#[path = "support/pec.rs"]
mod pec;

use mail_parser::{Message, MessageParser, MimeHeaders};
use ticketgate::mail::pec::{classify, PecClass, PecMail, ReceiptType};

const CITIZEN: &str = "mario.bianchi@pec.citizen.test";
const PEC_BOX: &str = "protocollo@pec.comune.test";
const PROVIDER: &str = "pec.provider.test";
const OUR_PROVIDER: &str = "pec.comune.test";
const OUR_ID: &str = "20261126.0042.gateway@comune.test";
const OUR_IDENT: &str = "opec99.20261126102005.1.2.3@pec.comune.test";

fn transport() -> pec::Transport {
    pec::Transport {
        citizen: CITIZEN.to_owned(),
        to: PEC_BOX.to_owned(),
        subject: "Reclamo: buca in via Garibaldi, perché nessuno interviene?".to_owned(),
        text: "Segnalo una buca profonda davanti al civico 3.\nÈ lì da un mese, la città è pericolosa."
            .to_owned(),
        identificativo: "opec210.20261126101500.777.1.1@pec.provider.test".to_owned(),
        client_message_id: "<client-0001@pec.citizen.test>".to_owned(),
        in_reply_to: None,
        jpeg: None,
        provider_domain: PROVIDER.to_owned(),
    }
}

fn receipt(kind: &str) -> pec::Receipt {
    pec::Receipt {
        kind: kind.to_owned(),
        our_message_id: OUR_ID.to_owned(),
        identificativo: OUR_IDENT.to_owned(),
        sender: PEC_BOX.to_owned(),
        recipient: CITIZEN.to_owned(),
        subject: "[TG-2026-000042] Segnalazione ricevuta".to_owned(),
        errore_esteso: None,
        echo: None,
        provider_domain: OUR_PROVIDER.to_owned(),
    }
}

fn classified(raw: &[u8]) -> PecMail {
    classify(raw).expect("classified as PEC")
}

fn parsed(raw: &[u8]) -> Message<'_> {
    MessageParser::default().parse(raw).expect("a message")
}

fn raw_header(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .headers_raw()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().to_owned())
}

fn first_address(address: Option<&mail_parser::Address<'_>>) -> Option<String> {
    address
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_owned)
}

#[test]
fn transport_envelope_is_a_signed_transport_with_daticert_and_the_citizens_message() {
    let p = transport();
    let raw = pec::transport_envelope(&p);
    let pec = classified(&raw);
    assert_eq!(pec.class, PecClass::Transport);
    assert!(pec.signed);
    assert_eq!(pec.problem, None);
    assert_eq!(
        pec.envelope_message_id.as_deref(),
        Some(p.identificativo.as_str())
    );
    assert_eq!(
        pec.riferimento_message_id.as_deref(),
        Some("client-0001@pec.citizen.test")
    );

    let d = pec.daticert.clone().expect("daticert");
    assert_eq!(d.tipo.as_deref(), Some("posta-certificata"));
    assert_eq!(d.mittente.as_deref(), Some(CITIZEN));
    assert_eq!(d.destinatari.len(), 1);
    assert_eq!(d.destinatari[0].address, PEC_BOX);
    assert_eq!(d.destinatari[0].tipo.as_deref(), Some("certificato"));
    assert_eq!(d.oggetto.as_deref(), Some(p.subject.as_str()));
    assert_eq!(d.identificativo.as_deref(), Some(p.identificativo.as_str()));
    assert_eq!(d.msgid.as_deref(), Some("client-0001@pec.citizen.test"));
    let data = d.data.expect("data");
    assert_eq!(data.zona.as_deref(), Some("+0100"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let millis = data.millis.expect("millis");
    assert!(
        (now - millis).abs() < 120_000,
        "certified now: {millis} vs {now}"
    );

    let inner = pec.inner.as_deref().expect("postacert.eml");
    let message = parsed(inner);
    assert_eq!(message.message_id(), Some(p.identificativo.as_str()));
    assert_eq!(
        raw_header(&message, "X-Riferimento-Message-ID").as_deref(),
        Some("<client-0001@pec.citizen.test>")
    );
    assert_eq!(message.subject(), Some(p.subject.as_str()));
    assert_eq!(first_address(message.from()).as_deref(), Some(CITIZEN));
    let text = message.body_text(0).unwrap_or_default();
    assert!(
        text.contains("È lì da un mese, la città è pericolosa."),
        "{text}"
    );

    // The envelope itself reads as the provider's: robot From, citizen in Reply-To.
    let envelope = parsed(&raw);
    assert_eq!(
        first_address(envelope.from()).as_deref(),
        Some("posta-certificata@pec.provider.test")
    );
    assert_eq!(first_address(envelope.reply_to()).as_deref(), Some(CITIZEN));
    assert_eq!(
        envelope.subject().map(str::to_owned),
        Some(format!("POSTA CERTIFICATA: {}", p.subject))
    );
    assert!(
        raw.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'),
        "CRLF only"
    );
}

#[test]
fn transport_reply_carries_in_reply_to_and_the_photo() {
    let photo: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain((0..600u32).map(|i| (i * 13 % 256) as u8))
        .chain([0xFF, 0xD9])
        .collect();
    let p = pec::Transport {
        in_reply_to: Some(OUR_IDENT.to_owned()),
        jpeg: Some(photo.clone()),
        ..transport()
    };
    let pec = classified(&pec::transport_envelope(&p));
    assert_eq!(pec.class, PecClass::Transport);
    assert_eq!(pec.problem, None);
    let inner = pec.inner.as_deref().expect("inner");
    let message = parsed(inner);
    assert_eq!(message.in_reply_to().as_text(), Some(OUR_IDENT));
    assert_eq!(message.references().as_text(), Some(OUR_IDENT));
    let attached = message
        .attachments()
        .find(|part| part.is_content_type("image", "jpeg"))
        .expect("the photo");
    assert_eq!(attached.contents(), photo.as_slice());
    assert!(message
        .body_text(0)
        .unwrap_or_default()
        .contains("buca profonda"));
}

#[test]
fn an_externally_signed_entity_gets_the_envelope_headers_once() {
    let p = transport();
    let mixed = pec::transport_inner_mixed(&p);
    assert!(mixed.starts_with(b"Content-Type: multipart/mixed;"));
    // What `openssl smime -sign` writes: its own MIME-Version, LF line ends.
    let mixed_lf = String::from_utf8(mixed)
        .expect("ASCII")
        .replace("\r\n", "\n");
    let openssl_like = format!(
        "MIME-Version: 1.0\nContent-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; \
         micalg=\"sha-256\"; boundary=\"----OPENSSL\"\n\nThis is an S/MIME signed message\n\n\
         ------OPENSSL\n{mixed_lf}\n------OPENSSL\nContent-Type: application/x-pkcs7-signature; \
         name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\n\
         Content-Disposition: attachment; filename=\"smime.p7s\"\n\nMIIBAA==\n\n------OPENSSL--\n\n"
    );
    let raw = pec::wrap_envelope_headers(&p, openssl_like.as_bytes());
    let text = String::from_utf8_lossy(&raw);
    let (top, _) = text.split_once("\n\n").expect("a header block");
    assert_eq!(
        top.matches("MIME-Version").count(),
        1,
        "openssl's, no second one: {top}"
    );
    assert!(top.contains("X-Trasporto: posta-certificata"), "{top}");
    assert!(!text.contains('\r'), "keeps the entity's LF line ends");
    let pec = classified(&raw);
    assert_eq!(pec.class, PecClass::Transport);
    assert!(pec.signed);
    assert_eq!(pec.problem, None);
    assert_eq!(
        pec.daticert.and_then(|d| d.mittente).as_deref(),
        Some(CITIZEN)
    );
    assert!(pec.inner.is_some());
}

#[test]
fn every_receipt_kind_classifies_with_our_ids() {
    let kinds = [
        ("accettazione", ReceiptType::Accettazione),
        ("non-accettazione", ReceiptType::NonAccettazione),
        ("presa-in-carico", ReceiptType::PresaInCarico),
        ("avvenuta-consegna", ReceiptType::AvvenutaConsegna),
        ("errore-consegna", ReceiptType::ErroreConsegna),
        (
            "preavviso-errore-consegna",
            ReceiptType::PreavvisoErroreConsegna,
        ),
        ("rilevazione-virus", ReceiptType::RilevazioneVirus),
        (
            "avvenuta-lettura",
            ReceiptType::Other("avvenuta-lettura".to_owned()),
        ),
    ];
    for (kind, expected) in kinds {
        let raw = pec::receipt(&receipt(kind));
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Receipt(expected.clone()), "{kind}");
        assert!(pec.signed, "{kind}");
        assert_eq!(pec.problem, None, "{kind}");
        assert_eq!(
            pec.riferimento_message_id.as_deref(),
            Some(OUR_ID),
            "{kind}"
        );
        assert_eq!(pec.inner, None, "{kind}");
        let d = pec.daticert.clone().expect("daticert");
        assert_eq!(d.tipo.as_deref(), Some(kind));
        assert_eq!(d.identificativo.as_deref(), Some(OUR_IDENT), "{kind}");
        assert_eq!(d.msgid.as_deref(), Some(OUR_ID), "{kind}");
        assert_eq!(d.mittente.as_deref(), Some(PEC_BOX), "{kind}");
        assert_eq!(
            d.oggetto.as_deref(),
            Some("[TG-2026-000042] Segnalazione ricevuta"),
            "{kind}"
        );
        let delivery = matches!(kind, "avvenuta-consegna" | "errore-consegna");
        assert_eq!(d.consegna.as_deref(), delivery.then_some(CITIZEN), "{kind}");
        let expected_errore = match kind {
            "errore-consegna" => "no-dest",
            "rilevazione-virus" => "virus",
            "non-accettazione" | "preavviso-errore-consegna" => "altro",
            _ => "nessuno",
        };
        assert_eq!(d.errore.as_deref(), Some(expected_errore), "{kind}");
        assert_eq!(
            expected.is_failure(),
            expected_errore != "nessuno",
            "{kind}"
        );

        let envelope = parsed(&raw);
        assert_eq!(
            first_address(envelope.to()).as_deref(),
            Some(PEC_BOX),
            "{kind}"
        );
        assert_eq!(
            first_address(envelope.from()).as_deref(),
            Some("posta-certificata@pec.comune.test"),
            "{kind}"
        );
        assert_ne!(
            envelope.message_id(),
            Some(OUR_ID),
            "{kind}: an id of its own"
        );
        assert_ne!(
            envelope.message_id(),
            Some(OUR_IDENT),
            "{kind}: an id of its own"
        );
    }
    let first = parsed(&pec::receipt(&receipt("accettazione")))
        .message_id()
        .map(str::to_owned);
    let second = parsed(&pec::receipt(&receipt("accettazione")))
        .message_id()
        .map(str::to_owned);
    assert_ne!(first, second, "a fresh Message-ID each time");
}

#[test]
fn failure_receipt_carries_errore_esteso() {
    let r = pec::Receipt {
        errore_esteso: Some("5.1.1 - Casella del destinatario inesistente".to_owned()),
        ..receipt("errore-consegna")
    };
    let pec = classified(&pec::receipt(&r));
    assert_eq!(pec.class, PecClass::Receipt(ReceiptType::ErroreConsegna));
    assert!(matches!(&pec.class, PecClass::Receipt(kind) if kind.is_failure()));
    assert_eq!(
        pec.daticert.and_then(|d| d.errore_esteso).as_deref(),
        Some("5.1.1 - Casella del destinatario inesistente")
    );
}

#[test]
fn complete_delivery_receipt_echoes_our_message_as_postacert() {
    let ours = format!(
        "From: Comune <{PEC_BOX}>\nTo: {CITIZEN}\nSubject: [TG-2026-000042] Segnalazione ricevuta\n\
         Message-ID: <{OUR_ID}>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\nLa sua segnalazione è stata registrata.\n"
    );
    let r = pec::Receipt {
        echo: Some(ours.clone().into_bytes()),
        ..receipt("avvenuta-consegna")
    };
    let raw = pec::receipt(&r);
    let pec = classified(&raw);
    assert_eq!(pec.class, PecClass::Receipt(ReceiptType::AvvenutaConsegna));
    assert_eq!(pec.problem, None);
    assert_eq!(
        pec.daticert.as_ref().and_then(|d| d.ricevuta.as_deref()),
        Some("completa")
    );
    let echoed = pec.inner.as_deref().expect("echo");
    // The echo is our message, in CRLF like the rest of the envelope.
    assert_eq!(echoed, ours.replace('\n', "\r\n").as_bytes());
    assert_eq!(parsed(echoed).message_id(), Some(OUR_ID));
    assert_eq!(
        raw_header(&parsed(&raw), "X-TipoRicevuta").as_deref(),
        Some("completa")
    );
}

#[test]
fn anomaly_wraps_the_original_whole_and_keeps_its_message_id() {
    let original = b"From: Anna Verdi <anna.verdi@mail.test>\r\nTo: protocollo@pec.comune.test\r\n\
        Subject: Rifiuti abbandonati in piazza\r\nMessage-ID: <orig-77@mail.test>\r\n\
        Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
        Da giorni, in piazza c'\xC3\xA8 un cumulo di rifiuti.\r\n";
    let raw = pec::anomaly(original, PEC_BOX, OUR_PROVIDER);
    let pec = classified(&raw);
    assert_eq!(pec.class, PecClass::Anomaly);
    assert!(pec.signed);
    assert_eq!(pec.problem, None);
    assert_eq!(pec.daticert, None);
    assert_eq!(pec.daticert_xml, None);
    assert_eq!(
        pec.envelope_message_id.as_deref(),
        Some("orig-77@mail.test")
    );
    assert_eq!(pec.inner.as_deref(), Some(original.as_slice()));
    let envelope = parsed(&raw);
    assert_eq!(
        envelope.subject(),
        Some("ANOMALIA MESSAGGIO: Rifiuti abbandonati in piazza")
    );
    assert_eq!(
        first_address(envelope.reply_to()).as_deref(),
        Some("anna.verdi@mail.test")
    );
    assert_eq!(first_address(envelope.to()).as_deref(), Some(PEC_BOX));
}
