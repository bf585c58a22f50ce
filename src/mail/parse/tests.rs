//! Unit tests of [`super::parse`]: golden fixtures, hostile headers, bodies, attachments, DSNs.

use mail_parser::decoders::charsets::map::charset_decoder;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::attachments::{clean_content_id, is_media_type, sanitize_filename, MAX_FILENAME_BYTES};
use super::body::{html_to_readable_text, BLOCK_TAG};
use super::*;

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../tests/fixtures/", $name, ".eml")).as_slice(),
        )
    };
}

/// Every fixture, with a golden `tests/fixtures/<name>.json` next to it.
const FIXTURES: &[(&str, &[u8])] = &[
    fixture!("plain-italian-report"),
    fixture!("iso-8859-1-quoted-printable"),
    fixture!("base64-utf8-italian"),
    fixture!("html-only"),
    fixture!("alternative-with-jpeg-photo"),
    fixture!("broken-mime-unterminated-boundary"),
    fixture!("broken-mime-bad-base64"),
    fixture!("missing-message-id"),
    fixture!("missing-date"),
    fixture!("raw-8bit-headers"),
    fixture!("auto-submitted-auto-replied"),
    fixture!("out-of-office-x-autoreply"),
    fixture!("precedence-bulk"),
    fixture!("list-id-newsletter"),
    fixture!("postfix-dsn-bounce"),
    fixture!("reply-to-differs-from-from"),
    fixture!("to-cc-two-areas"),
    fixture!("x-original-to-delivered-to"),
    fixture!("follow-up-with-references"),
    fixture!("forwarded-message-rfc822"),
];

/// Set to regenerate the golden files from the LF variant (then review the diff).
const UPDATE_GOLDEN: &str = "TICKETGATE_UPDATE_GOLDEN";

fn raw(name: &str) -> &'static [u8] {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn to_lf(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().copied().filter(|b| *b != b'\r').collect()
}

fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

/// The LF variant of a fixture, parsed.
fn mail(name: &str) -> InboundMail {
    parse(&to_lf(raw(name))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn addresses(list: &[Mailbox]) -> Vec<&str> {
    list.iter().map(|m| m.address.as_str()).collect()
}

/// Text and message attachments carry the line ends of the input (text parts are decoded
/// by mail-parser, nested messages are raw): compare them without CR.
fn without_cr_in_text_attachments(mut mail: InboundMail) -> InboundMail {
    for attachment in &mut mail.attachments {
        if attachment.content_type.starts_with("text/")
            || attachment.content_type.starts_with("message/")
        {
            attachment.bytes = to_lf(&attachment.bytes);
        }
    }
    mail
}

fn golden(mail: &InboundMail) -> String {
    let mail = without_cr_in_text_attachments(mail.clone());
    let mailbox = |m: &Mailbox| serde_json::json!({ "name": m.name, "address": m.address });
    let value = serde_json::json!({
        "message_id": mail.message_id,
        "in_reply_to": mail.in_reply_to,
        "references": mail.references,
        "from": mail.from.as_ref().map(mailbox),
        "reply_to": mail.reply_to.as_ref().map(mailbox),
        "to": mail.to.iter().map(mailbox).collect::<Vec<_>>(),
        "cc": mail.cc.iter().map(mailbox).collect::<Vec<_>>(),
        "original_recipients": mail.original_recipients,
        "return_path": mail.return_path,
        "subject": mail.subject,
        "date_millis": mail.date_millis,
        "text": mail.text,
        "html": mail.html,
        "attachments": mail.attachments.iter().map(|a| serde_json::json!({
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.bytes.len(),
            "sha256": hex::encode(Sha256::digest(&a.bytes)),
        })).collect::<Vec<_>>(),
        "auto": mail.auto.as_ref().map(AutoReason::describe),
        "dsn": mail.dsn.as_ref().map(|d| serde_json::json!({
            "original_message_id": d.original_message_id,
            "failed_recipients": d.failed_recipients,
            "status": d.status,
            "diagnostic": d.diagnostic,
        })),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

// --- every fixture ---------------------------------------------------------------------

#[test]
fn every_fixture_gives_the_same_result_with_lf_and_crlf_line_ends() {
    for (name, bytes) in FIXTURES {
        let lf = parse(&to_lf(bytes)).unwrap_or_else(|e| panic!("{name} LF: {e}"));
        let crlf = parse(&to_crlf(bytes)).unwrap_or_else(|e| panic!("{name} CRLF: {e}"));
        assert_eq!(
            without_cr_in_text_attachments(lf),
            without_cr_in_text_attachments(crlf),
            "{name}"
        );
    }
}

#[test]
fn every_fixture_matches_its_golden_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (name, bytes) in FIXTURES {
        let path = dir.join(format!("{name}.json"));
        let lf = golden(&parse(&to_lf(bytes)).unwrap_or_else(|e| panic!("{name}: {e}")));
        if std::env::var_os(UPDATE_GOLDEN).is_some() {
            std::fs::write(&path, &lf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with {UPDATE_GOLDEN}=1 to create it)",
                path.display()
            )
        });
        assert_eq!(lf, expected, "{name} (LF) differs from {}", path.display());
        let crlf = golden(&parse(&to_crlf(bytes)).unwrap_or_else(|e| panic!("{name}: {e}")));
        assert_eq!(
            crlf,
            expected,
            "{name} (CRLF) differs from {}",
            path.display()
        );
    }
}

// --- one fixture each ------------------------------------------------------------------

#[test]
fn plain_text_italian_report_keeps_accents_and_headers() {
    let mail = mail("plain-italian-report");
    assert_eq!(mail.subject, "Buca pericolosa in via Garibaldi");
    assert_eq!(
        mail.message_id.as_deref(),
        Some("c1a2b3c4-0001@example.test")
    );
    let from = mail
        .from
        .as_ref()
        .map(|m| (m.name.as_deref(), m.address.as_str()));
    assert_eq!(
        from,
        Some((Some("Mario Rossi"), "mario.rossi@example.test"))
    );
    assert_eq!(addresses(&mail.to), ["lavori-pubblici@comune.test"]);
    assert_eq!(mail.date_millis, Some(1_795_680_760_000));
    assert_eq!(
        mail.return_path.as_deref(),
        Some("mario.rossi@example.test")
    );
    assert!(mail
        .text
        .contains("davanti al civico 12, c'è una buca profonda più di\n"));
    assert!(mail
        .text
        .contains("è pericolosa per chi va in bicicletta e già ieri sera"));
    assert_eq!(mail.html, None);
    assert!(mail.attachments.is_empty());
    assert_eq!(mail.auto, None);
    assert_eq!(mail.dsn, None);
}

#[test]
fn iso_8859_1_quoted_printable_body_is_decoded() {
    let mail = mail("iso-8859-1-quoted-printable");
    assert_eq!(mail.subject, "Lampione spento in piazza Libertà");
    assert_eq!(
        mail.from.and_then(|m| m.name).as_deref(),
        Some("Lucia Ferri")
    );
    // Soft line breaks (`=` at line end) are joined.
    assert!(mail.text.contains(
        "il lampione all'angolo di piazza Libertà è spento da una settimana e la sera\n"
    ));
    assert!(mail.text.contains("Perché nessuno interviene? Lunedì ho"));
    assert!(mail
        .text
        .contains("però nessuno ha risposto. Più di così non posso fare."));
    // 0x80 is not Latin-1 but windows-1252's euro sign, which is what clients labelling
    // their text "iso-8859-1" really send (WHATWG maps the label the same way).
    assert!(mail.text.contains("Pago 1.200 € di tasse comunali"));
    assert!(!mail.text.contains('\u{fffd}'));
}

#[test]
fn base64_utf8_body_and_b_encoded_subject_are_decoded() {
    let mail = mail("base64-utf8-italian");
    assert_eq!(mail.subject, "Rifiuti abbandonati: è ora di intervenire");
    assert_eq!(mail.date_millis, Some(1_795_509_000_000));
    assert!(mail.text.contains("da lunedì in via dei Mille"));
    assert!(mail
        .text
        .contains("Perché nessuno li ritira? Così la strada è sporca e però la"));
    assert!(mail
        .text
        .contains("circa 300 €, non può\nricadere sui residenti più vicini."));
}

#[test]
fn html_only_mail_gets_readable_text_and_keeps_the_html() {
    let mail = mail("html-only");
    assert_eq!(
        mail.text,
        "Buongiorno,\n\nl'albero di via Verdi è caduto sul marciapiede e blocca il passaggio.\n\
         Perché nessuno l'ha ancora rimosso? La Città è ferma.\n\nGiulia Neri"
    );
    let html = mail.html.unwrap_or_default();
    assert!(html.contains("<div dir=\"ltr\">Buongiorno,<div><br></div>"));
    assert!(mail.attachments.is_empty());
}

#[test]
fn multipart_alternative_prefers_the_text_part_and_lists_the_jpeg_photo() {
    let mail = mail("alternative-with-jpeg-photo");
    assert_eq!(
        mail.text,
        "Buongiorno,\n\nallego la foto della buca in via Roma: è larga quasi un metro.\n\nAnna\n"
    );
    assert!(mail
        .html
        .unwrap_or_default()
        .contains("<p>allego la foto della buca"));
    assert_eq!(mail.attachments.len(), 1);
    let photo = &mail.attachments[0];
    // RFC 2231 `filename*=UTF-8''…` wins over the Content-Type `name`.
    assert_eq!(photo.filename, "buca via Roma città.jpg");
    assert_eq!(photo.content_type, "image/jpeg");
    assert_eq!(photo.bytes.len(), 59);
    assert!(photo.bytes.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]));
    assert!(photo.bytes.ends_with(&[0xFF, 0xD9]));
}

#[test]
fn unterminated_boundary_still_yields_text_and_attachment() {
    let mail = mail("broken-mime-unterminated-boundary");
    assert!(mail
        .text
        .contains("Il marciapiede di corso Italia è rotto da mesi."));
    assert_eq!(mail.attachments.len(), 1);
    let pdf = &mail.attachments[0];
    assert_eq!(pdf.filename, "esposto.pdf");
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.bytes.starts_with(b"%PDF-1.4"));
}

#[test]
fn bad_base64_attachment_is_kept_undecoded_as_octet_stream() {
    let mail = mail("broken-mime-bad-base64");
    // Missing `=` padding is tolerated.
    assert!(mail
        .text
        .contains("C'è uno scarico abusivo nel torrente vicino al ponte."));
    assert_eq!(mail.attachments.len(), 1);
    let image = &mail.attachments[0];
    assert_eq!(image.filename, "scarico.png");
    assert_eq!(image.content_type, "application/octet-stream");
    assert!(image.bytes.starts_with(b"iVBORw0KGgo!!!"));
}

#[test]
fn missing_message_id_is_none() {
    let mail = mail("missing-message-id");
    assert_eq!(mail.message_id, None);
    assert_eq!(mail.subject, "Semaforo guasto");
    assert!(mail.text.contains("via Manzoni è guasto"));
}

#[test]
fn missing_date_is_none() {
    let mail = mail("missing-date");
    assert_eq!(mail.date_millis, None);
    assert_eq!(
        mail.message_id.as_deref(),
        Some("missing-date-0001@example.test")
    );
}

#[test]
fn raw_8bit_headers_are_read_as_utf8_or_latin1() {
    let mail = mail("raw-8bit-headers");
    // Raw UTF-8 (RFC 6532) in Subject…
    assert_eq!(mail.subject, "Segnalazione: c'è un albero caduto in via Po");
    // …and raw Latin-1 in the From display name, on another line of the same header.
    let from = mail.from.unwrap_or_else(|| panic!("no From"));
    assert_eq!(from.name.as_deref(), Some("Nicolò Bianchi"));
    assert_eq!(from.address, "nicolo.bianchi@example.test");
    assert!(mail.text.contains("Un albero è caduto in via Po"));
}

#[test]
fn auto_submitted_auto_replied_is_flagged() {
    let mail = mail("auto-submitted-auto-replied");
    assert_eq!(
        mail.auto,
        Some(AutoReason::AutoSubmitted("auto-replied".into()))
    );
    assert_eq!(mail.in_reply_to, ["t2026-000001.m1.abcdef@comune.test"]);
}

#[test]
fn out_of_office_with_x_autoreply_is_flagged() {
    assert_eq!(
        mail("out-of-office-x-autoreply").auto,
        Some(AutoReason::XAutoreply)
    );
}

#[test]
fn precedence_bulk_is_flagged() {
    assert_eq!(
        mail("precedence-bulk").auto,
        Some(AutoReason::Precedence("bulk".into()))
    );
}

#[test]
fn list_id_newsletter_is_flagged() {
    assert_eq!(mail("list-id-newsletter").auto, Some(AutoReason::ListId));
}

#[test]
fn postfix_dsn_gives_the_original_message_id_and_failed_recipient() {
    let mail = mail("postfix-dsn-bounce");
    assert_eq!(mail.auto, Some(AutoReason::Dsn));
    assert_eq!(mail.return_path.as_deref(), Some(""));
    assert_eq!(mail.subject, "Undelivered Mail Returned to Sender");
    assert_eq!(mail.date_millis, Some(1_795_684_503_000));
    let dsn = mail.dsn.unwrap_or_else(|| panic!("no DSN"));
    assert_eq!(
        dsn.original_message_id.as_deref(),
        Some("t2026-000001.m1.abcdef@comune.test")
    );
    assert_eq!(dsn.failed_recipients, ["mario.rossi@example.test"]);
    assert_eq!(dsn.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        dsn.diagnostic.as_deref(),
        Some(
            "550 5.1.1 <mario.rossi@example.test>: Recipient address rejected: \
             User unknown in virtual mailbox table"
        )
    );
    assert!(mail
        .text
        .contains("This is the mail system at host mail.comune.test."));
    let types: Vec<&str> = mail
        .attachments
        .iter()
        .map(|a| a.content_type.as_str())
        .collect();
    assert_eq!(types, ["message/delivery-status", "text/rfc822-headers"]);
}

#[test]
fn a_reply_to_holding_a_list_of_addresses_is_not_an_address() {
    let raw = b"From: Dear friend <spam@attacker.test>\r\n\
        Reply-To: <a@x.test,b@y.test,c@z.test>\r\n\
        To: lavori-pubblici@comune.test, <d@x.test;e@y.test>\r\n\
        Subject: claim your refund\r\n\r\nbody\r\n";
    let mail = parse(raw).unwrap();
    assert_eq!(mail.reply_to, None);
    assert_eq!(
        mail.from.map(|m| m.address).as_deref(),
        Some("spam@attacker.test")
    );
    assert_eq!(addresses(&mail.to), ["lavori-pubblici@comune.test"]);
    let raw = b"From: <a@x.test,b@y.test>, anna@citizen.test\r\nSubject: x\r\n\r\nbody\r\n";
    assert_eq!(
        parse(raw).unwrap().from,
        None,
        "a later From address is not promoted"
    );
}

#[test]
fn reply_to_different_from_from_is_kept_apart() {
    let mail = mail("reply-to-differs-from-from");
    assert_eq!(
        mail.from.map(|m| m.address).as_deref(),
        Some("segreteria@studio-bianchi.example.test")
    );
    assert_eq!(
        mail.reply_to,
        Some(Mailbox {
            name: Some("Bianchi, Anna".into()),
            address: "anna.bianchi@example.test".into(),
        })
    );
}

#[test]
fn to_and_cc_list_both_area_addresses() {
    let mail = mail("to-cc-two-areas");
    assert_eq!(addresses(&mail.to), ["lavori-pubblici@comune.test"]);
    assert_eq!(
        addresses(&mail.cc),
        ["ambiente@comune.test", "vicino.di.casa@example.test"]
    );
    assert_eq!(mail.cc[0].name.as_deref(), Some("Ufficio Ambiente"));
    assert_eq!(mail.cc[1].name, None);
}

#[test]
fn x_original_to_and_delivered_to_are_collected_in_order() {
    let mail = mail("x-original-to-delivered-to");
    assert_eq!(
        mail.original_recipients,
        ["lavori-pubblici@comune.test", "ticketgate@comune.test"]
    );
    assert_eq!(addresses(&mail.to), ["uffici@comune.test"]);
}

#[test]
fn follow_up_references_are_ids_without_brackets() {
    let mail = mail("follow-up-with-references");
    assert_eq!(mail.in_reply_to, ["t2026-000001.m1.abcdef@comune.test"]);
    assert_eq!(
        mail.references,
        [
            "c1a2b3c4-0001@example.test",
            "t2026-000001.m1.abcdef@comune.test"
        ]
    );
    assert!(mail
        .text
        .contains("> Abbiamo ricevuto la sua segnalazione."));
}

#[test]
fn forwarded_message_attachment_is_the_raw_nested_message() {
    let mail = mail("forwarded-message-rfc822");
    assert!(mail.text.contains("la situazione è la stessa"));
    assert!(!mail.text.contains("scavo aperto"));
    assert_eq!(mail.attachments.len(), 1);
    let forwarded = &mail.attachments[0];
    assert_eq!(forwarded.filename, "Lavori in via Garibaldi.eml");
    assert_eq!(forwarded.content_type, "message/rfc822");
    assert!(forwarded
        .bytes
        .starts_with(b"From: Vicino <vicino@example.test>\n"));
    assert!(!forwarded.bytes.windows(5).any(|w| w == b"--fwd"));
    let nested = parse(&forwarded.bytes).unwrap_or_else(|e| panic!("nested: {e}"));
    assert_eq!(nested.subject, "Lavori in via Garibaldi");
    assert_eq!(
        nested.message_id.as_deref(),
        Some("vicino-0001@example.test")
    );
    assert!(nested.text.contains("c'è ancora lo scavo aperto"));
}

// --- edge cases without a fixture ------------------------------------------------------

#[test]
fn empty_or_blank_input_is_empty() {
    assert_eq!(parse(b""), Err(ParseError::Empty));
    assert_eq!(parse(b" \r\n\t\n"), Err(ParseError::Empty));
}

#[test]
fn text_without_header_fields_is_not_a_message() {
    assert_eq!(parse(b"hello world"), Err(ParseError::NotAMessage));
    assert_eq!(
        parse(b"just some text\nand more text\n"),
        Err(ParseError::NotAMessage)
    );
    assert_eq!(
        parse(&[0xFF, 0xD8, 0xFF, 0xE0]),
        Err(ParseError::NotAMessage)
    );
}

#[test]
fn a_message_with_headers_and_no_body_parses() {
    let mail =
        parse(b"From: a@example.test\nSubject: solo oggetto\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.subject, "solo oggetto");
    assert_eq!(mail.text, "");
}

#[test]
fn encoded_line_breaks_in_subject_and_names_become_spaces() {
    let raw = b"From: =?UTF-8?Q?Mario=0D=0ABcc:_x@evil.test?= <m@example.test>\n\
                Subject: =?UTF-8?Q?riga_uno=0D=0ABcc:_x@evil.test?=\n\n.\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    assert!(!mail.subject.contains(['\r', '\n']), "{:?}", mail.subject);
    assert!(mail.subject.starts_with("riga uno"));
    let name = mail.from.and_then(|m| m.name).unwrap_or_default();
    assert!(!name.contains(['\r', '\n']), "{name:?}");
}

#[test]
fn only_the_first_of_several_message_ids_counts() {
    let mail = parse(
        b"Message-ID: <a@example.test> <b@example.test>\nMessage-ID: <c@example.test>\n\n.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.message_id.as_deref(), Some("a@example.test"));
}

#[test]
fn an_impossible_date_is_none() {
    let mail = parse(b"From: a@example.test\nDate: Thu, 00 Nov 2026 25:61:00 +0100\n\n.\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.date_millis, None);
}

#[test]
fn groups_are_flattened_and_undisclosed_recipients_skipped() {
    let mail = parse(
        b"From: a@example.test\nTo: undisclosed-recipients:;\nCc: Uffici: lavori-pubblici@comune.test, ambiente@comune.test;\n\n.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(mail.to.is_empty());
    assert_eq!(
        addresses(&mail.cc),
        ["lavori-pubblici@comune.test", "ambiente@comune.test"]
    );
}

#[test]
fn a_delay_report_has_no_failed_recipient() {
    let raw = b"Return-Path: <>\nFrom: MAILER-DAEMON@example.test\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nDelayed.\n\
        --b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.test\n\n\
        Final-Recipient: rfc822; x@example.test\nAction: delayed\nStatus: 4.4.1\n\n--b--\n";
    let dsn = parse(raw)
        .unwrap_or_else(|e| panic!("{e}"))
        .dsn
        .unwrap_or_else(|| panic!("no DSN"));
    assert!(dsn.failed_recipients.is_empty());
    assert_eq!(dsn.status.as_deref(), Some("4.4.1"));
    assert_eq!(dsn.original_message_id, None);
}

#[test]
fn a_dsn_returning_the_full_message_gives_its_message_id() {
    let raw = b"Return-Path: <>\nFrom: postmaster@example.test\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nFailed.\n\
        --b\nContent-Type: message/delivery-status\n\n\
        Original-Recipient: rfc822;<X@Example.test>\nStatus: 5.2.2\n\n\
        --b\nContent-Type: message/rfc822\n\nMessage-ID: <t2026-000002.m3.k@comune.test>\nSubject: x\n\ncorpo\n--b--\n";
    let dsn = parse(raw)
        .unwrap_or_else(|e| panic!("{e}"))
        .dsn
        .unwrap_or_else(|| panic!("no DSN"));
    assert_eq!(
        dsn.original_message_id.as_deref(),
        Some("t2026-000002.m3.k@comune.test")
    );
    // No Action field: a 5.x.x status is a failure.
    assert_eq!(dsn.failed_recipients, ["x@example.test"]);
}

#[test]
fn returned_headers_ending_without_newline_still_give_the_message_id() {
    // The boundary is never closed and the part ends at end-of-input.
    let raw = b"From: MAILER-DAEMON@example.test\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
        --b\nContent-Type: text/rfc822-headers\n\nSubject: x\nMessage-ID: <t2026-000003.m1.k@comune.test>";
    let dsn = parse(raw)
        .unwrap_or_else(|e| panic!("{e}"))
        .dsn
        .unwrap_or_else(|| panic!("no DSN"));
    assert_eq!(
        dsn.original_message_id.as_deref(),
        Some("t2026-000003.m1.k@comune.test")
    );
}

#[test]
fn a_read_receipt_is_automatic_but_not_a_dsn() {
    let raw = b"From: a@example.test\n\
        Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nLetto.\n\
        --b\nContent-Type: message/disposition-notification\n\nDisposition: manual-action/MDN-sent-manually; displayed\n\n--b--\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.auto, Some(AutoReason::Dsn));
    assert_eq!(mail.dsn, None);
}

#[test]
fn deeply_nested_multiparts_are_refused_before_parsing() {
    let mut raw = b"From: a@example.test\n".to_vec();
    for depth in 0..2000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{depth}\"\n\n--b{depth}\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Content-Type: text/plain\n\nfondo\n");
    assert!(matches!(parse(&raw), Err(ParseError::TooDeep { .. })));
}

#[test]
fn the_last_part_of_an_unclosed_multipart_is_decoded_and_is_the_body() {
    let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
        --b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
        w4ggY2FkdXRvIHVuIGFsYmVyby4K\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.text, "\u{c8} caduto un albero.\n");
    assert!(mail.attachments.is_empty(), "{:?}", mail.attachments);
}

#[test]
fn an_unclosed_quoted_printable_html_body_is_decoded_into_html_and_text() {
    let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
        --b\nContent-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
        <div>Citt=E0</div><div>pi=F9 pulita</div>\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.text, "Citt\u{e0}\npi\u{f9} pulita");
    assert_eq!(
        mail.html.as_deref(),
        Some("<div>Citt\u{e0}</div><div>pi\u{f9} pulita</div>\n")
    );
    assert!(mail.attachments.is_empty());
}

#[test]
fn a_quoted_printable_soft_break_before_the_boundary_does_not_panic() {
    // mail-parser 0.11.9 subtracts past zero here (a panic with overflow checks on).
    let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
        --b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=\n--b--\n";
    // Cargo.toml turns overflow checks off for mail-parser in every profile, so debug
    // builds wrap like release ones and the message parses.
    let result = parse(raw);
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn a_broken_date_hides_no_header_field_with_lf_line_ends() {
    // Found by the mime_parse fuzz target: with bare LF, mail-parser let an unparseable
    // Date swallow the next field (here From and Message-ID), not with CRLF.
    for date in ["x =?utf-8?b?", "Thu, 26 Nov 2026 06:00:00 +00A0"] {
        let lf = format!(
            "Date: {date}\nFrom: Anna <anna@example.it>\nMessage-ID: <m1@example.it>\n\
             Subject: buca\n\ntesto\n"
        );
        let from_lf = parse(lf.as_bytes()).expect("parses");
        let from_crlf = parse(to_crlf(lf.as_bytes()).as_slice()).expect("parses");
        assert_eq!(
            from_lf.from.as_ref().map(|m| m.address.as_str()),
            Some("anna@example.it"),
            "{date}"
        );
        assert_eq!(
            from_lf.message_id.as_deref(),
            Some("m1@example.it"),
            "{date}"
        );
        assert_eq!(from_lf.from, from_crlf.from);
        assert_eq!(from_lf.message_id, from_crlf.message_id);
        assert_eq!(from_lf.text, from_crlf.text);
    }
}

#[test]
fn a_huge_recipient_list_is_handled_in_linear_time() {
    let mut raw = b"From: a@example.test\nTo: ".to_vec();
    for i in 0..100_000 {
        raw.extend_from_slice(format!("u{i}@example.test, ").as_bytes());
    }
    raw.extend_from_slice(b"u0@example.test\nReferences:");
    for i in 0..50_000 {
        raw.extend_from_slice(format!(" <{i}@example.test>").as_bytes());
    }
    raw.extend_from_slice(b"\n\n.\n");
    let started = std::time::Instant::now();
    let mail = parse(&raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mail.to.len(), 100_000);
    assert_eq!(mail.references.len(), 50_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn file_names_are_sanitised() {
    assert_eq!(
        sanitize_filename("../../etc/passwd").as_deref(),
        Some("passwd")
    );
    assert_eq!(
        sanitize_filename("C:\\Users\\a\\foto.jpg").as_deref(),
        Some("foto.jpg")
    );
    assert_eq!(
        sanitize_filename("fattura\u{202e}gpj.exe").as_deref(),
        Some("fatturagpj.exe")
    );
    assert_eq!(
        sanitize_filename("a\r\nb\0c.pdf").as_deref(),
        Some("abc.pdf")
    );
    assert_eq!(sanitize_filename(" .bashrc ").as_deref(), Some("bashrc"));
    assert_eq!(
        sanitize_filename("che? \"no\" <sì>|*.txt").as_deref(),
        Some("che_ _no_ _sì___.txt")
    );
    assert_eq!(sanitize_filename(".."), None);
    assert_eq!(sanitize_filename("dir/"), None);
    let long = format!("{}.jpeg", "è".repeat(300));
    let capped = sanitize_filename(&long).unwrap_or_default();
    assert!(capped.len() <= MAX_FILENAME_BYTES, "{}", capped.len());
    assert!(capped.ends_with("è.jpeg"));
}

#[test]
fn an_attachment_without_a_name_gets_a_numbered_italian_one() {
    let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nciao\n\
        --b\nContent-Type: application/pdf\nContent-Disposition: attachment\n\n%PDF-1.4\n\
        --b\nContent-Type: application/x-weird; name=\"../\"\nContent-Disposition: attachment\n\nxx\n--b--\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = mail
        .attachments
        .iter()
        .map(|a| a.filename.as_str())
        .collect();
    assert_eq!(names, ["allegato-1.pdf", "allegato-2"]);
}

#[test]
fn an_inline_image_of_an_html_mail_keeps_its_content_id_and_inline_disposition() {
    let raw = b"From: a@example.test\nContent-Type: multipart/related; boundary=r\n\n\
        --r\nContent-Type: text/html\n\n<p>La buca: <img src=\"cid:buca.1@citizen.test\"></p>\n\
        --r\nContent-Type: image/png; name=buca.png\nContent-ID: <buca.1@citizen.test>\n\
        Content-Transfer-Encoding: base64\n\niVBORw0K\n\
        --r\nContent-Type: image/gif\nContent-ID: <logo@citizen.test>\n\
        Content-Disposition: inline; filename=logo.gif\n\nGIF89a\n\
        --r\nContent-Type: application/pdf\nContent-ID: <doc@citizen.test>\n\
        Content-Disposition: attachment; filename=doc.pdf\n\n%PDF\n\
        --r\nContent-Type: application/pdf\nContent-ID: <bad id>\n\
        Content-Disposition: attachment; filename=other.pdf\n\n%PDF\n--r--\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<(&str, Option<&str>, bool)> = mail
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.content_id.as_deref(), a.inline))
        .collect();
    assert_eq!(
        seen,
        [
            ("buca.png", Some("buca.1@citizen.test"), true),
            ("logo.gif", Some("logo@citizen.test"), true),
            ("doc.pdf", Some("doc@citizen.test"), false),
            ("other.pdf", None, false),
        ]
    );
}

#[test]
fn content_ids_that_cannot_be_written_back_are_dropped() {
    assert_eq!(clean_content_id(" <a.b@c> ").as_deref(), Some("a.b@c"));
    assert_eq!(clean_content_id("a.b@c").as_deref(), Some("a.b@c"));
    assert_eq!(clean_content_id("<>"), None);
    assert_eq!(clean_content_id("<a b@c>"), None);
    assert_eq!(clean_content_id("<a\u{e8}@c>"), None);
    assert_eq!(clean_content_id("<a<b@c>"), None);
    assert_eq!(
        clean_content_id(&"x".repeat(MAX_CONTENT_ID_BYTES + 1)),
        None
    );
}

#[test]
fn a_malformed_content_type_becomes_octet_stream() {
    let raw = b"From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nciao\n\
        --b\nContent-Type: image/j\"peg\r; name=x.jpg\nContent-Disposition: attachment\n\nxx\n--b--\n";
    let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        mail.attachments
            .iter()
            .all(|a| is_media_type(&a.content_type)),
        "{:?}",
        mail.attachments
    );
}

#[test]
fn block_tags_become_single_line_breaks() {
    assert_eq!(
        html_to_readable_text("<div>uno</div><div>due</div><div><br></div><div>tre</div>"),
        "uno\ndue\n\ntre"
    );
    assert_eq!(
        html_to_readable_text("Buongiorno,<div>c'&egrave; una buca</div>"),
        "Buongiorno,\nc'è una buca"
    );
    assert_eq!(
        html_to_readable_text("<table><tr><td>Via</td><td>Roma</td></tr></table>"),
        "Via Roma"
    );
    assert_eq!(html_to_readable_text("<p>a</p>\n\n\n<p>b</p>"), "a\nb");
}

#[test]
fn the_block_tag_pattern_compiles() {
    assert!(BLOCK_TAG.is_some());
}

#[test]
fn windows_1252_decoder_is_available_for_raw_headers() {
    let decode = charset_decoder(b"windows-1252").unwrap_or_else(|| panic!("missing"));
    assert_eq!(decode(b"Nicol\xf2 \x80"), "Nicolò €");
}

// --- never panics ----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
}

/// Bytes that steer mail-parser into its MIME, encoding and header paths.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..24),
        prop::sample::select(vec![
            &b"\r\n"[..],
            b"\n\n",
            b"\n--",
            b"--\n",
            b"\n--b\n",
            b"=?utf-8?b?",
            b"=?iso-8859-1?q?=E0",
            b"?=",
            b"=\n",
            b"=\n--b--\n",
            b"\n--==mixed==\n",
            b"=C3",
            b"<",
            b">",
            b"\"",
            b";",
            b":",
            b"\xff\xfe\xc3",
            b"Content-Type: multipart/mixed; boundary=\"b\"\n",
            b"Content-Type: message/rfc822\n\n",
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
            b"Content-Transfer-Encoding: base64\n",
            b"Content-Transfer-Encoding: quoted-printable\n",
            b"Content-Disposition: attachment; filename*=UTF-8''%E0%80\n",
        ])
        .prop_map(<[u8]>::to_vec),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<prop::sample::Index>(), interesting_bytes())
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), 1..64usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Truncate(at) if len > 0 => bytes.truncate(at.index(len)),
        Mutation::Flip(at, mask) if len > 0 => bytes[at.index(len)] ^= mask,
        Mutation::Insert(at, inserted) => {
            let at = if len > 0 { at.index(len + 1) } else { 0 };
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Remove(at, n) if len > 0 => {
            let start = at.index(len);
            bytes.drain(start..(start + n).min(len));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn header_like_text_never_panics(
        text in "(([A-Za-z-]{1,20}|Content-Type|Content-Transfer-Encoding|Return-Path|From|Message-ID|Date): [ -~\u{e0}\u{20ac}]{0,60}\r?\n){1,8}\r?\n[ -~\r\n]{0,400}"
    ) {
        let _ = parse(text.as_bytes());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in 0..FIXTURES.len(),
        crlf in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..10),
    ) {
        let (_, original) = FIXTURES[index];
        let mut bytes = if crlf { to_crlf(original) } else { to_lf(original) };
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        let _ = parse(&bytes);
    }
}
