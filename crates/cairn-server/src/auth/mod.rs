//! Authentication: who is calling. A request is authenticated by a Bearer API token, HTTP
//! Basic credentials or a dashboard session cookie; the result is a [`Principal`].
//! Authorization (what the principal may do) is decided in [`crate::api::guard`] and the
//! dashboard's page guard, in one place each.

mod basic_cache;
mod password;
mod principal;
mod ratelimit;
pub mod session;
mod tokens;

pub use basic_cache::BasicAuthCache;
pub use password::{hash_password, verify_password};
pub use principal::{Credential, Principal};
pub use ratelimit::LoginLimiter;
pub use tokens::{TokenClaims, TokenKeys, TokenScope};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use cairn_db::{tokens as token_repo, users};
use chrono::Utc;

use crate::state::AppState;

/// Why a request could not be authenticated. The message is safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send an API token (Authorization: Bearer ...) or HTTP Basic credentials")]
    Missing,
    #[error("invalid or expired API token")]
    BadToken,
    #[error("API token has been revoked")]
    Revoked,
    #[error("invalid user name or password")]
    BadPassword,
    #[error("account is disabled")]
    Disabled,
    #[error("too many failed logins; try again in {0} seconds")]
    RateLimited(u64),
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Internal(#[from] cairn_db::DbError),
}

/// Authenticates from the `Authorization` header (Bearer or Basic). Returns Ok(None) when
/// the header is absent, so the caller may fall back to a session cookie.
pub async fn from_authorization(
    state: &AppState,
    headers: &HeaderMap,
    client_ip: &str,
) -> Result<Option<Principal>, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::Malformed("not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Malformed("expected '<scheme> <credentials>'"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return authenticate_token(state, rest).await.map(Some);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::Malformed("Basic credentials are not base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| AuthError::Malformed("Basic credentials are not UTF-8"))?;
        let (username, password) = decoded.split_once(':').ok_or(AuthError::Malformed("Basic credentials lack ':'"))?;
        return authenticate_password(state, username, password, client_ip).await.map(Some);
    }
    Err(AuthError::Malformed("unsupported scheme; use Bearer or Basic"))
}

/// Verifies a signed API token and checks its stored row: not revoked, not expired, owner
/// enabled. One indexed query per request.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, AuthError> {
    let claims = state.token_keys.decode(token).ok_or(AuthError::BadToken)?;
    let (row, user) = token_repo::find_with_user(&state.db.pool, claims.jti).await?.ok_or(AuthError::BadToken)?;
    if row.user_id.to_string() != claims.sub {
        return Err(AuthError::BadToken);
    }
    if row.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if row.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(AuthError::BadToken);
    }
    if user.disabled {
        return Err(AuthError::Disabled);
    }
    // Keep last_used_at roughly current without a write on every request.
    if row.last_used_at.is_none_or(|at| Utc::now() - at > chrono::Duration::minutes(1)) {
        let pool = state.db.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = token_repo::touch_last_used(&pool, row.id).await {
                tracing::warn!(error = %e, "could not record token use");
            }
        });
    }
    let scope = row.scope.parse().unwrap_or(TokenScope::Read);
    Ok(Principal {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role(),
        credential: Credential::Token { id: row.id, scope, project: row.project_id, run: row.run_id },
    })
}

/// Checks a user name and password, with rate limiting of failures per client address and
/// user name. Successful checks are cached briefly, because the MLflow client sends Basic
/// credentials on every request and argon2 is deliberately slow.
pub async fn authenticate_password(
    state: &AppState,
    username: &str,
    password: &str,
    client_ip: &str,
) -> Result<Principal, AuthError> {
    let limiter_key = format!("{client_ip}|{}", username.to_lowercase());
    if let Some(wait) = state.login_limiter.blocked_for(&limiter_key, client_ip) {
        return Err(AuthError::RateLimited(wait.as_secs().max(1)));
    }
    let user = users::find_by_name(&state.db.pool, username).await?;
    let verified = match &user {
        // Service accounts never log in with a password, whatever their stored hash says;
        // spend the usual time so that the refusal does not tell them apart.
        Some(user) if user.service_project_id.is_some() => {
            verify_password(password, password::DUMMY_HASH).await;
            false
        }
        Some(user) if state.basic_cache.contains(username, password, &user.password_hash) => true,
        Some(user) => {
            let ok = verify_password(password, &user.password_hash).await;
            if ok {
                state.basic_cache.insert(username, password, &user.password_hash);
            }
            ok
        }
        None => {
            // Spend the same time as a real check so timing does not reveal which names exist.
            verify_password(password, password::DUMMY_HASH).await;
            false
        }
    };
    let Some(user) = user.filter(|_| verified) else {
        state.login_limiter.record_failure(&limiter_key, client_ip);
        return Err(AuthError::BadPassword);
    };
    if user.disabled {
        return Err(AuthError::Disabled);
    }
    state.login_limiter.clear(&limiter_key);
    Ok(Principal {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role(),
        credential: Credential::Basic,
    })
}
