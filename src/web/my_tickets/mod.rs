//! A signed-in citizen's tickets: the list, each ticket's timeline with every message to and
//! from them and its attachments, and a new report from the web.
//!
//! Access: only tickets whose citizen (or reply) address is the account's verified email.
//! Another citizen's ticket or attachment is answered 404, exactly like one that does not
//! exist, so references cannot be probed. Anonymous requests are sent to sign in (303).

mod detail;
mod list;
mod new;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use super::visitor::{Chrome, Visitor};
use super::AppState;
use crate::domain::{calendar, now_millis, TicketKind, TicketRef, TicketStatus};
use crate::store::{CitizenRow, TicketTimeline, TicketView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tickets", get(list::list))
        .route(
            "/tickets/new",
            get(new::new_form)
                .post(new::create)
                // The form's files plus a little for the text fields.
                .layer(DefaultBodyLimit::max(new::MAX_TOTAL_BYTES + 1024 * 1024)),
        )
        .route("/tickets/{reference}", get(detail::detail))
        .route(
            "/tickets/{reference}/attachments/{attachment_id}",
            get(detail::attachment),
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
/// The answer's expected date of a ticket ("dd/mm/yyyy", "—" once resolved) and whether it
/// is overdue now: the one rule of `domain::calendar` (issue 14).
fn expected(state: &AppState, t: &TicketView) -> (String, bool) {
    if t.status == TicketStatus::Resolved {
        return ("—".to_owned(), false);
    }
    let due = state.cfg.due_date(t.area.as_str(), t.created_at);
    (
        calendar::italian_date(due),
        calendar::is_overdue(t.status, due, now_millis()),
    )
}

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
) -> anyhow::Result<Option<(TicketView, TicketTimeline)>> {
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
    let history = state.store.ticket_timeline(t.ticket_id).await?;
    Ok(Some((t, history)))
}
