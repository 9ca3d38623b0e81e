//! Projects in the dashboard: `/projects` (the projects the user can read, and a create
//! form for server admins) and `/projects/{project}` (settings, members and roles, service
//! accounts and their tokens; the forms are shown to owners, and a new token is shown once).
//!
//! Who may open a page or post a form is decided by the route table
//! (`crate::access::policy`) before these handlers run; a project the user cannot read is
//! not found. The pages only choose which forms to show from the user's role.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_core::ProjectRole;
use cairn_db::projects::{self as project_repo, ProjectRow};
use chrono::{Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::display::when;
use super::{Header, HtmlError, SessionUser, public_url, render};
use crate::access::ProjectAccess;
use crate::accounts::AccountError;
use crate::audit::{Actor, Audited};
use crate::auth::TokenScope;
use crate::projects::service_accounts::{self, ServiceTokenRequest};
use crate::projects::{self, NewProject, ProjectChange};
use crate::state::AppState;

struct ProjectLine {
    name: String,
    url: String,
    description: String,
    everyone_role: String,
    role: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    header: Header,
    projects: Vec<ProjectLine>,
    is_admin: bool,
    error: Option<String>,
}

fn project_url(name: &str) -> String {
    format!("/projects/{name}")
}

/// A refusal a form can explain on its page; database and internal failures stay errors.
fn explain(e: AccountError) -> Result<(StatusCode, String), HtmlError> {
    match e {
        AccountError::Invalid(v) => Ok((StatusCode::UNPROCESSABLE_ENTITY, v.0)),
        AccountError::NotFound(m) => Ok((StatusCode::NOT_FOUND, m)),
        AccountError::Conflict(m) => Ok((StatusCode::CONFLICT, m)),
        AccountError::Forbidden(m) => Ok((StatusCode::FORBIDDEN, m)),
        AccountError::Db(e) => Err(HtmlError::internal(e)),
        AccountError::Internal(e) => Err(HtmlError::internal(e)),
    }
}

async fn render_list(
    state: &AppState,
    user: &SessionUser,
    access: &ProjectAccess,
    error: Option<(StatusCode, String)>,
) -> Result<Response, HtmlError> {
    let readable = access.readable_projects();
    let rows = project_repo::list(&state.db.pool, readable.as_deref()).await?;
    let projects = rows
        .into_iter()
        .filter_map(|row| {
            let role = access.role_in(row.id).or(access.is_admin().then_some(ProjectRole::Owner))?;
            Some(ProjectLine {
                url: project_url(&row.name),
                name: row.name,
                description: row.description,
                everyone_role: row.everyone_role.unwrap_or_default(),
                role: role.to_string(),
            })
        })
        .collect();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = ProjectsPage { header: Header::from(user), projects, is_admin: access.is_admin(), error };
    Ok((status, render(&page)?).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
) -> Result<Response, HtmlError> {
    render_list(&state, &user, &access, None).await
}

/// An everyone-role from a form: empty is none.
fn form_role(raw: &str) -> Result<Option<ProjectRole>, AccountError> {
    match raw.trim() {
        "" | "none" => Ok(None),
        other => Ok(Some(other.parse()?)),
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf_token: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    everyone_role: String,
    #[serde(default)]
    owner: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Form(form): Form<CreateForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let owner = Some(form.owner.trim()).filter(|o| !o.is_empty());
    let created = match form_role(&form.everyone_role) {
        Ok(everyone_role) => {
            let new = NewProject {
                name: &form.name,
                description: &form.description,
                everyone_role,
                owner,
                max_concurrent_gpus: None,
                monthly_gpu_hours: None,
            };
            projects::create(&state.db, &actor, new).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(row) => Ok((Extension(Audited), Redirect::to(&project_url(&row.name))).into_response()),
        Err(e) => render_list(&state, &user, &access, Some(explain(e)?)).await,
    }
}

struct MemberLine {
    username: String,
    role: String,
    service_account: bool,
    disabled: bool,
}

struct TokenLine {
    id: String,
    name: String,
    scope: String,
    created_at: String,
    expires_at: String,
    last_used_at: String,
    revoked: bool,
}

struct ServiceAccountLine {
    name: String,
    username: String,
    role: String,
    tokens: Vec<TokenLine>,
}

/// A token just issued: shown once.
struct NewToken {
    account: String,
    token: String,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    header: Header,
    name: String,
    url: String,
    description: String,
    everyone_role: String,
    max_concurrent_gpus: String,
    monthly_gpu_hours: String,
    role: String,
    can_manage: bool,
    is_admin: bool,
    members: Vec<MemberLine>,
    service_accounts: Vec<ServiceAccountLine>,
    new_token: Option<NewToken>,
    tracking_uri: String,
    error: Option<String>,
}

async fn render_project(
    state: &AppState,
    user: &SessionUser,
    access: &ProjectAccess,
    project: ProjectRow,
    new_token: Option<NewToken>,
    error: Option<(StatusCode, String)>,
) -> Result<Response, HtmlError> {
    let role = access.role_in(project.id).or(access.is_admin().then_some(ProjectRole::Owner));
    let members = project_repo::members(&state.db.pool, project.id)
        .await?
        .into_iter()
        .map(|m| MemberLine {
            username: m.username,
            role: m.role,
            service_account: m.service_account,
            disabled: m.disabled,
        })
        .collect();
    let accounts = service_accounts::list(&state.db, &project).await.map_err(HtmlError::internal)?;
    let service_accounts = accounts
        .into_iter()
        .map(|a| ServiceAccountLine {
            name: a.name,
            username: a.user.username,
            role: a.role.map(|r| r.to_string()).unwrap_or_default(),
            tokens: a
                .tokens
                .into_iter()
                .map(|t| TokenLine {
                    id: t.id.to_string(),
                    name: t.name,
                    scope: t.scope,
                    created_at: when(Some(t.created_at), ""),
                    expires_at: when(t.expires_at, "never"),
                    last_used_at: when(t.last_used_at, "never"),
                    revoked: t.revoked_at.is_some(),
                })
                .collect(),
        })
        .collect();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = ProjectPage {
        header: Header::from(user),
        url: project_url(&project.name),
        name: project.name,
        description: project.description,
        everyone_role: project.everyone_role.unwrap_or_default(),
        max_concurrent_gpus: project.max_concurrent_gpus.map(|g| g.to_string()).unwrap_or_default(),
        monthly_gpu_hours: project.monthly_gpu_hours.map(|h| h.to_string()).unwrap_or_default(),
        role: role.map(|r| r.to_string()).unwrap_or_default(),
        can_manage: role == Some(ProjectRole::Owner),
        is_admin: access.is_admin(),
        members,
        service_accounts,
        new_token,
        tracking_uri: public_url(state),
        error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn find(state: &AppState, name: &str) -> Result<ProjectRow, HtmlError> {
    project_repo::find_by_name(&state.db.pool, name)
        .await?
        .ok_or_else(|| HtmlError::page(StatusCode::NOT_FOUND, format!("There is no project named {name:?}.")))
}

pub async fn page(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    Path(name): Path<String>,
) -> Result<Response, HtmlError> {
    let project = find(&state, &name).await?;
    render_project(&state, &user, &access, project, None, None).await
}

/// After a change: back to the page, or the page again with why the change was refused.
async fn after_change<T>(
    state: &AppState,
    user: &SessionUser,
    access: &ProjectAccess,
    project: ProjectRow,
    outcome: Result<T, AccountError>,
) -> Result<Response, HtmlError> {
    match outcome {
        Ok(_) => Ok((Extension(Audited), Redirect::to(&project_url(&project.name))).into_response()),
        Err(e) => render_project(state, user, access, project, None, Some(explain(e)?)).await,
    }
}

/// Optional numbers from a form: empty is none.
fn optional<T: std::str::FromStr>(raw: &str, what: &str) -> Result<Option<T>, AccountError> {
    match raw.trim() {
        "" => Ok(None),
        text => text
            .parse()
            .map(Some)
            .map_err(|_| cairn_core::ValidationError(format!("{what} must be a number, or empty for no limit")).into()),
    }
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf_token: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    everyone_role: String,
    /// Present only on the form server admins see.
    max_concurrent_gpus: Option<String>,
    monthly_gpu_hours: Option<String>,
}

fn settings_change(form: &SettingsForm) -> Result<ProjectChange, AccountError> {
    let gpus = form.max_concurrent_gpus.as_deref().map(|g| optional::<i32>(g, "Max concurrent GPUs")).transpose()?;
    let hours = form.monthly_gpu_hours.as_deref().map(|h| optional::<f64>(h, "Monthly GPU hours")).transpose()?;
    Ok(ProjectChange {
        description: Some(form.description.clone()),
        everyone_role: Some(form_role(&form.everyone_role)?),
        max_concurrent_gpus: gpus,
        monthly_gpu_hours: hours,
    })
}

pub async fn save_settings(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let project = find(&state, &name).await?;
    let outcome = match settings_change(&form) {
        Ok(change) => projects::update(&state.db, &actor, project.id, change, access.is_admin()).await,
        Err(e) => Err(e),
    };
    after_change(&state, &user, &access, project, outcome).await
}

#[derive(Deserialize)]
pub struct MemberForm {
    csrf_token: String,
    username: String,
    role: String,
}

pub async fn set_member(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let project = find(&state, &name).await?;
    let outcome = match form.role.parse::<ProjectRole>() {
        Ok(role) => {
            let username = form.username.trim();
            projects::set_member(&state.db, &actor, project.id, username, role, access.is_admin()).await
        }
        Err(e) => Err(e.into()),
    };
    after_change(&state, &user, &access, project, outcome).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf_token: String,
}

pub async fn remove_member(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Path((name, username)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let project = find(&state, &name).await?;
    let outcome = projects::remove_member(&state.db, &actor, project.id, &username, access.is_admin()).await;
    after_change(&state, &user, &access, project, outcome).await
}

#[derive(Deserialize)]
pub struct ServiceAccountForm {
    csrf_token: String,
    name: String,
    #[serde(default)]
    role: String,
}

pub async fn create_service_account(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<ServiceAccountForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let project = find(&state, &name).await?;
    let role = if form.role.trim().is_empty() { Ok(ProjectRole::Member) } else { form.role.parse() };
    let outcome = match role {
        Ok(role) => service_accounts::create(&state.db, &actor, &project, &form.name, role).await,
        Err(e) => Err(e.into()),
    };
    after_change(&state, &user, &access, project, outcome).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires_in_days: String,
}

fn token_request(form: &TokenForm, account: &str) -> Result<(String, TokenScope, Option<u32>), AccountError> {
    let scope = match form.scope.trim() {
        "" | "write" => TokenScope::Write,
        "read" => TokenScope::Read,
        other => return Err(cairn_core::ValidationError(format!("unknown scope {other:?}: use read or write")).into()),
    };
    let days = optional::<u32>(&form.expires_in_days, "Expiry in days")?;
    if days.is_some_and(|d| !crate::accounts::TOKEN_DAYS.contains(&d)) {
        return Err(cairn_core::ValidationError("Expiry must be 1 to 3650 days, or empty for none.".into()).into());
    }
    let name = if form.name.trim().is_empty() { account.to_owned() } else { form.name.clone() };
    Ok((name, scope, days))
}

pub async fn create_token(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Path((name, account)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let project = find(&state, &name).await?;
    let issued = match token_request(&form, &account) {
        Ok((token_name, scope, days)) => {
            let expires_at = days.map(|d| Utc::now() + Duration::days(i64::from(d)));
            let request = ServiceTokenRequest { name: &token_name, scope, expires_at };
            service_accounts::create_token(&state.db, &state.token_keys, &actor, &project, &account, request).await
        }
        Err(e) => Err(e),
    };
    match issued {
        Ok(issued) => {
            let new_token = NewToken { account: service_accounts::username(&account, &project), token: issued.token };
            let response = render_project(&state, &user, &access, project, Some(new_token), None).await?;
            Ok((Extension(Audited), response).into_response())
        }
        Err(e) => render_project(&state, &user, &access, project, None, Some(explain(e)?)).await,
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Path((name, account, id)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let project = find(&state, &name).await?;
    let id = Uuid::parse_str(&id).map_err(|_| HtmlError::page(StatusCode::NOT_FOUND, "No such token."))?;
    let outcome = service_accounts::revoke_token(&state.db, &actor, &project, &account, id).await;
    after_change(&state, &user, &access, project, outcome).await
}
