//! `/api/v1/jobs`: submit, list, show (with the event timeline), cancel, retry, and logs
//! (whole, or followed live while the job runs).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use cairn_core::job::{JobSpec, JobState, SourceRef};
use cairn_db::jobs::{EventRow, JobRow};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::Problem;
use super::query::{self, ApiQuery};
use super::{ApiError, ApiJson};
use crate::audit::{Actor, Audited};
use crate::jobs::{self, LogSource, Submission};
use crate::service_error::ServiceError;
use crate::state::AppState;
use crate::tracking::{self, parse_experiment_id};
use crate::visibility::Visible;

#[derive(Serialize, ToSchema)]
pub struct JobView {
    id: String,
    state: String,
    /// Why it is in this state (exit code, cancel, timeout, ...).
    reason: String,
    exit_code: Option<i32>,
    /// The run the job's code logs into.
    run_id: String,
    experiment_id: String,
    #[schema(value_type = Object)]
    spec: JobSpec,
    priority: i32,
    gpus: i32,
    /// The job this one retries or retrains.
    origin_job_id: Option<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    scheduled_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        JobView {
            id: j.id.simple().to_string(),
            state: j.state,
            reason: j.reason,
            exit_code: j.exit_code,
            run_id: j.run_uuid.simple().to_string(),
            experiment_id: j.experiment_id.to_string(),
            spec: j.spec.0,
            priority: j.priority,
            gpus: j.gpus,
            origin_job_id: j.origin_job_id.map(|id| id.simple().to_string()),
            created_by: j.created_by,
            created_at: j.created_at,
            scheduled_at: j.scheduled_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    at: DateTime<Utc>,
    from: Option<String>,
    to: String,
    reason: String,
}

impl From<EventRow> for EventView {
    fn from(e: EventRow) -> Self {
        EventView { at: e.at, from: e.from_state, to: e.to_state, reason: e.reason }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    job: JobView,
    /// Every state change, oldest first.
    events: Vec<EventView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The experiment the job's run goes to, by id or by name (default: the Default experiment).
    experiment_id: Option<String>,
    experiment_name: Option<String>,
    /// The program and its arguments; `{{K}}` is replaced by param K.
    command: Vec<String>,
    image: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    gpus: u32,
    /// CPU cores to reserve, a Kubernetes quantity ("2", "500m"); CPU-seconds are charged
    /// for them (1 core when unset).
    cpu: Option<String>,
    /// Memory to reserve, a Kubernetes quantity ("8Gi").
    memory: Option<String>,
    /// Dataset inputs, `NAME` (pinned to its latest version now) or `NAME@VERSION`.
    #[serde(default)]
    datasets: Vec<String>,
    /// Seconds (default 24 h).
    timeout_secs: Option<u64>,
    source_repository: Option<String>,
    source_commit: Option<String>,
    /// Higher runs first (default 0).
    #[serde(default)]
    priority: i32,
}

/// Submits a job: its run is created now, its dataset inputs pinned to exact versions.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = SubmitJob, responses(
    (status = 201, body = JobView),
    (status = 404, description = "No such experiment or dataset", body = Problem),
    (status = 422, description = "Invalid spec", body = Problem),
))]
pub async fn submit(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<SubmitJob>,
) -> Result<Response, ApiError> {
    let experiment_id =
        experiment(&state, body.experiment_id.as_deref(), body.experiment_name.as_deref()).await?.unwrap_or(0);
    let source = source(body.source_repository, body.source_commit)?;
    let spec = JobSpec {
        command: body.command,
        image: body.image,
        env: body.env,
        params: body.params,
        gpus: body.gpus,
        cpu: body.cpu,
        memory: body.memory,
        datasets: body.datasets,
        timeout_secs: body.timeout_secs.unwrap_or(24 * 3600),
        source,
    };
    let submission = Submission { experiment_id, spec, priority: body.priority, origin: None, template: None };
    let job = jobs::submit(&state, &actor, submission).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(JobView::from(job))).into_response())
}

/// The experiment given by id or by name; `None` when neither is given.
pub(super) async fn experiment(
    state: &AppState,
    id: Option<&str>,
    name: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    Ok(match (id, name) {
        (Some(id), _) => Some(parse_experiment_id(id)?),
        (None, Some(name)) => Some(tracking::get_experiment_by_name(&state.db, name).await?.0.id),
        (None, None) => None,
    })
}

/// A spec's source from `source_repository` and `source_commit`: both or neither.
pub(super) fn source(repository: Option<String>, commit: Option<String>) -> Result<Option<SourceRef>, ApiError> {
    match (repository, commit) {
        (Some(repository), Some(commit)) => Ok(Some(SourceRef { repository, commit })),
        (None, None) => Ok(None),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give both source_repository and source_commit, or neither",
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state.
    state: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// Jobs created before this time (the `created_at` of the previous page's last job).
    before: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobView>,
}

/// Lists the jobs of experiments in the projects the caller can read, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(ListQuery), responses((status = 200, body = JobList), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    visible: Visible,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let filter = match q.state.as_deref() {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown state {s:?}: use queued, scheduled, running, succeeded, failed or cancelled"
            ))
        })?),
        None => None,
    };
    let limit = query::limit(q.limit, query::DEFAULT_LIMIT, query::MAX_LIMIT)?;
    let rows = cairn_db::jobs::list(&state.db.pool, visible.projects(), filter, q.before, limit)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(JobList { jobs: rows.into_iter().map(JobView::from).collect() }))
}

fn parse_job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::not_found(format!("no job with id {raw:?}")))
}

/// Gets a job with its event timeline.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = String, Path)), responses((status = 200, body = JobDetail), (status = 404, body = Problem)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = jobs::get(&state.db, id).await?;
    let events = cairn_db::jobs::events(&state.db.pool, id).await.map_err(ServiceError::from)?;
    Ok(Json(JobDetail { job: job.into(), events: events.into_iter().map(EventView::from).collect() }))
}

/// Cancels a job: a queued one at once; a running one is stopped (SIGTERM to its process
/// group, SIGKILL after 10 s).
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)), responses(
    (status = 200, body = JobView), (status = 404, body = Problem), (status = 422, description = "Already ended", body = Problem)))]
pub async fn cancel(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = jobs::cancel(&state.db, &actor, parse_job_id(&id)?).await?;
    Ok((Extension(Audited), Json(JobView::from(job))).into_response())
}

/// Runs the same resolved spec again as a new job with a new run.
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path)), responses(
    (status = 201, body = JobView), (status = 404, body = Problem)))]
pub async fn retry(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = jobs::retry(&state, &actor, parse_job_id(&id)?).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(JobView::from(job))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrainBody {
    /// Params to change (the others keep their values).
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// Dataset inputs to replace or add: `NAME` (latest version) or `NAME@VERSION`.
    #[serde(default)]
    datasets: Vec<String>,
}

/// Retrains: submits the job that produced this run again, with the given changes. The new
/// run's `cairn.origin_run_id` tag names this run.
#[utoipa::path(post, path = "/runs/{id}/retrain", tag = "jobs", params(("id" = String, Path)), request_body = RetrainBody,
    responses((status = 201, body = JobView), (status = 404, description = "No such run, or not produced by a job", body = Problem)))]
pub async fn retrain(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RetrainBody>,
) -> Result<Response, ApiError> {
    let run = tracking::parse_run_id(&id)?;
    let overrides = jobs::Overrides { params: body.params, datasets: body.datasets };
    let job = jobs::retrain(&state, &actor, run, overrides).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(JobView::from(job))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Keep the response open and send new lines until the job ends.
    #[serde(default)]
    follow: bool,
}

/// The job's output, one line per output line: `TIME STREAM TEXT`.
#[utoipa::path(get, path = "/jobs/{id}/logs", tag = "jobs", params(("id" = String, Path), LogQuery), responses(
    (status = 200, content_type = "text/plain", body = String), (status = 404, body = Problem)))]
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    let job = jobs::get(&state.db, id).await?;
    let body = match jobs::log_source(&state, id, job.state().is_final()).await {
        LogSource::Stored(key) => match state.storage.get_stream(&key, None).await {
            Ok(download) => Body::from_stream(download.stream),
            // Not stored yet (the executor copies it just after the job ends): the file it
            // is copied from, when this server ran the job.
            Err(cairn_storage::StorageError::NotFound { .. }) => match jobs::log_source(&state, id, false).await {
                LogSource::Local(path) => Body::from(tokio::fs::read(path).await.map_err(ApiError::internal)?),
                _ => Body::empty(),
            },
            Err(e) => return Err(ServiceError::from(e).into()),
        },
        LogSource::Local(path) if q.follow => Body::from_stream(follow(state.clone(), id, path)),
        LogSource::Local(path) => Body::from(tokio::fs::read(path).await.map_err(ApiError::internal)?),
        LogSource::Nothing if q.follow => Body::from_stream(wait_then_follow(state.clone(), id)),
        LogSource::Nothing => Body::empty(),
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// The file's bytes as they are written, until the job has ended and all is read.
fn follow(state: AppState, id: Uuid, path: std::path::PathBuf) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold((0u64, false), move |(offset, done)| {
        let (state, path) = (state.clone(), path.clone());
        async move {
            if done {
                return None;
            }
            loop {
                let chunk = read_from(&path, offset).await;
                match chunk {
                    Ok(bytes) if !bytes.is_empty() => {
                        let next = offset + bytes.len() as u64;
                        return Some((Ok(Bytes::from(bytes)), (next, false)));
                    }
                    Ok(_) => {
                        let ended = jobs::get(&state.db, id).await.map_or(true, |j| j.state().is_final());
                        if ended {
                            // One last read: lines written just before the end.
                            let rest = read_from(&path, offset).await.unwrap_or_default();
                            return (!rest.is_empty()).then(|| (Ok(Bytes::from(rest)), (offset, true)));
                        }
                        tokio::time::sleep(FOLLOW_POLL).await;
                    }
                    Err(e) => return Some((Err(e), (offset, true))),
                }
            }
        }
    })
}

/// Waits for a queued job's log to appear, then follows it.
fn wait_then_follow(state: AppState, id: Uuid) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::once(async move {
        loop {
            let finished = jobs::get(&state.db, id).await.map_or(true, |j| j.state().is_final());
            match jobs::log_source(&state, id, finished).await {
                LogSource::Local(path) => return follow(state, id, path).boxed(),
                // It ran and ended between two looks: all of its log at once.
                LogSource::Stored(key) => {
                    let log = ended_log(&state, id, &key).await;
                    return futures::stream::once(async move { log.map(Bytes::from) }).boxed();
                }
                LogSource::Nothing => tokio::time::sleep(FOLLOW_POLL).await,
            }
        }
    })
    .flatten()
}

/// An ended job's whole log: from storage, or while the executor has not copied it there
/// yet (it does just after the job ends), from the file it is copied from.
async fn ended_log(state: &AppState, id: Uuid, key: &cairn_storage::ArtifactPath) -> std::io::Result<Vec<u8>> {
    match state.storage.get_stream(key, None).await {
        Ok(download) => {
            let chunks: Vec<Bytes> = download.stream.try_collect().await.map_err(std::io::Error::other)?;
            Ok(chunks.concat())
        }
        Err(cairn_storage::StorageError::NotFound { .. }) => match jobs::log_source(state, id, false).await {
            LogSource::Local(path) => tokio::fs::read(path).await,
            _ => Ok(Vec::new()),
        },
        Err(e) => Err(std::io::Error::other(e)),
    }
}

async fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buffer = Vec::new();
    file.take(1 << 20).read_to_end(&mut buffer).await?;
    Ok(buffer)
}
