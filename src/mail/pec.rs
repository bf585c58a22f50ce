//! PEC (Posta Elettronica Certificata, RFC 6109): what kind of provider message a raw mail is,
//! the certification data in its `daticert.xml`, and the raw bytes of the message it carries
//! (`postacert.eml`).
//!
//! Owns: classification by the *top-level* `X-Trasporto` / `X-Ricevuta` headers (never by
//! Subject, never by the headers of a nested part: a citizen can write anything inside the
//! message the provider wraps, including a forged `X-Ricevuta`); reading `daticert.xml` with
//! quick-xml, without DTDs or entity expansion; finding the parts by file name and content type,
//! never by position (providers order them differently, some omit the `multipart/signed` layer).
//!
//! Must not: verify the provider's S/MIME signature (that is [`super::smime`]), decide what
//! becomes a ticket, or do any I/O. Pure and total: no input makes it panic or fail; what could
//! not be read is said in [`PecMail::problem`] and the fields fall back to the top-level headers.
//!
//! Trust: the top-level headers are the provider's only inside a PEC mailbox, where everything
//! that arrives was put there by a provider. On an ordinary mailbox anyone can write
//! `X-Ricevuta` at the top; the caller decides which mailboxes to classify.

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Address, Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// mail-parser keeps offsets as `u32`: past 4 GiB they would wrap, so such input is classified
/// from its headers only.
const MAX_PARSE_BYTES: usize = u32::MAX as usize;

/// Milliseconds in one second, for [`CertifiedTime::millis`].
const MILLIS_PER_SECOND: i64 = 1000;

/// What the provider says this message is (RFC 6109 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PecClass {
    /// `X-Trasporto: posta-certificata`: a certified message from a PEC sender (a citizen),
    /// wrapped by the sender's provider; the original is `postacert.eml`.
    Transport,
    /// `X-Trasporto: errore`: mail that reached the PEC box without being certified (ordinary
    /// mail, a bounce, a broken envelope). The original travels whole as `message/rfc822`, there
    /// is no `daticert.xml`, and the envelope keeps the original's Message-ID.
    Anomaly,
    /// `X-Ricevuta: <type>`: a receipt about a message *we* sent.
    Receipt(ReceiptType),
}

/// The value of `X-Ricevuta` (RFC 6109 §3.1–3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptType {
    /// Our provider accepted the message.
    Accettazione,
    /// Our provider refused it (formal checks, size, virus at the access point).
    NonAccettazione,
    /// The recipient's provider took charge of it (sent between providers).
    PresaInCarico,
    /// Delivered to the recipient's box. Legal proof of delivery, not of reading.
    AvvenutaConsegna,
    /// Not delivered, final.
    ErroreConsegna,
    /// Not delivered within 12 hours; the provider keeps trying until 24.
    PreavvisoErroreConsegna,
    /// A virus was found and the message not delivered.
    RilevazioneVirus,
    /// A value this code does not know, trimmed as it came: still a receipt, never a message.
    Other(String),
}

impl ReceiptType {
    /// The header value, e.g. `"avvenuta-consegna"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Accettazione => "accettazione",
            Self::NonAccettazione => "non-accettazione",
            Self::PresaInCarico => "presa-in-carico",
            Self::AvvenutaConsegna => "avvenuta-consegna",
            Self::ErroreConsegna => "errore-consegna",
            Self::PreavvisoErroreConsegna => "preavviso-errore-consegna",
            Self::RilevazioneVirus => "rilevazione-virus",
            Self::Other(value) => value,
        }
    }

    /// Reads an `X-Ricevuta` value: trimmed, compared case-insensitively.
    pub fn from_header(v: &str) -> ReceiptType {
        let value = v.trim();
        let known = [
            Self::Accettazione,
            Self::NonAccettazione,
            Self::PresaInCarico,
            Self::AvvenutaConsegna,
            Self::ErroreConsegna,
            Self::PreavvisoErroreConsegna,
            Self::RilevazioneVirus,
        ];
        known
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(value))
            .unwrap_or_else(|| Self::Other(value.to_owned()))
    }

    /// The message did not (or may not) reach the recipient: non-accettazione,
    /// errore-consegna, preavviso-errore-consegna, rilevazione-virus.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::NonAccettazione
                | Self::ErroreConsegna
                | Self::PreavvisoErroreConsegna
                | Self::RilevazioneVirus
        )
    }
}

/// The certification data (`daticert.xml`, RFC 6109 §4.3). Text is trimmed, entities resolved
/// (only the five predefined ones and character references; any other `&name;` is kept as
/// written, never expanded). An element that is absent is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Daticert {
    /// `postacert/@tipo`: `posta-certificata` or the receipt type.
    pub tipo: Option<String>,
    /// `postacert/@errore`: `nessuno`, `no-dest`, `no-dominio`, `virus`, `altro`.
    pub errore: Option<String>,
    /// The PEC sender.
    pub mittente: Option<String>,
    /// Every `<destinatari>`, in document order.
    pub destinatari: Vec<Destinatario>,
    /// Where replies go.
    pub risposte: Option<String>,
    /// The original subject.
    pub oggetto: Option<String>,
    /// The provider that issued this document.
    pub gestore_emittente: Option<String>,
    /// When the provider certified the event.
    pub data: Option<CertifiedTime>,
    /// The PEC identificativo: the Message-ID the provider gave the message (for a receipt, the
    /// one our message got, which the citizen's client later puts in In-Reply-To).
    pub identificativo: Option<String>,
    /// The sender client's original Message-ID, without `<>`.
    pub msgid: Option<String>,
    /// `<ricevuta tipo>`: `completa`, `breve` or `sintetica`.
    pub ricevuta: Option<String>,
    /// The address delivered to (delivery receipts).
    pub consegna: Option<String>,
    /// The provider's error text (failure receipts).
    pub errore_esteso: Option<String>,
}

/// One `<destinatari>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinatario {
    /// The address, trimmed.
    pub address: String,
    /// `certificato` (a PEC box) or `esterno` (ordinary mail).
    pub tipo: Option<String>,
}

/// `<data zona="+0100"><giorno>26/11/2026</giorno><ora>10:15:00</ora></data>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedTime {
    /// `dd/mm/yyyy`, as written.
    pub giorno: String,
    /// `HH:MM:SS`, as written.
    pub ora: String,
    /// `±HHMM`, as written.
    pub zona: Option<String>,
    /// Unix milliseconds. A missing `zona` is read as UTC (the rules always write it, so there is
    /// nothing better to assume); `None` when `giorno`, `ora` or a present `zona` cannot be read.
    pub millis: Option<i64>,
}

impl CertifiedTime {
    /// Builds the time from its three texts, computing [`CertifiedTime::millis`].
    pub fn new(giorno: &str, ora: &str, zona: Option<&str>) -> Self {
        let (giorno, ora) = (giorno.trim(), ora.trim());
        let zona = zona.map(str::trim).filter(|z| !z.is_empty());
        Self {
            millis: certified_millis(giorno, ora, zona),
            giorno: giorno.to_owned(),
            ora: ora.to_owned(),
            zona: zona.map(str::to_owned),
        }
    }
}

/// One classified PEC message.
#[derive(Clone, PartialEq, Eq)]
pub struct PecMail {
    /// From the top-level headers only.
    pub class: PecClass,
    /// Top-level Message-ID, without `<>`: the PEC identificativo for a transport envelope, the
    /// original's own id for an anomaly, the receipt's own id for a receipt.
    pub envelope_message_id: Option<String>,
    /// Top-level `X-Riferimento-Message-ID`, without `<>`: the citizen client's id for a
    /// transport envelope, *our* Message-ID for a receipt.
    pub riferimento_message_id: Option<String>,
    /// The certification data. `None` for an anomaly (it has none). When `daticert.xml` is
    /// missing or malformed ([`PecMail::problem`] says which), what could be read is kept and the
    /// rest is recovered from the top-level headers and the inner message.
    pub daticert: Option<Daticert>,
    /// The `daticert.xml` part, transfer-decoded, byte for byte (no charset conversion).
    pub daticert_xml: Option<Vec<u8>>,
    /// What was missing or unreadable, `; `-separated; `None` when all is well.
    pub problem: Option<String>,
    /// Raw bytes of the `message/rfc822` part: the citizen's message (transport), the original
    /// mail (anomaly), or our own message echoed in a complete delivery receipt — proof only,
    /// never to be ingested as mail.
    pub inner: Option<Vec<u8>>,
    /// The top level is `multipart/signed`. Says nothing about the signature's validity.
    pub signed: bool,
}

impl fmt::Debug for PecMail {
    // The byte fields would print as thousands of numbers; their length is what a failing test
    // needs to see.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PecMail")
            .field("class", &self.class)
            .field("envelope_message_id", &self.envelope_message_id)
            .field("riferimento_message_id", &self.riferimento_message_id)
            .field("daticert", &self.daticert)
            .field(
                "daticert_xml_bytes",
                &self.daticert_xml.as_ref().map(Vec::len),
            )
            .field("problem", &self.problem)
            .field("inner_bytes", &self.inner.as_ref().map(Vec::len))
            .field("signed", &self.signed)
            .finish()
    }
}

/// Classifies one raw message. `None` when it is not PEC: neither `X-Trasporto` nor
/// `X-Ricevuta` among the top-level headers. Never panics, never fails otherwise.
pub fn classify(raw: &[u8]) -> Option<PecMail> {
    let headers = top_headers(raw);
    let (class, class_problem) = class_of(&headers)?;
    let mut problems: Vec<String> = class_problem.into_iter().collect();

    let envelope_message_id = header(&headers, "Message-ID").and_then(nonempty_id);
    let riferimento_message_id = header(&headers, "X-Riferimento-Message-ID").and_then(nonempty_id);
    let signed = header(&headers, "Content-Type")
        .is_some_and(|ct| media_type(ct).eq_ignore_ascii_case("multipart/signed"));

    let found = match find_parts(raw) {
        Ok(found) => found,
        Err(problem) => {
            problems.push(problem);
            Found::default()
        }
    };

    if found.inner.is_none() {
        match class {
            PecClass::Transport => problems.push("postacert.eml missing".to_owned()),
            PecClass::Anomaly => problems.push("original message missing".to_owned()),
            // Only a complete delivery receipt echoes the message.
            PecClass::Receipt(_) => {}
        }
    }

    let daticert = match class {
        PecClass::Anomaly => None,
        PecClass::Transport | PecClass::Receipt(_) => {
            let (read, xml_problem) = match found.daticert.as_deref() {
                Some(xml) => read_daticert(xml),
                None => (Daticert::default(), Some("daticert.xml missing".to_owned())),
            };
            let daticert = match xml_problem {
                Some(problem) => {
                    problems.push(problem);
                    let inner_facts = found.inner.as_deref().map(Facts::read);
                    let fallback = fallback_daticert(
                        &class,
                        &headers,
                        &found.top,
                        inner_facts.as_ref(),
                        envelope_message_id.as_deref(),
                        riferimento_message_id.as_deref(),
                    );
                    merge(read, fallback)
                }
                None => read,
            };
            problems.extend(tipo_mismatch(&class, &daticert));
            Some(daticert)
        }
    };

    Some(PecMail {
        class,
        envelope_message_id,
        riferimento_message_id,
        daticert,
        daticert_xml: found.daticert,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
        inner: found.inner,
        signed,
    })
}

/// Strips `<>` and whitespace from an id: `" <a@b> "` → `"a@b"`. Of `<a@b> (comment)` only the
/// bracketed part is kept.
pub fn strip_id(id: &str) -> String {
    let trimmed = id.trim();
    let inside = trimmed
        .find('<')
        .and_then(|open| {
            let rest = &trimmed[open + 1..];
            rest.find('>').map(|close| &rest[..close])
        })
        .unwrap_or(trimmed);
    inside
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '<' && *c != '>')
        .collect()
}

fn nonempty_id(id: &str) -> Option<String> {
    Some(strip_id(id)).filter(|id| !id.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Top-level headers
// ---------------------------------------------------------------------------------------------

/// The top-level header fields, unfolded, in order. Read here rather than through mail-parser so
/// that classification depends on nothing but the first header block (and still works on input
/// mail-parser gives up on).
fn top_headers(raw: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (index, line) in raw.split_inclusive(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // RFC 5322 §2.2.3: unfolding removes the line break only.
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        if index == 0 && line.starts_with(b"From ") {
            continue; // mbox separator
        }
        // A line without a colon is not a field; skipping it keeps the rest readable.
        let mut halves = line.splitn(2, |b| *b == b':');
        if let (Some(name), Some(value)) = (halves.next(), halves.next()) {
            let name = String::from_utf8_lossy(name).trim().to_owned();
            let value = String::from_utf8_lossy(value).into_owned();
            if !name.is_empty() {
                fields.push((name, value));
            }
        }
    }
    for (_, value) in &mut fields {
        *value = value.trim().to_owned();
    }
    fields
}

/// The first non-empty value of a field, by case-insensitive name.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
        .find(|value| !value.is_empty())
}

/// `type/subtype` of a Content-Type value, parameters dropped.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// RFC 6109 §3: `X-Trasporto` first, then `X-Ricevuta`. An unknown `X-Trasporto` value without
/// `X-Ricevuta` is an anomaly: it is a provider envelope (so not a citizen's ordinary mail to
/// ingest as from the provider's address), but nothing in it is certified.
fn class_of(headers: &[(String, String)]) -> Option<(PecClass, Option<String>)> {
    let receipt = header(headers, "X-Ricevuta").map(ReceiptType::from_header);
    match header(headers, "X-Trasporto") {
        Some(value) if value.eq_ignore_ascii_case("posta-certificata") => {
            Some((PecClass::Transport, None))
        }
        Some(value) if value.eq_ignore_ascii_case("errore") => Some((PecClass::Anomaly, None)),
        Some(value) => match receipt {
            Some(kind) => Some((PecClass::Receipt(kind), None)),
            None => Some((
                PecClass::Anomaly,
                Some(format!("unknown X-Trasporto value \"{value}\"")),
            )),
        },
        None => receipt.map(|kind| (PecClass::Receipt(kind), None)),
    }
}

// ---------------------------------------------------------------------------------------------
// MIME parts
// ---------------------------------------------------------------------------------------------

/// What the MIME walk found in the outer message.
#[derive(Default)]
struct Found {
    daticert: Option<Vec<u8>>,
    inner: Option<Vec<u8>>,
    top: Facts,
}

/// Finds `daticert.xml` and the `message/rfc822` part among the parts of the *outer* message.
/// mail-parser gives a nested message its own part list, so nothing inside `postacert.eml` (a
/// citizen may attach a PEC of their own) can be taken for the envelope's parts.
fn find_parts(raw: &[u8]) -> Result<Found, String> {
    if raw.len() > MAX_PARSE_BYTES {
        return Err(format!(
            "message too large to parse ({} bytes), classified from its headers only",
            raw.len()
        ));
    }
    // The same bound as every parse (see `prescan`): a deep tree would crash in its drop.
    if let Err(e) = super::prescan::check(raw) {
        return Err(format!("{e}: classified from its headers only"));
    }
    guarded(|| {
        let message = MessageParser::default().parse(raw)?;
        let parts = message.parts.get(1..).unwrap_or_default();
        let daticert =
            pick(parts, is_daticert_by_name, is_xml).map(|part| transfer_decoded(&message, part));
        let inner = pick(parts, is_postacert_by_name, is_message)
            .map(|part| inner_message_bytes(&message, part));
        Some(Found {
            daticert,
            inner,
            top: Facts::from_message(&message),
        })
    })
    .flatten()
    .ok_or_else(|| "MIME structure could not be parsed".to_owned())
}

/// The first part the file-name test accepts, else the first the content-type test accepts.
fn pick<'a, 'x>(
    parts: &'a [MessagePart<'x>],
    by_name: fn(&MessagePart<'_>) -> bool,
    by_type: fn(&MessagePart<'_>) -> bool,
) -> Option<&'a MessagePart<'x>> {
    let leaf = |part: &&MessagePart<'_>| !matches!(part.body, PartType::Multipart(_));
    parts
        .iter()
        .filter(leaf)
        .find(|part| by_name(part))
        .or_else(|| parts.iter().filter(leaf).find(|part| by_type(part)))
}

fn has_name(part: &MessagePart<'_>, name: &str) -> bool {
    part.attachment_name()
        .is_some_and(|found| found.trim().eq_ignore_ascii_case(name))
}

fn has_type(part: &MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|sub| subtypes.iter().any(|s| sub.eq_ignore_ascii_case(s)))
    })
}

fn is_daticert_by_name(part: &MessagePart<'_>) -> bool {
    has_name(part, "daticert.xml")
}

fn is_xml(part: &MessagePart<'_>) -> bool {
    has_type(part, "application", &["xml"]) || has_type(part, "text", &["xml"])
}

fn is_postacert_by_name(part: &MessagePart<'_>) -> bool {
    has_name(part, "postacert.eml")
}

fn is_message(part: &MessagePart<'_>) -> bool {
    matches!(part.body, PartType::Message(_)) || has_type(part, "message", &["rfc822", "global"])
}

/// The part's body span in the outer message's raw bytes.
fn body_span<'a>(message: &'a Message<'_>, part: &MessagePart<'_>) -> Option<&'a [u8]> {
    message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
}

/// A leaf part's content with its transfer encoding undone and nothing else: mail-parser turns
/// `text/*` into UTF-8 by the declared charset, so text is decoded again from the raw span.
fn transfer_decoded(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
        PartType::Message(_) => inner_message_bytes(message, part),
        PartType::Multipart(_) => Vec::new(),
        PartType::Text(text) | PartType::Html(text) => {
            let span = body_span(message, part);
            let decoded = match part.encoding {
                Encoding::None => span.map(<[u8]>::to_vec),
                Encoding::Base64 => span.and_then(base64_decode),
                Encoding::QuotedPrintable => span.and_then(quoted_printable_decode),
            };
            decoded.unwrap_or_else(|| text.as_bytes().to_vec())
        }
    }
}

/// The raw bytes of a `message/rfc822` part. A 7bit/8bit one is parsed in place, so its bytes
/// are the part's body span in the outer raw message (its nested `Message::raw_message` is the
/// *whole* outer message, and its `raw_message()` uses offsets that can run to the end of it). A
/// base64/QP one (not allowed by RFC 2046 §5.2.1, sent anyway) was decoded into a buffer the
/// nested message owns. When the nested parse failed, the part is text or binary instead.
fn inner_message_bytes(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    match (&part.body, part.encoding) {
        (PartType::Message(_), Encoding::None) => {
            body_span(message, part).unwrap_or_default().to_vec()
        }
        (PartType::Message(nested), _) => nested.raw_message.to_vec(),
        (PartType::Binary(bytes) | PartType::InlineBinary(bytes), _) => bytes.to_vec(),
        (PartType::Text(text) | PartType::Html(text), Encoding::None) => body_span(message, part)
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| text.as_bytes().to_vec()),
        (PartType::Text(text) | PartType::Html(text), _) => text.as_bytes().to_vec(),
        (PartType::Multipart(_), _) => Vec::new(),
    }
}

/// Runs a mail-parser call, turning a panic into `None`. Its recovery code has
/// `debug_assert!`s and unchecked arithmetic on broken input; one bad mail must not stop the
/// poller. Needs `panic = "unwind"` (the default).
fn guarded<T>(call: impl FnOnce() -> T) -> Option<T> {
    // Nothing created inside the call outlives it, so no broken invariant can be observed.
    catch_unwind(AssertUnwindSafe(call)).ok()
}

// ---------------------------------------------------------------------------------------------
// Header facts for the fallback
// ---------------------------------------------------------------------------------------------

/// The few header values the fallback needs, from one message's top-level headers.
#[derive(Default)]
struct Facts {
    subject: Option<String>,
    date: Option<CertifiedTime>,
    from: Option<String>,
    reply_to: Option<String>,
    recipients: Vec<String>,
    riferimento: Option<String>,
}

impl Facts {
    /// Reads a raw message's headers, `X-Riferimento-Message-ID` included.
    fn read(raw: &[u8]) -> Facts {
        let mut facts = if raw.len() > MAX_PARSE_BYTES {
            None
        } else {
            guarded(|| {
                MessageParser::default()
                    .parse_headers(raw)
                    .map(|message| Facts::from_message(&message))
            })
            .flatten()
        }
        .unwrap_or_default();
        facts.riferimento =
            header(&top_headers(raw), "X-Riferimento-Message-ID").and_then(nonempty_id);
        facts
    }

    /// Top-level headers of a parsed message (mail-parser's accessors read `parts[0]` only).
    fn from_message(message: &Message<'_>) -> Facts {
        let first = |address: Option<&Address<'_>>| {
            address
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
        };
        let all = |address: Option<&Address<'_>>| {
            address
                .map(|a| {
                    a.iter()
                        .filter_map(|a| a.address())
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let mut recipients = all(message.to());
        recipients.extend(all(message.cc()));
        Facts {
            subject: message
                .subject()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            date: message.date().map(|d| {
                let sign = if d.tz_before_gmt { '-' } else { '+' };
                CertifiedTime::new(
                    &format!("{:02}/{:02}/{:04}", d.day, d.month, d.year),
                    &format!("{:02}:{:02}:{:02}", d.hour, d.minute, d.second),
                    Some(&format!("{sign}{:02}{:02}", d.tz_hour, d.tz_minute)),
                )
            }),
            from: first(message.from()),
            reply_to: first(message.reply_to()),
            recipients,
            riferimento: None,
        }
    }
}

/// Subject prefixes providers put before the original subject (RFC 6109 §3).
const SUBJECT_PREFIXES: &[&str] = &[
    "POSTA CERTIFICATA:",
    "ANOMALIA MESSAGGIO:",
    "ACCETTAZIONE:",
    "AVVISO DI NON ACCETTAZIONE:",
    "PRESA IN CARICO:",
    "CONSEGNA:",
    "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO:",
    "AVVISO DI MANCATA CONSEGNA PER VIRUS:",
    "AVVISO DI MANCATA CONSEGNA:",
    "PROBLEMA DI SICUREZZA:",
];

fn without_prefix(subject: &str) -> String {
    let trimmed = subject.trim();
    SUBJECT_PREFIXES
        .iter()
        .find_map(|prefix| {
            trimmed
                .get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .map(|_| trimmed[prefix.len()..].trim())
        })
        .unwrap_or(trimmed)
        .to_owned()
}

/// What the headers say in place of a missing or unreadable `daticert.xml`. For a transport
/// envelope the inner message is the better source (it is the citizen's), then the envelope;
/// the identificativo is the envelope's Message-ID (the provider sets them equal). A receipt is
/// addressed to the sender of the message it is about, so its `To` is that mittente; its own
/// Message-ID is *not* the identificativo of our message, so that stays unknown.
fn fallback_daticert(
    class: &PecClass,
    headers: &[(String, String)],
    top: &Facts,
    inner: Option<&Facts>,
    envelope_message_id: Option<&str>,
    riferimento_message_id: Option<&str>,
) -> Daticert {
    let data = top.date.clone();
    match class {
        PecClass::Receipt(kind) => Daticert {
            tipo: Some(kind.as_str().to_owned()),
            mittente: top.recipients.first().cloned(),
            oggetto: top.subject.as_deref().map(without_prefix),
            data,
            msgid: riferimento_message_id.map(str::to_owned),
            ricevuta: header(headers, "X-TipoRicevuta").map(str::to_owned),
            ..Daticert::default()
        },
        PecClass::Transport | PecClass::Anomaly => {
            let inner_recipients = inner.map(|i| i.recipients.as_slice()).unwrap_or_default();
            let recipients = if inner_recipients.is_empty() {
                top.recipients.as_slice()
            } else {
                inner_recipients
            };
            Daticert {
                tipo: Some("posta-certificata".to_owned()),
                mittente: inner
                    .and_then(|i| i.from.clone())
                    .or_else(|| top.reply_to.clone()),
                destinatari: recipients
                    .iter()
                    .map(|address| Destinatario {
                        address: address.clone(),
                        tipo: None,
                    })
                    .collect(),
                risposte: top
                    .reply_to
                    .clone()
                    .or_else(|| inner.and_then(|i| i.reply_to.clone().or(i.from.clone()))),
                oggetto: inner
                    .and_then(|i| i.subject.clone())
                    .or_else(|| top.subject.as_deref().map(without_prefix)),
                data,
                identificativo: envelope_message_id.map(str::to_owned),
                msgid: riferimento_message_id
                    .map(str::to_owned)
                    .or_else(|| inner.and_then(|i| i.riferimento.clone())),
                ..Daticert::default()
            }
        }
    }
}

/// Keeps every field read from the XML, fills the rest from the fallback.
fn merge(read: Daticert, fallback: Daticert) -> Daticert {
    Daticert {
        tipo: read.tipo.or(fallback.tipo),
        errore: read.errore.or(fallback.errore),
        mittente: read.mittente.or(fallback.mittente),
        destinatari: if read.destinatari.is_empty() {
            fallback.destinatari
        } else {
            read.destinatari
        },
        risposte: read.risposte.or(fallback.risposte),
        oggetto: read.oggetto.or(fallback.oggetto),
        gestore_emittente: read.gestore_emittente.or(fallback.gestore_emittente),
        data: read.data.or(fallback.data),
        identificativo: read.identificativo.or(fallback.identificativo),
        msgid: read.msgid.or(fallback.msgid),
        ricevuta: read.ricevuta.or(fallback.ricevuta),
        consegna: read.consegna.or(fallback.consegna),
        errore_esteso: read.errore_esteso.or(fallback.errore_esteso),
    }
}

/// The header decides the class; a daticert that says otherwise is worth reporting.
fn tipo_mismatch(class: &PecClass, daticert: &Daticert) -> Option<String> {
    let expected = match class {
        PecClass::Transport => "posta-certificata",
        PecClass::Receipt(kind) => kind.as_str(),
        PecClass::Anomaly => return None,
    };
    let tipo = daticert.tipo.as_deref()?;
    (!tipo.eq_ignore_ascii_case(expected)).then(|| {
        format!("daticert.xml tipo \"{tipo}\" does not match the header value \"{expected}\"")
    })
}

// ---------------------------------------------------------------------------------------------
// daticert.xml
// ---------------------------------------------------------------------------------------------

/// Reads `daticert.xml`. Returns what was read up to the first error, and the problem if any.
///
/// quick-xml never reads a DTD, never expands a declared entity and never fetches anything: a
/// `<!DOCTYPE>` (with or without an internal subset naming `SYSTEM` entities) is skipped, and a
/// reference to any entity other than the five predefined ones stays in the text as written.
///
/// Public for the fuzz target `pec_daticert` (docs/fuzzing.md): the pipeline reaches it only
/// through [`classify`].
pub fn read_daticert(xml: &[u8]) -> (Daticert, Option<String>) {
    let (text, note) = xml_text(xml);
    let mut reader = Reader::from_str(&text);
    let mut state = XmlState::default();
    let mut problem = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => state.start(&element, false),
            Ok(Event::Empty(element)) => state.start(&element, true),
            Ok(Event::End(_)) => state.end(),
            Ok(Event::Text(text)) => state.text.push_str(&text.xml10_content()),
            Ok(Event::CData(data)) => state.text.push_str(&data.xml10_content()),
            Ok(Event::GeneralRef(reference)) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch.to_string()),
                    Ok(None) => resolve_predefined_entity(&reference).map(str::to_owned),
                    Err(_) => None,
                };
                match resolved {
                    Some(value) => state.text.push_str(&value),
                    None => {
                        state.text.push('&');
                        state.text.push_str(&reference);
                        state.text.push(';');
                    }
                }
            }
            Ok(Event::Eof) => {
                if let Some(open) = state.path.last() {
                    problem = Some(format!(
                        "daticert.xml is malformed: document ends inside <{open}>"
                    ));
                } else if !state.saw_root {
                    problem = Some("daticert.xml is malformed: no root element".to_owned());
                }
                break;
            }
            // Declaration, DOCTYPE, comments, processing instructions: nothing to read.
            Ok(_) => {}
            Err(error) => {
                problem = Some(format!(
                    "daticert.xml is malformed: {error} (at byte {})",
                    reader.error_position()
                ));
                break;
            }
        }
    }
    let root_problem = state
        .root
        .as_deref()
        .filter(|root| !root.eq_ignore_ascii_case("postacert"))
        .map(|root| format!("daticert.xml root is <{root}>, not <postacert>"));
    let problem = [problem, root_problem, note]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let problem = (!problem.is_empty()).then(|| problem.join("; "));
    (state.finish(), problem)
}

/// The document as text. UTF-8 is what the rules prescribe; a declared other encoding is
/// honoured when mail-parser knows it, and undeclared non-UTF-8 is read as windows-1252 (what
/// such producers really write) and reported.
fn xml_text(xml: &[u8]) -> (Cow<'_, str>, Option<String>) {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    if let Some(label) = declared_encoding(xml) {
        let is_utf8 = label.eq_ignore_ascii_case("utf-8") || label.eq_ignore_ascii_case("utf8");
        if !is_utf8 {
            if let Some(decode) = charset_decoder(label.as_bytes()) {
                return (Cow::Owned(decode(xml)), None);
            }
        }
    }
    match std::str::from_utf8(xml) {
        Ok(text) => (Cow::Borrowed(text), None),
        Err(_) => {
            let text = match charset_decoder(b"windows-1252") {
                Some(decode) => decode(xml),
                None => String::from_utf8_lossy(xml).into_owned(),
            };
            (
                Cow::Owned(text),
                Some("daticert.xml is not UTF-8, read as windows-1252".to_owned()),
            )
        }
    }
}

/// The `encoding` pseudo-attribute of an `<?xml …?>` declaration.
fn declared_encoding(xml: &[u8]) -> Option<String> {
    let declaration = xml.strip_prefix(b"<?xml")?;
    let end = declaration.windows(2).position(|w| w == b"?>")?;
    let declaration = std::str::from_utf8(declaration.get(..end)?).ok()?;
    let (_, after) = declaration.split_once("encoding")?;
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = after.strip_prefix(quote)?;
    value
        .split_once(quote)
        .map(|(value, _)| value.trim().to_owned())
}

/// The element walk: a stack of open element names and the text of the innermost one.
#[derive(Default)]
struct XmlState {
    path: Vec<String>,
    text: String,
    saw_root: bool,
    root: Option<String>,
    daticert: Daticert,
    destinatario_tipo: Option<String>,
    giorno: Option<String>,
    ora: Option<String>,
    zona: Option<String>,
}

impl XmlState {
    fn start(&mut self, element: &BytesStart<'_>, empty: bool) {
        let name = element.local_name().as_ref().to_ascii_lowercase();
        if !self.saw_root {
            self.saw_root = true;
            self.root = Some(name.clone());
        }
        let attr = |wanted: &str| attribute(element, wanted);
        match (self.path.len(), name.as_str()) {
            (0, _) => {
                self.daticert.tipo = attr("tipo");
                self.daticert.errore = attr("errore");
            }
            (_, "destinatari") => self.destinatario_tipo = attr("tipo"),
            (_, "data") => self.zona = self.zona.take().or_else(|| attr("zona")),
            (_, "ricevuta") => {
                self.daticert.ricevuta = self.daticert.ricevuta.take().or_else(|| attr("tipo"))
            }
            _ => {}
        }
        self.text.clear();
        if empty {
            // `<destinatari tipo="…"/>` has no address: nothing to keep.
            self.destinatario_tipo = None;
        } else {
            self.path.push(name);
        }
    }

    fn end(&mut self) {
        let Some(name) = self.path.pop() else {
            return;
        };
        let text = std::mem::take(&mut self.text);
        let value = Some(text.trim().to_owned()).filter(|v| !v.is_empty());
        let d = &mut self.daticert;
        // The first occurrence wins: a duplicate cannot override what came first.
        let keep = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = value.clone();
            }
        };
        match name.as_str() {
            "mittente" => keep(&mut d.mittente),
            "risposte" => keep(&mut d.risposte),
            "oggetto" => keep(&mut d.oggetto),
            "gestore-emittente" => keep(&mut d.gestore_emittente),
            "identificativo" => keep(&mut d.identificativo),
            "msgid" if d.msgid.is_none() => d.msgid = value.as_deref().and_then(nonempty_id),
            "consegna" => keep(&mut d.consegna),
            "errore-esteso" => keep(&mut d.errore_esteso),
            "giorno" => keep(&mut self.giorno),
            "ora" => keep(&mut self.ora),
            "destinatari" => {
                let tipo = self.destinatario_tipo.take();
                if let Some(address) = value {
                    d.destinatari.push(Destinatario { address, tipo });
                }
            }
            _ => {}
        }
    }

    /// The collected fields; `data` from whatever of giorno/ora/zona was read, so a document
    /// cut off after `<ora>` still keeps its time.
    fn finish(self) -> Daticert {
        let mut daticert = self.daticert;
        if self.giorno.is_some() || self.ora.is_some() {
            daticert.data = Some(CertifiedTime::new(
                self.giorno.as_deref().unwrap_or_default(),
                self.ora.as_deref().unwrap_or_default(),
                self.zona.as_deref(),
            ));
        }
        daticert
    }
}

/// An attribute's value by local name, entities resolved where possible (an undefined entity
/// leaves the value as written), trimmed; `None` when absent or empty.
fn attribute(element: &BytesStart<'_>, wanted: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref().eq_ignore_ascii_case(wanted))
        .map(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.clone().into_owned())
        })
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `dd/mm/yyyy` + `HH:MM[:SS]` + `±HHMM` (or `±HH:MM`, or none = UTC) → unix millis.
fn certified_millis(giorno: &str, ora: &str, zona: Option<&str>) -> Option<i64> {
    let number = |s: &str| -> Option<u32> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut day = giorno.split('/');
    let (d, m, y) = (day.next()?, day.next()?, day.next()?);
    if day.next().is_some() {
        return None;
    }
    let mut clock = ora.split(':');
    let (h, min) = (clock.next()?, clock.next()?);
    let s = clock.next().unwrap_or("0");
    if clock.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(number(m)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(y)?).ok()?,
        month,
        u8::try_from(number(d)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(h)?).ok()?,
        u8::try_from(number(min)?).ok()?,
        u8::try_from(number(s)?).ok()?,
    )
    .ok()?;
    let offset = match zona {
        None => time::UtcOffset::UTC,
        Some(zona) => zone_offset(zona)?,
    };
    let seconds = time::PrimitiveDateTime::new(date, clock)
        .assume_offset(offset)
        .unix_timestamp();
    seconds.checked_mul(MILLIS_PER_SECOND)
}

/// `+0100`, `-0530`, `+01:00`, `Z`.
fn zone_offset(zona: &str) -> Option<time::UtcOffset> {
    let zona = zona.trim();
    if zona.eq_ignore_ascii_case("z") {
        return Some(time::UtcOffset::UTC);
    }
    let (sign, digits) = match zona.as_bytes().first()? {
        b'+' => (1i8, &zona[1..]),
        b'-' => (-1i8, &zona[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i8 = digits[..2].parse().ok()?;
    let minutes: i8 = digits[2..].parse().ok()?;
    time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;
    use proptest::prelude::*;

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
        let original =
            "From: Anna <anna@pec.example.it>\nSubject: Prova\nMessage-ID: <p@x>\n\nCiao\n";
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
}
