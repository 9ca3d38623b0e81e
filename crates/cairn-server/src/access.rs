//! Authentication and write permission for every API surface, in one place.
//!
//! Every request must authenticate (Bearer token, Basic, or a dashboard session plus its
//! CSRF header for state-changing requests). A state-changing request also needs write
//! permission (member or admin, and not a read-only token), except on the few self-service
//! routes listed below, where a viewer manages their own tokens. Each surface renders a
//! [`Denial`] in its own error shape (problem details, MLflow's error JSON).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, Method};
use axum_extra::extract::CookieJar;

use crate::audit::ActorSlot;
use crate::auth::session::{self, CSRF_HEADER};
use crate::auth::{self, AuthError, Credential, Principal};
use crate::state::AppState;

/// State-changing routes that only act on the caller's own account.
const SELF_SERVICE_ROUTES: &[&str] = &["/api/v1/tokens", "/api/v1/tokens/{id}"];

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Denial {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("missing or wrong X-CSRF-Token header for a session request")]
    Csrf,
    #[error("{username} cannot change data: role {role} with this credential is read-only")]
    ReadOnly { username: String, role: String },
}

impl From<cairn_db::DbError> for Denial {
    fn from(e: cairn_db::DbError) -> Self {
        Denial::Auth(AuthError::Internal(e))
    }
}

/// Authenticates and authorizes the request; on success the [`Principal`] is in the
/// request's extensions for the handler.
pub async fn admit(state: &AppState, request: &mut Request) -> Result<(), Denial> {
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string());
    let principal = principal_for(state, request.headers(), request.method(), &client_ip).await?;
    ActorSlot::fill(request.extensions(), &principal);
    authorize(&principal, request)?;
    request.extensions_mut().insert(principal);
    Ok(())
}

/// Authenticates the request without asking for write permission (the model gateway:
/// predictions change nothing, so viewers and read-only tokens may ask for them).
pub async fn authenticate(state: &AppState, request: &axum::http::request::Parts) -> Result<Principal, Denial> {
    let client_ip = request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string());
    principal_for(state, &request.headers, &request.method, &client_ip).await
}

async fn principal_for(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    client_ip: &str,
) -> Result<Principal, Denial> {
    if let Some(principal) = auth::from_authorization(state, headers, client_ip).await? {
        return Ok(principal);
    }
    let jar = CookieJar::from_headers(headers);
    let principal = session::current(state, &jar).await?.ok_or(AuthError::Missing)?;
    if let Credential::Session { csrf_token } = &principal.credential
        && is_mutating(method)
    {
        let submitted = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !session::csrf_matches(submitted, csrf_token) {
            return Err(Denial::Csrf);
        }
    }
    Ok(principal)
}

/// POST routes that only read (MLflow's searches take their query in a JSON body).
const READ_ONLY_POST_SUFFIXES: &[&str] = &[
    "/2.0/mlflow/runs/search",
    "/2.0/mlflow/experiments/search",
    "/2.0/mlflow/logged-models/search",
    "/2.0/mlflow/registered-models/get-latest-versions",
];

/// Whether a request changes data: any method but GET, HEAD and OPTIONS, except the
/// read-only POST routes. Shared by the guard and the audit middleware.
pub fn changes_data(method: &Method, route: Option<&str>) -> bool {
    let read_only_post =
        *method == Method::POST && route.is_some_and(|r| READ_ONLY_POST_SUFFIXES.iter().any(|s| r.ends_with(s)));
    is_mutating(method) && !read_only_post
}

fn authorize(principal: &Principal, request: &Request) -> Result<(), Denial> {
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if !changes_data(request.method(), route) || principal.can_write() {
        return Ok(());
    }
    if route.is_some_and(|r| SELF_SERVICE_ROUTES.contains(&r)) {
        return Ok(());
    }
    Err(Denial::ReadOnly { username: principal.username.clone(), role: principal.role.to_string() })
}

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
