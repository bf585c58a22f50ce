//! The door for reports that do not arrive by mail: a report made on the web form is composed
//! here as the mail intake reads (From the citizen's verified address, To the area, the text
//! and the files), stored raw under the reserved mailbox [`WEB_MAILBOX`] and processed by the
//! same [`Pipeline`] as every mail, so it gets the same ticket, acknowledgment, notifications
//! and de-duplication.
//!
//! The web handler only parses and checks the form, then calls [`submit`]; it must not build
//! mail nor store raw messages itself. Reports registered by staff (phone, counter) are meant
//! to enter through this same door, and LMTP delivery through [`submit_raw`] (store raw, then
//! process), as `ticketgate ingest` and the pollers already do.
//!
//! The kind the citizen chose travels in the [`KIND_HEADER`] header, trusted only on raw
//! messages stored under [`WEB_MAILBOX`] (see [`kind_of`]): mail from outside never gets
//! that mailbox name.

use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

use super::{Outcome, Pipeline};
use crate::domain::{TicketKind, WEB_MAILBOX};
use crate::store::{now_millis, RawIn, StoreError};

/// The header carrying the kind the citizen chose on the web form.
pub const KIND_HEADER: &str = "X-Ticketgate-Kind";

/// A report made on the web form by a signed-in citizen, already checked by the form.
#[derive(Debug, Clone)]
pub struct WebReport {
    /// The citizen's name as registered (first, last).
    pub first_name: String,
    pub last_name: String,
    /// The citizen's verified address.
    pub email: String,
    /// The slug of the (non-admin) area the citizen chose.
    pub area: String,
    pub kind: TicketKind,
    pub subject: String,
    pub text: String,
    pub files: Vec<ReportFile>,
}

/// A file attached to a report; its type already checked by its first bytes.
#[derive(Debug, Clone)]
pub struct ReportFile {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Why a report did not become a ticket.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Not stored: nothing was made.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored, but processing failed: intake picks it up again at the next start.
    #[error("web report {raw_id} stored, processing failed: {error:#}")]
    Process { raw_id: i64, error: anyhow::Error },
    /// Stored and processed, but not into a new ticket.
    #[error("web report {raw_id} became {outcome:?}")]
    NotATicket { raw_id: i64, outcome: Outcome },
    /// No `[[area]]` has the slug the report names.
    #[error("web report to unknown area {0:?}")]
    UnknownArea(String),
}

/// Composes the report as mail, stores it raw under [`WEB_MAILBOX`] and processes it; the
/// reference of the new ticket.
pub async fn submit(pipeline: &Pipeline, report: &WebReport) -> Result<String, SubmitError> {
    let cfg = pipeline.config();
    let area = cfg
        .areas
        .iter()
        .find(|a| a.slug == report.area)
        .ok_or_else(|| SubmitError::UnknownArea(report.area.clone()))?;
    // The area's general address (one that does not set a kind), else its first.
    let to = area
        .addresses
        .iter()
        .map(|a| a.address().to_lowercase())
        .find(|a| pipeline.route(a).is_some_and(|r| r.kind.is_none()))
        .or_else(|| area.addresses.first().map(|a| a.address().to_lowercase()))
        .unwrap_or_default();
    let host = host_of(&cfg.server.base_url);
    let raw = compose(report, &to, &host, &message_token(), now_millis() / 1000);
    let size = raw.len() as u64;
    let (raw_id, outcome) = submit_raw(
        pipeline,
        WEB_MAILBOX,
        &RawIn {
            uid: None,
            bytes: raw,
            size,
            complete: true,
        },
    )
    .await?;
    match outcome {
        Outcome::Ticket { reference, .. } => Ok(reference),
        outcome => Err(SubmitError::NotATicket { raw_id, outcome }),
    }
}

/// Stores `raw` under `mailbox`, then processes it: the raw message's id and its outcome.
/// Once stored the message is never lost: if processing fails, `serve` picks it up again at
/// its next start.
pub async fn submit_raw(
    pipeline: &Pipeline,
    mailbox: &str,
    raw: &RawIn,
) -> Result<(i64, Outcome), SubmitError> {
    let raw_id = pipeline.store().store_raw_ingested(mailbox, raw).await?;
    match pipeline.process(raw_id).await {
        Ok(outcome) => Ok((raw_id, outcome)),
        Err(error) => Err(SubmitError::Process { raw_id, error }),
    }
}

/// The kind named by the web form's header, in the header block of `raw`.
pub(super) fn kind_of(raw: &[u8]) -> Option<TicketKind> {
    let prefix = format!("{}:", KIND_HEADER.to_ascii_lowercase());
    // The header block only (up to the first empty line): the body can be megabytes.
    raw.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            String::from_utf8_lossy(line)
                .to_ascii_lowercase()
                .strip_prefix(&prefix)
                .and_then(|v| TicketKind::parse(v.trim()))
        })
}

/// The report as the mail intake reads: From the verified address, To the area, the
/// citizen's text and files — stored byte for byte like any other report. `token` makes the
/// Message-ID unique; `date` is in unix seconds.
fn compose(report: &WebReport, to: &str, host: &str, token: &str, date: i64) -> Vec<u8> {
    let mut m = MessageBuilder::new()
        .from((
            format!("{} {}", report.first_name, report.last_name),
            report.email.clone(),
        ))
        .to(to.to_owned())
        .subject(report.subject.clone())
        .message_id(format!("web.{token}@{host}"))
        .date(date)
        .header(KIND_HEADER, Raw::new(report.kind.as_str().to_owned()))
        .text_body(report.text.replace("\r\n", "\n"));
    for f in &report.files {
        m = m.attachment(f.content_type.clone(), f.filename.clone(), f.bytes.clone());
    }
    m.write_to_vec().unwrap_or_default()
}

/// The host of the public base URL, for the Message-ID (`localhost` when it has none).
fn host_of(base_url: &str) -> String {
    base_url
        .split("://")
        .nth(1)
        .and_then(|h| h.split(['/', ':']).next())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost")
        .to_owned()
}

/// 32 random hex digits (128 bits), the unique part of a web report's Message-ID.
fn message_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> WebReport {
        WebReport {
            first_name: "Mario".into(),
            last_name: "Rossi".into(),
            email: "mario.rossi@example.test".into(),
            area: "ambiente".into(),
            kind: TicketKind::Reclamo,
            subject: "Rifiuti nel parco".into(),
            text: "Sacchi abbandonati\r\nvicino alle panchine.".into(),
            files: vec![ReportFile {
                filename: "parco.jpg".into(),
                content_type: "image/jpeg".into(),
                bytes: b"\xFF\xD8\xFFjpeg".to_vec(),
            }],
        }
    }

    #[test]
    fn a_web_report_is_composed_as_a_mail_naming_its_kind() {
        let raw = compose(
            &report(),
            "ambiente@comune.test",
            "ticket.comune.test",
            "0123456789abcdef0123456789abcdef",
            1_767_225_600,
        );
        let text = String::from_utf8_lossy(&raw);
        for line in [
            "From: \"Mario Rossi\" <mario.rossi@example.test>\r\n",
            "To: <ambiente@comune.test>\r\n",
            "Subject: Rifiuti nel parco\r\n",
            "Message-ID: <web.0123456789abcdef0123456789abcdef@ticket.comune.test>\r\n",
            "X-Ticketgate-Kind: reclamo\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        assert_eq!(kind_of(&raw), Some(TicketKind::Reclamo));
        let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
        // One line break each, however the browser sent them.
        assert_eq!(
            mail.body_text(0).as_deref(),
            Some("Sacchi abbandonati\r\nvicino alle panchine.")
        );
        assert_eq!(mail.attachment(0).unwrap().contents(), b"\xFF\xD8\xFFjpeg");
    }

    #[test]
    fn the_kind_header_counts_only_in_the_header_block() {
        assert_eq!(
            kind_of(b"Subject: s\r\nx-ticketgate-kind:  Suggerimento \r\n\r\nbody"),
            Some(TicketKind::Suggerimento)
        );
        assert_eq!(
            kind_of(b"Subject: s\r\n\r\nX-Ticketgate-Kind: reclamo\r\n"),
            None
        );
    }

    #[test]
    fn the_message_id_host_is_the_base_urls() {
        assert_eq!(
            host_of("https://ticket.comune.test:8443/x"),
            "ticket.comune.test"
        );
        assert_eq!(host_of("not a url"), "localhost");
    }
}
