//! Unit tests of [`super::classify`] and [`super::read_daticert`]: the provider fixtures of
//! `tests/fixtures/pec/`, missing and malformed parts, forged headers, hostile XML.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::{Message, MessageParser, MimeHeaders};
use proptest::prelude::*;

use super::*;

const CITIZEN: &str = "mario.rossi@pec.example.it";
const COMUNE: &str = "protocollo@pec.comune.esempio.it";
const OUR_ID: &str = "tg.20261126.0001.7f3a@comune.esempio.it";
const OUR_IDENT: &str = "opec21012.20261126102005.23456.11.1.64@postacert.esempio.it";
const OUR_SUBJECT: &str = "[TG-2026-000123] Segnalazione buca in via Roma";

/// The 8×8 grey JPEG attached inside `transport-jpeg-latin1.eml`.
const JPEG_BASE64: &str = concat!(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAAIAAgBAREA/8QAFAABAAAAAAAAAAAAAAAA",
    "AAAAAP/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AP//Z",
);

/// Every fixture in `tests/fixtures/pec/`.
const FIXTURES: &[&str] = &[
    "anomaly-dsn-bounce.eml",
    "anomaly-ordinary-mail.eml",
    "receipt-accettazione-no-daticert.eml",
    "receipt-accettazione.eml",
    "receipt-avvenuta-consegna-completa.eml",
    "receipt-errore-consegna.eml",
    "receipt-non-accettazione.eml",
    "receipt-preavviso-errore-consegna.eml",
    "receipt-presa-in-carico.eml",
    "receipt-rilevazione-virus.eml",
    "receipt-unknown-type.eml",
    "transport-daticert-doctype-xxe.eml",
    "transport-forged-x-ricevuta.eml",
    "transport-jpeg-latin1.eml",
    "transport-malformed-daticert.eml",
    "transport-postacert-first.eml",
    "transport-unsigned-crlf.eml",
];

/// Day number (days since 1970-01-01) of 2026-11-01, counted by hand: 1970–2025 are 56
/// years with 14 leap days (1972, 1976, …, 2024), so 2026-01-01 is day 56 × 365 + 14 =
/// 20 454; January–October 2026 add 31+28+31+30+31+30+31+31+30+31 = 304 days.
const DAY_2026_11_01: i64 = 20_454 + 304;

/// Unix millis of a UTC wall-clock time on the given day number.
fn utc_millis(day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    (((day * 24 + hour) * 60 + minute) * 60 + second) * 1000
}

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pec")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn to_lf(raw: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .into_bytes()
}

fn to_crlf(raw: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(&to_lf(raw))
        .replace('\n', "\r\n")
        .into_bytes()
}

/// The fixture with LF and with CRLF line ends (all fixtures are ASCII or UTF-8).
fn both_line_ends(name: &str) -> [(&'static str, Vec<u8>); 2] {
    let raw = fixture(name);
    [("LF", to_lf(&raw)), ("CRLF", to_crlf(&raw))]
}

fn classified(raw: &[u8]) -> PecMail {
    classify(raw).expect("a PEC message")
}

fn inner_message(pec: &PecMail) -> Message<'_> {
    let inner = pec.inner.as_deref().expect("inner message bytes");
    MessageParser::default()
        .parse(inner)
        .expect("inner bytes parse as a message")
}

fn header_text(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .headers_raw()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().to_owned())
}

fn time(giorno: &str, ora: &str, zona: &str, millis: i64) -> Option<CertifiedTime> {
    Some(CertifiedTime {
        giorno: giorno.to_owned(),
        ora: ora.to_owned(),
        zona: Some(zona.to_owned()),
        millis: Some(millis),
    })
}

fn destinatario(address: &str, tipo: Option<&str>) -> Destinatario {
    Destinatario {
        address: address.to_owned(),
        tipo: tipo.map(str::to_owned),
    }
}

fn some(value: &str) -> Option<String> {
    Some(value.to_owned())
}

// -----------------------------------------------------------------------------------------
// Transport envelopes
// -----------------------------------------------------------------------------------------

#[test]
fn transport_envelope_yields_every_daticert_field_with_lf_and_crlf() {
    for (ends, raw) in both_line_ends("transport-jpeg-latin1.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Transport, "{ends}");
        assert!(pec.signed, "{ends}");
        assert_eq!(pec.problem, None, "{ends}");
        assert_eq!(
            pec.envelope_message_id.as_deref(),
            Some("opec21012.20261126101500.12345.67.1.53@pec.example.it"),
            "{ends}"
        );
        assert_eq!(
            pec.riferimento_message_id.as_deref(),
            Some("3f7c2a1e-8d4b-4e2a-9c1f-5b6a7d8e9f01@pec.example.it"),
            "{ends}"
        );
        let expected = Daticert {
            tipo: some("posta-certificata"),
            errore: some("nessuno"),
            mittente: some(CITIZEN),
            destinatari: vec![
                destinatario(COMUNE, Some("certificato")),
                destinatario("ufficio.tecnico@comune.esempio.it", Some("esterno")),
            ],
            risposte: some(CITIZEN),
            oggetto: some("Segnalazione: buca in via Roma, pericolosità per più utenti"),
            gestore_emittente: some("Esempio PEC S.p.A."),
            // 26/11/2026 10:15:00 +0100 = 2026-11-26T09:15:00Z.
            data: time(
                "26/11/2026",
                "10:15:00",
                "+0100",
                utc_millis(DAY_2026_11_01 + 25, 9, 15, 0),
            ),
            identificativo: some("opec21012.20261126101500.12345.67.1.53@pec.example.it"),
            msgid: some("3f7c2a1e-8d4b-4e2a-9c1f-5b6a7d8e9f01@pec.example.it"),
            ricevuta: some("completa"),
            consegna: None,
            errore_esteso: None,
        };
        assert_eq!(pec.daticert, Some(expected), "{ends}");
    }
}

#[test]
fn certified_time_of_the_transport_fixture_is_nine_fifteen_utc() {
    let pec = classified(&fixture("transport-jpeg-latin1.eml"));
    let millis = pec.daticert.and_then(|d| d.data).and_then(|d| d.millis);
    assert_eq!(millis, Some(1_795_684_500_000));
    assert_eq!(millis, Some(utc_millis(20_783, 9, 15, 0)));
}

#[test]
fn transport_inner_bytes_are_the_citizens_message_with_its_jpeg() {
    let jpeg = base64_decode(JPEG_BASE64.as_bytes()).expect("test JPEG");
    for (ends, raw) in both_line_ends("transport-jpeg-latin1.eml") {
        let pec = classified(&raw);
        let inner = pec.inner.as_deref().expect("inner");
        assert!(
            inner.starts_with(b"Received: from smtp.pec.example.it"),
            "{ends}"
        );
        // The line break before the closing boundary belongs to the boundary (RFC 2046).
        let tail: &[u8] = if ends == "LF" {
            b"nVd--\n"
        } else {
            b"nVd--\r\n"
        };
        assert!(inner.ends_with(tail), "{ends}");
        assert!(
            raw.windows(inner.len()).any(|w| w == inner),
            "{ends}: a slice of raw"
        );

        let message = inner_message(&pec);
        assert_eq!(
            message.subject(),
            Some("Segnalazione: buca in via Roma, pericolosità per più utenti"),
            "{ends}"
        );
        let from = message.from().and_then(|a| a.first());
        assert_eq!(from.and_then(|a| a.address()), Some(CITIZEN), "{ends}");
        assert_eq!(from.and_then(|a| a.name()), Some("Mario Rossi"), "{ends}");
        assert_eq!(
            message.message_id(),
            Some("opec21012.20261126101500.12345.67.1.53@pec.example.it"),
            "{ends}"
        );
        assert_eq!(
            header_text(&message, "X-Riferimento-Message-ID").as_deref(),
            Some("<3f7c2a1e-8d4b-4e2a-9c1f-5b6a7d8e9f01@pec.example.it>"),
            "{ends}"
        );
        let body = message.body_text(0).unwrap_or_default();
        assert!(body.contains("c'è una buca"), "{ends}: {body}");
        let photo = message
            .attachments()
            .find(|part| part.is_content_type("image", "jpeg"))
            .expect("the JPEG attachment");
        assert_eq!(photo.attachment_name(), Some("buca-via-roma.jpg"), "{ends}");
        assert_eq!(photo.contents(), jpeg.as_slice(), "{ends}");
        assert!(photo.contents().starts_with(&[0xFF, 0xD8]), "{ends}");
        assert!(photo.contents().ends_with(&[0xFF, 0xD9]), "{ends}");
    }
}

#[test]
fn transport_human_text_is_latin1_quoted_printable_with_accents() {
    // Guards the fixture itself: what a provider really sends.
    let raw = fixture("transport-jpeg-latin1.eml");
    let raw_text = String::from_utf8_lossy(&raw);
    assert!(raw_text.contains("charset=\"iso-8859-1\""));
    assert!(raw_text.contains("pericolosit=E0 per pi=F9 utenti\" =E8 stato"));
    let envelope = MessageParser::default().parse(&raw).expect("envelope");
    let text = envelope.body_text(0).unwrap_or_default();
    assert!(
        text.contains("pericolosità per più utenti\" è stato inviato"),
        "{text}"
    );
}

#[test]
fn daticert_xml_is_the_transfer_decoded_part_byte_for_byte() {
    for name in ["transport-jpeg-latin1.eml", "transport-postacert-first.eml"] {
        for (ends, raw) in both_line_ends(name) {
            let pec = classified(&raw);
            let xml = pec.daticert_xml.expect("daticert.xml");
            assert!(xml.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
            // base64 keeps the document's own LF whatever the mail's line ends; a 7bit part
            // is the mail's bytes, so it has the mail's line ends.
            let expected_end: &[u8] = if name.contains("jpeg") || ends == "LF" {
                b"</postacert>\n"
            } else {
                b"</postacert>\r\n"
            };
            assert!(xml.ends_with(expected_end), "{name} {ends}");
        }
    }
    let pec = classified(&fixture("transport-jpeg-latin1.eml"));
    let xml = String::from_utf8(pec.daticert_xml.expect("xml")).expect("UTF-8");
    assert!(xml.contains(
        "<oggetto>Segnalazione: buca in via Roma, pericolosità per più utenti</oggetto>"
    ));
}

#[test]
fn postacert_before_daticert_is_found_by_name_not_position() {
    for (ends, raw) in both_line_ends("transport-postacert-first.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Transport, "{ends}");
        assert!(
            pec.signed,
            "{ends}: application/x-pkcs7-signature is still signed"
        );
        assert_eq!(pec.problem, None, "{ends}");
        let daticert = pec.daticert.clone().expect("daticert");
        assert_eq!(
            daticert,
            Daticert {
                tipo: some("posta-certificata"),
                errore: some("nessuno"),
                mittente: some(CITIZEN),
                destinatari: vec![destinatario(COMUNE, Some("certificato"))],
                risposte: some(CITIZEN),
                oggetto: some("Re: [TG-2026-000123] Segnalazione buca in via Roma"),
                gestore_emittente: some("Esempio PEC S.p.A."),
                // 27/11/2026 08:30:12 +0100 = 07:30:12Z.
                data: time(
                    "27/11/2026",
                    "08:30:12",
                    "+0100",
                    utc_millis(DAY_2026_11_01 + 26, 7, 30, 12),
                ),
                identificativo: some("opec21012.20261127083012.23456.12.1.57@pec.example.it"),
                msgid: some("a77d0c1e-51b2-4f7e-8f05-9b3c2d1e0a42@pec.example.it"),
                ricevuta: None,
                consegna: None,
                errore_esteso: None,
            },
            "{ends}"
        );
        let message = inner_message(&pec);
        // The citizen's client replies to the identificativo our message got.
        assert_eq!(message.in_reply_to().as_text(), Some(OUR_IDENT), "{ends}");
        assert!(
            message
                .body_text(0)
                .unwrap_or_default()
                .contains("la buca è ancora lì"),
            "{ends}"
        );
    }
}

#[test]
fn unsigned_envelope_is_still_a_transport_envelope() {
    let on_disk = fixture("transport-unsigned-crlf.eml");
    assert!(on_disk.windows(2).any(|w| w == b"\r\n"), "stored with CRLF");
    for (ends, raw) in [("as stored", on_disk.clone()), ("LF", to_lf(&on_disk))] {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Transport, "{ends}");
        assert!(!pec.signed, "{ends}");
        assert_eq!(pec.problem, None, "{ends}");
        let daticert = pec.daticert.clone().expect("daticert");
        assert_eq!(daticert.oggetto.as_deref(), Some("Orari ufficio anagrafe"));
        assert_eq!(daticert.ricevuta.as_deref(), Some("breve"));
        assert_eq!(
            daticert.data.and_then(|d| d.millis),
            Some(utc_millis(DAY_2026_11_01 + 26, 9, 0, 0))
        );
        assert_eq!(
            inner_message(&pec).subject(),
            Some("Orari ufficio anagrafe"),
            "{ends}"
        );
    }
}

#[test]
fn forged_x_ricevuta_inside_postacert_leaves_the_envelope_a_transport() {
    for (ends, raw) in both_line_ends("transport-forged-x-ricevuta.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Transport, "{ends}");
        // The forged X-Riferimento-Message-ID naming our message is not the envelope's.
        assert_eq!(
            pec.riferimento_message_id.as_deref(),
            Some("c4f1a2b3-9e8d-4c7b-a6f5-0e1d2c3b4a59@pec.example.it"),
            "{ends}"
        );
        assert_eq!(pec.problem, None, "{ends}");
        let message = inner_message(&pec);
        assert_eq!(
            header_text(&message, "X-Ricevuta").as_deref(),
            Some("accettazione"),
            "{ends}: the forgery is there, and ignored"
        );
        // Classifying the citizen's message alone would see the forgery: that is why only
        // envelopes are classified, never their contents.
        let inner = pec.inner.as_deref().expect("inner");
        assert_eq!(classified(inner).class, PecClass::Anomaly, "{ends}");
    }
}

#[test]
fn malformed_daticert_keeps_the_transport_and_falls_back_to_headers() {
    for (ends, raw) in both_line_ends("transport-malformed-daticert.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Transport, "{ends}");
        let problem = pec.problem.clone().unwrap_or_default();
        assert!(
            problem.starts_with("daticert.xml is malformed: "),
            "{ends}: {problem}"
        );
        assert!(
            pec.daticert_xml.is_some(),
            "{ends}: the bytes are kept as they came"
        );
        let daticert = pec.daticert.clone().expect("daticert");
        assert_eq!(
            daticert,
            Daticert {
                // Read before the error:
                tipo: some("posta-certificata"),
                errore: some("nessuno"),
                mittente: some(CITIZEN),
                destinatari: vec![destinatario(COMUNE, Some("certificato"))],
                risposte: some(CITIZEN),
                // From the citizen's own Subject:
                oggetto: some("Richiesta certificato <residenza> & stato di famiglia"),
                gestore_emittente: None,
                // From the envelope's Date: 27/11/2026 09:15:02 +0100.
                data: time(
                    "27/11/2026",
                    "09:15:02",
                    "+0100",
                    utc_millis(DAY_2026_11_01 + 26, 8, 15, 2),
                ),
                // The envelope's Message-ID and X-Riferimento-Message-ID:
                identificativo: some("opec21012.20261127091502.34567.21.1.60@pec.example.it"),
                msgid: some("5d1e7c3a-2b9f-4e11-a6c0-88f0e2d4b1c7@pec.example.it"),
                ricevuta: None,
                consegna: None,
                errore_esteso: None,
            },
            "{ends}"
        );
        assert!(pec.inner.is_some(), "{ends}");
    }
}

#[test]
fn doctype_with_external_entities_is_ignored_and_nothing_is_expanded() {
    for (ends, raw) in both_line_ends("transport-daticert-doctype-xxe.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Transport, "{ends}");
        assert_eq!(pec.problem, None, "{ends}");
        let daticert = pec.daticert.clone().expect("daticert");
        // Neither file:///etc/passwd nor ten "lol"s: the references stay as written.
        assert_eq!(daticert.oggetto.as_deref(), Some("&xxe;&lol2;"), "{ends}");
        assert_eq!(daticert.mittente.as_deref(), Some(CITIZEN), "{ends}");
        assert_eq!(daticert.ricevuta.as_deref(), Some("sintetica"), "{ends}");
        assert_eq!(
            daticert.msgid.as_deref(),
            Some("0b9e4f2d-7a61-4c3e-9d58-1f2a3b4c5d6e@pec.example.it"),
            "{ends}"
        );
        assert_eq!(
            daticert.data.and_then(|d| d.millis),
            Some(utc_millis(DAY_2026_11_01 + 26, 8, 30, 0)),
            "{ends}"
        );
    }
}

// -----------------------------------------------------------------------------------------
// Receipts
// -----------------------------------------------------------------------------------------

struct ExpectedReceipt {
    file: &'static str,
    kind: ReceiptType,
    errore: &'static str,
    gestore: &'static str,
    giorno: &'static str,
    ora: &'static str,
    /// The same instant in UTC: (day of November 2026, hour, minute, second).
    utc: (i64, i64, i64, i64),
    destinatario: &'static str,
    consegna: Option<&'static str>,
    errore_esteso: Option<&'static str>,
    ricevuta: Option<&'static str>,
    echo: bool,
}

fn expected_receipts() -> Vec<ExpectedReceipt> {
    let receipt = |file, kind, errore, gestore, ora, utc| ExpectedReceipt {
        file,
        kind,
        errore,
        gestore,
        giorno: "26/11/2026",
        ora,
        utc,
        destinatario: CITIZEN,
        consegna: None,
        errore_esteso: None,
        ricevuta: None,
        echo: false,
    };
    let comune_gestore = "Postacert Esempio S.r.l.";
    let citizen_gestore = "Esempio PEC S.p.A.";
    vec![
        receipt(
            "receipt-accettazione.eml",
            ReceiptType::Accettazione,
            "nessuno",
            comune_gestore,
            "10:20:05",
            (26, 9, 20, 5),
        ),
        ExpectedReceipt {
            errore_esteso: Some("Dimensione del messaggio superiore al limite consentito"),
            ..receipt(
                "receipt-non-accettazione.eml",
                ReceiptType::NonAccettazione,
                "altro",
                comune_gestore,
                "10:20:06",
                (26, 9, 20, 6),
            )
        },
        receipt(
            "receipt-presa-in-carico.eml",
            ReceiptType::PresaInCarico,
            "nessuno",
            citizen_gestore,
            "10:20:07",
            (26, 9, 20, 7),
        ),
        ExpectedReceipt {
            consegna: Some(CITIZEN),
            ricevuta: Some("completa"),
            echo: true,
            ..receipt(
                "receipt-avvenuta-consegna-completa.eml",
                ReceiptType::AvvenutaConsegna,
                "nessuno",
                citizen_gestore,
                "10:20:09",
                (26, 9, 20, 9),
            )
        },
        ExpectedReceipt {
            destinatario: "m.rossi.vecchio@pec.example.it",
            consegna: Some("m.rossi.vecchio@pec.example.it"),
            errore_esteso: Some("5.1.1 - Esempio PEC S.p.A. - casella inesistente"),
            ..receipt(
                "receipt-errore-consegna.eml",
                ReceiptType::ErroreConsegna,
                "no-dest",
                citizen_gestore,
                "10:20:11",
                (26, 9, 20, 11),
            )
        },
        ExpectedReceipt {
            errore_esteso: Some("Tempo massimo di consegna superato (12 ore)"),
            ..receipt(
                "receipt-preavviso-errore-consegna.eml",
                ReceiptType::PreavvisoErroreConsegna,
                "altro",
                comune_gestore,
                "22:20:05",
                (26, 21, 20, 5),
            )
        },
        ExpectedReceipt {
            errore_esteso: Some("Eicar-Test-Signature"),
            ..receipt(
                "receipt-rilevazione-virus.eml",
                ReceiptType::RilevazioneVirus,
                "virus",
                citizen_gestore,
                "10:20:12",
                (26, 9, 20, 12),
            )
        },
        ExpectedReceipt {
            giorno: "27/11/2026",
            ..receipt(
                "receipt-unknown-type.eml",
                ReceiptType::Other("avvenuta-lettura".to_owned()),
                "nessuno",
                citizen_gestore,
                "09:00:00",
                (27, 8, 0, 0),
            )
        },
    ]
}

#[test]
fn every_receipt_type_is_classified_with_its_daticert() {
    for expected in expected_receipts() {
        for (ends, raw) in both_line_ends(expected.file) {
            let context = format!("{} {ends}", expected.file);
            let pec = classified(&raw);
            assert_eq!(
                pec.class,
                PecClass::Receipt(expected.kind.clone()),
                "{context}"
            );
            assert!(pec.signed, "{context}");
            assert_eq!(pec.problem, None, "{context}");
            assert_eq!(
                pec.riferimento_message_id.as_deref(),
                Some(OUR_ID),
                "{context}"
            );
            assert_ne!(
                pec.envelope_message_id.as_deref(),
                Some(OUR_IDENT),
                "{context}: a receipt has an id of its own"
            );
            let (day, hour, minute, second) = expected.utc;
            let want = Daticert {
                tipo: some(expected.kind.as_str()),
                errore: some(expected.errore),
                mittente: some(COMUNE),
                destinatari: vec![destinatario(expected.destinatario, Some("certificato"))],
                risposte: some(COMUNE),
                oggetto: some(OUR_SUBJECT),
                gestore_emittente: some(expected.gestore),
                data: time(
                    expected.giorno,
                    expected.ora,
                    "+0100",
                    utc_millis(DAY_2026_11_01 + day - 1, hour, minute, second),
                ),
                identificativo: some(OUR_IDENT),
                msgid: some(OUR_ID),
                ricevuta: expected.ricevuta.map(str::to_owned),
                consegna: expected.consegna.map(str::to_owned),
                errore_esteso: expected.errore_esteso.map(str::to_owned),
            };
            assert_eq!(pec.daticert, Some(want), "{context}");
            assert_eq!(pec.inner.is_some(), expected.echo, "{context}");
        }
    }
}

#[test]
fn complete_delivery_receipt_exposes_our_echoed_message_only_as_bytes() {
    for (ends, raw) in both_line_ends("receipt-avvenuta-consegna-completa.eml") {
        let pec = classified(&raw);
        assert_eq!(
            pec.class,
            PecClass::Receipt(ReceiptType::AvvenutaConsegna),
            "{ends}"
        );
        let echo = inner_message(&pec);
        assert_eq!(echo.message_id(), Some(OUR_IDENT), "{ends}");
        assert_eq!(
            header_text(&echo, "X-Riferimento-Message-ID").as_deref(),
            Some("<tg.20261126.0001.7f3a@comune.esempio.it>"),
            "{ends}"
        );
        assert_eq!(
            echo.from()
                .and_then(|a| a.first())
                .and_then(|a| a.address()),
            Some(COMUNE),
            "{ends}"
        );
    }
}

#[test]
fn receipt_without_daticert_falls_back_to_its_headers() {
    for (ends, raw) in both_line_ends("receipt-accettazione-no-daticert.eml") {
        let pec = classified(&raw);
        assert_eq!(
            pec.class,
            PecClass::Receipt(ReceiptType::Accettazione),
            "{ends}"
        );
        assert_eq!(
            pec.problem.as_deref(),
            Some("daticert.xml missing"),
            "{ends}"
        );
        assert_eq!(pec.daticert_xml, None, "{ends}");
        assert_eq!(
            pec.daticert,
            Some(Daticert {
                tipo: some("accettazione"),
                // The receipt goes back to the sender of the message it is about.
                mittente: some(COMUNE),
                oggetto: some(OUR_SUBJECT),
                data: time(
                    "26/11/2026",
                    "10:20:05",
                    "+0100",
                    utc_millis(DAY_2026_11_01 + 25, 9, 20, 5),
                ),
                msgid: some(OUR_ID),
                ..Daticert::default()
            }),
            "{ends}"
        );
    }
}

#[test]
fn receipt_type_reads_header_values_trimmed_and_case_insensitively() {
    let all = [
        ("accettazione", ReceiptType::Accettazione, false),
        ("non-accettazione", ReceiptType::NonAccettazione, true),
        ("presa-in-carico", ReceiptType::PresaInCarico, false),
        ("avvenuta-consegna", ReceiptType::AvvenutaConsegna, false),
        ("errore-consegna", ReceiptType::ErroreConsegna, true),
        (
            "preavviso-errore-consegna",
            ReceiptType::PreavvisoErroreConsegna,
            true,
        ),
        ("rilevazione-virus", ReceiptType::RilevazioneVirus, true),
    ];
    for (value, kind, failure) in all {
        assert_eq!(ReceiptType::from_header(value), kind);
        assert_eq!(kind.as_str(), value);
        assert_eq!(kind.is_failure(), failure, "{value}");
        let shouted = format!("  {}\t", value.to_ascii_uppercase());
        assert_eq!(ReceiptType::from_header(&shouted), kind);
    }
    let other = ReceiptType::from_header(" Avvenuta-Lettura ");
    assert_eq!(other, ReceiptType::Other("Avvenuta-Lettura".to_owned()));
    assert_eq!(other.as_str(), "Avvenuta-Lettura");
    assert!(!other.is_failure());
}

// -----------------------------------------------------------------------------------------
// Anomaly envelopes
// -----------------------------------------------------------------------------------------

#[test]
fn anomaly_carries_the_ordinary_mail_whole_and_keeps_its_message_id() {
    for (ends, raw) in both_line_ends("anomaly-ordinary-mail.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Anomaly, "{ends}");
        assert!(pec.signed, "{ends}");
        assert_eq!(pec.problem, None, "{ends}");
        assert_eq!(pec.daticert, None, "{ends}");
        assert_eq!(pec.daticert_xml, None, "{ends}");
        assert_eq!(pec.riferimento_message_id, None, "{ends}");
        let id = "CAK7mQ2x9pL+e3WbVn0Rr8sT1u@mail.gmail.example";
        assert_eq!(pec.envelope_message_id.as_deref(), Some(id), "{ends}");
        let original = inner_message(&pec);
        assert_eq!(original.message_id(), Some(id), "{ends}");
        assert_eq!(
            original.subject(),
            Some("Lampione spento in piazza Garibaldi"),
            "{ends}"
        );
        assert_eq!(
            original
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address()),
            Some("giulia.verdi@gmail.example"),
            "{ends}"
        );
        assert!(
            original
                .body_text(0)
                .unwrap_or_default()
                .contains("È pericoloso la sera."),
            "{ends}"
        );
        // The original itself is ordinary mail.
        assert_eq!(classify(pec.inner.as_deref().unwrap_or_default()), None);
    }
}

#[test]
fn anomaly_carrying_a_dsn_exposes_the_bounce_not_the_bounced_message() {
    for (ends, raw) in both_line_ends("anomaly-dsn-bounce.eml") {
        let pec = classified(&raw);
        assert_eq!(pec.class, PecClass::Anomaly, "{ends}");
        assert_eq!(pec.problem, None, "{ends}");
        assert_eq!(
            pec.envelope_message_id.as_deref(),
            Some("20261126110512.4A7B21C0A3@mx.example.org"),
            "{ends}"
        );
        let inner = pec.inner.as_deref().expect("inner");
        assert!(inner.starts_with(b"Return-Path: <>"), "{ends}");
        let bounce = inner_message(&pec);
        assert_eq!(
            bounce.subject(),
            Some("Undelivered Mail Returned to Sender"),
            "{ends}"
        );
        assert!(
            bounce.root_part().is_content_type("multipart", "report"),
            "{ends}"
        );
        let returned = bounce
            .attachments()
            .find_map(|part| part.message())
            .expect("the returned message inside the DSN");
        assert_eq!(
            returned.message_id(),
            Some("tg.20261126.0002.91bc@comune.esempio.it"),
            "{ends}"
        );
    }
}

// -----------------------------------------------------------------------------------------
// Classification rules
// -----------------------------------------------------------------------------------------

#[test]
fn mail_without_pec_headers_at_the_top_is_not_pec() {
    let cases: [&[u8]; 6] = [
        b"From: a@b.it\nTo: c@d.it\nSubject: ciao\n\nX-Ricevuta: accettazione\n",
        b"From: a@b.it\nSubject: POSTA CERTIFICATA: finta\n\ntesto\n",
        b"From: a@b.it\nX-Ricevuta:   \nX-Trasporto:\n\ntesto\n",
        b"From: a@b.it\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX-Trasporto: posta-certificata\nX-Ricevuta: accettazione\n\nx\n--b--\n",
        b"",
        b"\n\nX-Trasporto: posta-certificata\n",
    ];
    for raw in cases {
        assert_eq!(classify(raw), None, "{}", String::from_utf8_lossy(raw));
    }
    for name in ["../plain-italian-report.eml", "../postfix-dsn-bounce.eml"] {
        assert_eq!(classify(&fixture(name)), None, "{name}");
    }
}

#[test]
fn top_level_headers_are_read_folded_and_in_any_case() {
    let folded = b"x-trasporto:\r\n POSTA-Certificata \r\nFrom: a@b.it\r\n\r\nbody\r\n";
    let pec = classified(folded);
    assert_eq!(pec.class, PecClass::Transport);
    assert_eq!(
        pec.problem.as_deref(),
        Some("postacert.eml missing; daticert.xml missing")
    );
    let mbox = b"From MAILER-DAEMON Thu Nov 26 10:00:00 2026\nX-RICEVUTA: Errore-Consegna\n\n";
    assert_eq!(
        classified(mbox).class,
        PecClass::Receipt(ReceiptType::ErroreConsegna)
    );
    // X-Trasporto decides before X-Ricevuta.
    let both = b"X-Ricevuta: accettazione\nX-Trasporto: errore\n\n";
    assert_eq!(classified(both).class, PecClass::Anomaly);
}

#[test]
fn unknown_transport_value_is_an_anomaly_with_a_problem() {
    let pec = classified(b"X-Trasporto: posta-strana\nMessage-ID: <x@y>\n\n");
    assert_eq!(pec.class, PecClass::Anomaly);
    assert_eq!(pec.envelope_message_id.as_deref(), Some("x@y"));
    let problem = pec.problem.unwrap_or_default();
    assert!(
        problem.contains("unknown X-Trasporto value \"posta-strana\""),
        "{problem}"
    );
    let receipt = classified(b"X-Trasporto: posta-strana\nX-Ricevuta: accettazione\n\n");
    assert_eq!(receipt.class, PecClass::Receipt(ReceiptType::Accettazione));
}

#[test]
fn base64_encoded_postacert_is_decoded_to_the_raw_message() {
    let original = "From: Anna <anna@pec.example.it>\nSubject: Prova\nMessage-ID: <p@x>\n\nCiao\n";
    let encoded = String::from_utf8(to_base64(original.as_bytes())).expect("ASCII");
    let raw = format!(
        "X-Trasporto: posta-certificata\nMessage-ID: <p@x>\n\
         Content-Type: multipart/mixed; boundary=\"b\"\n\n\
         --b\nContent-Type: message/rfc822; name=\"postacert.eml\"\n\
         Content-Transfer-Encoding: base64\n\n{encoded}\n--b--\n"
    );
    let pec = classified(raw.as_bytes());
    assert_eq!(pec.inner.as_deref(), Some(original.as_bytes()));
    assert_eq!(pec.problem.as_deref(), Some("daticert.xml missing"));
    let daticert = pec.daticert.expect("fallback daticert");
    assert_eq!(daticert.mittente.as_deref(), Some("anna@pec.example.it"));
    assert_eq!(daticert.oggetto.as_deref(), Some("Prova"));
    assert_eq!(daticert.identificativo.as_deref(), Some("p@x"));
}

/// Standard base64 with 76-character lines.
fn to_base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for (i, chunk) in bytes.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push(b'\n');
        }
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (j, b)| n | u32::from(*b) << (16 - 8 * j));
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * k) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

#[test]
fn strip_id_removes_brackets_and_whitespace() {
    assert_eq!(strip_id(" <a@b.it> "), "a@b.it");
    assert_eq!(strip_id("a@b.it"), "a@b.it");
    assert_eq!(strip_id("<a@b.it> (commento)"), "a@b.it");
    assert_eq!(
        strip_id("<opec21012.2026\r\n 1126@pec.it>"),
        "opec21012.20261126@pec.it"
    );
    assert_eq!(strip_id("<>"), "");
    assert_eq!(strip_id("  "), "");
    assert_eq!(strip_id("<unclosed@x"), "unclosed@x");
}

// -----------------------------------------------------------------------------------------
// daticert.xml and certified time
// -----------------------------------------------------------------------------------------

#[test]
fn certified_time_reads_zones_and_rejects_nonsense() {
    let base = utc_millis(DAY_2026_11_01 + 25, 0, 0, 0);
    let at = |giorno, ora, zona| CertifiedTime::new(giorno, ora, zona).millis;
    assert_eq!(
        at("26/11/2026", "10:15:00", Some("+0100")),
        Some(base + 33_300_000)
    );
    // No zona: read as UTC.
    assert_eq!(at("26/11/2026", "10:15:00", None), Some(base + 36_900_000));
    assert_eq!(
        at("26/11/2026", "10:15:00", Some("  ")),
        Some(base + 36_900_000)
    );
    assert_eq!(
        at("26/11/2026", "04:45:00", Some("-0530")),
        Some(base + 36_900_000)
    );
    assert_eq!(
        at("26/11/2026", "11:15:00", Some("+02:00")),
        Some(base + 33_300_000)
    );
    assert_eq!(
        at("26/11/2026", "10:15", Some("+0100")),
        Some(base + 33_300_000)
    );
    assert_eq!(at("31/02/2026", "10:15:00", Some("+0100")), None);
    assert_eq!(at("26/11/2026", "25:00:00", Some("+0100")), None);
    assert_eq!(at("26/11/2026", "10:15:00", Some("CET")), None);
    assert_eq!(at("26-11-2026", "10:15:00", Some("+0100")), None);
    assert_eq!(at("", "", None), None);
    assert_eq!(at("+26/11/2026", "10:15:00", None), None);
    let kept = CertifiedTime::new(" 26/11/2026 ", " 10:15:00 ", Some(" +0100 "));
    assert_eq!(kept.giorno, "26/11/2026");
    assert_eq!(kept.zona.as_deref(), Some("+0100"));
}

#[test]
fn daticert_in_a_declared_legacy_charset_is_read() {
    let mut xml = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
        <postacert tipo=\"posta-certificata\" errore=\"nessuno\"><intestazione>\
        <oggetto>Citt\xE0 &amp; servizi &#233;</oggetto></intestazione></postacert>\n"
        .to_vec();
    let (daticert, problem) = read_daticert(&xml);
    assert_eq!(problem, None);
    assert_eq!(daticert.oggetto.as_deref(), Some("Città & servizi é"));

    // Undeclared Latin-1 is read as windows-1252, and said.
    xml.drain(..xml.iter().position(|b| *b == b'\n').unwrap_or(0) + 1);
    let (daticert, problem) = read_daticert(&xml);
    assert_eq!(daticert.oggetto.as_deref(), Some("Città & servizi é"));
    assert_eq!(
        problem.as_deref(),
        Some("daticert.xml is not UTF-8, read as windows-1252")
    );
}

#[test]
fn daticert_problems_are_reported_not_raised() {
    let (daticert, problem) = read_daticert(b"");
    assert_eq!(daticert, Daticert::default());
    assert_eq!(
        problem.as_deref(),
        Some("daticert.xml is malformed: no root element")
    );

    let (daticert, problem) =
        read_daticert(b"<ricevuta tipo=\"x\"><mittente>a@b.it</mittente></ricevuta>");
    assert_eq!(daticert.mittente.as_deref(), Some("a@b.it"));
    assert_eq!(
        problem.as_deref(),
        Some("daticert.xml root is <ricevuta>, not <postacert>")
    );

    let (daticert, problem) = read_daticert(
        b"<postacert tipo=\"&xxe;\"><dati><data zona=\"+0100\"><giorno>26/11/2026</giorno>\
          <ora>10:15:00</ora>",
    );
    assert_eq!(
        daticert.tipo.as_deref(),
        Some("&xxe;"),
        "undefined entity kept as written"
    );
    assert_eq!(
        daticert.data.and_then(|d| d.millis),
        Some(utc_millis(DAY_2026_11_01 + 25, 9, 15, 0)),
        "a cut-off document keeps the time read so far"
    );
    assert_eq!(
        problem.as_deref(),
        Some("daticert.xml is malformed: document ends inside <data>")
    );

    let (daticert, _) = read_daticert(
        b"<postacert><intestazione><mittente>first@x.it</mittente>\
          <mittente>second@x.it</mittente><destinatari/></intestazione></postacert>",
    );
    assert_eq!(daticert.mittente.as_deref(), Some("first@x.it"));
    assert!(daticert.destinatari.is_empty());
}

#[test]
fn tipo_that_contradicts_the_header_is_reported() {
    let raw = fixture("receipt-accettazione.eml");
    let text = String::from_utf8_lossy(&raw)
        .replace("X-Ricevuta: accettazione", "X-Ricevuta: avvenuta-consegna");
    let pec = classified(text.as_bytes());
    assert_eq!(pec.class, PecClass::Receipt(ReceiptType::AvvenutaConsegna));
    assert_eq!(
        pec.problem.as_deref(),
        Some(
            "daticert.xml tipo \"accettazione\" does not match the header value \
             \"avvenuta-consegna\""
        )
    );
}

// -----------------------------------------------------------------------------------------
// Robustness
// -----------------------------------------------------------------------------------------

#[test]
fn every_fixture_is_classified_as_pec() {
    for name in FIXTURES {
        for (ends, raw) in both_line_ends(name) {
            assert!(classify(&raw).is_some(), "{name} {ends}");
        }
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    for name in FIXTURES {
        for (_, raw) in both_line_ends(name) {
            // A prime step reaches every offset class: inside headers, boundaries, base64.
            for cut in (0..raw.len()).step_by(7) {
                let _ = classify(&raw[..cut]);
                let _ = classify(&raw[cut..]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn mangled_fixtures_never_panic(
        index in 0..FIXTURES.len(),
        crlf in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..24),
    ) {
        let raw = fixture(FIXTURES[index]);
        let mut raw = if crlf { to_crlf(&raw) } else { to_lf(&raw) };
        for (at, byte, op) in edits {
            if raw.is_empty() {
                break;
            }
            let at = at.index(raw.len());
            match op {
                0 => raw[at] = byte,
                1 => raw.insert(at, byte),
                2 => {
                    raw.remove(at);
                }
                // Markup characters are where parsers go wrong.
                _ => raw.insert(at, [b'<', b'>', b'&', b'-', b'\n', b'='][usize::from(byte) % 6]),
            }
        }
        let _ = classify(&raw);
    }

    #[test]
    fn arbitrary_daticert_never_panics(xml in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_daticert(&xml);
    }
}
