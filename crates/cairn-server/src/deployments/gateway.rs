//! The model gateway: `/serve/NAME/...` is passed to where deployment NAME's live revision
//! answers, bodies streamed both ways. Any caller who can read the deployment's project may
//! use it (viewers and read-only tokens included: a prediction changes nothing; the route
//! table in [`crate::access::policy`] says so); the caller's credentials are
//! not passed on to the model. Errors are problem details saying what went wrong: unknown
//! deployment 404, not live yet 503, model process down 502, no answer in time 504, body
//! over the limit 413.
//!
//! Per-deployment request metrics (count, errors, latency percentiles over the last
//! [`LATENCY_WINDOW`] requests) are kept in memory: they restart with the server.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::api::ApiError;
use crate::audit::AuditExempt;
use crate::state::AppState;

/// Latencies kept per deployment for the percentiles.
pub const LATENCY_WINDOW: usize = 1024;

/// Names the revision that answered, on every response the model gave.
pub const REVISION_HEADER: HeaderName = HeaderName::from_static("x-cairn-revision");

/// Headers that describe one connection, not the request, and the caller's credentials.
const NOT_FORWARDED: &[HeaderName] = &[
    header::CONNECTION,
    header::HOST,
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The HTTP client the gateway and the readiness checks use.
pub struct Upstream(Client<HttpConnector, Body>);

impl Default for Upstream {
    fn default() -> Self {
        Upstream(Client::builder(TokioExecutor::new()).build_http())
    }
}

impl Upstream {
    /// True when `url` answers 200.
    pub async fn ping(&self, url: &str) -> bool {
        let Ok(uri) = url.parse::<Uri>() else { return false };
        let request = tokio::time::timeout(std::time::Duration::from_secs(2), self.0.get(uri));
        matches!(request.await, Ok(Ok(response)) if response.status() == StatusCode::OK)
    }
}

#[derive(Default)]
struct Stats {
    requests: u64,
    errors: u64,
    latencies_ms: VecDeque<f64>,
}

/// Request metrics per deployment.
#[derive(Default)]
pub struct Metrics(Mutex<HashMap<String, Stats>>);

/// A deployment's metrics now.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MetricsSnapshot {
    /// Requests since the server started.
    pub requests: u64,
    /// Of those, answered with a status of 400 or more (the model's or the gateway's).
    pub errors: u64,
    /// Latency percentiles in milliseconds over the last 1024 requests.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Metrics {
    fn record(&self, name: &str, status: StatusCode, elapsed_ms: f64) {
        let Ok(mut all) = self.0.lock() else { return };
        let stats = all.entry(name.to_owned()).or_default();
        stats.requests += 1;
        if status.as_u16() >= 400 {
            stats.errors += 1;
        }
        if stats.latencies_ms.len() == LATENCY_WINDOW {
            stats.latencies_ms.pop_front();
        }
        stats.latencies_ms.push_back(elapsed_ms);
    }

    pub fn snapshot(&self, name: &str) -> MetricsSnapshot {
        let Ok(all) = self.0.lock() else { return MetricsSnapshot::default() };
        let Some(stats) = all.get(name) else { return MetricsSnapshot::default() };
        let mut sorted: Vec<f64> = stats.latencies_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let last = sorted.len().checked_sub(1)?;
            // Nearest rank.
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let index = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1).min(last);
            Some((sorted[index] * 100.0).round() / 100.0)
        };
        MetricsSnapshot {
            requests: stats.requests,
            errors: stats.errors,
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
        }
    }

    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(name);
        }
    }
}

/// `NAME` and the rest of a `/serve/NAME/REST` path.
fn split_path(path: &str) -> (&str, &str) {
    let rest = path.strip_prefix("/serve/").unwrap_or("");
    rest.split_once('/').unwrap_or((rest, ""))
}

/// Any method on `/serve/{name}` and `/serve/{name}/{*rest}`.
pub async fn proxy(State(state): State<AppState>, mut request: Request) -> Response {
    let admitted = crate::access::admit(&state, &mut request).await;
    let mut response = match admitted {
        Ok(_) => {
            let started = Instant::now();
            let name = split_path(request.uri().path()).0.to_owned();
            let known = state.serving.backend(&name).is_some();
            let response = forward(&state, request).await.unwrap_or_else(IntoResponse::into_response);
            if known {
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                state.serving.metrics.record(&name, response.status(), elapsed);
            }
            response
        }
        Err(denial) => {
            let mut response = ApiError::from(denial).into_response();
            crate::access::mark_refusal(&mut response);
            response
        }
    };
    // Predictions are traffic, not changes: not audited request by request.
    response.extensions_mut().insert(AuditExempt);
    response
}

async fn forward(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (name, rest) = split_path(request.uri().path());
    let (name, rest) = (name.to_owned(), rest.to_owned());
    let Some(backend) = state.serving.backend(&name) else {
        let deployment = cairn_db::deployments::get(&state.db.pool, &name).await?;
        return Err(match deployment {
            None => ApiError::not_found(format!("no deployment named {name:?}")),
            Some(d) => {
                let why = if d.status_message.is_empty() { d.status } else { d.status_message };
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("deployment {name} is not serving yet: {why}"))
            }
        });
    };
    let limit = state.config.serving.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri: Uri = format!("{}/{rest}{query}", backend.url)
        .parse()
        .map_err(|_| ApiError::bad_request(format!("cannot pass on the path /{rest}")))?;
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    for name in NOT_FORWARDED {
        parts.headers.remove(name);
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&exceeded);
    let mut seen = 0usize;
    let counted = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len();
        if seen > limit {
            flag.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body over the limit"));
        }
        Ok(chunk)
    });
    let upstream = Request::from_parts(parts, Body::from_stream(counted));
    let timeout = state.config.serving.timeout;
    match tokio::time::timeout(timeout, state.serving.upstream.0.request(upstream)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("deployment {name} did not answer within {} s", timeout.as_secs()),
        )),
        Ok(Err(_)) if exceeded.load(Ordering::Relaxed) => Err(too_large()),
        Ok(Err(e)) => {
            tracing::warn!(deployment = %name, error = %e, "the model server did not answer");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "deployment {name}'s model server is not reachable (revision {}); see its logs",
                    backend.revision
                ),
            ))
        }
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            for name in [header::CONNECTION, header::TRANSFER_ENCODING] {
                parts.headers.remove(name);
            }
            parts.headers.insert(REVISION_HEADER, backend.revision.into());
            Ok(Response::from_parts(parts, Body::new(body)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_the_deployment_and_the_rest() {
        assert_eq!(split_path("/serve/m/invocations"), ("m", "invocations"));
        assert_eq!(split_path("/serve/m"), ("m", ""));
        assert_eq!(split_path("/serve/m/a/b"), ("m", "a/b"));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let metrics = Metrics::default();
        for ms in 1..=100 {
            metrics.record("m", if ms > 98 { StatusCode::BAD_GATEWAY } else { StatusCode::OK }, f64::from(ms));
        }
        let s = metrics.snapshot("m");
        assert_eq!((s.requests, s.errors), (100, 2));
        assert_eq!((s.p50_ms, s.p95_ms, s.p99_ms), (Some(50.0), Some(95.0), Some(99.0)));
        assert_eq!(metrics.snapshot("other"), MetricsSnapshot::default());
    }
}
