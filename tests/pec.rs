//! PEC end to end: certified mail in a PEC box through a private Dovecot + Postfix and the
//! real `ticketgate serve`. The test plays the PEC providers: it wraps the citizen's message
//! in a transport envelope, and answers our certified mail with the receipts a provider
//! sends (support::pec builds both as RFC 6109 describes them).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::config::Mailbox;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use support::pec::{self as pecmail, Receipt, Transport};

const WAIT: Duration = Duration::from_secs(30);
/// The comune's PEC box: an address of the "lavori pubblici" area, polled as a PEC mailbox.
const PEC_BOX: &str = "protocollo@pec.comune.test";
/// A citizen writing from their own PEC address.
const PEC_CITIZEN: &str = "mario.bianchi@pec.citizen.test";
/// The citizen's provider, and its robot that sends envelopes and receipts.
const PROVIDER: &str = "pec.provider.test";
const PROVIDER_ROBOT: &str = "posta-certificata@pec.provider.test";

/// The test config plus a PEC mailbox, the PEC box among the area's addresses, and
/// `[pec_smtp]` on the private Postfix (`pec_smtp_port`), then `extra` TOML.
fn start(stack: &MailStack, smtp_port: u16, pec_smtp_port: u16, extra: &str) -> Gateway {
    Gateway::start_configured(stack, |c| {
        c.smtp_port = smtp_port;
        c.area("lavori-pubblici")
            .addresses
            .insert(1, format!("{PEC_BOX:?}"));
        c.mailboxes.push(Mailbox {
            name: "pec".to_owned(),
            username: PEC_BOX.to_owned(),
            default_area: None,
            idle: None,
            processed_folder: None,
            pec: true,
        });
        c.pec_smtp_port = Some(pec_smtp_port);
        c.extra = format!("{extra}\n");
    })
}

fn start_default(stack: &MailStack) -> Gateway {
    start(stack, stack.smtp_port, stack.smtp_port, "")
}

fn transport(subject: &str, text: &str) -> Transport {
    Transport {
        citizen: PEC_CITIZEN.to_owned(),
        to: PEC_BOX.to_owned(),
        subject: subject.to_owned(),
        text: text.to_owned(),
        identificativo: format!(
            "opec210.{}",
            unique_id().replace("@citizen.test", "@pec.provider.test")
        ),
        client_message_id: unique_id(),
        in_reply_to: None,
        jpeg: None,
        provider_domain: PROVIDER.to_owned(),
    }
}

/// Delivers `raw` into the PEC box as the provider's robot does.
fn deliver_to_pec_box(stack: &MailStack, raw: &[u8]) {
    send(stack, PROVIDER_ROBOT, &[PEC_BOX], raw);
}

/// The ticket made from the message whose subject contains `subject`.
fn wait_ticket(gw: &Gateway, subject: &str) -> Value {
    gw.wait_for(&format!("a ticket {subject:?}"), WAIT, || {
        gw.tickets()
            .into_iter()
            .find(|t| t["subject"].as_str().is_some_and(|s| s.contains(subject)))
    })
}

fn events_of(shown: &Value, kind: &str) -> Vec<Value> {
    shown["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

fn messages_of(shown: &Value, kind: &str) -> Vec<Value> {
    shown["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

/// A small valid JPEG (SOI, APP0/JFIF, EOI is enough for a content check).
fn jpeg() -> Vec<u8> {
    let mut j = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    j.extend((0..2000u32).map(|i| (i * 7 % 251) as u8));
    j.extend([0xFF, 0xD9]);
    j
}

#[test]
fn a_pec_becomes_one_ticket_from_the_certified_sender_and_the_same_envelope_twice_is_one() {
    let stack = MailStack::start();
    let gw = start_default(&stack);
    let photo = jpeg();
    let mut p = transport(
        "Reclamo: buca in via Garibaldi",
        "Segnalo una buca profonda davanti al civico 3. Perché nessuno interviene?",
    );
    p.jpeg = Some(photo.clone());
    let envelope = pecmail::transport_envelope(&p);
    deliver_to_pec_box(&stack, &envelope);

    let t = wait_ticket(&gw, "buca in via Garibaldi");
    let reference = t["ref"].as_str().unwrap().to_owned();
    assert_eq!(
        t["citizen"], PEC_CITIZEN,
        "the requester is daticert's mittente, not the provider robot"
    );
    assert_eq!(t["channel"], "pec");
    assert_eq!(t["certified"], true);
    assert_eq!(
        t["subject"], "Reclamo: buca in via Garibaldi",
        "the citizen's subject, not 'POSTA CERTIFICATA: …'"
    );
    assert!(
        t["text"]
            .as_str()
            .unwrap()
            .contains("Perché nessuno interviene?"),
        "{t}"
    );

    let shown = gw.show(&reference);
    let report = &messages_of(&shown, "report")[0];
    assert_eq!(report["from"], PEC_CITIZEN);
    assert_eq!(report["pec"]["identificativo"], p.identificativo.as_str());
    assert!(report["pec"]["certified_at"].is_string(), "{report}");
    assert_eq!(report["pec"]["signature"], "not checked");
    let attachments = shown["attachments"].as_array().unwrap();
    assert!(
        attachments
            .iter()
            .any(|a| a["content_type"] == "image/jpeg" && a["size"] == photo.len()),
        "the photo inside postacert.eml is the ticket's attachment: {attachments:?}"
    );
    assert!(
        !attachments
            .iter()
            .any(|a| a["filename"] == "daticert.xml" || a["filename"] == "smime.p7s"),
        "the provider's parts are proof kept in the raw envelope, not the citizen's attachments"
    );
    let received = &events_of(&shown, "received")[0];
    assert_eq!(received["details"]["pec"]["certified"], true);

    // The acknowledgment goes to the certified sender, from the PEC box, through PEC.
    let ack = wait_for_mail(&stack, PEC_CITIZEN, WAIT, |m| m.contains(&reference));
    assert_eq!(address_in(&header(&ack, "From").unwrap()), PEC_BOX);
    let shown = gw.wait_for("the ack sent", WAIT, || {
        let s = gw.show(&reference);
        (messages_of(&s, "ack")[0]["delivery"]["state"] == "sent").then_some(s)
    });
    assert_eq!(
        messages_of(&shown, "ack")[0]["delivery"]["transport"],
        "pec"
    );
    wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));

    // The provider delivers the same envelope again (a retry after a timeout): one ticket.
    deliver_to_pec_box(&stack, &envelope);
    let (_, probe) = citizen_mail(CITIZEN, LAVORI, "Sonda dopo il duplicato", "x");
    send(&stack, CITIZEN, &[LAVORI], &probe);
    wait_ticket(&gw, "Sonda dopo il duplicato");
    gw.wait_for("the duplicate processed", WAIT, || {
        gw.metric("ticketgate_duplicates_total")
            .filter(|n| *n >= 1.0)
    });
    let same: Vec<Value> = gw
        .tickets()
        .into_iter()
        .filter(|t| {
            t["subject"]
                .as_str()
                .is_some_and(|s| s.contains("via Garibaldi"))
        })
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert!(gw.quarantine().is_empty(), "{:?}", gw.quarantine());
}

/// Our answer's acceptance and delivery receipts certify it on the ticket and make no
/// ticket; the citizen's PEC answer to it threads by the provider's identificativo.
#[test]
fn receipts_certify_our_answer_and_the_citizens_pec_reply_threads_by_identificativo() {
    let stack = MailStack::start();
    let gw = start_default(&stack);
    deliver_to_pec_box(
        &stack,
        &pecmail::transport_envelope(&transport(
            "Lampione spento in via Dante",
            "Da una settimana.",
        )),
    );
    let t = wait_ticket(&gw, "Lampione spento");
    let reference = t["ref"].as_str().unwrap().to_owned();
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    let (to, reply) = reply_to_mail(
        &note,
        STAFF_LAVORI,
        "Abbiamo inviato una squadra per domani.",
    );
    send(&stack, STAFF_LAVORI, &[&to], &reply);
    let answer = wait_for_mail(&stack, PEC_CITIZEN, WAIT, |m| {
        m.contains("inviato una squadra")
    });
    assert_eq!(address_in(&header(&answer, "From").unwrap()), PEC_BOX);
    let our_id = header(&answer, "Message-ID").unwrap();
    let our_id = our_id.trim_matches(['<', '>', ' ']).to_owned();
    let tickets_before = gw.tickets().len();

    // The comune's provider (the PEC box's) accepts it, the citizen's provider delivers it
    // and the complete delivery receipt echoes our message.
    let identificativo = format!(
        "opec99.{}",
        unique_id().replace("@citizen.test", "@pec.comune.test")
    );
    let base = Receipt {
        kind: "accettazione".to_owned(),
        our_message_id: our_id.clone(),
        identificativo: identificativo.clone(),
        sender: PEC_BOX.to_owned(),
        recipient: PEC_CITIZEN.to_owned(),
        subject: header(&answer, "Subject").unwrap(),
        errore_esteso: None,
        echo: None,
        provider_domain: "pec.comune.test".to_owned(),
    };
    deliver_to_pec_box(&stack, &pecmail::receipt(&base));
    let delivered = Receipt {
        kind: "avvenuta-consegna".to_owned(),
        echo: Some(answer.clone().into_bytes()),
        ..base.clone()
    };
    deliver_to_pec_box(&stack, &pecmail::receipt(&delivered));

    let shown = gw.wait_for("the answer certified as delivered", WAIT, || {
        let s = gw.show(&reference);
        (messages_of(&s, "answer")[0]["pec"]["state"] == "consegnata").then_some(s)
    });
    let ours = &messages_of(&shown, "answer")[0];
    assert_eq!(ours["pec"]["identificativo"], identificativo.as_str());
    assert_eq!(ours["pec"]["delivered_to"], PEC_CITIZEN);
    assert!(ours["pec"]["certified_at"].is_string(), "{ours}");
    assert_eq!(ours["delivery"]["transport"], "pec");
    let receipts = events_of(&shown, "pec_receipt");
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    assert_eq!(messages_of(&shown, "pec_receipt").len(), 2);
    assert_eq!(
        gw.tickets().len(),
        tickets_before,
        "receipts are never tickets"
    );
    // The echoed copy of our message inside the delivery receipt was not ingested.
    let echoed_as_inbound = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in" && m["kind"] != "staff_reply")
        .filter(|m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("inviato una squadra"))
        })
        .count();
    assert_eq!(echoed_as_inbound, 0, "{shown}");

    // The citizen answers from their PEC client: In-Reply-To is the provider's
    // identificativo (the Message-ID they saw), the subject carries no tag.
    let mut follow = transport("Grazie", "Grazie, ma il lampione è ancora spento stasera.");
    follow.in_reply_to = Some(identificativo.clone());
    deliver_to_pec_box(&stack, &pecmail::transport_envelope(&follow));
    let shown = gw.wait_for("the PEC follow-up on the ticket", WAIT, || {
        let s = gw.show(&reference);
        (!messages_of(&s, "follow_up").is_empty()).then_some(s)
    });
    assert!(messages_of(&shown, "follow_up")[0]["text"]
        .as_str()
        .unwrap()
        .contains("ancora spento"));
    assert_eq!(
        gw.tickets().len(),
        tickets_before,
        "threaded, not a new ticket"
    );
    assert!(gw.quarantine().is_empty(), "{:?}", gw.quarantine());
}

#[test]
fn a_delivery_error_receipt_marks_the_mail_undelivered_and_tells_the_office() {
    let stack = MailStack::start();
    let gw = start_default(&stack);
    deliver_to_pec_box(
        &stack,
        &pecmail::transport_envelope(&transport("Alberi pericolanti al parco", "Rami spezzati.")),
    );
    let reference = wait_ticket(&gw, "Alberi pericolanti")["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let ack = wait_for_mail(&stack, PEC_CITIZEN, WAIT, |m| m.contains(&reference));
    let ack_id = header(&ack, "Message-ID")
        .unwrap()
        .trim_matches(['<', '>', ' '])
        .to_owned();
    let failed = Receipt {
        kind: "errore-consegna".to_owned(),
        our_message_id: ack_id,
        identificativo: format!("opec7.{}", unique_id()),
        sender: PEC_BOX.to_owned(),
        recipient: PEC_CITIZEN.to_owned(),
        subject: header(&ack, "Subject").unwrap(),
        errore_esteso: Some("5.1.1 - Casella del destinatario inesistente".to_owned()),
        echo: None,
        provider_domain: "pec.comune.test".to_owned(),
    };
    deliver_to_pec_box(&stack, &pecmail::receipt(&failed));
    let notice = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        m.contains(&reference) && m.contains("errore-consegna")
    });
    assert!(
        notice.contains("Casella del destinatario inesistente"),
        "{notice}"
    );
    let shown = gw.show(&reference);
    let ack = &messages_of(&shown, "ack")[0];
    assert_eq!(ack["pec"]["state"], "non consegnata");
    assert!(
        ack["pec"]["reason"]
            .as_str()
            .unwrap()
            .contains("inesistente"),
        "{ack}"
    );
    assert_eq!(gw.tickets().len(), 1);
}

/// An ordinary mail that reached the PEC box arrives as an anomaly envelope: a ticket from
/// the real sender, flagged not certified. A receipt for a message we never sent is kept
/// in quarantine, never a ticket.
#[test]
fn an_anomaly_is_a_ticket_not_certified_and_an_unknown_receipt_is_quarantined() {
    let stack = MailStack::start();
    let gw = start_default(&stack);
    let (_, ordinary) = citizen_mail(
        CITIZEN,
        PEC_BOX,
        "Rifiuti abbandonati in piazza",
        "Da giorni.",
    );
    deliver_to_pec_box(
        &stack,
        &pecmail::anomaly(&ordinary, PEC_BOX, "pec.comune.test"),
    );
    let t = wait_ticket(&gw, "Rifiuti abbandonati");
    assert_eq!(t["citizen"], CITIZEN);
    assert_eq!(t["channel"], "pec");
    assert_eq!(t["certified"], false);

    let stray = Receipt {
        kind: "avvenuta-consegna".to_owned(),
        our_message_id: unique_id(),
        identificativo: format!("opec3.{}", unique_id()),
        sender: PEC_BOX.to_owned(),
        recipient: PEC_CITIZEN.to_owned(),
        subject: "CONSEGNA: qualcosa".to_owned(),
        errore_esteso: None,
        echo: None,
        provider_domain: "pec.comune.test".to_owned(),
    };
    deliver_to_pec_box(&stack, &pecmail::receipt(&stray));
    let q = gw.wait_for("the stray receipt quarantined", WAIT, || {
        let q = gw.quarantine();
        (!q.is_empty()).then_some(q)
    });
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap()
            .contains("matches none of our messages"),
        "{q:?}"
    );
    assert_eq!(gw.tickets().len(), 1);
}

/// Mail to a PEC citizen leaves through `[pec_smtp]`: with the ordinary relay down, the
/// PEC acknowledgment still arrives.
#[test]
fn mail_to_a_pec_citizen_leaves_through_the_pec_smtp_account() {
    let stack = MailStack::start();
    // [smtp] points at a port where nothing listens; [pec_smtp] at the private Postfix.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let gw = start(&stack, dead_port, stack.smtp_port, "");
    deliver_to_pec_box(
        &stack,
        &pecmail::transport_envelope(&transport("Semaforo guasto", "In via Verdi.")),
    );
    let reference = wait_ticket(&gw, "Semaforo guasto")["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_mail(&stack, PEC_CITIZEN, WAIT, |m| m.contains(&reference));
    let shown = gw.show(&reference);
    let notification = &messages_of(&shown, "notification")[0];
    assert_ne!(
        notification["delivery"]["state"], "sent",
        "staff mail uses [smtp], which is down"
    );
}

/// A citizen's ordinary mail to an ordinary area address with `X-Ricevuta`/`X-Trasporto`
/// headers is an ordinary report: only a PEC box reads those headers.
#[test]
fn pec_headers_in_mail_to_an_ordinary_box_are_not_trusted() {
    let stack = MailStack::start();
    let gw = start_default(&stack);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Marciapiede rotto", "Pericoloso.");
    let forged = [
        b"X-Ricevuta: avvenuta-consegna\r\nX-Trasporto: errore\r\n".as_slice(),
        &raw,
    ]
    .concat();
    send(&stack, CITIZEN, &[LAVORI], &forged);
    let t = wait_ticket(&gw, "Marciapiede rotto");
    assert_eq!(t["channel"], "email");
    assert!(t["certified"].is_null());
}

/// With `pec.verify_signatures`, the provider's S/MIME signature is checked against the
/// trust store and the result recorded; a tampered envelope is still a ticket, flagged and not
/// certified.
#[test]
fn provider_signatures_are_verified_and_a_bad_one_is_recorded_never_dropped() {
    let stack = MailStack::start();
    let pki = support::pki::make_pki(PROVIDER_ROBOT);
    let extra = format!(
        "\n[pec]\nverify_signatures = true\ntrust_store = \"{}\"\n",
        pki.ca_pem.display()
    );
    let gw = start(&stack, stack.smtp_port, stack.smtp_port, &extra);

    // Real providers still sign with SHA-1.
    let good = transport("Fontana rotta in piazza", "Perde acqua da ieri.");
    let signed = support::pki::sign(&pki, &pecmail::transport_inner_mixed(&good), "sha1");
    deliver_to_pec_box(&stack, &pecmail::wrap_envelope_headers(&good, &signed));

    let bad = transport("Panchina divelta", "Al parco giochi.");
    let signed = support::pki::sign(&pki, &pecmail::transport_inner_mixed(&bad), "sha256");
    let tampered = String::from_utf8(pecmail::wrap_envelope_headers(&bad, &signed))
        .unwrap()
        .replace("Al parco giochi.", "Al parco giochi!");
    deliver_to_pec_box(&stack, tampered.as_bytes());

    for (subject, expected, certified) in [
        ("Fontana rotta", "verified", true),
        ("Panchina divelta", "not verified", false),
    ] {
        let reference = wait_ticket(&gw, subject)["ref"]
            .as_str()
            .unwrap()
            .to_owned();
        let shown = gw.show(&reference);
        let report = &messages_of(&shown, "report")[0];
        assert_eq!(report["pec"]["signature"], expected, "{subject}: {report}");
        assert_eq!(shown["ticket"]["certified"], certified, "{subject}");
        let because = &shown["ticket"]["not_certified_because"];
        if certified {
            assert!(because.is_null(), "{subject}: {because}");
        } else {
            assert!(
                because
                    .as_str()
                    .is_some_and(|b| b.contains("did not verify")),
                "{subject}: {because}"
            );
        }
    }
}

/// With `pec.verify_signatures`, an envelope that carries no signature at all (anyone can
/// write `X-Trasporto: posta-certificata`) is a ticket, but not a certified one, and
/// `ticket show` says why (docs/design-notes.md, "Fuzzing, PEC certification, plaintext
/// transports").
#[test]
fn an_unsigned_envelope_is_not_certified_when_signatures_are_verified() {
    let stack = MailStack::start();
    let pki = support::pki::make_pki(PROVIDER_ROBOT);
    let extra = format!(
        "\n[pec]\nverify_signatures = true\ntrust_store = \"{}\"\n",
        pki.ca_pem.display()
    );
    let gw = start(&stack, stack.smtp_port, stack.smtp_port, &extra);

    let p = transport("Lampione spento in via Dante", "Da una settimana.");
    let unsigned = pecmail::wrap_envelope_headers(&p, &pecmail::transport_inner_mixed(&p));
    deliver_to_pec_box(&stack, &unsigned);

    let t = wait_ticket(&gw, "Lampione spento");
    assert_eq!(t["channel"], "pec");
    assert_eq!(
        t["certified"], false,
        "an unsigned envelope is not certified"
    );
    let reference = t["ref"].as_str().unwrap().to_owned();
    let shown = gw.show(&reference);
    let report = &messages_of(&shown, "report")[0];
    assert_eq!(report["pec"]["signature"], "not checked", "{report}");
    let because = shown["ticket"]["not_certified_because"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {}", shown["ticket"]));
    assert!(because.contains("signature"), "{because}");
    let received = &events_of(&shown, "received")[0];
    assert_eq!(received["details"]["pec"]["certified"], false, "{received}");

    let out = gw.cli(&["ticket", "show", &reference]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("PEC      NOT certified: {because}")),
        "{text}"
    );
}

/// A bounce of our certified mail can come back as an anomaly envelope carrying the DSN:
/// it is the bounce of that message (recorded, staff told), not a ticket.
#[test]
fn an_anomaly_carrying_a_dsn_of_our_mail_is_a_bounce_not_a_ticket() {
    let stack = MailStack::start();
    let gw = start_default(&stack);
    deliver_to_pec_box(
        &stack,
        &pecmail::transport_envelope(&transport("Buche in via Mazzini", "Tante.")),
    );
    let reference = wait_ticket(&gw, "Buche in via Mazzini")["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let ack = wait_for_mail(&stack, PEC_CITIZEN, WAIT, |m| m.contains(&reference));
    let ack_id = header(&ack, "Message-ID").unwrap();
    let bounce = dsn(PEC_BOX, PEC_CITIZEN, &ack_id);
    deliver_to_pec_box(
        &stack,
        &pecmail::anomaly(bounce.as_bytes(), PEC_BOX, "pec.comune.test"),
    );
    let shown = gw.wait_for("the bounce recorded", WAIT, || {
        let s = gw.show(&reference);
        (!events_of(&s, "bounce").is_empty()).then_some(s)
    });
    assert_eq!(messages_of(&shown, "ack")[0]["delivery"]["state"], "failed");
    wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        m.contains(&reference) && m.contains("Undelivered")
    });
    assert_eq!(gw.tickets().len(), 1);
}

/// With `pec.verify_signatures`, a receipt whose signature does not verify (anyone who can
/// put mail into the PEC box can write `X-Ricevuta: avvenuta-consegna`) is kept on the
/// ticket with the reason, but changes nothing: our message's certified state stays as it
/// was and the office gets no failure notice. A receipt the provider signed still certifies
/// (docs/design-notes.md, "Fuzzing, PEC certification, plaintext transports").
#[test]
fn an_unsigned_receipt_changes_no_delivery_state_when_signatures_are_verified_and_a_signed_one_does(
) {
    let stack = MailStack::start();
    let pki = support::pki::make_pki(PROVIDER_ROBOT);
    let extra = format!(
        "\n[pec]\nverify_signatures = true\ntrust_store = \"{}\"\n",
        pki.ca_pem.display()
    );
    let gw = start(&stack, stack.smtp_port, stack.smtp_port, &extra);
    let p = transport("Tombino rotto in via Verdi", "Pericoloso per le bici.");
    let signed = support::pki::sign(&pki, &pecmail::transport_inner_mixed(&p), "sha1");
    deliver_to_pec_box(&stack, &pecmail::wrap_envelope_headers(&p, &signed));
    let t = wait_ticket(&gw, "Tombino rotto");
    assert_eq!(t["certified"], true, "{t}");
    let reference = t["ref"].as_str().unwrap().to_owned();
    let ack = wait_for_mail(&stack, PEC_CITIZEN, WAIT, |m| m.contains(&reference));
    let ack_id = header(&ack, "Message-ID")
        .unwrap()
        .trim_matches(['<', '>', ' '])
        .to_owned();
    let delivered = Receipt {
        kind: "avvenuta-consegna".to_owned(),
        our_message_id: ack_id,
        identificativo: format!("opec5.{}", unique_id()),
        sender: PEC_BOX.to_owned(),
        recipient: PEC_CITIZEN.to_owned(),
        subject: header(&ack, "Subject").unwrap(),
        errore_esteso: None,
        echo: None,
        provider_domain: "pec.comune.test".to_owned(),
    };
    let failed = Receipt {
        kind: "errore-consegna".to_owned(),
        identificativo: format!("opec6.{}", unique_id()),
        errore_esteso: Some("5.1.1 - Casella del destinatario inesistente".to_owned()),
        ..delivered.clone()
    };

    // The provider's genuine receipt, signed, sent further down.
    let signed = support::pki::sign(&pki, &pecmail::receipt_inner_mixed(&delivered), "sha1");
    let genuine = String::from_utf8(pecmail::wrap_receipt_headers(&delivered, &signed)).unwrap();
    let genuine_id = header(&genuine, "Message-ID").unwrap();

    // Forged: one with no signature at all (and the genuine receipt's Message-ID, which a
    // provider makes predictable), one with a signature that verifies as nothing.
    let unsigned = String::from_utf8(pecmail::wrap_receipt_headers(
        &delivered,
        &pecmail::receipt_inner_mixed(&delivered),
    ))
    .unwrap();
    let forged_id = header(&unsigned, "Message-ID").unwrap();
    let unsigned = unsigned.replace(
        &format!("Message-ID: {forged_id}"),
        &format!("Message-ID: {genuine_id}"),
    );
    assert_eq!(header(&unsigned, "Message-ID").unwrap(), genuine_id);
    deliver_to_pec_box(&stack, unsigned.as_bytes());
    deliver_to_pec_box(&stack, &pecmail::receipt(&failed));
    let shown = gw.wait_for("both forged receipts recorded", WAIT, || {
        let s = gw.show(&reference);
        (messages_of(&s, "pec_receipt").len() == 2).then_some(s)
    });
    let ours = &messages_of(&shown, "ack")[0];
    assert!(ours["pec"]["state"].is_null(), "{ours}");
    assert!(ours["pec"]["identificativo"].is_null(), "{ours}");
    assert!(ours["pec"]["certified_at"].is_null(), "{ours}");
    assert!(events_of(&shown, "pec_receipt").is_empty(), "{shown}");
    assert_eq!(
        messages_of(&shown, "pec_receipt").len(),
        2,
        "kept, never dropped"
    );
    for e in events_of(&shown, "pec_receipt_unverified") {
        let d = &e["details"];
        assert!(d["state"].is_null(), "{e}");
        assert_eq!(d["applied"], false, "{e}");
        assert!(
            d["not_certified"]
                .as_str()
                .is_some_and(|w| w.contains("signature")),
            "{e}"
        );
    }
    let notices: Vec<Value> = messages_of(&shown, "notice")
        .into_iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains("PEC")))
        .collect();
    assert!(notices.is_empty(), "no failure notice: {notices:?}");
    assert!(
        gw.log().contains("PEC receipt not certified"),
        "the operator is told in the log"
    );
    let out = gw.cli(&["ticket", "show", &reference]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pec_receipt_unverified"), "{text}");
    assert!(text.contains("signature"), "{text}");

    // The provider's own, signed: certifies, though a forged one came first with its
    // Message-ID.
    deliver_to_pec_box(&stack, genuine.as_bytes());
    let shown = gw.wait_for("the ack certified as delivered", WAIT, || {
        let s = gw.show(&reference);
        (messages_of(&s, "ack")[0]["pec"]["state"] == "consegnata").then_some(s)
    });
    let ours = &messages_of(&shown, "ack")[0];
    assert_eq!(ours["pec"]["delivered_to"], PEC_CITIZEN);
    assert!(ours["pec"]["certified_at"].is_string(), "{ours}");
    assert_eq!(events_of(&shown, "pec_receipt").len(), 1, "{shown}");
    assert_eq!(messages_of(&shown, "pec_receipt").len(), 3);
}
