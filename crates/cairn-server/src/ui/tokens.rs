//! Personal API tokens in the dashboard: list, create (shown once, with copy-ready
//! MLflow client settings) and revoke.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_db::{projects, tokens, users};
use chrono::{Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::display::when;
use super::{Header, HtmlError, SessionUser, public_url, render};
use crate::access::ProjectAccess;
use crate::accounts::{self, AccountError, TokenRequest};
use crate::audit::{Actor, Audited};
use crate::auth::TokenScope;
use crate::state::AppState;

struct TokenLine {
    id: String,
    name: String,
    scope: String,
    created_at: String,
    expires_at: String,
    last_used_at: String,
    revoked: bool,
    /// The only project the token reaches (empty: wherever its owner may).
    project: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    header: Header,
    tokens: Vec<TokenLine>,
    /// The projects a new token may be limited to.
    projects: Vec<String>,
    new_token: Option<String>,
    tracking_uri: String,
    error: Option<String>,
}

async fn render_page(
    state: &AppState,
    user: &SessionUser,
    access: &ProjectAccess,
    new_token: Option<String>,
    error: Option<String>,
) -> Result<Response, HtmlError> {
    let rows = tokens::list_for_user(&state.db.pool, user.principal.user_id).await?;
    let readable = projects::list(&state.db.pool, access.readable_projects().as_deref()).await?;
    let name_of = |id: Option<i64>| {
        id.and_then(|id| readable.iter().find(|p| p.id == id)).map_or_else(String::new, |p| p.name.clone())
    };
    let tokens = rows
        .into_iter()
        .map(|r| TokenLine {
            id: r.id.to_string(),
            name: r.name,
            scope: r.scope,
            created_at: when(Some(r.created_at), ""),
            expires_at: when(r.expires_at, "never"),
            last_used_at: when(r.last_used_at, "never"),
            revoked: r.revoked_at.is_some(),
            project: name_of(r.project_id),
        })
        .collect();
    let projects = readable.iter().map(|p| p.name.clone()).collect();
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page =
        TokensPage { header: Header::from(user), tokens, projects, new_token, tracking_uri: public_url(state), error };
    Ok((status, render(&page)?).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
) -> Result<Response, HtmlError> {
    render_page(&state, &user, &access, None, None).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf_token: String,
    name: String,
    expires_in_days: Option<String>,
    /// A project to limit the token to (empty: none).
    #[serde(default)]
    project: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    user: SessionUser,
    actor: Actor,
    Form(form): Form<CreateForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let days = match form.expires_in_days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => match d.parse::<u32>() {
            Ok(days) if crate::accounts::TOKEN_DAYS.contains(&days) => Some(days),
            _ => {
                return render_page(
                    &state,
                    &user,
                    &access,
                    None,
                    Some("Expiry must be a number of days from 1 to 3650, or empty for none.".into()),
                )
                .await;
            }
        },
    };
    let owner = users::find_by_id(&state.db.pool, user.principal.user_id)
        .await?
        .ok_or_else(|| HtmlError::page(StatusCode::NOT_FOUND, "Your account no longer exists."))?;
    let scope = if user.principal.can_write() { TokenScope::Write } else { TokenScope::Read };
    let expires_at = days.map(|d| Utc::now() + Duration::days(i64::from(d)));
    // Only a project the user can read; a session is never project-scoped itself.
    let project_id = match form.project.trim() {
        "" => None,
        name => match projects::find_by_name(&state.db.pool, name).await? {
            Some(p) if access.role_in(p.id).is_some() => Some(p.id),
            _ => {
                let error = format!("There is no project named {name:?} that you can read.");
                return render_page(&state, &user, &access, None, Some(error)).await;
            }
        },
    };
    let request = TokenRequest { name: &form.name, scope, expires_at, project_id };
    match accounts::create_token(&state.db, &state.token_keys, &actor, &owner, request).await {
        Ok(issued) => {
            let response = render_page(&state, &user, &access, Some(issued.token), None).await?;
            Ok((Extension(Audited), response).into_response())
        }
        Err(AccountError::Invalid(e)) => render_page(&state, &user, &access, None, Some(e.0)).await,
        Err(e) => Err(HtmlError::internal(e)),
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf_token: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let id = Uuid::parse_str(&id).map_err(|_| HtmlError::page(StatusCode::NOT_FOUND, "No such token."))?;
    match accounts::revoke_token(&state.db, &actor, id, false).await {
        Ok(_) => Ok((Extension(Audited), Redirect::to("/settings/tokens")).into_response()),
        Err(AccountError::NotFound(_)) => Err(HtmlError::page(StatusCode::NOT_FOUND, "No such token.")),
        Err(e) => Err(HtmlError::internal(e)),
    }
}
