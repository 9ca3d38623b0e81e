//! `/api/v1/runs` and `/api/v1/experiments/{id}/runs`: list and search (MLflow's filter
//! grammar, keyset-paged), create (with params and an environment snapshot), get, update,
//! delete and restore, batch logging and the environment snapshot. Rules and limits are the
//! tracking service's, the same as MLflow's `log-batch`.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::search::{parse_order_by_list, parse_run_filter, parse_run_order_by};
use cairn_db::tracking::metrics::MetricPoint;
use cairn_db::tracking::now_millis;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::Problem;
use super::query::{self, cursor};
use super::run_views::{EnvironmentSnapshot, RunDetail, RunStatus, RunSummary};
use super::views::{self, LifecycleFilter, MetricNumber, Text};
use super::{ApiError, ApiJson};
use crate::audit::{Actor, AuditExempt, Audited};
use crate::state::AppState;
use crate::tracking::{
    self, Batch, Environment, NewRunRequest, RunChange, RunExtras, RunPage, parse_experiment_id, parse_run_id,
};

/// A page of runs.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    runs: Vec<RunSummary>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

/// The query of a run list. `order_by` may be repeated, so this is parsed by hand.
#[derive(Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// MLflow's search grammar, e.g. `metrics.acc > 0.9 AND params.model = 'cnn'`.
    filter: Option<String>,
    /// MLflow's order_by clauses, e.g. `metrics.acc DESC`; repeat for several. After them,
    /// runs are ordered by start time, newest first.
    order_by: Vec<String>,
    /// `active` (default), `deleted` or `all`.
    #[param(inline)]
    lifecycle: Option<LifecycleFilter>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` of the previous page (it works with any filter and order).
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RunListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut q = RunListQuery::default();
        for (key, value) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "filter" => q.filter = Some(value),
                "order_by" => q.order_by.push(value),
                "lifecycle" => q.lifecycle = Some(parse_lifecycle(&value)?),
                "limit" => {
                    q.limit =
                        Some(value.parse().map_err(|_| ApiError::bad_request(format!("invalid limit {value:?}")))?)
                }
                "cursor" => q.cursor = Some(value),
                other => return Err(ApiError::bad_request(format!("unknown query parameter {other:?}"))),
            }
        }
        Ok(q)
    }
}

fn parse_lifecycle(raw: &str) -> Result<LifecycleFilter, ApiError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|_| ApiError::bad_request(format!("lifecycle must be active, deleted or all, not {raw:?}")))
}

/// Searches an experiment's runs.
#[utoipa::path(get, path = "/experiments/{id}/runs", tag = "runs", params(("id" = String, Path), RunListQuery),
    responses(
    (status = 200, body = RunList),
    (status = 400, description = "Bad filter, order_by, limit or cursor; the detail says why", body = Problem),
    (status = 404, body = Problem),
))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: RunListQuery,
) -> Result<Json<RunList>, ApiError> {
    let filter = parse_run_filter(q.filter.as_deref().unwrap_or("")).map_err(|e| ApiError::bad_request(e.message()))?;
    let order_by =
        parse_order_by_list(&q.order_by, parse_run_order_by).map_err(|e| ApiError::bad_request(e.message()))?;
    let page = RunPage {
        experiment_id: parse_experiment_id(&id)?,
        filter: &filter,
        order_by: &order_by,
        view: q.lifecycle.unwrap_or_default().into(),
        after: q.cursor.as_deref().map(cursor::parse_run).transpose()?,
        limit: query::limit(q.limit, query::DEFAULT_LIMIT, query::MAX_LIMIT)?,
    };
    let (records, next) = tracking::list_runs(&state.db, &page).await?;
    let runs = records.into_iter().map(RunSummary::from).collect();
    Ok(Json(RunList { runs, next_cursor: next.map(cursor::run) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    experiment_id: String,
    /// Generated ("bright-fox-417") when absent.
    name: Option<String>,
    /// Now when absent.
    start_time: Option<DateTime<Utc>>,
    /// The run to nest this one in.
    parent_run_id: Option<String>,
    /// Values may be strings, numbers or booleans (kept as text).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    tags: BTreeMap<String, Text>,
    /// Params are immutable once logged. Values may be strings, numbers or booleans.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    params: BTreeMap<String, Text>,
    environment: Option<EnvironmentSnapshot>,
}

/// Creates a run, with its params, tags and environment snapshot in one transaction.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = CreateRun, responses(
    (status = 201, body = RunDetail),
    (status = 404, description = "No such experiment or parent run", body = Problem),
    (status = 422, description = "Invalid name, tags, params or environment, or a deleted experiment", body = Problem),
))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<CreateRun>,
) -> Result<Response, ApiError> {
    let request = NewRunRequest {
        experiment_id: parse_experiment_id(&body.experiment_id)?,
        user_id: None,
        run_name: body.name.as_deref(),
        start_time: body.start_time.map(|t| t.timestamp_millis()),
        tags: views::pairs(body.tags),
    };
    let extras = RunExtras {
        params: views::pairs(body.params),
        environment: body.environment.map(|e| Environment::parse(e.into_json())).transpose()?,
        parent: body.parent_run_id.as_deref().map(parse_run_id).transpose()?,
        status: None,
    };
    let record = tracking::create_run_with(&state.db, &actor, request, extras).await?;
    let detail = load(&state, record.run.run_uuid).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(detail)).into_response())
}

async fn load(state: &AppState, id: Uuid) -> Result<RunDetail, ApiError> {
    let (record, details) = tracking::get_run_details(&state.db, id).await?;
    Ok(RunDetail::new(record, details))
}

/// Gets a run with everything about it.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)), responses(
    (status = 200, body = RunDetail),
    (status = 404, body = Problem),
))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(load(&state, parse_run_id(&id)?).await?))
}

/// A partial update: the fields given change, the others stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRun {
    status: Option<RunStatus>,
    end_time: Option<DateTime<Utc>>,
    /// A new name (audited).
    name: Option<String>,
}

/// Changes an active run's status, end time or name.
#[utoipa::path(patch, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)), request_body = UpdateRun,
    responses(
    (status = 200, body = RunDetail),
    (status = 400, description = "Nothing to change", body = Problem),
    (status = 404, body = Problem),
    (status = 422, description = "Invalid name, or the run is deleted", body = Problem),
))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRun>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    if body.status.is_none() && body.end_time.is_none() && body.name.is_none() {
        return Err(ApiError::bad_request("nothing to change: give status, end_time or name"));
    }
    let change = RunChange {
        status: body.status.map(RunStatus::as_stored),
        end_time: body.end_time.map(|t| t.timestamp_millis()),
        run_name: body.name.as_deref(),
    };
    tracking::update_run_by(&state.db, &actor, id, change).await?;
    let detail = Json(load(&state, id).await?);
    // A rename is audited by the service; status changes are telemetry, as in the MLflow API.
    Ok(if body.name.is_some() {
        (Extension(Audited), detail).into_response()
    } else {
        (Extension(AuditExempt), detail).into_response()
    })
}

/// Deletes a run (restorable).
#[utoipa::path(delete, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)), responses(
    (status = 200, description = "The run, now deleted", body = RunDetail),
    (status = 404, body = Problem),
))]
pub async fn delete(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_deleted(&state, &actor, &id, true).await
}

/// Restores a deleted run.
#[utoipa::path(post, path = "/runs/{id}/restore", tag = "runs", params(("id" = String, Path)), responses(
    (status = 200, body = RunDetail),
    (status = 404, body = Problem),
))]
pub async fn restore(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_deleted(&state, &actor, &id, false).await
}

async fn set_deleted(state: &AppState, actor: &Actor, id: &str, deleted: bool) -> Result<Response, ApiError> {
    let id = parse_run_id(id)?;
    tracking::set_run_deleted(&state.db, actor, id, deleted).await?;
    Ok((Extension(Audited), Json(load(state, id).await?)).into_response())
}

/// One metric point to log.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricInput {
    key: String,
    /// A number, or one of the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    #[schema(value_type = f64)]
    value: MetricNumber,
    /// 0 when absent.
    #[serde(default)]
    step: i64,
    /// Now when absent.
    timestamp: Option<DateTime<Utc>>,
}

/// Metrics, params and tags to log at once: at most 1000 metrics, 100 params, 100 tags and
/// 1000 entries in all (MLflow's `log-batch` limits).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    #[serde(default)]
    metrics: Vec<MetricInput>,
    /// Params are immutable: logging a different value for a key is an error.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    params: BTreeMap<String, Text>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    tags: BTreeMap<String, Text>,
}

/// Logs metrics, params and tags to an active run, all or nothing.
#[utoipa::path(post, path = "/runs/{id}/log", tag = "runs", params(("id" = String, Path)), request_body = LogBatch,
    responses(
    (status = 204, description = "Logged"),
    (status = 404, body = Problem),
    (status = 422, description = "Over a limit, an invalid key, a changed param or a deleted run", body = Problem),
))]
pub async fn log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LogBatch>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    let now = now_millis();
    let metrics = body
        .metrics
        .into_iter()
        .map(|m| MetricPoint {
            key: m.key,
            value: m.value.0,
            timestamp: m.timestamp.map_or(now, |t| t.timestamp_millis()),
            step: m.step,
        })
        .collect();
    let batch = Batch { metrics, params: views::pairs(body.params), tags: views::pairs(body.tags) };
    tracking::log_batch(&state.db, id, batch).await?;
    Ok((StatusCode::NO_CONTENT, Extension(AuditExempt)).into_response())
}

/// Replaces an active run's environment snapshot.
#[utoipa::path(put, path = "/runs/{id}/environment", tag = "runs", params(("id" = String, Path)),
    request_body = EnvironmentSnapshot, responses(
    (status = 200, description = "The snapshot as stored", body = EnvironmentSnapshot),
    (status = 404, body = Problem),
    (status = 422, description = "Over 64 KiB, a mistyped field, or a deleted run", body = Problem),
))]
pub async fn set_environment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EnvironmentSnapshot>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_run_id(&id)?;
    let environment = Environment::parse(body.into_json())?;
    tracking::set_run_environment(&state.db, id, &environment).await?;
    Ok(Json(environment.as_json().clone()))
}
