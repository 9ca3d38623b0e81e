//! `/admin/users` for server admins: every account (people and projects' service
//! accounts), a form to create a person's account, and per account a role change and
//! disable/enable. The route table admits server admins only.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_core::Role;
use cairn_db::{projects, users};
use serde::Deserialize;

use super::{Header, HtmlError, SessionUser, render};
use crate::accounts::{self, AccountError};
use crate::audit::{Actor, Audited};
use crate::state::AppState;

struct UserLine {
    username: String,
    role: String,
    disabled: bool,
    /// The owning project of a service account.
    project: Option<String>,
    created_at: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    header: Header,
    users: Vec<UserLine>,
    error: Option<String>,
}

async fn render_page(
    state: &AppState,
    user: &SessionUser,
    error: Option<(StatusCode, String)>,
) -> Result<Response, HtmlError> {
    let rows = users::list(&state.db.pool).await?;
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.service_project_id).collect();
    let names: HashMap<i64, String> = if ids.is_empty() {
        HashMap::new()
    } else {
        projects::list(&state.db.pool, Some(&ids)).await?.into_iter().map(|p| (p.id, p.name)).collect()
    };
    let users = rows
        .into_iter()
        .map(|r| UserLine {
            role: r.role().to_string(),
            disabled: r.disabled,
            project: r.service_project_id.and_then(|id| names.get(&id).cloned()),
            created_at: r.created_at.format("%Y-%m-%d").to_string(),
            is_me: r.id == user.principal.user_id,
            username: r.username,
        })
        .collect();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = UsersPage { header: Header::from(user), users, error };
    Ok((status, render(&page)?).into_response())
}

pub async fn page(State(state): State<AppState>, user: SessionUser) -> Result<Response, HtmlError> {
    render_page(&state, &user, None).await
}

async fn after_change(
    state: &AppState,
    user: &SessionUser,
    outcome: Result<(), AccountError>,
) -> Result<Response, HtmlError> {
    let refusal = match outcome {
        Ok(()) => return Ok((Extension(Audited), Redirect::to("/admin/users")).into_response()),
        Err(AccountError::Invalid(v)) => (StatusCode::UNPROCESSABLE_ENTITY, v.0),
        Err(AccountError::NotFound(m)) => (StatusCode::NOT_FOUND, m),
        Err(AccountError::Conflict(m)) => (StatusCode::CONFLICT, m),
        Err(AccountError::Forbidden(m)) => (StatusCode::FORBIDDEN, m),
        Err(e) => return Err(HtmlError::internal(e)),
    };
    render_page(state, user, Some(refusal)).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf_token: String,
    username: String,
    password: String,
    #[serde(default)]
    role: String,
}

fn parse_role(raw: &str) -> Result<Role, AccountError> {
    match raw.trim() {
        "" => Ok(Role::Member),
        other => other.parse().map_err(|_| {
            cairn_core::ValidationError(format!("unknown role {other:?}: use admin, member or viewer")).into()
        }),
    }
}

pub async fn create(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Form(form): Form<CreateForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let outcome = match parse_role(&form.role) {
        Ok(role) => {
            accounts::create_user(&state.db, &actor, form.username.trim(), &form.password, role).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    after_change(&state, &user, outcome).await
}

#[derive(Deserialize)]
pub struct ChangeForm {
    csrf_token: String,
    /// `role`, `disable` or `enable`.
    action: String,
    #[serde(default)]
    role: String,
}

pub async fn change(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(username): Path<String>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let outcome = match form.action.as_str() {
        "role" => match parse_role(&form.role) {
            Ok(role) => accounts::set_role(&state.db, &actor, &username, role).await,
            Err(e) => Err(e),
        },
        "disable" => accounts::set_disabled(&state.db, &actor, &username, true).await,
        "enable" => accounts::set_disabled(&state.db, &actor, &username, false).await,
        other => Err(cairn_core::ValidationError(format!("unknown action {other:?}")).into()),
    };
    after_change(&state, &user, outcome).await
}
