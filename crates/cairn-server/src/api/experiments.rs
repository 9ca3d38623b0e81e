//! `/api/v1/experiments`: list (newest first, keyset-paged), create, get, rename and retag,
//! delete and restore. Rules, transactions and audit rows are the tracking service's.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_db::tracking::KeyValue;
use cairn_db::tracking::experiments::ExperimentRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Problem;
use super::query::{self, ApiQuery, cursor};
use super::views::{self, Lifecycle, LifecycleFilter, Text};
use super::{ApiError, ApiJson};
use crate::access::NewObjectProject;
use crate::audit::{Actor, Audited};
use crate::state::AppState;
use crate::tracking::{self, ExperimentChange, ExperimentPage, parse_experiment_id};
use crate::visibility::Visible;

/// An experiment.
#[derive(Serialize, ToSchema)]
pub struct ExperimentView {
    /// The experiment's id (a decimal number, as a string).
    #[schema(example = "1")]
    id: String,
    name: String,
    /// Where runs of this experiment keep their artifacts.
    artifact_location: String,
    lifecycle: Lifecycle,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    tags: BTreeMap<String, String>,
    /// The name of the project it belongs to.
    #[schema(example = "default")]
    project: String,
}

impl ExperimentView {
    fn new(row: ExperimentRow, tags: Vec<KeyValue>, visible: &Visible) -> Self {
        ExperimentView {
            project: visible.project_name(row.project_id).to_owned(),
            id: row.id.to_string(),
            name: row.name,
            artifact_location: row.artifact_location,
            lifecycle: Lifecycle::of(&row.lifecycle_stage),
            created_at: views::time(row.creation_time),
            updated_at: views::time(row.last_update_time),
            tags: views::map(tags),
        }
    }
}

/// A page of experiments.
#[derive(Serialize, ToSchema)]
pub struct ExperimentList {
    experiments: Vec<ExperimentView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only experiments whose name matches this case-insensitive SQL `LIKE` pattern (`%` is
    /// any text, `_` any one character), e.g. `%vision%`.
    name_like: Option<String>,
    /// `active` (default), `deleted` or `all`.
    #[param(inline)]
    lifecycle: Option<LifecycleFilter>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists experiments in the projects the caller can read, newest first.
#[utoipa::path(get, path = "/experiments", tag = "experiments", params(ListQuery), responses(
    (status = 200, body = ExperimentList),
    (status = 400, description = "Bad limit or cursor", body = Problem),
))]
pub async fn list(
    State(state): State<AppState>,
    visible: Visible,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ExperimentList>, ApiError> {
    let page = ExperimentPage {
        projects: visible.projects(),
        name_like: q.name_like.as_deref().filter(|p| !p.is_empty()),
        view: q.lifecycle.unwrap_or_default().into(),
        after: q.cursor.as_deref().map(cursor::parse_experiment).transpose()?,
        limit: query::limit(q.limit, query::DEFAULT_LIMIT, query::MAX_LIMIT)?,
    };
    let (rows, next) = tracking::list_experiments(&state.db, &page).await?;
    let experiments = rows.into_iter().map(|(row, tags)| ExperimentView::new(row, tags, &visible)).collect();
    Ok(Json(ExperimentList { experiments, next_cursor: next.map(cursor::experiment) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    /// Unique among all experiments, deleted ones included.
    name: String,
    /// Where runs keep artifacts; by default the server's artifact store.
    artifact_location: Option<String>,
    /// Values may be strings, numbers or booleans (kept as text).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    tags: BTreeMap<String, Text>,
    /// The project (by name) the new experiment goes to; by default the token's project, or
    /// the default project. Read by the access check, which requires write access there.
    #[allow(dead_code)]
    project: Option<String>,
}

/// Creates an experiment.
#[utoipa::path(post, path = "/experiments", tag = "experiments", request_body = CreateExperiment, responses(
    (status = 201, body = ExperimentView),
    (status = 409, description = "The name is taken", body = Problem),
    (status = 422, description = "Invalid name or tags", body = Problem),
))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    visible: Visible,
    NewObjectProject(project): NewObjectProject,
    ApiJson(body): ApiJson<CreateExperiment>,
) -> Result<Response, ApiError> {
    let tags = views::pairs(body.tags);
    let location = body.artifact_location.as_deref();
    let row = tracking::create_experiment(&state.db, &actor, &body.name, location, &tags, project).await?;
    let view = ExperimentView::new(row, tags, &visible);
    Ok((StatusCode::CREATED, Extension(Audited), Json(view)).into_response())
}

/// Gets an experiment, deleted or not.
#[utoipa::path(get, path = "/experiments/{id}", tag = "experiments", params(("id" = String, Path)), responses(
    (status = 200, body = ExperimentView),
    (status = 404, body = Problem),
))]
pub async fn get(
    State(state): State<AppState>,
    visible: Visible,
    Path(id): Path<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    Ok(Json(load(&state, &visible, parse_experiment_id(&id)?).await?))
}

async fn load(state: &AppState, visible: &Visible, id: i64) -> Result<ExperimentView, ApiError> {
    let (row, tags) = tracking::get_experiment(&state.db, id).await?;
    Ok(ExperimentView::new(row, tags, visible))
}

/// A partial update: the fields given change, the others stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateExperiment {
    /// A new name (audited).
    name: Option<String>,
    /// Tags to set; a null value removes the tag.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    tags: BTreeMap<String, Option<Text>>,
}

/// Renames an active experiment and sets or removes its tags, all at once.
#[utoipa::path(patch, path = "/experiments/{id}", tag = "experiments", params(("id" = String, Path)),
    request_body = UpdateExperiment, responses(
    (status = 200, body = ExperimentView),
    (status = 400, description = "Nothing to change", body = Problem),
    (status = 404, body = Problem),
    (status = 409, description = "The new name is taken", body = Problem),
    (status = 422, description = "Invalid name or tags, or the experiment is deleted", body = Problem),
))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    visible: Visible,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateExperiment>,
) -> Result<Response, ApiError> {
    let id = parse_experiment_id(&id)?;
    if body.name.is_none() && body.tags.is_empty() {
        return Err(ApiError::bad_request("nothing to change: give name or tags"));
    }
    let mut change = ExperimentChange { name: body.name.as_deref(), ..ExperimentChange::default() };
    for (key, value) in body.tags {
        match value {
            Some(Text(value)) => change.set_tags.push(KeyValue { key, value }),
            None => change.remove_tags.push(key),
        }
    }
    let renamed = tracking::update_experiment(&state.db, &actor, id, change).await?;
    let view = Json(load(&state, &visible, id).await?);
    // A rename is audited by the service; a change of tags alone by the audit middleware.
    Ok(if renamed { (Extension(Audited), view).into_response() } else { view.into_response() })
}

/// Deletes an experiment and its runs (restorable).
#[utoipa::path(delete, path = "/experiments/{id}", tag = "experiments", params(("id" = String, Path)), responses(
    (status = 200, description = "The experiment, now deleted", body = ExperimentView),
    (status = 404, body = Problem),
    (status = 422, description = "The default experiment cannot be deleted", body = Problem),
))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    visible: Visible,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_deleted(&state, &actor, &visible, &id, true).await
}

/// Restores a deleted experiment and its runs.
#[utoipa::path(post, path = "/experiments/{id}/restore", tag = "experiments", params(("id" = String, Path)),
    responses((status = 200, body = ExperimentView), (status = 404, body = Problem)))]
pub async fn restore(
    State(state): State<AppState>,
    actor: Actor,
    visible: Visible,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_deleted(&state, &actor, &visible, &id, false).await
}

async fn set_deleted(
    state: &AppState,
    actor: &Actor,
    visible: &Visible,
    id: &str,
    deleted: bool,
) -> Result<Response, ApiError> {
    let id = parse_experiment_id(id)?;
    tracking::set_experiment_deleted(&state.db, actor, id, deleted).await?;
    Ok((Extension(Audited), Json(load(state, visible, id).await?)).into_response())
}
