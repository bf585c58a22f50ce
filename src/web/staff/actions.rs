//! `POST /staff/tickets/{ref}/{take|reassign|note|answer}`: the office's actions from the
//! staff ticket page, each carried out by `intake::staff_page` exactly like its mail command,
//! in one transaction, then 303 back to the page with a confirmation (POST, redirect, GET:
//! reloading the page never sends a form again).
//!
//! Every field is hostile: the signed link fields are checked as on the page (404 when they do
//! not verify), the CSRF token as on the citizen forms (signed double submit, the `tg_csrf`
//! cookie), and each mistake is named next to its field with the staff member's text kept.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::page::{not_found, not_staff, render_page, FormState};
use super::{LinkFields, StaffLink};
use crate::domain::AreaSlug;
use crate::intake::{StaffAction, StaffOutcome};
use crate::web::visitor::Visitor;
use crate::web::{AppState, Error};

/// Longest note or answer accepted from the page, in characters (a long letter is ~10,000).
pub const MAX_TEXT_CHARS: usize = 50_000;

/// The fields of every form of the page; each action reads the ones it needs.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(flatten)]
    link: LinkFields,
    #[serde(default)]
    csrf: Option<String>,
    /// The form's one-time key (64 hex digits), see [`crate::intake::StaffAction`].
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    area: Option<String>,
    #[serde(default)]
    text: Option<String>,
    /// The answer's "this is the final answer: close the case" box.
    #[serde(default)]
    close: Option<String>,
}

/// The page's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Take,
    Reassign,
    Note,
    Answer,
}

impl Which {
    fn parse(s: &str) -> Option<Which> {
        Some(match s {
            "take" => Which::Take,
            "reassign" => Which::Reassign,
            "note" => Which::Note,
            "answer" => Which::Answer,
            _ => return None,
        })
    }

    /// The id of the form's text field (errors point at it).
    fn text_field(self) -> &'static str {
        match self {
            Which::Note => "note",
            _ => "answer",
        }
    }
}

pub(super) async fn act(
    State(state): State<AppState>,
    v: Visitor,
    Path((reference, which)): Path<(String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Error> {
    let Some(which) = Which::parse(&which) else {
        return Err(not_found(&state, &v));
    };
    // A body that is not a form at all (bad encoding) is answered like a bad link: there is
    // no text to keep.
    let Ok(Form(f)) = form else {
        return Err(not_found(&state, &v));
    };
    let Some(link) = StaffLink::verify(&state, &reference, &f.link) else {
        return Err(not_found(&state, &v));
    };
    let Some(ticket) = state.store.ticket_by_ref(&link.reference).await? else {
        return Err(not_found(&state, &v));
    };
    if !state.cfg.is_staff_of(&link.staff, ticket.area.as_str()) {
        return Err(not_staff(&state, &v));
    }
    let text = f.text.clone().unwrap_or_default();
    let mut kept = FormState {
        close: which != Which::Answer || f.close.is_some(),
        area: f.area.clone().unwrap_or_default(),
        ..FormState::default()
    };
    match which {
        Which::Note => kept.note = text.clone(),
        Which::Answer => kept.answer = text.clone(),
        _ => {}
    }
    let (state_r, v_r, link_r, ticket_r) = (&state, &v, &link, &ticket);
    let refuse = |kept: FormState, status: StatusCode| async move {
        render_page(state_r, v_r, link_r, ticket_r, kept, None, status)
            .await
            .map(Error::Form)
    };

    if !v.csrf_ok(f.csrf.as_deref().unwrap_or("")) {
        kept.errors.push((
            "csrf",
            v.t(
                "Il modulo non è più valido (o i cookie sono disattivati): riprovi ora.",
                "The form is no longer valid (or cookies are off): try again now.",
            ),
        ));
        return Err(refuse(kept, StatusCode::FORBIDDEN).await?);
    }
    let key = f
        .key
        .as_deref()
        .map(str::trim)
        .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    let action = match which {
        Which::Take => StaffAction::Take,
        Which::Reassign => {
            let wanted = f.area.as_deref().unwrap_or("").trim();
            let area = state.cfg.area(wanted).filter(|_| !wanted.is_empty());
            match area.map(|a| AreaSlug::parse(&a.slug)) {
                Some(Ok(slug)) if slug != ticket.area => StaffAction::Reassign(slug),
                Some(Ok(_)) => {
                    kept.errors.push((
                        "area",
                        v.t(
                            "La pratica è già di questo ufficio: ne scelga un altro.",
                            "The case already belongs to this office: choose another.",
                        ),
                    ));
                    return Err(refuse(kept, StatusCode::UNPROCESSABLE_ENTITY).await?);
                }
                _ => {
                    kept.errors.push((
                        "area",
                        v.t(
                            "Scelga l'ufficio a cui trasferire la pratica.",
                            "Choose the office to move the case to.",
                        ),
                    ));
                    return Err(refuse(kept, StatusCode::UNPROCESSABLE_ENTITY).await?);
                }
            }
        }
        Which::Note | Which::Answer => {
            let field = which.text_field();
            let trimmed = text.trim();
            let problem = if trimmed.is_empty() {
                Some(if which == Which::Note {
                    v.t("Scriva il testo della nota.", "Write the note's text.")
                } else {
                    v.t(
                        "Scriva il testo della risposta.",
                        "Write the text of the answer.",
                    )
                })
            } else if trimmed.chars().count() > MAX_TEXT_CHARS {
                Some(format!(
                    "{} {MAX_TEXT_CHARS} {}",
                    v.t("Il testo supera i", "The text is longer than"),
                    v.t("caratteri.", "characters.")
                ))
            } else if trimmed.contains('\0') {
                Some(v.t(
                    "Il testo contiene caratteri non ammessi.",
                    "The text contains characters that are not allowed.",
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                kept.errors.push((field, problem));
                return Err(refuse(kept, StatusCode::UNPROCESSABLE_ENTITY).await?);
            }
            let text = trimmed.to_owned();
            if which == Which::Note {
                StaffAction::Note { text, key }
            } else {
                StaffAction::Answer {
                    text,
                    close: f.close.is_some(),
                    key,
                }
            }
        }
    };
    let outcome = state
        .pipeline
        .staff_page_action(&link.reference, &link.staff, &action)
        .await?;
    match outcome {
        StaffOutcome::Done => {}
        StaffOutcome::NoTicket => return Err(not_found(&state, &v)),
        StaffOutcome::NotStaff => return Err(not_staff(&state, &v)),
        StaffOutcome::OwnText => {
            kept.errors.push((
                "answer",
                v.t(
                    "La risposta contiene testo scritto per il personale (un collegamento \
                     firmato, una nota, una notifica): lo tolga, il cittadino non deve \
                     riceverlo.",
                    "The answer contains text written for staff (a signed link, a note, a \
                     notification): remove it, the citizen must not get it.",
                ),
            ));
            return Err(refuse(kept, StatusCode::UNPROCESSABLE_ENTITY).await?);
        }
    }
    if let StaffAction::Reassign(to) = &action {
        if !state.cfg.is_staff_of(&link.staff, to.as_str()) {
            // The case left this staff member's office: their link no longer opens it.
            let name = state
                .cfg
                .area(to.as_str())
                .map_or(to.as_str(), |a| a.name.as_str());
            return Ok(crate::web::visitor::message(
                &state,
                &v,
                StatusCode::OK,
                v.t("Pratica trasferita", "Case moved"),
                vec![format!(
                    "{} {name}. {}",
                    v.t("La pratica è ora dell'ufficio", "The case now belongs to"),
                    v.t(
                        "Il nuovo ufficio e il cittadino sono stati avvisati.",
                        "The new office and the citizen have been told."
                    )
                )],
                None,
            ));
        }
    }
    let done = match action {
        StaffAction::Take => "take",
        StaffAction::Reassign(_) => "reassign",
        StaffAction::Note { .. } => "note",
        StaffAction::Answer { close: true, .. } => "close",
        StaffAction::Answer { .. } => "answer",
    };
    let target = format!("{}&done={done}#confirmation", link.page_path());
    Ok(v.finish(Redirect::to(&target).into_response()))
}
