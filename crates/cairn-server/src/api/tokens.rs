//! `/api/v1/tokens`: create, list and revoke the caller's API tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_db::tokens::TokenRow;
use cairn_db::{tokens, users};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::Problem;
use super::{ApiError, ApiJson};
use crate::accounts::{self, TokenRequest};
use crate::audit::{Actor, Audited};
use crate::auth::{Principal, TokenScope};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 characters.
    name: String,
    /// Lifetime in days (1 to 3650); absent means the token lives until revoked.
    expires_in_days: Option<u32>,
    /// `write` (default) or `read`.
    #[schema(value_type = Option<String>, example = "read")]
    scope: Option<TokenScope>,
}

/// A token as the API shows it: never its secret.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    id: Uuid,
    name: String,
    scope: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for TokenView {
    fn from(row: TokenRow) -> Self {
        TokenView {
            id: row.id,
            name: row.name,
            scope: row.scope,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The signed token. Shown once; store it now.
    token: String,
    #[serde(flatten)]
    info: TokenView,
}

/// Issues an API token for the caller (HTTP Basic, a token or a session). A read-only
/// credential gets a read-only token.
#[utoipa::path(post, path = "/tokens", tag = "accounts", request_body = CreateToken, responses(
    (status = 201, description = "The token; its secret is shown only now", body = CreatedToken),
    (status = 422, description = "Invalid name or lifetime", body = Problem),
))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    actor: Actor,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    if body.expires_in_days == Some(0) || body.expires_in_days.is_some_and(|d| d > 3650) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "expires_in_days must be between 1 and 3650"));
    }
    let owner = users::find_by_id(&state.db.pool, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("your account no longer exists"))?;
    // A read-only credential cannot mint a token that writes.
    let scope = match (body.scope.unwrap_or(TokenScope::Write), principal.can_write()) {
        (TokenScope::Write, false) => TokenScope::Read,
        (scope, _) => scope,
    };
    let request = TokenRequest {
        name: &body.name,
        scope,
        expires_at: body.expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d))),
    };
    let issued = accounts::create_token(&state.db, &state.token_keys, &actor, &owner, request).await?;
    let body = CreatedToken { token: issued.token, info: issued.row.into() };
    Ok((StatusCode::CREATED, Extension(Audited), Json(body)).into_response())
}

/// The caller's tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

/// Lists the caller's tokens, never their secrets.
#[utoipa::path(get, path = "/tokens", tag = "accounts", responses((status = 200, body = TokenList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TokenList>, ApiError> {
    let rows = tokens::list_for_user(&state.db.pool, principal.user_id).await?;
    Ok(Json(TokenList { tokens: rows.into_iter().map(TokenView::from).collect() }))
}

/// Revokes one of the caller's tokens (an admin may revoke anyone's).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "accounts", params(("id" = String, Path, description = "The token's id (a UUID)")),
    responses(
    (status = 200, description = "The revoked token", body = TokenView),
    (status = 400, description = "Not a UUID", body = Problem),
    (status = 404, body = Problem),
))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id (a UUID)")))?;
    let row = accounts::revoke_token(&state.db, &actor, id, principal.is_admin()).await?;
    Ok((Extension(Audited), Json(TokenView::from(row))).into_response())
}
