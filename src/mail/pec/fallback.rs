//! What the headers say when `daticert.xml` is missing or unreadable: the few header facts of
//! the envelope and of the inner message, the certification data recovered from them, merged
//! under whatever the XML did give, and the check that the XML agrees with the header's class.

use mail_parser::{Address, Message, MessageParser};

use super::headers::{header, top_headers};
use super::{
    guarded, nonempty_id, CertifiedTime, Daticert, Destinatario, PecClass, MAX_PARSE_BYTES,
};

/// The few header values the fallback needs, from one message's top-level headers.
#[derive(Default)]
pub(super) struct Facts {
    subject: Option<String>,
    date: Option<CertifiedTime>,
    from: Option<String>,
    reply_to: Option<String>,
    recipients: Vec<String>,
    riferimento: Option<String>,
}

impl Facts {
    /// Reads a raw message's headers, `X-Riferimento-Message-ID` included.
    pub(super) fn read(raw: &[u8]) -> Facts {
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
    pub(super) fn from_message(message: &Message<'_>) -> Facts {
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
                .and_then(|_| trimmed.get(prefix.len()..))
                .map(str::trim)
        })
        .unwrap_or(trimmed)
        .to_owned()
}

/// What the headers say in place of a missing or unreadable `daticert.xml`. For a transport
/// envelope the inner message is the better source (it is the citizen's), then the envelope;
/// the identificativo is the envelope's Message-ID (the provider sets them equal). A receipt is
/// addressed to the sender of the message it is about, so its `To` is that mittente; its own
/// Message-ID is *not* the identificativo of our message, so that stays unknown.
pub(super) fn fallback_daticert(
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
pub(super) fn merge(read: Daticert, fallback: Daticert) -> Daticert {
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
pub(super) fn tipo_mismatch(class: &PecClass, daticert: &Daticert) -> Option<String> {
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
