//! PEC mail for end-to-end tests, made on the fly the way providers make it (RFC 6109): the
//! transport envelope around a citizen's certified message, the receipts a provider sends back
//! about our own mail, and the anomaly envelope around ordinary mail that reached a PEC box.
//!
//! Everything is `multipart/signed` over `multipart/mixed` with a dummy `smime.p7s` (the
//! gateway does not need a real signature unless a test checks one; for that, sign
//! [`transport_inner_mixed`] with openssl and put [`wrap_envelope_headers`] on top). Output has
//! CRLF line ends, as mail on the wire does; embedded messages are converted to CRLF too.
//! Self-contained: std and the crate's own dependencies only.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::base64;

const CRLF: &str = "\r\n";

/// A citizen's certified message, as their provider delivers it.
#[derive(Debug, Clone)]
pub struct Transport {
    /// The PEC sender (daticert `mittente`).
    pub citizen: String,
    /// The comune's PEC address.
    pub to: String,
    pub subject: String,
    /// The citizen's text (any Unicode).
    pub text: String,
    /// The provider's identificativo, without `<>`: the Message-ID of the envelope and of
    /// `postacert.eml`.
    pub identificativo: String,
    /// The id the citizen's client gave the message, without `<>` (moves to
    /// `X-Riferimento-Message-ID`).
    pub client_message_id: String,
    /// What the citizen replies to, without `<>` (our message's identificativo, typically).
    pub in_reply_to: Option<String>,
    /// A photo attached to the citizen's message.
    pub jpeg: Option<Vec<u8>>,
    /// The citizen's provider, e.g. `pec.provider.test`.
    pub provider_domain: String,
}

/// A receipt about a message we sent.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// `accettazione`, `avvenuta-consegna`, `errore-consegna`, …: the `X-Ricevuta` value.
    pub kind: String,
    /// Our Message-ID, without `<>`.
    pub our_message_id: String,
    /// The identificativo our message got from our provider, without `<>`.
    pub identificativo: String,
    /// Our PEC address: the mittente, and where the receipt goes.
    pub sender: String,
    /// The address our message was for.
    pub recipient: String,
    /// Our message's subject, as it was in its header.
    pub subject: String,
    pub errore_esteso: Option<String>,
    /// Our message as sent, echoed as `postacert.eml` (a complete delivery receipt).
    pub echo: Option<Vec<u8>>,
    /// The provider issuing the receipt.
    pub provider_domain: String,
}

/// The transport envelope: human-readable text (ISO-8859-1 quoted-printable, like providers
/// write it), `daticert.xml` (`tipo="posta-certificata"`), `postacert.eml` and a dummy
/// signature.
pub fn transport_envelope(p: &Transport) -> Vec<u8> {
    let entity = signed_entity(&transport_inner_mixed(p));
    wrap_envelope_headers(p, &entity)
}

/// Just the `multipart/mixed` entity of a transport envelope (its `Content-Type` header, a blank
/// line, the body): what the provider signs, e.g. with
/// `openssl smime -sign -in mixed.eml -signer cert.pem -inkey key.pem -out signed.eml`.
pub fn transport_inner_mixed(p: &Transport) -> Vec<u8> {
    let now = Now::get();
    let citizen_text = human_transport_text(p, &now);
    let daticert = daticert(&Daticert {
        tipo: "posta-certificata",
        errore: "nessuno",
        mittente: &p.citizen,
        destinatari: &p.to,
        risposte: &p.citizen,
        oggetto: &p.subject,
        gestore: &format!("Gestore PEC {}", p.provider_domain),
        now: &now,
        identificativo: &bare(&p.identificativo),
        msgid: &bare(&p.client_message_id),
        ricevuta: Some("completa"),
        consegna: None,
        errore_esteso: None,
    });
    mixed(&[
        latin1_text_part(&citizen_text),
        daticert_part(&daticert),
        postacert_part(&citizen_message(p, &now)),
    ])
}

/// Puts the transport envelope's top-level headers on a `multipart/signed` entity (one this
/// module made, or openssl's output, which starts with its own `MIME-Version` and
/// `Content-Type`). Keeps the entity's line ends and adds `MIME-Version` only if it has none.
pub fn wrap_envelope_headers(p: &Transport, signed_entity: &[u8]) -> Vec<u8> {
    let now = Now::get();
    let fields = vec![
        format!("Return-Path: <posta-certificata@{}>", p.provider_domain),
        received(&p.provider_domain, &p.to, &now),
        format!("X-Riferimento-Message-ID: <{}>", bare(&p.client_message_id)),
        format!("Date: {}", now.rfc5322),
        format!("Message-ID: <{}>", bare(&p.identificativo)),
        format!("To: {}", p.to),
        "X-Trasporto: posta-certificata".to_owned(),
        format!(
            "From: \"Per conto di: {}\" <posta-certificata@{}>",
            p.citizen, p.provider_domain
        ),
        format!("Reply-To: {}", p.citizen),
        format!(
            "Subject: {}",
            encode_header(&format!("POSTA CERTIFICATA: {}", p.subject))
        ),
    ];
    on_top(fields, signed_entity)
}

/// A receipt as the provider sends it back to our `sender`: `X-Ricevuta: kind`,
/// `X-Riferimento-Message-ID: <our id>`, a Message-ID of its own, `daticert.xml` with
/// `identificativo`, `msgid`, `consegna` (delivery and non-delivery), `errore-esteso` when
/// given, and `postacert.eml` when `echo` is given.
pub fn receipt(r: &Receipt) -> Vec<u8> {
    wrap_receipt_headers(r, &signed_entity(&receipt_inner_mixed(r)))
}

/// Just the `multipart/mixed` entity of a receipt (human-readable text, `daticert.xml`, the
/// echo when given): what the provider signs (see `transport_inner_mixed`).
pub fn receipt_inner_mixed(r: &Receipt) -> Vec<u8> {
    let now = Now::get();
    let kind = r.kind.as_str();
    let (_, title) = receipt_words(kind);
    let errore = match kind {
        "errore-consegna" => "no-dest",
        "rilevazione-virus" => "virus",
        "non-accettazione" | "preavviso-errore-consegna" => "altro",
        _ => "nessuno",
    };
    let delivery = matches!(kind, "avvenuta-consegna" | "errore-consegna");
    let daticert = daticert(&Daticert {
        tipo: kind,
        errore,
        mittente: &r.sender,
        destinatari: &r.recipient,
        risposte: &r.sender,
        oggetto: &r.subject,
        gestore: &format!("Gestore PEC {}", r.provider_domain),
        now: &now,
        identificativo: &bare(&r.identificativo),
        msgid: &bare(&r.our_message_id),
        ricevuta: (kind == "avvenuta-consegna").then_some("completa"),
        consegna: delivery.then_some(r.recipient.as_str()),
        errore_esteso: r.errore_esteso.as_deref(),
    });
    let mut text = format!(
        "{title}\n\nIl giorno {} alle ore {} ({}) il messaggio\n\"{}\" proveniente da \"{}\"\n\
         ed indirizzato a:\n{}\n",
        now.giorno, now.ora, now.zona, r.subject, r.sender, r.recipient
    );
    if let Some(error) = &r.errore_esteso {
        text.push_str(&format!("Errore: {error}\n"));
    }
    text.push_str(&format!(
        "Identificativo messaggio: {}\n",
        bare(&r.identificativo)
    ));
    let mut parts = vec![latin1_text_part(&text), daticert_part(&daticert)];
    if let Some(echo) = &r.echo {
        parts.push(postacert_part(echo));
    }
    mixed(&parts)
}

/// Puts a receipt's top-level headers (`X-Ricevuta`, `X-Riferimento-Message-ID`, …) on an
/// entity: a `multipart/signed` one, openssl's output, or the bare `multipart/mixed` of
/// `receipt_inner_mixed` for a receipt that carries no signature at all.
pub fn wrap_receipt_headers(r: &Receipt, entity: &[u8]) -> Vec<u8> {
    let now = Now::get();
    let kind = r.kind.as_str();
    let (prefix, _) = receipt_words(kind);
    let mut fields = vec![
        format!("Return-Path: <posta-certificata@{}>", r.provider_domain),
        received(&r.provider_domain, &r.sender, &now),
        format!("X-Ricevuta: {kind}"),
        format!("X-Riferimento-Message-ID: <{}>", bare(&r.our_message_id)),
    ];
    if kind == "avvenuta-consegna" {
        fields.push("X-TipoRicevuta: completa".to_owned());
    }
    fields.extend([
        format!("Date: {}", now.rfc5322),
        format!(
            "Subject: {}",
            encode_header(&format!("{prefix}{}", r.subject))
        ),
        format!("From: posta-certificata@{}", r.provider_domain),
        format!("To: {}", r.sender),
        format!("Message-ID: <{}>", fresh_id("ricevuta", &r.provider_domain)),
    ]);
    on_top(fields, entity)
}

/// The anomaly envelope around `original` (ordinary mail, a bounce…): `X-Trasporto: errore`,
/// the original's Message-ID, the original whole as `postacert.eml`, no `daticert.xml`.
pub fn anomaly(original: &[u8], to: &str, provider_domain: &str) -> Vec<u8> {
    let now = Now::get();
    let headers = header_fields(original);
    let field = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let from = field("From").map(|v| address_of(&v)).unwrap_or_default();
    let subject = field("Subject").unwrap_or_default();
    let message_id = field("Message-ID")
        .unwrap_or_else(|| format!("<{}>", fresh_id("anomalia", provider_domain)));
    let reply_to = field("Reply-To").unwrap_or_else(|| from.clone());
    let text = format!(
        "Anomalia nel messaggio\n\nIl giorno {} alle ore {} ({}) è stato ricevuto\n\
         il messaggio \"{subject}\" proveniente da \"{from}\"\ned indirizzato a:\n{to}\n\
         Tali dati non sono stati certificati per il seguente errore:\n\
         il messaggio non è un messaggio di posta certificata.\n\
         Il messaggio originale è incluso in allegato.\n",
        now.giorno, now.ora, now.zona
    );
    let fields = vec![
        format!("Return-Path: <posta-certificata@{provider_domain}>"),
        received(provider_domain, to, &now),
        "X-Trasporto: errore".to_owned(),
        format!("Date: {}", now.rfc5322),
        // The original subject stays as it was written (encoded words included).
        format!("Subject: ANOMALIA MESSAGGIO: {subject}"),
        format!("From: \"Per conto di: {from}\" <posta-certificata@{provider_domain}>"),
        format!("Reply-To: {reply_to}"),
        format!("To: {to}"),
        format!("Message-ID: {message_id}"),
    ];
    let parts = [latin1_text_part(&text), postacert_part(original)];
    on_top(fields, &signed_entity(&mixed(&parts)))
}

// ---------------------------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------------------------

/// The current time as the provider writes it, in Italian winter time (+0100): RFC 5322 for
/// headers, `giorno`/`ora`/`zona` for daticert.
struct Now {
    rfc5322: String,
    giorno: String,
    ora: String,
    zona: &'static str,
}

impl Now {
    fn get() -> Now {
        let t = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+1));
        let weekday = t.weekday().to_string();
        let month = t.month().to_string();
        Now {
            rfc5322: format!(
                "{}, {} {} {} {:02}:{:02}:{:02} +0100",
                &weekday[..3],
                t.day(),
                &month[..3],
                t.year(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            giorno: format!("{:02}/{:02}/{}", t.day(), u8::from(t.month()), t.year()),
            ora: format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
            zona: "+0100",
        }
    }
}

/// A value unique in this process and, with the time, across runs.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}.{n}.{}", std::process::id())
}

fn fresh_id(what: &str, domain: &str) -> String {
    format!("opec.{}.{what}@{domain}", unique())
}

fn boundary() -> String {
    format!("----=_PEC_{}", unique().replace('.', "_"))
}

/// An id without `<>` or whitespace.
fn bare(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn received(provider_domain: &str, rcpt: &str, now: &Now) -> String {
    format!(
        "Received: from mx.{provider_domain} (mx.{provider_domain} [192.0.2.25]){CRLF}\
         \tby mx.pec.test (Postfix) with ESMTPS id {}{CRLF}\tfor <{rcpt}>; {}",
        unique().replace('.', ""),
        now.rfc5322
    )
}

/// Header fields (CRLF-terminated) on top of an entity, in the entity's line ends; adds
/// `MIME-Version` unless the entity's own header block has it.
fn on_top(fields: Vec<String>, entity: &[u8]) -> Vec<u8> {
    let eol = if entity.windows(2).any(|w| w == b"\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let has_mime_version = header_fields(entity)
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("MIME-Version"));
    let mut out = String::new();
    for field in fields {
        out.push_str(&field.replace(CRLF, eol));
        out.push_str(eol);
    }
    if !has_mime_version {
        out.push_str("MIME-Version: 1.0");
        out.push_str(eol);
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(entity);
    bytes
}

/// `multipart/signed` over `content` (a whole entity: headers, blank line, body) with a dummy
/// `smime.p7s`.
fn signed_entity(content: &[u8]) -> Vec<u8> {
    let b = boundary();
    let mut out = format!(
        "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";{CRLF} \
         micalg=\"sha-256\"; boundary=\"{b}\"{CRLF}{CRLF}\
         This is an S/MIME signed message{CRLF}{CRLF}--{b}{CRLF}"
    )
    .into_bytes();
    out.extend_from_slice(&to_crlf(content));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(CRLF.as_bytes());
    }
    // A DER SEQUENCE header and filler: looks like a PKCS#7 blob, verifies as nothing.
    let mut blob = vec![
        0x30, 0x82, 0x01, 0x00, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7,
    ];
    blob.extend((0..256u32).map(|i| (i * 37 + 11) as u8));
    out.extend_from_slice(
        format!(
            "--{b}{CRLF}Content-Type: application/pkcs7-signature; name=\"smime.p7s\"{CRLF}\
             Content-Transfer-Encoding: base64{CRLF}\
             Content-Disposition: attachment; filename=\"smime.p7s\"{CRLF}{CRLF}{}{CRLF}--{b}--{CRLF}",
            base64::encode_lines(&blob)
        )
        .as_bytes(),
    );
    out
}

/// `multipart/mixed` entity of the given parts (each: headers, blank line, body, CRLF ends).
fn mixed(parts: &[Vec<u8>]) -> Vec<u8> {
    let b = boundary();
    let mut out = format!(
        "Content-Type: multipart/mixed; boundary=\"{b}\"{CRLF}MIME-Version: 1.0{CRLF}{CRLF}"
    )
    .into_bytes();
    for part in parts {
        out.extend_from_slice(format!("--{b}{CRLF}").as_bytes());
        out.extend_from_slice(part);
        // The line break before a boundary belongs to the boundary (RFC 2046 §5.1.1): without
        // this one, an embedded message would lose its last line break.
        out.extend_from_slice(CRLF.as_bytes());
    }
    out.extend_from_slice(format!("--{b}--{CRLF}").as_bytes());
    out
}

fn latin1_text_part(text: &str) -> Vec<u8> {
    // Providers write the notice in ISO-8859-1; what Latin-1 cannot hold becomes '?'.
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    format!(
        "Content-Type: text/plain; charset=\"iso-8859-1\"{CRLF}Content-Disposition: inline{CRLF}\
         Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{}{CRLF}",
        quoted_printable(&latin1)
    )
    .into_bytes()
}

fn daticert_part(xml: &str) -> Vec<u8> {
    format!(
        "Content-Type: application/xml; name=\"daticert.xml\"{CRLF}\
         Content-Disposition: inline; filename=\"daticert.xml\"{CRLF}\
         Content-Transfer-Encoding: base64{CRLF}{CRLF}{}{CRLF}",
        base64::encode_lines(xml.as_bytes())
    )
    .into_bytes()
}

fn postacert_part(message: &[u8]) -> Vec<u8> {
    let message = to_crlf(message);
    let cte = if message.is_ascii() { "7bit" } else { "8bit" };
    let mut out = format!(
        "Content-Type: message/rfc822; name=\"postacert.eml\"{CRLF}\
         Content-Disposition: inline; filename=\"postacert.eml\"{CRLF}\
         Content-Transfer-Encoding: {cte}{CRLF}{CRLF}"
    )
    .into_bytes();
    out.extend_from_slice(&message);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(CRLF.as_bytes());
    }
    out
}

fn human_transport_text(p: &Transport, now: &Now) -> String {
    format!(
        "Messaggio di posta certificata\n\nIl giorno {} alle ore {} ({}) il messaggio\n\
         \"{}\" è stato inviato da \"{}\"\nindirizzato a:\n{}\n\
         Il messaggio originale è incluso in allegato.\nIdentificativo messaggio: {}\n",
        now.giorno,
        now.ora,
        now.zona,
        p.subject,
        p.citizen,
        p.to,
        bare(&p.identificativo)
    )
}

/// The citizen's message as the provider stores it in `postacert.eml`: Message-ID replaced by
/// the identificativo, the client's id in `X-Riferimento-Message-ID`.
fn citizen_message(p: &Transport, now: &Now) -> Vec<u8> {
    let mut fields = vec![
        format!(
            "Received: from [192.0.2.10] by smtp.{} with ESMTPSA; {}",
            p.provider_domain, now.rfc5322
        ),
        format!("Message-ID: <{}>", bare(&p.identificativo)),
        format!("X-Riferimento-Message-ID: <{}>", bare(&p.client_message_id)),
        format!("Date: {}", now.rfc5322),
        format!("From: <{}>", p.citizen),
        format!("To: {}", p.to),
        format!("Subject: {}", encode_header(&p.subject)),
    ];
    if let Some(parent) = &p.in_reply_to {
        fields.push(format!("In-Reply-To: <{}>", bare(parent)));
        fields.push(format!("References: <{}>", bare(parent)));
    }
    fields.push("MIME-Version: 1.0".to_owned());
    let text_headers = format!(
        "Content-Type: text/plain; charset=UTF-8{CRLF}Content-Transfer-Encoding: quoted-printable"
    );
    let text_body = quoted_printable(p.text.as_bytes());
    let mut out = String::new();
    for field in fields {
        out.push_str(&field);
        out.push_str(CRLF);
    }
    match &p.jpeg {
        None => out.push_str(&format!("{text_headers}{CRLF}{CRLF}{text_body}{CRLF}")),
        Some(jpeg) => {
            let b = boundary();
            out.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{b}\"{CRLF}{CRLF}\
                 --{b}{CRLF}{text_headers}{CRLF}{CRLF}{text_body}{CRLF}\
                 --{b}{CRLF}Content-Type: image/jpeg; name=\"foto.jpg\"{CRLF}\
                 Content-Disposition: attachment; filename=\"foto.jpg\"{CRLF}\
                 Content-Transfer-Encoding: base64{CRLF}{CRLF}{}{CRLF}--{b}--{CRLF}",
                base64::encode_lines(jpeg)
            ));
        }
    }
    out.into_bytes()
}

/// Subject prefix and notice title for each receipt type (RFC 6109 §3).
fn receipt_words(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "accettazione" => ("ACCETTAZIONE: ", "Ricevuta di accettazione"),
        "non-accettazione" => ("AVVISO DI NON ACCETTAZIONE: ", "Avviso di non accettazione"),
        "presa-in-carico" => ("PRESA IN CARICO: ", "Ricevuta di presa in carico"),
        "avvenuta-consegna" => ("CONSEGNA: ", "Ricevuta di avvenuta consegna"),
        "errore-consegna" => ("AVVISO DI MANCATA CONSEGNA: ", "Avviso di mancata consegna"),
        "preavviso-errore-consegna" => (
            "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ",
            "Avviso di mancata consegna per superamento tempo massimo",
        ),
        "rilevazione-virus" => ("PROBLEMA DI SICUREZZA: ", "Avviso di rilevazione virus"),
        _ => ("RICEVUTA: ", "Ricevuta"),
    }
}

struct Daticert<'a> {
    tipo: &'a str,
    errore: &'a str,
    mittente: &'a str,
    destinatari: &'a str,
    risposte: &'a str,
    oggetto: &'a str,
    gestore: &'a str,
    now: &'a Now,
    identificativo: &'a str,
    msgid: &'a str,
    ricevuta: Option<&'a str>,
    consegna: Option<&'a str>,
    errore_esteso: Option<&'a str>,
}

fn daticert(d: &Daticert<'_>) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <postacert tipo=\"{}\" errore=\"{}\">\n\
         \x20   <intestazione>\n\
         \x20       <mittente>{}</mittente>\n\
         \x20       <destinatari tipo=\"certificato\">{}</destinatari>\n\
         \x20       <risposte>{}</risposte>\n\
         \x20       <oggetto>{}</oggetto>\n\
         \x20   </intestazione>\n\
         \x20   <dati>\n\
         \x20       <gestore-emittente>{}</gestore-emittente>\n\
         \x20       <data zona=\"{}\">\n\
         \x20           <giorno>{}</giorno>\n\
         \x20           <ora>{}</ora>\n\
         \x20       </data>\n\
         \x20       <identificativo>{}</identificativo>\n\
         \x20       <msgid>{}</msgid>\n",
        xml_escape(d.tipo),
        xml_escape(d.errore),
        xml_escape(d.mittente),
        xml_escape(d.destinatari),
        xml_escape(d.risposte),
        xml_escape(d.oggetto),
        xml_escape(d.gestore),
        d.now.zona,
        d.now.giorno,
        d.now.ora,
        xml_escape(d.identificativo),
        xml_escape(&format!("<{}>", d.msgid)),
    );
    if let Some(ricevuta) = d.ricevuta {
        xml.push_str(&format!("        <ricevuta tipo=\"{ricevuta}\" />\n"));
    }
    if let Some(consegna) = d.consegna {
        xml.push_str(&format!(
            "        <consegna>{}</consegna>\n",
            xml_escape(consegna)
        ));
    }
    if let Some(error) = d.errore_esteso {
        xml.push_str(&format!(
            "        <errore-esteso>{}</errore-esteso>\n",
            xml_escape(error)
        ));
    }
    xml.push_str("    </dati>\n</postacert>\n");
    xml
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// RFC 2047 `B` encoded words for a non-ASCII header value; ASCII stays as is.
fn encode_header(value: &str) -> String {
    if value.is_ascii() {
        return value.to_owned();
    }
    // At most 45 bytes a word keeps each line within 78 characters; never split a character.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64::encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64::encode(chunk.as_bytes())));
    }
    words.join(&format!("{CRLF} "))
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line ends and soft breaks before 76 characters.
fn quoted_printable(bytes: &[u8]) -> String {
    let text = to_crlf(bytes);
    let mut out = String::new();
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                ((b == b' ' || b == b'\t') && !last) || (b.is_ascii_graphic() && b != b'=');
            let token = if literal {
                char::from(b).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + token.len() > 75 {
                out.push('=');
                out.push_str(CRLF);
                width = 0;
            }
            width += token.len();
            out.push_str(&token);
        }
        if index + 1 < lines.len() {
            out.push_str(CRLF);
        }
    }
    out
}

/// LF and CRLF alike become CRLF.
fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// A message's top-level header fields, unfolded and trimmed.
fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    fields
}

/// The address in `Name <a@b>`, or the value itself.
fn address_of(value: &str) -> String {
    match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => value[open + 1..close].trim().to_owned(),
        _ => value.trim().to_owned(),
    }
}
