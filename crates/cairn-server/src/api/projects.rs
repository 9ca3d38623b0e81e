//! `/api/v1/projects`: projects, their members, service accounts and the service
//! accounts' tokens.
//!
//! Who may call which route is decided by the route table (`crate::access::policy`):
//! listing is open to every caller (and shows only the projects they can read), creating is
//! for server admins, reading a project for its readers, and every change for its owners.
//! A project the caller cannot read answers 404 before these handlers run.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::ProjectRole;
use cairn_db::projects::{self as project_repo, MemberRow, ProjectRow};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::Problem;
use super::tokens::{CreatedToken, TokenView};
use super::{ApiError, ApiJson};
use crate::access::ProjectAccess;
use crate::audit::{Actor, Audited};
use crate::auth::TokenScope;
use crate::projects::service_accounts::{self, ServiceAccount, ServiceTokenRequest};
use crate::projects::{self, NewProject, ProjectChange};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    name: String,
    description: String,
    /// The role every account has here: `viewer`, `member` or null (members only).
    #[schema(value_type = Option<String>, example = "viewer")]
    everyone_role: Option<String>,
    /// GPUs the project's jobs may hold at once (null: no limit).
    max_concurrent_gpus: Option<i32>,
    /// GPU hours the project's jobs may use per calendar month (null: no limit).
    monthly_gpu_hours: Option<f64>,
    created_at: DateTime<Utc>,
    /// The caller's role here: `owner`, `member` or `viewer`.
    #[schema(value_type = Option<String>, example = "member")]
    role: Option<ProjectRole>,
}

impl ProjectView {
    fn new(row: ProjectRow, access: &ProjectAccess) -> Self {
        let role = access.role_in(row.id).or(access.is_admin().then_some(ProjectRole::Owner));
        ProjectView {
            name: row.name,
            description: row.description,
            everyone_role: row.everyone_role,
            max_concurrent_gpus: row.max_concurrent_gpus,
            monthly_gpu_hours: row.monthly_gpu_hours,
            created_at: row.created_at,
            role,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    projects: Vec<ProjectView>,
}

/// Lists the projects the caller can read, with the caller's role in each.
#[utoipa::path(get, path = "/projects", tag = "projects", responses((status = 200, body = ProjectList)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
) -> Result<Json<ProjectList>, ApiError> {
    let readable = access.readable_projects();
    let rows = project_repo::list(&state.db.pool, readable.as_deref()).await?;
    let projects = rows.into_iter().map(|row| ProjectView::new(row, &access)).filter(|p| p.role.is_some()).collect();
    Ok(Json(ProjectList { projects }))
}

/// A field that distinguishes "absent" (leave as is) from `null` (clear).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 63 lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit.
    name: String,
    #[serde(default)]
    description: String,
    /// `viewer` or `member`: the role every account gets here (absent: members only).
    #[schema(value_type = Option<String>, example = "viewer")]
    everyone_role: Option<ProjectRole>,
    /// The user name of the project's first owner.
    owner: Option<String>,
    max_concurrent_gpus: Option<i32>,
    monthly_gpu_hours: Option<f64>,
}

/// Creates a project (server admins), optionally naming its first owner.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProject, responses(
    (status = 201, body = ProjectView),
    (status = 403, body = Problem),
    (status = 409, description = "The name is taken", body = Problem),
    (status = 422, description = "Invalid name or settings, or no such owner", body = Problem),
))]
pub async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    actor: Actor,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<Response, ApiError> {
    let new = NewProject {
        name: &body.name,
        description: &body.description,
        everyone_role: body.everyone_role,
        owner: body.owner.as_deref(),
        max_concurrent_gpus: body.max_concurrent_gpus,
        monthly_gpu_hours: body.monthly_gpu_hours,
    };
    let row = projects::create(&state.db, &actor, new).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(ProjectView::new(row, &access))).into_response())
}

/// Shows a project and the caller's role there.
#[utoipa::path(get, path = "/projects/{project}", tag = "projects", params(("project" = String, Path)), responses(
    (status = 200, body = ProjectView),
    (status = 404, body = Problem),
))]
pub async fn get(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    Path(project): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    Ok(Json(ProjectView::new(row, &access)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    description: Option<String>,
    /// `viewer`, `member`, or null for members only.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    everyone_role: Option<Option<ProjectRole>>,
    /// Server admins only; null removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    max_concurrent_gpus: Option<Option<i32>>,
    /// Server admins only; null removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f64>)]
    monthly_gpu_hours: Option<Option<f64>>,
}

/// Changes a project's description or everyone-role (owners) or its GPU quotas (server
/// admins only: quotas share out the server's GPUs among projects).
#[utoipa::path(patch, path = "/projects/{project}", tag = "projects", params(("project" = String, Path)),
    request_body = UpdateProject, responses(
    (status = 200, body = ProjectView),
    (status = 403, description = "Quotas by someone who is not a server admin", body = Problem),
    (status = 404, body = Problem),
    (status = 422, body = Problem),
))]
pub async fn update(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    actor: Actor,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> Result<Response, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    let change = ProjectChange {
        description: body.description,
        everyone_role: body.everyone_role,
        max_concurrent_gpus: body.max_concurrent_gpus,
        monthly_gpu_hours: body.monthly_gpu_hours,
    };
    let row = projects::update(&state.db, &actor, row.id, change, access.is_admin()).await?;
    Ok((Extension(Audited), Json(ProjectView::new(row, &access))).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    username: String,
    /// `owner`, `member` or `viewer`.
    #[schema(example = "member")]
    role: String,
    /// A service account of this project rather than a person.
    service_account: bool,
    disabled: bool,
    added_at: DateTime<Utc>,
}

impl From<MemberRow> for MemberView {
    fn from(m: MemberRow) -> Self {
        MemberView {
            username: m.username,
            role: m.role,
            service_account: m.service_account,
            disabled: m.disabled,
            added_at: m.added_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    /// The role every other account has (null: members only).
    everyone_role: Option<String>,
    members: Vec<MemberView>,
}

/// Lists a project's members and their roles.
#[utoipa::path(get, path = "/projects/{project}/members", tag = "projects", params(("project" = String, Path)),
    responses((status = 200, body = MemberList), (status = 404, body = Problem)))]
pub async fn members(State(state): State<AppState>, Path(project): Path<String>) -> Result<Json<MemberList>, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    let members = project_repo::members(&state.db.pool, row.id).await?;
    Ok(Json(MemberList { everyone_role: row.everyone_role, members: members.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    /// `owner`, `member` or `viewer`.
    #[schema(value_type = String, example = "member")]
    role: ProjectRole,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipChange {
    username: String,
    /// The role now (null after a removal).
    #[schema(value_type = Option<String>)]
    role: Option<ProjectRole>,
    /// The role before (null when newly added).
    #[schema(value_type = Option<String>)]
    previous_role: Option<ProjectRole>,
}

/// Adds a member or changes their role (owners). A project keeps at least one owner unless
/// it gives every account a role or a server admin makes the change.
#[utoipa::path(put, path = "/projects/{project}/members/{username}", tag = "projects",
    params(("project" = String, Path), ("username" = String, Path)), request_body = SetMember, responses(
    (status = 200, description = "The role changed", body = MembershipChange),
    (status = 201, description = "Added", body = MembershipChange),
    (status = 404, description = "No such project or user", body = Problem),
    (status = 409, description = "It would leave the project without an owner", body = Problem),
    (status = 422, description = "A service account of another project, or made owner", body = Problem),
))]
pub async fn set_member(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    actor: Actor,
    Path((project, username)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetMember>,
) -> Result<Response, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    let previous = projects::set_member(&state.db, &actor, row.id, &username, body.role, access.is_admin()).await?;
    let status = if previous.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    let change = MembershipChange { username, role: Some(body.role), previous_role: previous };
    Ok((status, Extension(Audited), Json(change)).into_response())
}

/// Removes a member (owners), with the same rule about the last owner.
#[utoipa::path(delete, path = "/projects/{project}/members/{username}", tag = "projects",
    params(("project" = String, Path), ("username" = String, Path)), responses(
    (status = 200, body = MembershipChange),
    (status = 404, description = "No such project, or not a member", body = Problem),
    (status = 409, description = "It would leave the project without an owner", body = Problem),
))]
pub async fn remove_member(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    actor: Actor,
    Path((project, username)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    let previous = projects::remove_member(&state.db, &actor, row.id, &username, access.is_admin()).await?;
    let change = MembershipChange { username, role: None, previous_role: Some(previous) };
    Ok((Extension(Audited), Json(change)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct ServiceAccountView {
    /// The name within the project.
    name: String,
    /// The account's user name (`NAME@PROJECT`), as audit events show it.
    username: String,
    /// `member` or `viewer`.
    #[schema(value_type = Option<String>)]
    role: Option<ProjectRole>,
    disabled: bool,
    created_at: DateTime<Utc>,
    tokens: Vec<TokenView>,
}

impl ServiceAccountView {
    fn new(account: ServiceAccount, project: &str) -> Self {
        ServiceAccountView {
            name: account.name,
            username: account.user.username,
            role: account.role,
            disabled: account.user.disabled,
            created_at: account.user.created_at,
            tokens: account.tokens.into_iter().map(|t| TokenView::new(t, Some(project.to_owned()))).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ServiceAccountList {
    service_accounts: Vec<ServiceAccountView>,
}

/// Lists a project's service accounts and their tokens (never the secrets).
#[utoipa::path(get, path = "/projects/{project}/service-accounts", tag = "projects",
    params(("project" = String, Path)), responses((status = 200, body = ServiceAccountList), (status = 404, body = Problem)))]
pub async fn service_accounts(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<ServiceAccountList>, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    let accounts = service_accounts::list(&state.db, &row).await?;
    let views = accounts.into_iter().map(|a| ServiceAccountView::new(a, &row.name)).collect();
    Ok(Json(ServiceAccountList { service_accounts: views }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccount {
    /// 1 to 32 lower-case letters, digits, `.`, `_` and `-`; the account is `NAME@PROJECT`.
    name: String,
    /// `member` (default) or `viewer`.
    #[schema(value_type = Option<String>, example = "member")]
    role: Option<ProjectRole>,
}

/// Creates a service account of the project (owners): it cannot log in and acts through
/// tokens limited to this project.
#[utoipa::path(post, path = "/projects/{project}/service-accounts", tag = "projects",
    params(("project" = String, Path)), request_body = CreateServiceAccount, responses(
    (status = 201, body = ServiceAccountView),
    (status = 404, body = Problem),
    (status = 409, description = "The name is taken", body = Problem),
    (status = 422, body = Problem),
))]
pub async fn create_service_account(
    State(state): State<AppState>,
    actor: Actor,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<CreateServiceAccount>,
) -> Result<Response, ApiError> {
    let row = projects::find(&state.db, &project).await?;
    let role = body.role.unwrap_or(ProjectRole::Member);
    let user = service_accounts::create(&state.db, &actor, &row, &body.name, role).await?;
    let account = ServiceAccount { name: body.name.trim().to_owned(), user, role: Some(role), tokens: Vec::new() };
    Ok((StatusCode::CREATED, Extension(Audited), Json(ServiceAccountView::new(account, &row.name))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceToken {
    /// 1 to 100 characters (default: the service account's name).
    name: Option<String>,
    /// `write` (default) or `read`.
    #[schema(value_type = Option<String>, example = "read")]
    scope: Option<TokenScope>,
    /// Lifetime in days (1 to 3650); absent means the token lives until revoked.
    expires_in_days: Option<u32>,
}

/// Issues a token for a service account (owners); it only ever reaches this project.
#[utoipa::path(post, path = "/projects/{project}/service-accounts/{name}/tokens", tag = "projects",
    params(("project" = String, Path), ("name" = String, Path)), request_body = CreateServiceToken, responses(
    (status = 201, description = "The token; its secret is shown only now", body = CreatedToken),
    (status = 404, body = Problem),
    (status = 422, body = Problem),
))]
pub async fn create_service_token(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateServiceToken>,
) -> Result<Response, ApiError> {
    if body.expires_in_days.is_some_and(|d| !crate::accounts::TOKEN_DAYS.contains(&d)) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "expires_in_days must be between 1 and 3650"));
    }
    let row = projects::find(&state.db, &project).await?;
    let request = ServiceTokenRequest {
        name: body.name.as_deref().unwrap_or(&name),
        scope: body.scope.unwrap_or(TokenScope::Write),
        expires_at: body.expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d))),
    };
    let issued = service_accounts::create_token(&state.db, &state.token_keys, &actor, &row, &name, request).await?;
    let body = CreatedToken::new(issued, Some(row.name));
    Ok((StatusCode::CREATED, Extension(Audited), Json(body)).into_response())
}

/// Revokes a service account's token (owners).
#[utoipa::path(delete, path = "/projects/{project}/service-accounts/{name}/tokens/{id}", tag = "projects",
    params(("project" = String, Path), ("name" = String, Path), ("id" = String, Path, description = "The token's id (a UUID)")),
    responses(
    (status = 200, description = "The revoked token", body = TokenView),
    (status = 400, description = "Not a UUID", body = Problem),
    (status = 404, body = Problem),
))]
pub async fn revoke_service_token(
    State(state): State<AppState>,
    actor: Actor,
    Path((project, name, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id (a UUID)")))?;
    let row = projects::find(&state.db, &project).await?;
    let token = service_accounts::revoke_token(&state.db, &actor, &row, &name, id).await?;
    Ok((Extension(Audited), Json(TokenView::new(token, Some(row.name)))).into_response())
}
