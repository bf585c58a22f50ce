//! The list of a citizen's tickets.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{area_name, citizen, expected, iso, kind_label, status_label};
use crate::domain::local_time;
use crate::web::visitor::{render, Chrome, Visitor};
use crate::web::{AppState, Error};

struct Row {
    reference: String,
    subject: String,
    kind: String,
    status: String,
    area: String,
    last_activity: String,
    last_activity_iso: String,
    expected: String,
    overdue: bool,
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

pub(super) async fn list(State(state): State<AppState>, v: Visitor) -> Result<Response, Error> {
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
            let (expected, overdue) = expected(&state, t);
            Row {
                reference: t.reference.to_string(),
                subject: t.subject.clone(),
                kind: kind_label(&chrome, t.kind),
                status: status_label(&chrome, t.status),
                area: area_name(&state, t.area.as_str()),
                last_activity: local_time(t.updated_at),
                last_activity_iso: iso(t.updated_at),
                expected,
                overdue,
            }
        })
        .collect();
    let page = ListPage {
        c: chrome,
        site: state.cfg.server.site_name.clone(),
        rows,
        email: c.email.to_string(),
        name: format!("{} {}", c.first_name, c.last_name),
        fiscal_code: c.fiscal_code.masked(),
    };
    Ok(render(&v, StatusCode::OK, &page))
}
