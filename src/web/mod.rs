//! The web server: the citizen pages (front page, account, my tickets), `/healthz`
//! (database reachable), `/metrics` (Prometheus) and the staff take link; each part has its
//! own router, merged here under one set of security headers.

mod account;
pub mod fiscal_code;
mod home;
mod limits;
mod my_tickets;
pub mod password;
mod staff;
mod visitor;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
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

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
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

async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
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
}
