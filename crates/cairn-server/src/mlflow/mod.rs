//! The MLflow-compatible REST API: what the unmodified `mlflow` Python client calls.
//! `/api/2.0/mlflow/...` (mirrored under `/ajax-api/2.0/mlflow/...`), the artifact proxy
//! `/api/2.0/mlflow-artifacts/...` and `/api/3.0/mlflow/server-info`. Errors use MLflow's
//! shape and statuses ([`MlflowError`]); access is decided by [`crate::access`].

pub mod artifacts;
mod error;
mod json;

pub use error::{ErrorCode, MlflowError};
pub use json::MlflowJson;

use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let tracking = tracking_routes();
    Router::new()
        .nest("/api/2.0/mlflow", tracking.clone())
        .nest("/ajax-api/2.0/mlflow", tracking)
        .nest("/api/2.0/mlflow-artifacts", artifacts::router())
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route_layer(from_fn_with_state(state.clone(), guard))
}

/// Experiments, runs, metrics and logged models.
fn tracking_routes() -> Router<AppState> {
    Router::new().fallback(error::endpoint_not_found)
}

async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match crate::access::admit(&state, &mut request).await {
        Ok(()) => next.run(request).await,
        Err(denial) => MlflowError::from(denial).into_response(),
    }
}

/// The client's capability probe: answering "no multipart, no workspaces" keeps it on the
/// simple upload and download paths.
async fn server_info() -> Json<serde_json::Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
    }))
}
