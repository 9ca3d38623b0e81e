//! The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/...`).

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
