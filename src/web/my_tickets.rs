//! A signed-in citizen's tickets: the list, each ticket's timeline with every message to and
//! from them and its attachments, and a new report from the web.
//!
//! Access: only tickets whose citizen (or reply) address is the account's verified email.
//! Another citizen's ticket or attachment is answered 404, exactly like one that does not
//! exist, so references cannot be probed. Anonymous requests are sent to sign in (303).

use std::collections::HashSet;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::limits::{self, Verdict};
use super::visitor::{render, Chrome, Errors, FieldErrors, Visitor};
use super::{AppState, Error};
use crate::domain::{
    local_time, working_days_after, AreaSlug, Channel, Direction, EventKind, MessageKind,
    TicketKind, TicketRef, TicketStatus,
};
use crate::intake::web_report::{self, ReportFile, WebReport};
use crate::mail::compose::human_size;
use crate::mail::html::{self, ShownHtml};
use crate::store::{AttachmentView, CitizenRow, MessageView, TicketView};

/// Files a web report may carry, each at most [`MAX_FILE_BYTES`], together [`MAX_TOTAL_BYTES`].
const MAX_FILES: usize = 5;
const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
const MAX_TOTAL_BYTES: usize = 15 * 1024 * 1024;
/// What a web report may attach: photos and documents.
const ALLOWED_TYPES: &[(&str, &str)] = &[
    ("image/jpeg", "JPEG"),
    ("image/png", "PNG"),
    ("image/heic", "HEIC"),
    ("image/webp", "WebP"),
    ("application/pdf", "PDF"),
];
const MAX_SUBJECT: usize = 200;
const MAX_TEXT: usize = 20_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tickets", get(list))
        .route(
            "/tickets/new",
            get(new_form)
                .post(create)
                // The form's files plus a little for the text fields.
                .layer(DefaultBodyLimit::max(MAX_TOTAL_BYTES + 1024 * 1024)),
        )
        .route("/tickets/{reference}", get(detail))
        .route(
            "/tickets/{reference}/attachments/{attachment_id}",
            get(attachment),
        )
}

fn iso(millis: i64) -> String {
    crate::domain::rfc3339(millis)
}

fn status_label(c: &Chrome, status: TicketStatus) -> String {
    match status {
        TicketStatus::Received => c.t("Ricevuta", "Received"),
        TicketStatus::Taken => c.t("Presa in carico", "Being handled"),
        TicketStatus::Answered => c.t("Risposta inviata", "Answered"),
        TicketStatus::Resolved => c.t("Risolta", "Resolved"),
    }
    .to_owned()
}

fn kind_label(c: &Chrome, kind: TicketKind) -> String {
    if c.en {
        kind.english().to_owned()
    } else {
        kind.as_str().to_owned()
    }
}

fn area_name(state: &AppState, slug: &str) -> String {
    state
        .cfg
        .area(slug)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| slug.to_owned())
}

/// The signed-in citizen (callers send anybody else to sign in).
fn citizen(v: &Visitor) -> Option<&CitizenRow> {
    v.citizen.as_ref().filter(|c| c.verified_at.is_some())
}

fn owns(c: &CitizenRow, t: &TicketView) -> bool {
    t.citizen.as_str() == c.email.as_str() || t.reply_to.as_deref() == Some(c.email.as_str())
}

/// The ticket `reference` with its messages and attachments, if it is `c`'s (`None` for
/// another citizen's ticket exactly as for one that does not exist).
async fn owned_ticket(
    state: &AppState,
    c: &CitizenRow,
    reference: &str,
) -> anyhow::Result<Option<(TicketView, Vec<MessageView>, Vec<AttachmentView>)>> {
    let Ok(reference) = reference.trim().parse::<TicketRef>() else {
        return Ok(None);
    };
    let Some(t) = state
        .store
        .ticket_by_ref(&reference)
        .await?
        .filter(|t| owns(c, t))
    else {
        return Ok(None);
    };
    let messages = state.store.ticket_messages(t.ticket_id).await?;
    let files = state.store.ticket_attachments(t.ticket_id).await?;
    Ok(Some((t, messages, files)))
}

// ------------------------------------------------------------------------- list

struct Row {
    reference: String,
    subject: String,
    kind: String,
    status: String,
    area: String,
    last_activity: String,
    last_activity_iso: String,
    expected: String,
}

#[derive(Template)]
#[template(path = "web/tickets.html")]
struct ListPage {
    c: Chrome,
    site: String,
    rows: Vec<Row>,
    email: String,
    name: String,
    /// Masked: the full codice fiscale is never shown after registration.
    fiscal_code: String,
}

async fn list(State(state): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let Some(c) = citizen(&v) else {
        return Ok(v.to_login());
    };
    let tickets = state.store.tickets_of(&c.email).await?;
    let chrome = v.chrome(if v.en() {
        "My reports"
    } else {
        "Le mie segnalazioni"
    });
    let rows = tickets
        .iter()
        .map(|t| {
            let days = state
                .cfg
                .area(t.area.as_str())
                .map(|a| a.response_days)
                .unwrap_or(30);
            Row {
                reference: t.reference.to_string(),
                subject: t.subject.clone(),
                kind: kind_label(&chrome, t.kind),
                status: status_label(&chrome, t.status),
                area: area_name(&state, t.area.as_str()),
                last_activity: local_time(t.updated_at),
                last_activity_iso: iso(t.updated_at),
                expected: if t.status == TicketStatus::Resolved {
                    "—".to_owned()
                } else {
                    working_days_after(t.created_at, days)
                },
            }
        })
        .collect();
    let page = ListPage {
        c: chrome,
        site: state.cfg.server.site_name.clone(),
        rows,
        email: c.email.clone(),
        name: format!("{} {}", c.first_name, c.last_name),
        fiscal_code: crate::domain::FiscalCode::parse(&c.fiscal_code)
            .map(|f| f.masked())
            .unwrap_or_else(|_| "*".repeat(c.fiscal_code.chars().count())),
    };
    Ok(render(&v, StatusCode::OK, &page))
}

// ------------------------------------------------------------------------- detail

struct Entry {
    at: String,
    iso: String,
    text: String,
}

struct FileLink {
    href: String,
    filename: String,
    size: String,
}

struct Msg {
    heading: String,
    at: String,
    iso: String,
    subject: String,
    text: String,
    html: Option<String>,
    /// Set when the HTML body is not shown: the word saying so, in the page's language.
    html_withheld: Option<String>,
    files: Vec<FileLink>,
    certified: Option<String>,
}

#[derive(Template)]
#[template(path = "web/ticket.html")]
struct DetailPage {
    c: Chrome,
    site: String,
    reference: String,
    subject: String,
    status: String,
    kind: String,
    area: String,
    channel: String,
    created: String,
    expected: String,
    timeline: Vec<Entry>,
    messages: Vec<Msg>,
}

/// Messages a citizen sees: theirs, and ours to them (see [`MessageKind::citizen_may_see`]).
fn visible(m: &MessageView) -> bool {
    m.kind.citizen_may_see(m.direction)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The timeline line of an event, or None for internal events.
fn event_text(state: &AppState, c: &Chrome, e: &EventKind) -> Option<String> {
    let office = |slug: Option<&AreaSlug>| area_name(state, slug.map_or("", AreaSlug::as_str));
    Some(match e {
        EventKind::Received(r) => {
            let area = office(r.area.as_ref());
            let pec = r.pec.as_ref().filter(|p| !p.is_null());
            match pec {
                Some(p) if p["certified"] == true => format!(
                    "{} {area}{}",
                    c.t(
                        "Segnalazione ricevuta per PEC (certificata) e assegnata a",
                        "Report received by PEC (certified) and assigned to"
                    ),
                    p.get("certified_at")
                        .and_then(Value::as_str)
                        .map(|t| format!(" — {} {}", c.t("data certificata", "certified time"), t))
                        .unwrap_or_default()
                ),
                // A PEC envelope whose provider signature did not verify (finding 13 of issue
                // 10): the citizen is told why, in words, not with openssl's reason.
                Some(p) if p["envelope"] == "transport" => format!(
                    "{} {area}",
                    c.t(
                        "Messaggio ricevuto per PEC ma non certificato (la firma del gestore PEC \
                         non è stata verificata), assegnato a",
                        "Message received by PEC but not certified (the PEC provider's signature \
                         could not be verified), assigned to"
                    )
                ),
                Some(_) => format!(
                    "{} {area}",
                    c.t(
                        "Messaggio ricevuto nella casella PEC, non certificato, assegnato a",
                        "Message received in the PEC box, not certified, assigned to"
                    )
                ),
                None => format!(
                    "{} {area}",
                    c.t(
                        "Segnalazione ricevuta e assegnata a",
                        "Report received and assigned to"
                    )
                ),
            }
        }
        EventKind::Taken(d) => format!(
            "{} {}",
            c.t("Presa in carico dall'ufficio", "Taken by the office"),
            office(d.area.as_ref())
        ),
        EventKind::Reassigned(d) => format!(
            "{} {} {} {}",
            c.t("Trasferita dall'ufficio", "Moved from"),
            office(d.from.as_ref()),
            c.t("all'ufficio", "to"),
            office(d.to.as_ref())
        ),
        EventKind::Answered(_) => c
            .t("L'ufficio ha risposto", "The office answered")
            .to_owned(),
        EventKind::Resolved(_) => c.t("Pratica risolta", "Case resolved").to_owned(),
        EventKind::Reopened(_) => c
            .t(
                "Pratica riaperta dopo un suo messaggio",
                "Case reopened after your message",
            )
            .to_owned(),
        EventKind::FollowUp(_) => c
            .t(
                "Ricevuto un suo nuovo messaggio",
                "Your new message was received",
            )
            .to_owned(),
        EventKind::KindChanged(_) => c
            .t("Tipo di pratica aggiornato", "Case type updated")
            .to_owned(),
        EventKind::Bounce(_) => c
            .t(
                "Un nostro messaggio non le è stato consegnato",
                "A message of ours could not be delivered to you",
            )
            .to_owned(),
        EventKind::PecReceipt(d) => {
            let when = d.certified_at.as_deref().unwrap_or("");
            let state_text = match d.receipt.as_str() {
                "accettazione" => c
                    .t(
                        "PEC: il gestore ha accettato la nostra risposta",
                        "PEC: the provider accepted our answer",
                    )
                    .to_owned(),
                "avvenuta-consegna" => format!(
                    "{} {}",
                    c.t("PEC: risposta consegnata a", "PEC: answer delivered to"),
                    d.delivered_to.as_deref().unwrap_or("")
                ),
                "errore-consegna" | "non-accettazione" | "rilevazione-virus" => format!(
                    "{} ({})",
                    c.t("PEC: risposta non consegnata", "PEC: answer not delivered"),
                    d.reason.as_deref().unwrap_or("")
                ),
                "preavviso-errore-consegna" => c
                    .t("PEC: consegna in ritardo", "PEC: delivery delayed")
                    .to_owned(),
                other => format!("PEC: {other}"),
            };
            if when.is_empty() {
                state_text
            } else {
                format!(
                    "{state_text} — {} {when}",
                    c.t("data certificata", "certified time")
                )
            }
        }
        _ => return None,
    })
}

fn certified_line(c: &Chrome, m: &MessageView) -> Option<String> {
    let state = m.pec_state.as_deref()?;
    let detail: Value = m
        .pec_detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    let when = m.certified_at.map(local_time).unwrap_or_default();
    Some(match state {
        "consegnata" => format!(
            "{} {} {} {when}",
            c.t("PEC consegnata a", "PEC delivered to"),
            str_of(&detail, "delivered_to"),
            c.t("il", "on")
        ),
        "accettata" => format!(
            "{} {when}",
            c.t(
                "PEC accettata dal gestore il",
                "PEC accepted by the provider on"
            )
        ),
        other => format!("PEC {other}: {}", str_of(&detail, "reason")),
    })
}

async fn detail(
    State(state): State<AppState>,
    v: Visitor,
    Path(reference): Path<String>,
) -> Result<Response, Error> {
    let Some(c) = citizen(&v) else {
        return Ok(v.to_login());
    };
    let Some((t, mut messages, files)) = owned_ticket(&state, c, &reference).await? else {
        return Err(Error::not_found(&state, &v));
    };
    sanitise_once(&state, &mut messages).await;
    let events = state.store.ticket_events(t.ticket_id).await?;
    let chrome = v.chrome(&format!(
        "{} {}",
        if v.en() { "Case" } else { "Pratica" },
        t.reference
    ));
    let timeline = events
        .iter()
        .filter_map(|e| {
            event_text(&state, &chrome, &e.event).map(|text| Entry {
                at: local_time(e.at),
                iso: iso(e.at),
                text,
            })
        })
        .collect();
    let shown: Vec<&MessageView> = messages.iter().filter(|m| visible(m)).collect();
    let shown_ids: HashSet<i64> = shown.iter().map(|m| m.message_id).collect();
    let msgs = shown
        .iter()
        .map(|m| Msg {
            heading: if m.direction == Direction::In {
                chrome.t("Lei ha scritto", "You wrote").to_owned()
            } else {
                match m.kind {
                    MessageKind::Ack => chrome.t("Conferma di ricezione", "Acknowledgment"),
                    MessageKind::Answer => chrome.t("Risposta dell'ufficio", "The office's answer"),
                    _ => chrome.t("Aggiornamento", "Update"),
                }
                .to_owned()
            },
            at: local_time(m.at),
            iso: iso(m.at),
            subject: m.subject.clone(),
            text: m.text.clone(),
            // Sanitised at intake: a view never runs the sanitiser (issue 10, finding 4).
            html: m.html_safe.clone().filter(|h| !h.trim().is_empty()),
            html_withheld: m.html_withheld.is_some().then(|| {
                chrome
                    .t(
                        "Questo messaggio aveva anche una versione formattata (HTML) troppo \
                         grande o complessa per mostrarla in sicurezza: qui c'è solo il testo.",
                        "This message also had a formatted (HTML) version too large or too \
                         complex to show safely: only its text is shown here.",
                    )
                    .to_owned()
            }),
            files: files
                .iter()
                .filter(|a| a.message_id == m.message_id && shown_ids.contains(&a.message_id))
                .map(|a: &AttachmentView| FileLink {
                    href: format!("/tickets/{}/attachments/{}", t.reference, a.attachment_id),
                    filename: a.filename.clone(),
                    size: human_size(u64::try_from(a.size).unwrap_or(0)),
                })
                .collect(),
            certified: certified_line(&chrome, m),
        })
        .collect();
    let days = state
        .cfg
        .area(t.area.as_str())
        .map(|a| a.response_days)
        .unwrap_or(30);
    let channel = match t.channel {
        Channel::Pec if t.certified == Some(true) => {
            chrome.t("PEC (certificata)", "PEC (certified)")
        }
        Channel::Pec => chrome.t(
            "Casella PEC (messaggio non certificato)",
            "PEC box (message not certified)",
        ),
        Channel::Web => chrome.t("Sito web", "Web site"),
        Channel::Email => chrome.t("E-mail", "Email"),
    }
    .to_owned();
    let page = DetailPage {
        status: status_label(&chrome, t.status),
        kind: kind_label(&chrome, t.kind),
        c: chrome,
        site: state.cfg.server.site_name.clone(),
        reference: t.reference.to_string(),
        subject: t.subject.clone(),
        area: area_name(&state, t.area.as_str()),
        channel,
        created: local_time(t.created_at),
        expected: if t.status == TicketStatus::Resolved {
            "—".to_owned()
        } else {
            working_days_after(t.created_at, days)
        },
        timeline,
        messages: msgs,
    };
    Ok(render(&v, StatusCode::OK, &page))
}

/// Messages stored before migration 0006 carry HTML but neither its sanitised copy nor a
/// reason: it is made on their first view — off the async threads, within the same caps as at
/// intake ([`html::prepare`]) — and stored, so every later view only reads it.
async fn sanitise_once(state: &AppState, messages: &mut [MessageView]) {
    for m in messages.iter_mut() {
        if !visible(m) || m.html_safe.is_some() || m.html_withheld.is_some() {
            continue;
        }
        let Some(raw_html) = m.html.clone().filter(|h| !h.trim().is_empty()) else {
            continue;
        };
        let shown = tokio::task::spawn_blocking(move || html::prepare(&raw_html))
            .await
            .unwrap_or(ShownHtml::Withheld(html::Withheld::Unusual));
        let (safe, withheld) = match shown {
            ShownHtml::Safe(h) => (Some(h), None),
            ShownHtml::Withheld(why) => (None, Some(why.as_str().to_owned())),
        };
        if let Err(e) = state
            .store
            .set_shown_html_now(m.message_id, safe.as_deref(), withheld.as_deref())
            .await
        {
            tracing::warn!(error = %e, message = m.message_id, "storing sanitised HTML failed");
        }
        m.html_safe = safe;
        m.html_withheld = withheld;
    }
}

async fn attachment(
    State(state): State<AppState>,
    v: Visitor,
    Path((reference, attachment_id)): Path<(String, i64)>,
) -> Result<Response, Error> {
    let Some(c) = citizen(&v) else {
        return Ok(v.to_login());
    };
    let Some((_, messages, files)) = owned_ticket(&state, c, &reference).await? else {
        return Err(Error::not_found(&state, &v));
    };
    let visible_ids: HashSet<i64> = messages
        .iter()
        .filter(|m| visible(m))
        .map(|m| m.message_id)
        .collect();
    let Some(a) = files
        .iter()
        .find(|a| a.attachment_id == attachment_id && visible_ids.contains(&a.message_id))
    else {
        return Err(Error::not_found(&state, &v));
    };
    let bytes = state.attachments.get(&a.sha256).await?;
    // Always a download, never rendered in our origin: an HTML or SVG "photo" cannot run.
    let content_type = if a.content_type.parse::<axum::http::HeaderValue>().is_ok()
        && a.content_type.contains('/')
        && !a.content_type.contains(['\r', '\n'])
    {
        a.content_type.clone()
    } else {
        "application/octet-stream".to_owned()
    };
    let ascii_name: String = a
        .filename
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ".-_ ".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{}",
        super::url_escape(&a.filename)
    );
    Ok(v.finish(
        (
            [
                (CONTENT_TYPE, content_type),
                (CONTENT_DISPOSITION, disposition),
                (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            bytes,
        )
            .into_response(),
    ))
}

// ------------------------------------------------------------------------- new report

struct AreaOption {
    slug: String,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "web/new_ticket.html")]
struct NewPage {
    c: Chrome,
    site: String,
    areas: Vec<AreaOption>,
    kind: String,
    subject: String,
    text: String,
    errors: Errors,
    /// Why the form came back although nothing in it was wrong (expired session or form),
    /// and whether the files must be attached again: paragraphs, shown above the form.
    notice: Vec<String>,
    /// Signed out meanwhile: the notice links to the sign-in page (in a new tab, so that
    /// this page with what was typed stays).
    sign_in: bool,
    max_files: usize,
    max_file_mb: usize,
    max_total_mb: usize,
    types: String,
    accept: String,
}

/// The new-report page, with what was typed (`area`, `kind`, `subject`, `text`), its
/// `errors` and a `notice` (a form refused as a whole — answered 403 — or files to attach
/// again).
#[allow(clippy::too_many_arguments)]
fn new_page(
    state: &AppState,
    v: &Visitor,
    area: &str,
    kind: &str,
    subject: String,
    text: String,
    errors: Errors,
    notice: Vec<String>,
) -> Response {
    let areas = state
        .cfg
        .areas
        .iter()
        .filter(|a| !a.admin)
        .map(|a| AreaOption {
            slug: a.slug.clone(),
            name: a.name.clone(),
            selected: a.slug == area,
        })
        .collect();
    let status = if !errors.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else if !notice.is_empty() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    let page = NewPage {
        sign_in: v.citizen.is_none(),
        notice,
        c: v.chrome(if v.en() {
            "New report"
        } else {
            "Nuova segnalazione"
        }),
        site: state.cfg.server.site_name.clone(),
        areas,
        kind: kind.to_owned(),
        subject,
        text,
        errors,
        max_files: MAX_FILES,
        max_file_mb: MAX_FILE_BYTES / (1024 * 1024),
        max_total_mb: MAX_TOTAL_BYTES / (1024 * 1024),
        types: ALLOWED_TYPES
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", "),
        accept: ALLOWED_TYPES
            .iter()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
            .join(","),
    };
    render(v, status, &page)
}

async fn new_form(State(state): State<AppState>, v: Visitor) -> Response {
    if citizen(&v).is_none() {
        return v.to_login();
    }
    new_page(
        &state,
        &v,
        "",
        "segnalazione",
        String::new(),
        String::new(),
        Vec::new(),
        Vec::new(),
    )
}

/// The type of an upload, by its first bytes (the browser's claim is not trusted).
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.len() > 12
        && &bytes[4..8] == b"ftyp"
        && matches!(&bytes[8..12], b"heic" | b"heix" | b"mif1" | b"msf1")
    {
        Some("image/heic")
    } else {
        None
    }
}

async fn create(
    State(state): State<AppState>,
    v: Visitor,
    mut form: Multipart,
) -> Result<Response, Error> {
    // The form is read before the session and the token are checked: a report typed while
    // the session or the form expired comes back with its text, never lost.
    let (mut csrf, mut area, mut kind, mut subject, mut text) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    let mut uploads: Vec<ReportFile> = Vec::new();
    let mut errors: Errors = Vec::new();
    let mut total = 0usize;
    let en = v.en();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                errors.push((
                    "files",
                    v.t(
                        &format!("Il modulo non è arrivato intero (file troppo grandi?): {e}"),
                        &format!("The form did not arrive whole (files too large?): {e}"),
                    ),
                ));
                break;
            }
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "files" {
            let filename = field.file_name().unwrap_or("").to_owned();
            let bytes = match field.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    errors.push((
                        "files",
                        v.t(
                            &format!("Un file non è arrivato intero: {e}"),
                            &format!("A file did not arrive whole: {e}"),
                        ),
                    ));
                    break;
                }
            };
            if filename.is_empty() && bytes.is_empty() {
                continue; // the empty file input of a form sent without files
            }
            total += bytes.len();
            match sniff(&bytes) {
                None => errors.push((
                    "files",
                    if en {
                        format!("\"{filename}\" is not a photo or document of an accepted type.")
                    } else {
                        format!("«{filename}» non è una foto o un documento di un tipo accettato.")
                    },
                )),
                Some(_) if bytes.len() > MAX_FILE_BYTES => errors.push((
                    "files",
                    if en {
                        format!(
                            "\"{filename}\" is larger than {} MB.",
                            MAX_FILE_BYTES / 1048576
                        )
                    } else {
                        format!("«{filename}» supera {} MB.", MAX_FILE_BYTES / 1048576)
                    },
                )),
                Some(t) => uploads.push(ReportFile {
                    filename: if filename.is_empty() {
                        "allegato".to_owned()
                    } else {
                        filename
                    },
                    content_type: t.to_owned(),
                    bytes,
                }),
            }
            continue;
        }
        let value = field.text().await.unwrap_or_default();
        match name.as_str() {
            "csrf" => csrf = value,
            "area" => area = value,
            "kind" => kind = value,
            "subject" => subject = value,
            "text" => text = value,
            _ => {}
        }
    }
    let files_sent = !uploads.is_empty() || errors.iter().any(|(f, _)| *f == "files");
    let again = v.t(
        "Le foto e i documenti non vengono conservati: se ne aveva allegati, li alleghi di nuovo.",
        "Photos and documents are not kept: if you had attached any, attach them again.",
    );
    let refused = match citizen(&v).cloned() {
        None => Err(v.t(
            "La sessione è scaduta, per questo la segnalazione non è stata inviata. Il testo che ha scritto è qui sotto: acceda di nuovo (il collegamento si apre in una nuova scheda), poi torni a questa pagina e prema «Crea il ticket».",
            "Your session has expired, so the report was not sent. What you wrote is below: sign in again (the link opens in a new tab), then come back to this page and press \"Create the ticket\".",
        )),
        Some(_) if !v.csrf_ok(&csrf) => Err(v.t(
            "Il modulo era scaduto, per questo la segnalazione non è stata inviata. Il testo che ha scritto è qui sotto: lo controlli e prema di nuovo «Crea il ticket».",
            "The form had expired, so the report was not sent. What you wrote is below: check it and press \"Create the ticket\" again.",
        )),
        Some(c) => Ok(c),
    };
    let c = match refused {
        Ok(c) => c,
        Err(why) => {
            metrics::counter!("ticketgate_web_forms_refused_total").increment(1);
            return Err(Error::CsrfRefused(new_page(
                &state,
                &v,
                &area,
                &kind,
                subject,
                text,
                Vec::new(),
                vec![why, again],
            )));
        }
    };
    let area_cfg = state.cfg.areas.iter().find(|a| a.slug == area && !a.admin);
    if area_cfg.is_none() {
        errors.insert(
            0,
            (
                "area",
                v.t(
                    "Scelga l'ufficio a cui scrivere.",
                    "Choose the office to write to.",
                ),
            ),
        );
    }
    let kind_parsed = TicketKind::parse(&kind);
    if kind_parsed.is_none() {
        errors.push((
            "kind-segnalazione",
            v.t(
                "Scelga il tipo di segnalazione.",
                "Choose the kind of report.",
            ),
        ));
    }
    let subject = subject.trim().to_owned();
    if subject.is_empty() {
        errors.push((
            "subject",
            v.t(
                "Scriva l'oggetto: di cosa si tratta, in poche parole.",
                "Write the subject: what it is about, in a few words.",
            ),
        ));
    } else if subject.chars().count() > MAX_SUBJECT {
        errors.push((
            "subject",
            v.t(
                "L'oggetto è troppo lungo (al massimo 200 caratteri).",
                "The subject is too long (at most 200 characters).",
            ),
        ));
    }
    if text.trim().is_empty() {
        errors.push((
            "text",
            v.t(
                "Descriva la situazione: dove, cosa, da quando.",
                "Describe the situation: where, what, since when.",
            ),
        ));
    } else if text.chars().count() > MAX_TEXT {
        errors.push((
            "text",
            v.t(
                "Il testo è troppo lungo (al massimo 20.000 caratteri).",
                "The text is too long (at most 20,000 characters).",
            ),
        ));
    }
    if uploads.len() > MAX_FILES {
        errors.push((
            "files",
            if en {
                format!("At most {MAX_FILES} files.")
            } else {
                format!("Al massimo {MAX_FILES} file.")
            },
        ));
    }
    if total > MAX_TOTAL_BYTES {
        errors.push((
            "files",
            if en {
                format!(
                    "The files together exceed {} MB.",
                    MAX_TOTAL_BYTES / 1048576
                )
            } else {
                format!("I file insieme superano {} MB.", MAX_TOTAL_BYTES / 1048576)
            },
        ));
    }
    let (Some(area_cfg), Some(kind_parsed), true) = (area_cfg, kind_parsed, errors.is_empty())
    else {
        // The browser does not send the files again with the corrected form: say so.
        let notice = if files_sent { vec![again] } else { Vec::new() };
        return Err(Error::Form(new_page(
            &state, &v, &area, &kind, subject, text, errors, notice,
        )));
    };
    // Each report mails an acknowledgment and a notification: limited per client address,
    // counted only for a form that passed its checks (a mistyped one can be sent again).
    if let Verdict::Wait(seconds) = limits::take(&state, limits::REPORTS_PER_CLIENT, &v.ip).await? {
        return Err(Error::Form(limits::too_many(&state, &v, seconds)));
    }
    let report = WebReport {
        first_name: c.first_name,
        last_name: c.last_name,
        email: c.email,
        area: area_cfg.slug.clone(),
        kind: kind_parsed,
        subject,
        text,
        files: uploads,
    };
    // Stored already unless the store failed: intake picks it up again at the next start.
    let reference = web_report::submit(&state.pipeline, &report).await?;
    metrics::counter!("ticketgate_web_reports_total").increment(1);
    Ok(v.finish(Redirect::to(&format!("/tickets/{reference}?new=1")).into_response()))
}
