//! The native API under `/api/v1`. Every route is behind [`guard`]; errors are
//! RFC 9457 problem details ([`ApiError`]).

mod audit_log;
mod error;
mod json;
mod tokens;
mod users;

pub use error::ApiError;
pub use json::ApiJson;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/me", get(users::me))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{username}", patch(users::update))
        .route("/audit", get(audit_log::recent))
        .route_layer(from_fn_with_state(state.clone(), guard))
        .fallback(error::not_found)
}

async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match crate::access::admit(&state, &mut request).await {
        Ok(()) => next.run(request).await,
        Err(denial) => ApiError::from(denial).into_response(),
    }
}
