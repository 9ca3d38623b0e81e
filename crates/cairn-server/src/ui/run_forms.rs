//! Forms that change a run, for members: set or remove a tag, edit the description,
//! delete or restore. Each checks the session's CSRF token and the role, calls the tracking
//! service, and returns to the page; a refusal (an invalid tag key, a deleted run) shows on
//! the run's page.

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_db::tracking::KeyValue;
use serde::Deserialize;

use super::LifecycleForm;
use super::login::safe_next;
use super::run_page::{NOTE_TAG, render_run};
use super::{HtmlError, SessionUser, links};
use crate::audit::{Actor, Audited};
use crate::state::AppState;
use crate::tracking::{self, Batch, TrackingError};

/// Back to the run's page, at a section.
fn back_to(id: uuid::Uuid, section: &str) -> Response {
    Redirect::to(&format!("{}#{section}", links::run(&id))).into_response()
}

/// Shows a service's refusal on the run's page; database failures are errors.
async fn refused(state: &AppState, user: &SessionUser, run_id: &str, e: TrackingError) -> Result<Response, HtmlError> {
    let status = match &e {
        TrackingError::Invalid(_) | TrackingError::AlreadyExists(_) => StatusCode::UNPROCESSABLE_ENTITY,
        TrackingError::NotFound(_) | TrackingError::Db(_) => return Err(e.into()),
    };
    render_run(state, user, run_id, Some((status, e.to_string()))).await
}

async fn set_tag(state: &AppState, id: uuid::Uuid, key: &str, value: &str) -> Result<(), TrackingError> {
    let tags = vec![KeyValue { key: key.to_owned(), value: value.to_owned() }];
    tracking::log_batch(&state.db, id, Batch { tags, ..Batch::default() }).await
}

#[derive(Deserialize)]
pub struct TagForm {
    csrf_token: String,
    key: String,
    #[serde(default)]
    value: String,
}

pub async fn save_tag(
    State(state): State<AppState>,
    user: SessionUser,
    Path(run_id): Path<String>,
    Form(form): Form<TagForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = tracking::parse_run_id(&run_id)?;
    match set_tag(&state, id, form.key.trim(), &form.value).await {
        Ok(()) => Ok(back_to(id, "tags")),
        Err(e) => refused(&state, &user, &run_id, e).await,
    }
}

#[derive(Deserialize)]
pub struct TagKeyForm {
    csrf_token: String,
    key: String,
}

pub async fn delete_tag(
    State(state): State<AppState>,
    user: SessionUser,
    Path(run_id): Path<String>,
    Form(form): Form<TagKeyForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = tracking::parse_run_id(&run_id)?;
    match tracking::delete_run_tag(&state.db, id, &form.key).await {
        Ok(()) => Ok(back_to(id, "tags")),
        Err(e) => refused(&state, &user, &run_id, e).await,
    }
}

#[derive(Deserialize)]
pub struct DescriptionForm {
    csrf_token: String,
    #[serde(default)]
    description: String,
}

pub async fn save_description(
    State(state): State<AppState>,
    user: SessionUser,
    Path(run_id): Path<String>,
    Form(form): Form<DescriptionForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = tracking::parse_run_id(&run_id)?;
    // Browsers send CRLF line ends; store what was typed.
    let text = form.description.replace("\r\n", "\n");
    match set_tag(&state, id, NOTE_TAG, text.trim_end()).await {
        Ok(()) => Ok(back_to(id, "description")),
        Err(e) => refused(&state, &user, &run_id, e).await,
    }
}

pub async fn delete(
    state: State<AppState>,
    user: SessionUser,
    actor: Actor,
    run_id: Path<String>,
    form: Form<LifecycleForm>,
) -> Result<Response, HtmlError> {
    set_deleted(state, user, actor, run_id, form, true).await
}

pub async fn restore(
    state: State<AppState>,
    user: SessionUser,
    actor: Actor,
    run_id: Path<String>,
    form: Form<LifecycleForm>,
) -> Result<Response, HtmlError> {
    set_deleted(state, user, actor, run_id, form, false).await
}

async fn set_deleted(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(run_id): Path<String>,
    Form(form): Form<LifecycleForm>,
    deleted: bool,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = tracking::parse_run_id(&run_id)?;
    tracking::set_run_deleted(&state.db, &actor, id, deleted).await?;
    let next = match form.next.as_deref() {
        Some(next) => safe_next(Some(next)).to_owned(),
        None => links::run(&id),
    };
    Ok((Extension(Audited), Redirect::to(&next)).into_response())
}
