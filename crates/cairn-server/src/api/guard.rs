//! Authentication and write permission for the whole API, in one place.
//!
//! Every request must authenticate (Bearer token, Basic, or a dashboard session plus its
//! CSRF header for state-changing requests). A state-changing request also needs write
//! permission (member or admin, and not a read-only token), except on the few self-service
//! routes listed below, where a viewer manages their own tokens.

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use std::net::SocketAddr;

use super::ApiError;
use crate::audit::ActorSlot;
use crate::auth::session::{self, CSRF_HEADER};
use crate::auth::{self, AuthError, Credential, Principal};
use crate::state::AppState;

/// State-changing routes that only act on the caller's own account.
const SELF_SERVICE_ROUTES: &[&str] = &["/api/v1/tokens", "/api/v1/tokens/{id}"];

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string());
    let principal =
        match principal_for(&state, request.headers(), request.method(), &client_ip).await {
            Ok(principal) => principal,
            Err(e) => return e.into_response(),
        };
    ActorSlot::fill(request.extensions(), &principal);
    if let Err(e) = authorize(&principal, &request) {
        return e.into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Takes the headers rather than the request: a request body is not `Sync`, so a
/// reference to the request could not be held across the awaits.
async fn principal_for(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    client_ip: &str,
) -> Result<Principal, ApiError> {
    if let Some(principal) = auth::from_authorization(state, headers, client_ip).await? {
        return Ok(principal);
    }
    let jar = CookieJar::from_headers(headers);
    let principal = session::current(state, &jar)
        .await?
        .ok_or(AuthError::Missing)?;
    if let Credential::Session { csrf_token } = &principal.credential
        && is_mutating(method)
    {
        let submitted = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !session::csrf_matches(submitted, csrf_token) {
            return Err(ApiError::forbidden(
                "missing or wrong X-CSRF-Token header for a session request",
            ));
        }
    }
    Ok(principal)
}

fn authorize(principal: &Principal, request: &Request) -> Result<(), ApiError> {
    if !is_mutating(request.method()) || principal.can_write() {
        return Ok(());
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if route.is_some_and(|r| SELF_SERVICE_ROUTES.contains(&r)) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{} cannot change data: role {} with this credential is read-only",
        principal.username, principal.role
    )))
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
