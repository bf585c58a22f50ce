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

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

mod daticert;
mod fallback;
mod headers;
mod parts;
#[cfg(test)]
mod tests;

use daticert::certified_millis;
pub use daticert::read_daticert;
use fallback::{fallback_daticert, merge, tipo_mismatch, Facts};
use headers::{class_of, header, media_type, top_headers};
use parts::{find_parts, Found};

/// mail-parser keeps offsets as `u32`: past 4 GiB they would wrap, so such input is classified
/// from its headers only.
const MAX_PARSE_BYTES: usize = u32::MAX as usize;

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
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(trimmed, |(inside, _)| inside);
    inside
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '<' && *c != '>')
        .collect()
}

fn nonempty_id(id: &str) -> Option<String> {
    Some(strip_id(id)).filter(|id| !id.is_empty())
}

/// Runs a mail-parser call, turning a panic into `None`. Its recovery code has
/// `debug_assert!`s and unchecked arithmetic on broken input; one bad mail must not stop the
/// poller. Needs `panic = "unwind"` (the default).
fn guarded<T>(call: impl FnOnce() -> T) -> Option<T> {
    // Nothing created inside the call outlives it, so no broken invariant can be observed.
    catch_unwind(AssertUnwindSafe(call)).ok()
}
