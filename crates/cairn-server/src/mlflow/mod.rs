//! The MLflow-compatible REST API: what the unmodified `mlflow` Python client calls.
//! `/api/2.0/mlflow/...` (mirrored under `/ajax-api/2.0/mlflow/...`), the artifact proxy
//! `/api/2.0/mlflow-artifacts/...` and `/api/3.0/mlflow/server-info`. Errors use MLflow's
//! shape and statuses ([`MlflowError`]); access is decided by [`crate::access`].

pub mod artifacts;
mod error;
mod experiments;
mod json;
mod logged_models;
mod registry;
mod runs;
pub mod types;

pub use error::{ErrorCode, MlflowError};
pub use json::MlflowJson;

use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use cairn_db::tracking::search::ViewType;
use serde_json::json;

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let tracking = tracking_routes().merge(registry::routes());
    Router::new()
        .nest("/api/2.0/mlflow", tracking.clone())
        .nest("/ajax-api/2.0/mlflow", tracking)
        .nest("/api/2.0/mlflow-artifacts", artifacts::router())
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route_layer(from_fn_with_state(state.clone(), guard))
}

/// Experiments, runs, metrics and logged models.
fn tracking_routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(experiments::create))
        .route("/experiments/get", get(experiments::get))
        .route("/experiments/get-by-name", get(experiments::get_by_name))
        .route("/experiments/search", post(experiments::search_post).get(experiments::search_get))
        .route("/experiments/update", post(experiments::update))
        .route("/experiments/delete", post(experiments::delete))
        .route("/experiments/restore", post(experiments::restore))
        .route("/experiments/set-experiment-tag", post(experiments::set_tag))
        .route("/experiments/delete-experiment-tag", post(experiments::delete_tag))
        .route("/runs/create", post(runs::create))
        .route("/runs/get", get(runs::get))
        .route("/runs/update", post(runs::update))
        .route("/runs/delete", post(runs::delete))
        .route("/runs/restore", post(runs::restore))
        .route("/runs/set-tag", post(runs::set_tag))
        .route("/runs/delete-tag", post(runs::delete_tag))
        .route("/runs/log-parameter", post(runs::log_parameter))
        .route("/runs/log-metric", post(runs::log_metric))
        .route("/runs/log-batch", post(runs::log_batch))
        .route("/runs/log-inputs", post(runs::log_inputs))
        .route("/runs/outputs", post(runs::log_outputs))
        .route("/runs/search", post(runs::search))
        .route("/metrics/get-history", get(runs::get_history))
        .route("/logged-models", post(logged_models::create))
        .route("/logged-models/search", post(logged_models::search))
        .route("/logged-models/{model_id}", get(logged_models::get).patch(logged_models::finalize))
        .route("/logged-models/{model_id}/tags", patch(logged_models::set_tags))
        .fallback(error::endpoint_not_found)
}

/// A required request field, with MLflow's message when it is missing.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, MlflowError> {
    value.ok_or_else(|| {
        MlflowError::invalid(format!(
            "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
        ))
    })
}

/// A search's `max_results`, MLflow's default and bounds.
pub fn max_results(requested: Option<i64>, default: i64) -> Result<i64, MlflowError> {
    let max_results = requested.unwrap_or(default);
    if (1..=50_000).contains(&max_results) {
        Ok(max_results)
    } else {
        Err(MlflowError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at most 50000 and at least 1."
        )))
    }
}

/// MLflow's `view_type` / `run_view_type`.
pub fn view_type(raw: Option<&str>) -> Result<ViewType, MlflowError> {
    match raw.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" | "1" | "" => Ok(ViewType::ActiveOnly),
        "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
        "ALL" | "3" => Ok(ViewType::All),
        other => {
            Err(MlflowError::invalid(format!("Invalid view type {other:?}: use ACTIVE_ONLY, DELETED_ONLY or ALL")))
        }
    }
}

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::access::guard(&state, request, next, |denial| MlflowError::from(denial).into_response()).await
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
