//! The web server: the citizen pages (front page, account, my tickets), `/healthz`
//! (database, mailboxes, outbox backlog), `/metrics` (Prometheus) and the staff pages; each part has its
//! own router, merged here under one set of security headers.
//!
//! `/metrics` is for the operator: it is served on its own listener (`server.metrics_listen`,
//! loopback by default), and on the citizens' port only when a bearer token
//! (`server.metrics_token`) guards it — else the citizens' port answers 404.

mod account;
mod error;
mod home;
mod limits;
mod my_tickets;
mod password;
pub mod public_stats;
pub mod server;
mod staff;
mod visitor;

use std::sync::Arc;

use axum::extract::{RawQuery, State};
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
use crate::intake::Pipeline;
use crate::store::Store;

pub use error::Error;

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
    /// The figures of `/statistiche`, computed at most once a minute (issue 14).
    pub public_stats: public_stats::Cache,
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
        .merge(public_stats::router())
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

/// A stored attachment as a download, with the headers that keep it from running in our
/// origin (an HTML or SVG "photo" cannot): `Content-Disposition: attachment` with the name in
/// ASCII and RFC 5987 forms, `nosniff`, and its content type only when it is a well-formed
/// one (else `application/octet-stream`). The citizen page and the staff page both use it.
pub fn attachment_download(filename: &str, content_type: &str, bytes: Vec<u8>) -> Response {
    use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
    let content_type = if content_type.parse::<HeaderValue>().is_ok()
        && content_type.contains('/')
        && !content_type.contains(['\r', '\n'])
    {
        content_type.to_owned()
    } else {
        "application/octet-stream".to_owned()
    };
    let ascii_name: String = filename
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
        url_escape(filename)
    );
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_DISPOSITION, disposition),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response()
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

/// Longest wait for the database in `/healthz`: a monitor must get an answer, and a database
/// that takes longer than this to say `SELECT 1` counts as unreachable.
const HEALTH_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `/healthz` on the citizens' port: the verdict and each mailbox's phase, without error
/// texts (they name servers and accounts; the operator's listener shows them).
async fn healthz(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // With the metrics token the citizens' port shows the operator's view too.
    let detailed = state.cfg.server.metrics_token.is_some() && metrics_authorized(&state, &headers);
    health_report(&state, &headers, query.as_deref(), detailed).await
}

/// `/healthz` on the operator's listener: everything, last errors included.
async fn healthz_detailed(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    health_report(&state, &headers, query.as_deref(), true).await
}

/// The health report: database, each configured mailbox (from [`crate::health`]), the
/// outbox backlog. 200 when ok or degraded, 503 when the database is unreachable or a
/// mailbox has been failing for longer than `health.mailbox_failing_seconds` (unless the
/// query has `scope=web`: then only the database counts). JSON when the
/// client asks (`Accept: application/json` or `?format=json`), plain text otherwise (the
/// first line is the verdict: `ok`, `degraded` or `unavailable`).
async fn health_report(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    detailed: bool,
) -> Response {
    use crate::health::{self, Verdict};

    let backlog = tokio::time::timeout(HEALTH_DB_TIMEOUT, state.store.outbox_backlog()).await;
    let backlog = match backlog {
        Ok(Ok(b)) => Some(b),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: database unreachable");
            None
        }
        Err(_) => {
            tracing::error!(
                timeout = ?HEALTH_DB_TIMEOUT,
                "health check: database unreachable (no answer)"
            );
            None
        }
    };
    let now = health::now();
    let threshold_millis = i64::try_from(state.cfg.health.mailbox_failing_seconds)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    let reports = health::snapshot_of(state.cfg.mailboxes.iter().map(|m| m.name.as_str()));
    let mut verdict = if backlog.is_some() {
        Verdict::Ok
    } else {
        Verdict::Unavailable
    };
    let mut mailboxes = Vec::with_capacity(reports.len());
    let mut lines = Vec::with_capacity(reports.len());
    // `?scope=web`: for a load balancer in front of several instances. A mail server that
    // is down fails every instance's mailboxes alike; taking them all out of the pool would
    // stop the web pages too, and fix nothing.
    let web_only = query.is_some_and(|q| q.split('&').any(|kv| kv == "scope=web"));
    for r in &reports {
        let v = health::verdict_of(r, threshold_millis, now);
        if !web_only {
            verdict = verdict.max(v);
        }
        let failing_seconds = health::failing_for_millis(r, now).map(|ms| ms / 1000);
        let phase = serde_json::to_value(r.phase)
            .ok()
            .and_then(|p| p.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut line = format!("mailbox {}: {phase}", r.name);
        if let Some(s) = failing_seconds {
            line.push_str(&format!(", failing for {s} s"));
            if v == Verdict::Unavailable {
                line.push_str(&format!(
                    " (longer than health.mailbox_failing_seconds = {})",
                    state.cfg.health.mailbox_failing_seconds
                ));
            }
        }
        if detailed {
            if let Some(e) = &r.last_error {
                line.push_str(&format!("; last error: {e}"));
            }
            if let Some(f) = &r.folder_problem {
                line.push_str(&format!("; folder problem: {f}"));
            }
        } else if r.folder_problem.is_some() {
            line.push_str("; a folder cannot be used");
        }
        lines.push(line);
        mailboxes.push(serde_json::json!({
            "name": r.name,
            "phase": phase,
            "state": v.as_str(),
            "failing_since": r.failing_since,
            "failing_seconds": failing_seconds,
            "last_error": if detailed { r.last_error.clone() } else { None },
            "folder_problem": if detailed {
                r.folder_problem.clone()
            } else {
                r.folder_problem.as_ref().map(|_| "a folder cannot be used".to_owned())
            },
        }));
    }
    let oldest_age = backlog
        .and_then(|b| b.oldest_queued_at)
        .map(|at| now.saturating_sub(at).max(0) / 1000);
    let status = if verdict == Verdict::Unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let wants_json = query.is_some_and(|q| q.split('&').any(|kv| kv == "format=json"))
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    // Monitors poll this: it must never be cached by a proxy in between.
    let no_store = [(axum::http::header::CACHE_CONTROL, "no-store")];
    if wants_json {
        let body = serde_json::json!({
            "status": verdict.as_str(),
            "database": if backlog.is_some() { "ok" } else { "unreachable" },
            "mailbox_failing_seconds": state.cfg.health.mailbox_failing_seconds,
            "mailboxes": mailboxes,
            "outbox": {
                "queued": backlog.map(|b| b.queued),
                "oldest_queued_age_seconds": oldest_age,
            },
        });
        return (status, no_store, axum::Json(body)).into_response();
    }
    let mut text = format!(
        "{}\ndatabase: {}\n",
        verdict.as_str(),
        if backlog.is_some() {
            "ok"
        } else {
            "unreachable"
        }
    );
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    match backlog {
        Some(b) => {
            text.push_str(&format!("outbox: {} queued", b.queued));
            if let Some(age) = oldest_age {
                text.push_str(&format!(", oldest waiting {age} s"));
            }
            text.push('\n');
        }
        None => text.push_str("outbox: unknown\n"),
    }
    (status, no_store, text).into_response()
}

/// The routes of the operator's metrics listener: `/metrics` and `/healthz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz_detailed))
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
