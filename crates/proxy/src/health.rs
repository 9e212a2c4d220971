//! The HTTP admin endpoint: Prometheus `/metrics` and the `/startup`, `/readiness`, `/liveness`
//! probes (Kubernetes semantics). It serves state; it never changes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Flags the probes report.
#[derive(Debug, Default)]
pub struct HealthState {
    /// Listeners are bound.
    pub started: AtomicBool,
    /// Dependencies are usable (registry loaded) and the gateway is not draining.
    pub ready: AtomicBool,
    /// Shutdown has begun.
    pub draining: AtomicBool,
}

#[derive(Clone)]
struct AppState {
    health: Arc<HealthState>,
    metrics: Arc<Metrics>,
}

/// The admin router.
pub fn router(health: Arc<HealthState>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/startup", get(startup))
        .route("/readiness", get(readiness))
        .route("/liveness", get(liveness))
        .with_state(AppState { health, metrics })
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

fn probe(ok: bool, what: &'static str) -> (StatusCode, String) {
    if ok {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{what}\n"))
    }
}

async fn startup(State(s): State<AppState>) -> impl IntoResponse {
    probe(s.health.started.load(Ordering::Acquire), "starting")
}

async fn readiness(State(s): State<AppState>) -> impl IntoResponse {
    let h = &s.health;
    if h.draining.load(Ordering::Acquire) {
        return probe(false, "draining");
    }
    probe(
        h.ready.load(Ordering::Acquire),
        "not ready: principal registry not loaded",
    )
}

async fn liveness(State(s): State<AppState>) -> impl IntoResponse {
    // The process answers, so the runtime is alive; a started gateway has nothing else that
    // a restart would fix.
    probe(s.health.started.load(Ordering::Acquire), "starting")
}

/// What a proxy mode reports through [`router_with`]: its metrics text and whether it is ready.
/// Lets the sidecar reuse these routes with its own metrics and readiness rule.
pub trait AdminSource: Send + Sync + 'static {
    /// Prometheus exposition text.
    fn metrics_text(&self) -> String;
    /// `Err(reason)` while not ready (asked only when not draining). Must not do I/O.
    fn readiness(&self) -> Result<(), String>;
}

#[derive(Clone)]
struct SourceState {
    health: Arc<HealthState>,
    source: Arc<dyn AdminSource>,
}

/// The admin router over any [`AdminSource`]: `/metrics`, `/startup`, `/readiness`, `/liveness`
/// with the same semantics as [`router`].
pub fn router_with(health: Arc<HealthState>, source: Arc<dyn AdminSource>) -> Router {
    Router::new()
        .route("/metrics", get(source_metrics))
        .route("/startup", get(source_startup))
        .route("/readiness", get(source_readiness))
        .route("/liveness", get(source_startup))
        .with_state(SourceState { health, source })
}

async fn source_metrics(State(s): State<SourceState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.source.metrics_text(),
    )
}

async fn source_startup(State(s): State<SourceState>) -> impl IntoResponse {
    probe(s.health.started.load(Ordering::Acquire), "starting")
}

async fn source_readiness(State(s): State<SourceState>) -> impl IntoResponse {
    if s.health.draining.load(Ordering::Acquire) {
        return probe(false, "draining");
    }
    if !s.health.started.load(Ordering::Acquire) {
        return probe(false, "starting");
    }
    match s.source.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}
