//! `/api/v1/me` and user administration (`/api/v1/users`, admins only).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::Role;
use cairn_db::projects;
use cairn_db::users::{self, UserRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::Problem;
use super::{ApiError, ApiJson};
use crate::accounts;
use crate::audit::{Actor, Audited};
use crate::auth::Principal;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct UserView {
    username: String,
    /// `admin`, `member` or `viewer`.
    #[schema(value_type = String, example = "member")]
    role: Role,
    disabled: bool,
    created_at: DateTime<Utc>,
    /// `person`, or `service` for a project's service account (which cannot log in).
    #[schema(example = "person")]
    kind: &'static str,
    /// The project that owns a service account (null for people).
    project: Option<String>,
}

impl UserView {
    /// The view of `row`, with the names of projects by id (for service accounts).
    fn new(row: UserRow, project_names: &HashMap<i64, String>) -> Self {
        let project = row.service_project_id.and_then(|id| project_names.get(&id).cloned());
        UserView {
            role: row.role(),
            kind: if row.service_project_id.is_some() { "service" } else { "person" },
            project,
            username: row.username,
            disabled: row.disabled,
            created_at: row.created_at,
        }
    }

    /// The view of one account (a query for its project only when it is a service account).
    async fn of(state: &AppState, row: UserRow) -> Result<Self, ApiError> {
        let names = project_names(state, std::slice::from_ref(&row)).await?;
        Ok(UserView::new(row, &names))
    }
}

async fn project_names(state: &AppState, rows: &[UserRow]) -> Result<HashMap<i64, String>, ApiError> {
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.service_project_id).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found = projects::list(&state.db.pool, Some(&ids)).await?;
    Ok(found.into_iter().map(|p| (p.id, p.name)).collect())
}

/// Admin role; whether the credential may write is the guard's business.
fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.role == Role::Admin { Ok(()) } else { Err(ApiError::forbidden("only admins manage users")) }
}

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "accounts", responses((status = 200, body = UserView)))]
pub async fn me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<UserView>, ApiError> {
    let row = users::find_by_id(&state.db.pool, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("your account no longer exists"))?;
    Ok(Json(UserView::of(&state, row).await?))
}

/// Every account.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
}

/// Lists the accounts (admins only): people and projects' service accounts.
#[utoipa::path(get, path = "/users", tag = "accounts", responses(
    (status = 200, body = UserList),
    (status = 403, body = Problem),
))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<UserList>, ApiError> {
    require_admin(&principal)?;
    let rows = users::list(&state.db.pool).await?;
    let names = project_names(&state, &rows).await?;
    Ok(Json(UserList { users: rows.into_iter().map(|row| UserView::new(row, &names)).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: String,
    /// `admin`, `member` (default) or `viewer`.
    #[schema(value_type = Option<String>, example = "viewer")]
    role: Option<Role>,
}

/// Creates an account (admins only).
#[utoipa::path(post, path = "/users", tag = "accounts", request_body = CreateUser, responses(
    (status = 201, body = UserView),
    (status = 403, body = Problem),
    (status = 409, description = "The name is taken", body = Problem),
    (status = 422, description = "Invalid name or password", body = Problem),
))]

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    actor: Actor,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let role = body.role.unwrap_or(Role::Member);
    let row = accounts::create_user(&state.db, &actor, &body.username, &body.password, role).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(UserView::new(row, &HashMap::new()))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `admin`, `member` or `viewer`.
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// Changes an account's role, disabled flag or password (admins only).
#[utoipa::path(patch, path = "/users/{username}", tag = "accounts", params(("username" = String, Path)),
    request_body = UpdateUser, responses(
    (status = 200, body = UserView),
    (status = 400, description = "Nothing to change", body = Problem),
    (status = 403, body = Problem),
    (status = 404, body = Problem),
))]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    actor: Actor,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    if body.role.is_none() && body.disabled.is_none() && body.password.is_none() {
        return Err(ApiError::bad_request("nothing to change: give role, disabled or password"));
    }
    if let Some(role) = body.role {
        accounts::set_role(&state.db, &actor, &username, role).await?;
    }
    if let Some(disabled) = body.disabled {
        accounts::set_disabled(&state.db, &actor, &username, disabled).await?;
    }
    if let Some(password) = &body.password {
        accounts::set_password(&state.db, &actor, &username, password).await?;
    }
    let row = users::find_by_name(&state.db.pool, &username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user named {username:?}")))?;
    Ok((Extension(Audited), Json(UserView::of(&state, row).await?)).into_response())
}
