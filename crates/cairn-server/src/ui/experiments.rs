//! The experiments list (the home page): name, run count, last activity and tags, a search
//! by name, and for members the forms to create, rename, delete and restore experiments.
//! A new installation (nothing but the empty Default experiment) shows how to log a first run.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_db::tracking::dashboard::{self, ExperimentActivity};
use cairn_db::tracking::search::ViewType;
use serde::Deserialize;

use super::LifecycleForm;
use super::display::When;
use super::{Header, HtmlError, SessionUser, links, login::safe_next, public_url, render};
use crate::access::NewObjectProject;
use crate::audit::{Actor, Audited};
use crate::state::AppState;
use crate::tracking::{self, ExperimentPage, TrackingError};

const PAGE_SIZE: i64 = 50;

struct TagChip {
    key: String,
    value: String,
}

struct ExperimentLine {
    id: i64,
    name: String,
    url: String,
    /// The name of its project.
    project: String,
    runs: i64,
    last_activity: Option<When>,
    tags: Vec<TagChip>,
    deleted: bool,
    /// The Default experiment cannot be deleted.
    deletable: bool,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    header: Header,
    can_write: bool,
    q: String,
    showing_deleted: bool,
    experiments: Vec<ExperimentLine>,
    next_url: Option<String>,
    first_url: Option<String>,
    active_url: String,
    deleted_url: String,
    /// This page's URL, where forms return to.
    here: String,
    /// Nothing logged yet: show how to log a first run.
    first_steps: bool,
    tracking_uri: String,
    error: Option<String>,
    /// What the create form held when it was refused.
    create_name: String,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    view: String,
    after: Option<String>,
}

impl ListQuery {
    fn deleted(&self) -> bool {
        self.view == "deleted"
    }
}

/// `%text%` for `ILIKE`, with the pattern characters in `text` matched literally.
fn contains_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    render_list(&state, &user, &query, None, String::new()).await
}

async fn render_list(
    state: &AppState,
    user: &SessionUser,
    query: &ListQuery,
    error: Option<(StatusCode, String)>,
    create_name: String,
) -> Result<Response, HtmlError> {
    let q = query.q.trim();
    let pattern = (!q.is_empty()).then(|| contains_pattern(q));
    let after = query.after.as_deref().and_then(|a| a.parse::<i64>().ok());
    let view = if query.deleted() { ViewType::DeletedOnly } else { ViewType::ActiveOnly };
    let visible = user.visible();
    let page =
        ExperimentPage { projects: visible.projects(), name_like: pattern.as_deref(), view, after, limit: PAGE_SIZE };
    let (rows, next) = tracking::list_experiments(&state.db, &page).await?;
    let ids: Vec<i64> = rows.iter().map(|(row, _)| row.id).collect();
    let activity: HashMap<i64, ExperimentActivity> =
        dashboard::experiment_activity(&state.db.pool, &ids).await?.into_iter().map(|a| (a.experiment_id, a)).collect();
    let experiments: Vec<ExperimentLine> = rows
        .into_iter()
        .map(|(row, tags)| {
            let stats = activity.get(&row.id);
            let last =
                stats.and_then(|s| s.last_run_activity).map_or(row.last_update_time, |t| t.max(row.last_update_time));
            ExperimentLine {
                id: row.id,
                url: links::experiment(row.id),
                project: visible.project_name(row.project_id).to_owned(),
                name: row.name,
                runs: stats.map_or(0, |s| s.runs),
                last_activity: When::from_millis(last),
                tags: tags
                    .into_iter()
                    .filter(|t| !t.key.starts_with("mlflow."))
                    .map(|t| TagChip { key: t.key, value: t.value })
                    .collect(),
                deleted: row.lifecycle_stage == "deleted",
                deletable: row.id != 0,
            }
        })
        .collect();
    let first_steps =
        q.is_empty() && !query.deleted() && after.is_none() && experiments.iter().all(|e| e.id == 0 && e.runs == 0);
    let view_param = if query.deleted() { "deleted" } else { "" };
    let next_s = next.map(|n| n.to_string()).unwrap_or_default();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = ExperimentsPage {
        header: Header::from(user),
        can_write: user.can_write(),
        q: q.to_owned(),
        showing_deleted: query.deleted(),
        next_url: next.map(|_| links::url("/", &[("q", q), ("view", view_param), ("after", &next_s)])),
        first_url: after.map(|_| links::url("/", &[("q", q), ("view", view_param)])),
        active_url: links::url("/", &[("q", q)]),
        deleted_url: links::url("/", &[("q", q), ("view", "deleted")]),
        here: links::url("/", &[("q", q), ("view", view_param), ("after", query.after.as_deref().unwrap_or_default())]),
        experiments,
        first_steps,
        tracking_uri: public_url(state),
        error,
        create_name,
    };
    Ok((status, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf_token: String,
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    NewObjectProject(project): NewObjectProject,
    Form(form): Form<CreateForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let name = form.name.trim();
    match tracking::create_experiment(&state.db, &actor, name, None, &[], project).await {
        Ok(row) => Ok((Extension(Audited), Redirect::to(&links::experiment(row.id))).into_response()),
        Err(e) => refused(&state, &user, e, name.to_owned()).await,
    }
}

/// Shows the list again with the service's reason for refusing a form.
async fn refused(state: &AppState, user: &SessionUser, e: TrackingError, name: String) -> Result<Response, HtmlError> {
    let status = match &e {
        TrackingError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        TrackingError::AlreadyExists(_) => StatusCode::CONFLICT,
        TrackingError::NotFound(_) => StatusCode::NOT_FOUND,
        TrackingError::Db(_) => return Err(e.into()),
    };
    render_list(state, user, &ListQuery::default(), Some((status, e.to_string())), name).await
}

#[derive(Deserialize)]
pub struct RenameForm {
    csrf_token: String,
    name: String,
    next: Option<String>,
}

pub async fn rename(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = tracking::parse_experiment_id(&id)?;
    match tracking::rename_experiment(&state.db, &actor, id, form.name.trim()).await {
        Ok(()) => Ok((Extension(Audited), Redirect::to(safe_next(form.next.as_deref()))).into_response()),
        Err(e) => refused(&state, &user, e, String::new()).await,
    }
}

pub async fn delete(
    state: State<AppState>,
    user: SessionUser,
    actor: Actor,
    id: Path<String>,
    form: Form<LifecycleForm>,
) -> Result<Response, HtmlError> {
    set_deleted(state, user, actor, id, form, true).await
}

pub async fn restore(
    state: State<AppState>,
    user: SessionUser,
    actor: Actor,
    id: Path<String>,
    form: Form<LifecycleForm>,
) -> Result<Response, HtmlError> {
    set_deleted(state, user, actor, id, form, false).await
}

async fn set_deleted(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(id): Path<String>,
    Form(form): Form<LifecycleForm>,
    deleted: bool,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = tracking::parse_experiment_id(&id)?;
    tracking::set_experiment_deleted(&state.db, &actor, id, deleted).await?;
    Ok((Extension(Audited), Redirect::to(safe_next(form.next.as_deref()))).into_response())
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn searches_match_pattern_characters_literally() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
