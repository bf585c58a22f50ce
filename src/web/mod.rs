//! The web server: `/healthz` (database reachable), `/metrics` (Prometheus) and the staff
//! take link; the citizen pages come with their own routers, merged here.

mod staff;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::domain::SignedIds;
use crate::store::Store;

/// What every handler may use.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub metrics: Option<PrometheusHandle>,
    pub cfg: Arc<Config>,
    pub ids: SignedIds,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .merge(staff::router())
        .with_state(state)
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
