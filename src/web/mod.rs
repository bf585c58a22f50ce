//! The web server: the citizen pages (front page, account, my tickets), `/healthz`
//! (database reachable), `/metrics` (Prometheus) and the staff take link; each part has its
//! own router, merged here under one set of security headers.
//!
//! `/metrics` is for the operator: it is served on its own listener (`server.metrics_listen`,
//! loopback by default), and on the citizens' port only when a bearer token
//! (`server.metrics_token`) guards it — else the citizens' port answers 404.

mod account;
pub mod fiscal_code;
mod home;
mod limits;
mod my_tickets;
pub mod password;
pub mod server;
mod staff;
mod visitor;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CONTENT_SECURITY_POLICY, REFERRER_POLICY, WWW_AUTHENTICATE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::domain::SignedIds;
use crate::inbound::pipeline::Pipeline;
use crate::store::Store;

/// What every handler may use.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub metrics: Option<PrometheusHandle>,
    pub cfg: Arc<Config>,
    pub ids: SignedIds,
    /// Reports made on the web go through the same pipeline as mail.
    pub pipeline: Arc<Pipeline>,
    pub attachments: AttachmentStore,
    /// Wakes the outbox worker after queueing mail (account links).
    pub outbox_wake: Arc<Notify>,
}

/// All routes of the citizens' port.
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new().route("/healthz", get(healthz));
    if state.cfg.server.metrics_token.is_some() {
        routes = routes.route("/metrics", get(metrics_page));
    }
    routes
        .merge(home::router())
        .merge(account::router())
        .merge(my_tickets::router())
        .merge(staff::router())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers on every response: no script at all (the pages need none; mail HTML shown on a
/// timeline cannot run any even if sanitising missed something), no framing, no remote
/// images (tracking pixels in mail HTML), forms only to us, referrer kept on this site.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    response
}

/// Percent-encodes a URL component: a query value, an RFC 5987 file name (RFC 3986
/// unreserved characters stay as they are).
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

/// The routes of the operator's metrics listener: `/metrics` and `/healthz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .with_state(state)
}

/// Whether the request carries `Authorization: Bearer <server.metrics_token>` (always true
/// when no token is configured). The digests are compared, not the strings, so the time
/// taken says nothing about how much of a guess was right.
fn metrics_authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.cfg.server.metrics_token else {
        return true;
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    !given.is_empty()
        && Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose_secret().as_bytes())
}

async fn metrics_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !metrics_authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is needed\n",
        )
            .into_response();
    }
    let mut body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    // Gauges read from the database: what is waiting, what failed.
    if let Ok(counts) = state.store.outbox_counts().await {
        body.push_str("# TYPE ticketgate_outbox_rows gauge\n");
        for (s, n) in counts {
            body.push_str(&format!("ticketgate_outbox_rows{{state=\"{s}\"}} {n}\n"));
        }
    }
    if let Ok(counts) = state.store.raw_counts().await {
        body.push_str("# TYPE ticketgate_raw_messages gauge\n");
        for (s, n) in counts {
            body.push_str(&format!("ticketgate_raw_messages{{state=\"{s}\"}} {n}\n"));
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}
