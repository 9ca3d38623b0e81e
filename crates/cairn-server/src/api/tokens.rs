//! `/api/v1/tokens`: create, list and revoke the caller's API tokens.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_db::projects::{self, ProjectRow};
use cairn_db::tokens::TokenRow;
use cairn_db::{tokens, users};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::Problem;
use super::{ApiError, ApiJson};
use crate::accounts::{self, IssuedToken, TokenRequest};
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
    /// A project to limit the token to: it then sees and changes nothing else. The caller
    /// must be able to read the project. A caller that came with a project-scoped token
    /// always gets a token of that same project.
    project: Option<String>,
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
    /// The only project the token reaches (null: wherever its owner may).
    project: Option<String>,
}

impl TokenView {
    /// The view of `row`, whose project (if it has one) is named `project`.
    pub(super) fn new(row: TokenRow, project: Option<String>) -> Self {
        TokenView {
            project,
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

impl CreatedToken {
    pub(super) fn new(issued: IssuedToken, project: Option<String>) -> Self {
        CreatedToken { token: issued.token, info: TokenView::new(issued.row, project) }
    }
}

/// The names of the projects of `rows`' tokens, by id (one query, none without projects).
async fn project_names(state: &AppState, rows: &[TokenRow]) -> Result<HashMap<i64, String>, ApiError> {
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.project_id).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found = projects::list(&state.db.pool, Some(&ids)).await?;
    Ok(found.into_iter().map(|p| (p.id, p.name)).collect())
}

/// The project a new token of the caller's is limited to: the one named (the route table
/// has checked that the caller can read it), and never wider than the caller's own
/// credential: a project-scoped token mints tokens of its own project only.
async fn token_project(
    state: &AppState,
    principal: &Principal,
    named: Option<&str>,
) -> Result<Option<ProjectRow>, ApiError> {
    let limit = principal.token_project();
    let row = match (named, limit) {
        (Some(name), _) => projects::find_by_name(&state.db.pool, name).await?,
        (None, Some(id)) => projects::find(&state.db.pool, id).await?,
        (None, None) => return Ok(None),
    };
    match row {
        Some(row) if limit.is_none_or(|id| id == row.id) => Ok(Some(row)),
        _ => Err(ApiError::not_found(format!("no project named {:?}", named.unwrap_or("")))),
    }
}

/// Issues an API token for the caller (HTTP Basic, a token or a session). A read-only
/// credential gets a read-only token.
#[utoipa::path(post, path = "/tokens", tag = "accounts", request_body = CreateToken, responses(
    (status = 201, description = "The token; its secret is shown only now", body = CreatedToken),
    (status = 404, description = "No project of that name that the caller can read", body = Problem),
    (status = 422, description = "Invalid name or lifetime", body = Problem),
))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    actor: Actor,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    if body.expires_in_days.is_some_and(|d| !crate::accounts::TOKEN_DAYS.contains(&d)) {
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
    let project = token_project(&state, &principal, body.project.as_deref()).await?;
    let request = TokenRequest {
        name: &body.name,
        scope,
        expires_at: body.expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d))),
        project_id: project.as_ref().map(|p| p.id),
    };
    let issued = accounts::create_token(&state.db, &state.token_keys, &actor, &owner, request).await?;
    let body = CreatedToken::new(issued, project.map(|p| p.name));
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
    let names = project_names(&state, &rows).await?;
    let tokens = rows
        .into_iter()
        .map(|row| {
            let project = row.project_id.and_then(|id| names.get(&id).cloned());
            TokenView::new(row, project)
        })
        .collect();
    Ok(Json(TokenList { tokens }))
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
    let names = project_names(&state, std::slice::from_ref(&row)).await?;
    let project = row.project_id.and_then(|id| names.get(&id).cloned());
    Ok((Extension(Audited), Json(TokenView::new(row, project))).into_response())
}
