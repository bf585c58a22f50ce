//! A new report from the web: the form, its checks, and the handing over to intake.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::citizen;
use crate::domain::TicketKind;
use crate::intake::web_report::{self, ReportFile, WebReport};
use crate::web::limits::{self, Verdict};
use crate::web::visitor::{render, Chrome, Errors, FieldErrors, Visitor};
use crate::web::{AppState, Error};

/// Files a web report may carry, each at most [`MAX_FILE_BYTES`], together [`MAX_TOTAL_BYTES`].
const MAX_FILES: usize = 5;
const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
pub(super) const MAX_TOTAL_BYTES: usize = 15 * 1024 * 1024;
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

pub(super) async fn new_form(State(state): State<AppState>, v: Visitor) -> Response {
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

pub(super) async fn create(
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
        email: c.email.into_string(),
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
