//! `/api/v1/job-templates`: save (each save is a new version), list, show, and submit a
//! job from a template with overrides; `/api/v1/usage`: GPU-hour accounting.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::job::JobSpec;
use cairn_db::job_templates::TemplateRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::jobs::{JobView, experiment, source};
use super::openapi::Problem;
use super::query::ApiQuery;
use super::{ApiError, ApiJson};
use crate::access::NewObjectProject;
use crate::audit::{Actor, Audited};
use crate::job_templates::{self, TemplateInput, TemplateName, TemplateOverrides};
use crate::job_usage;
use crate::state::AppState;
use crate::tracking;
use crate::visibility::Visible;

#[derive(Serialize, ToSchema)]
pub struct TemplateView {
    name: String,
    version: i32,
    description: String,
    /// Where jobs from it log their runs (absent: the Default experiment).
    experiment_id: Option<String>,
    /// The spec; its params are defaults a submission may override.
    #[schema(value_type = Object)]
    spec: JobSpec,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<TemplateRow> for TemplateView {
    fn from(t: TemplateRow) -> Self {
        TemplateView {
            name: t.name,
            version: t.version,
            description: t.description,
            experiment_id: t.experiment_id.map(|id| id.to_string()),
            spec: t.spec.0,
            created_by: t.created_by,
            created_at: t.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveTemplate {
    /// Letters, digits, `.`, `_`, `-`. Saving an existing name adds a version.
    name: String,
    /// The project (by name) the new template (unless it has an experiment, whose project it joins) goes to; by default the token's project, or
    /// the default project. Read by the access check, which requires write access there.
    #[allow(dead_code)]
    project: Option<String>,

    #[serde(default)]
    description: String,
    experiment_id: Option<String>,
    experiment_name: Option<String>,
    /// The program and its arguments; `{{K}}` is replaced by param K.
    command: Vec<String>,
    image: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Defaults; a submission may change them.
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    gpus: u32,
    /// CPU cores to reserve, a Kubernetes quantity ("2", "500m"); CPU-seconds are charged
    /// for them (1 core when unset).
    cpu: Option<String>,
    /// Memory to reserve, a Kubernetes quantity ("8Gi").
    memory: Option<String>,
    /// `NAME` (resolved to its latest version at each submission) or `NAME@VERSION`.
    #[serde(default)]
    datasets: Vec<String>,
    timeout_secs: Option<u64>,
    source_repository: Option<String>,
    source_commit: Option<String>,
}

/// Saves a template: a new name gets version 1, an existing one its next version.
#[utoipa::path(post, path = "/job-templates", tag = "jobs", request_body = SaveTemplate, responses(
    (status = 201, body = TemplateView),
    (status = 404, description = "No such experiment", body = Problem),
    (status = 422, description = "Invalid name or spec", body = Problem),
))]
pub async fn save(
    State(state): State<AppState>,
    actor: Actor,
    NewObjectProject(project): NewObjectProject,
    ApiJson(body): ApiJson<SaveTemplate>,
) -> Result<Response, ApiError> {
    let name = TemplateName::parse(&body.name)?;
    let experiment_id = experiment(&state, body.experiment_id.as_deref(), body.experiment_name.as_deref()).await?;
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
    let input = TemplateInput { name, description: body.description, experiment_id, spec, project_id: project };
    let saved = job_templates::save(&state.db, &actor, input).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(TemplateView::from(saved))).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct TemplateList {
    /// The latest version of each template, by name.
    templates: Vec<TemplateView>,
}

/// Lists the templates in the projects the caller can read (their latest versions).
#[utoipa::path(get, path = "/job-templates", tag = "jobs", responses((status = 200, body = TemplateList)))]
pub async fn list(State(state): State<AppState>, visible: Visible) -> Result<Json<TemplateList>, ApiError> {
    let rows = cairn_db::job_templates::list_latest(&state.db.pool, visible.projects())
        .await
        .map_err(tracking::TrackingError::from)?;
    Ok(Json(TemplateList { templates: rows.into_iter().map(TemplateView::from).collect() }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A version number (default: the latest).
    version: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct TemplateDetail {
    #[serde(flatten)]
    template: TemplateView,
    /// Every version number, newest first.
    versions: Vec<i32>,
}

/// Gets a template version (the latest by default) and the list of its versions.
#[utoipa::path(get, path = "/job-templates/{name}", tag = "jobs", params(("name" = String, Path), VersionQuery),
    responses((status = 200, body = TemplateDetail), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Json<TemplateDetail>, ApiError> {
    let name = TemplateName::parse(&name).map_err(|e| ApiError::not_found(e.to_string()))?;
    let template = job_templates::get(&state.db, &name, q.version).await?;
    let versions = cairn_db::job_templates::versions(&state.db.pool, name.as_str())
        .await
        .map_err(tracking::TrackingError::from)?
        .into_iter()
        .map(|t| t.version)
        .collect();
    Ok(Json(TemplateDetail { template: template.into(), versions }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitFromTemplate {
    /// The template version (default: the latest).
    version: Option<i32>,
    /// Params to change; the template's others keep their defaults.
    #[serde(default)]
    params: BTreeMap<String, String>,
    gpus: Option<u32>,
    /// Dataset inputs to replace or add: `NAME` (latest version) or `NAME@VERSION`.
    #[serde(default)]
    datasets: Vec<String>,
    /// The experiment for the job's run, instead of the template's.
    experiment_id: Option<String>,
    experiment_name: Option<String>,
    #[serde(default)]
    priority: i32,
}

/// Submits a job from a template; the job records the template version.
#[utoipa::path(post, path = "/job-templates/{name}/jobs", tag = "jobs", params(("name" = String, Path)),
    request_body = SubmitFromTemplate, responses(
    (status = 201, body = JobView),
    (status = 404, description = "No such template, version, experiment or dataset", body = Problem),
    (status = 422, description = "Invalid overrides", body = Problem),
))]
pub async fn submit(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SubmitFromTemplate>,
) -> Result<Response, ApiError> {
    let name = TemplateName::parse(&name).map_err(|e| ApiError::not_found(e.to_string()))?;
    let experiment_id = experiment(&state, body.experiment_id.as_deref(), body.experiment_name.as_deref()).await?;
    let overrides = TemplateOverrides {
        params: body.params,
        gpus: body.gpus,
        datasets: body.datasets,
        experiment_id,
        priority: body.priority,
    };
    let job = job_templates::submit(&state, &actor, &name, body.version, overrides).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(JobView::from(job))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start of the range, inclusive (default: 30 days before `to`).
    from: Option<DateTime<Utc>>,
    /// End of the range, exclusive (default: now).
    to: Option<DateTime<Utc>>,
    /// `user` (default), `template` or `model`.
    by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageLine {
    /// The user, the template name or `MODEL/VERSION`; null for jobs without one (no
    /// template, no registered model version).
    key: Option<String>,
    jobs: i64,
    gpu_seconds: f64,
    gpu_hours: f64,
    cpu_seconds: f64,
    wall_seconds: f64,
}

impl From<cairn_db::job_usage::UsageRow> for UsageLine {
    fn from(r: cairn_db::job_usage::UsageRow) -> Self {
        UsageLine {
            key: r.key,
            jobs: r.jobs,
            gpu_seconds: r.gpu_seconds,
            gpu_hours: r.gpu_seconds / 3600.0,
            cpu_seconds: r.cpu_seconds,
            wall_seconds: r.wall_seconds,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: String,
    rows: Vec<UsageLine>,
    /// Every job in the range once (with `by=model` a job behind two versions is in two rows).
    total: UsageLine,
}

/// GPU-, CPU- and wall-seconds of the jobs that ended in `[from, to)`, per user, template or
/// resulting model version; only jobs in projects the caller can read count, and templates
/// or model versions in other projects are not named. CPU-seconds are wall time × 1 CPU unless an executor measured them.
#[utoipa::path(get, path = "/usage", tag = "jobs", params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 422, body = Problem)))]
pub async fn usage(
    State(state): State<AppState>,
    visible: Visible,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let by = job_usage::parse_by(q.by.as_deref().unwrap_or("user"))?;
    let (from, to) = job_usage::range(q.from, q.to)?;
    let report = job_usage::report(&state.db, visible.projects(), by, from, to).await?;
    Ok(Json(UsageReport {
        from: report.from,
        to: report.to,
        by: job_usage::by_name(report.by).to_owned(),
        rows: report.rows.into_iter().map(UsageLine::from).collect(),
        total: report.total.into(),
    }))
}
