//! `/staff/take/{ref}`: the signed link in a staff notification, for staff who only read.
//!
//! GET shows the ticket and one button and changes nothing — mail security scanners (Outlook
//! Safe Links and the like) open every link in a mail, so a GET must never act. The button
//! POSTs the signed fields back; only then is the ticket taken. The signature binds ticket,
//! staff member and expiry, and the staff member must still belong to the ticket's office.
//!
//! The page also lists the staff replies that were *held* (event `answer_held`: the reply was
//! only our own quoted notification, so nothing went to the citizen), with their reason, so
//! the office sees there too that the citizen got no answer. This page is for staff only
//! (the signed link reaches staff alone): such notices are never on a citizen's page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::AppState;
use crate::domain::event::{EventKind, Taken};
use crate::domain::{local_time, now_millis, TicketRef};
use crate::store::Store;
use crate::tickets::{self, take_link_data, TAKE_LINK};

pub fn router() -> Router<AppState> {
    Router::new().route("/staff/take/{reference}", get(show).post(take))
}

/// The signed fields of a take link.
#[derive(Debug, Deserialize)]
pub struct TakeLink {
    staff: String,
    exp: i64,
    sig: String,
}

/// A staff reply that was held instead of being sent to the citizen.
struct HeldReply {
    /// Italian local time, "dd/mm/yyyy hh:mm".
    at: String,
    /// The staff address the reply came from.
    by: String,
    /// Why it was held, as recorded with the event.
    reason: String,
}

/// The held replies of a ticket, oldest first.
async fn held_replies(state: &AppState, ticket_id: i64) -> anyhow::Result<Vec<HeldReply>> {
    let events = state.store.ticket_events(ticket_id).await?;
    Ok(events
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::AnswerHeld(held) => Some(HeldReply {
                at: local_time(e.at),
                by: e.actor.clone(),
                reason: if held.reason.is_empty() {
                    "the reply contained only our own text".to_owned()
                } else {
                    held.reason.clone()
                },
            }),
            _ => None,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "web/take.html")]
struct TakePage<'a> {
    reference: &'a str,
    subject: &'a str,
    area_name: &'a str,
    status: &'a str,
    staff: &'a str,
    exp: i64,
    sig: &'a str,
    action: &'a str,
    done: bool,
    error: Option<&'a str>,
    held: Vec<HeldReply>,
}

fn page(status: StatusCode, p: &TakePage<'_>) -> Response {
    match p.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the take page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn error_page(reference: &str, status: StatusCode, message: &str) -> Response {
    page(
        status,
        &TakePage {
            reference,
            subject: "",
            area_name: "",
            status: "",
            staff: "",
            exp: 0,
            sig: "",
            action: "",
            done: false,
            error: Some(message),
            held: Vec::new(),
        },
    )
}

/// Checks signature and expiry; the error page otherwise.
fn check(state: &AppState, reference: &str, link: &TakeLink) -> Result<(), Box<Response>> {
    let data = take_link_data(reference, &link.staff, link.exp);
    if !state.ids.verify_sig(TAKE_LINK, &data, &link.sig) {
        return Err(Box::new(error_page(
            reference,
            StatusCode::FORBIDDEN,
            "Collegamento non valido. / Invalid link.",
        )));
    }
    if link.exp < now_millis() {
        return Err(Box::new(error_page(
            reference,
            StatusCode::GONE,
            "Collegamento scaduto: risponda alla notifica con #presa. / Link expired: reply to the notification with #take.",
        )));
    }
    Ok(())
}

async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(link): Query<TakeLink>,
) -> Response {
    if let Err(r) = check(&state, &reference, &link) {
        return *r;
    }
    let found = match reference.parse::<TicketRef>() {
        Ok(r) => state.store.ticket_by_ref(&r).await,
        Err(_) => Ok(None),
    };
    let ticket = match found {
        Ok(Some(t)) => t,
        Ok(None) => {
            return error_page(
                &reference,
                StatusCode::NOT_FOUND,
                "Pratica inesistente. / No such case.",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a ticket for the take page");
            return error_page(
                &reference,
                StatusCode::SERVICE_UNAVAILABLE,
                "Riprovi più tardi. / Try again later.",
            );
        }
    };
    let area_name = state
        .cfg
        .area(ticket.area.as_str())
        .map(|a| a.name.as_str())
        .unwrap_or(ticket.area.as_str());
    let held = match held_replies(&state, ticket.ticket_id).await {
        Ok(held) => held,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "reading the events of a ticket for the take page"
            );
            return error_page(
                &reference,
                StatusCode::SERVICE_UNAVAILABLE,
                "Riprovi più tardi. / Try again later.",
            );
        }
    };
    let action = format!("/staff/take/{reference}");
    page(
        StatusCode::OK,
        &TakePage {
            reference: &reference,
            subject: &ticket.subject,
            area_name,
            status: ticket.status.as_str(),
            staff: &link.staff,
            exp: link.exp,
            sig: &link.sig,
            action: &action,
            done: false,
            error: None,
            held,
        },
    )
}

async fn take(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Form(link): Form<TakeLink>,
) -> Response {
    if let Err(r) = check(&state, &reference, &link) {
        return *r;
    }
    let result: anyhow::Result<Option<(crate::store::MessageTicket, bool)>> = async {
        let mut tx = state.store.begin().await?;
        let Ok(reference) = reference.parse::<TicketRef>() else {
            return Ok(None);
        };
        let Some(mut t) = Store::ticket_by_ref_in(&mut tx, &reference).await? else {
            return Ok(None);
        };
        if !state.cfg.is_staff_of(&link.staff, t.area.as_str()) {
            return Ok(Some((t, false)));
        }
        let details = Taken::via_web(&t.area);
        tickets::take(&mut tx, &mut t, &link.staff, details, now_millis()).await?;
        tx.commit().await?;
        Ok(Some((t, true)))
    }
    .await;
    let result = match result {
        Ok(Some((t, true))) => held_replies(&state, t.ticket_id)
            .await
            .map(|held| Some((t, true, held))),
        Ok(Some((t, false))) => Ok(Some((t, false, Vec::new()))),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match result {
        Ok(Some((t, true, held))) => {
            let area_name = state
                .cfg
                .area(t.area.as_str())
                .map(|a| a.name.as_str())
                .unwrap_or(t.area.as_str());
            page(
                StatusCode::OK,
                &TakePage {
                    reference: &reference,
                    subject: &t.subject,
                    area_name,
                    status: t.status.as_str(),
                    staff: &link.staff,
                    exp: link.exp,
                    sig: &link.sig,
                    action: "",
                    done: true,
                    error: None,
                    held,
                },
            )
        }
        Ok(Some((_, false, _))) => error_page(
            &reference,
            StatusCode::FORBIDDEN,
            "La pratica è ora di un altro ufficio. / The case now belongs to another office.",
        ),
        Ok(None) => error_page(
            &reference,
            StatusCode::NOT_FOUND,
            "Pratica inesistente. / No such case.",
        ),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "taking a ticket from the web");
            error_page(
                &reference,
                StatusCode::SERVICE_UNAVAILABLE,
                "Riprovi più tardi. / Try again later.",
            )
        }
    }
}
