//! The public front page (what the service is, the offices and their addresses, what not to
//! send here) and the stylesheet.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::visitor::{render, Chrome, Visitor};
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/site.css", get(stylesheet))
}

/// One office as the front page lists it.
pub struct AreaCard {
    pub name: String,
    pub description: String,
    pub addresses: Vec<String>,
    pub response_days: u32,
}

#[derive(askama::Template)]
#[template(path = "web/home.html")]
struct HomePage {
    c: Chrome,
    site: String,
    areas: Vec<AreaCard>,
    public_stats: bool,
}

async fn home(State(state): State<AppState>, v: Visitor) -> Response {
    let areas = state
        .cfg
        .areas
        .iter()
        .filter(|a| !a.admin)
        .map(|a| AreaCard {
            name: a.name.clone(),
            description: a.description.clone(),
            addresses: a.addresses.iter().map(|x| x.address().to_owned()).collect(),
            response_days: a.response_days,
        })
        .collect();
    let page = HomePage {
        c: v.chrome(if v.en() {
            "Reports to the Comune"
        } else {
            "Segnalazioni al Comune"
        }),
        site: state.cfg.server.site_name.clone(),
        areas,
        public_stats: state.cfg.web.public_stats,
    };
    render(&v, StatusCode::OK, &page)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/site.css"),
    )
}
