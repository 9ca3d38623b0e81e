//! `/api/v1/deployments`: create, list, show, update (a new revision), delete, rollback,
//! the revision history and the serving logs. Predictions go through the gateway at
//! `/serve/NAME/...`, not through this API.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_db::deployments::{DeploymentRow, RevisionRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Problem;
use super::query::ApiQuery;
use super::{ApiError, ApiJson};
use crate::audit::{Actor, Audited};
use crate::deployments::gateway::MetricsSnapshot;
use crate::deployments::{self, Changes, NewDeployment, Serves};
use crate::state::AppState;
use crate::visibility::Visible;

#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    name: String,
    model: String,
    /// The version the current revision serves (null when it was deleted since).
    version: Option<i64>,
    /// The alias followed: a move of the alias rolls out its new version.
    alias: Option<String>,
    /// `local` or `kubernetes`.
    target: String,
    runtime: String,
    replicas: i32,
    cpu: Option<String>,
    memory: Option<String>,
    gpus: i32,
    env: BTreeMap<String, String>,
    /// `pending` (rolling out), `ready`, `failed` or `stopped`.
    status: String,
    status_message: String,
    /// The current revision's number.
    revision: i32,
    /// Where to send predictions: `POST {endpoint_url}/invocations`.
    endpoint_url: String,
    /// Gateway request metrics since the server started.
    metrics: MetricsSnapshot,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl DeploymentView {
    pub fn new(state: &AppState, d: DeploymentRow) -> Self {
        DeploymentView {
            endpoint_url: deployments::endpoint_url(state, &d.name),
            metrics: state.serving.metrics.snapshot(&d.name),
            name: d.name,
            model: d.model_name,
            version: d.version,
            alias: d.settings.alias,
            target: d.settings.target,
            runtime: d.settings.runtime,
            replicas: d.settings.replicas,
            cpu: d.settings.cpu,
            memory: d.settings.memory,
            gpus: d.settings.gpus,
            env: d.settings.env.0,
            status: d.status,
            status_message: d.status_message,
            revision: d.current_revision,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    revision: i32,
    version: i64,
    /// `create`, `update`, `rollback` or `alias-moved`.
    reason: String,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<RevisionRow> for RevisionView {
    fn from(r: RevisionRow) -> Self {
        RevisionView {
            revision: r.revision,
            version: r.version,
            reason: r.reason,
            created_by: r.actor_name,
            created_at: r.created_at,
        }
    }
}

/// The settings a create or an update may give.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// Serve this version (give this or `alias`).
    version: Option<i64>,
    /// Follow this alias of the model: serve the version it points at, now and after it moves.
    alias: Option<String>,
    /// 1 to 100 (default 1; Kubernetes only).
    replicas: Option<i32>,
    /// CPU cores, a Kubernetes quantity ("500m", "2").
    cpu: Option<String>,
    /// Memory, a Kubernetes quantity ("2Gi").
    memory: Option<String>,
    /// GPUs per replica (Kubernetes: `nvidia.com/gpu` limits).
    gpus: Option<i32>,
    /// Environment variables of the serving process.
    env: Option<BTreeMap<String, String>>,
}

impl SettingsBody {
    fn changes(self) -> Result<Changes, ApiError> {
        let serves = match (self.version, self.alias) {
            (Some(_), Some(_)) => return Err(unprocessable("give either version or alias, not both")),
            (Some(v), None) if v < 1 => return Err(unprocessable(format!("version must be 1 or more, not {v}"))),
            (Some(v), None) => Some(Serves::Version(v)),
            (None, Some(alias)) => Some(Serves::Alias(alias)),
            (None, None) => None,
        };
        Ok(Changes {
            serves,
            replicas: self.replicas,
            cpu: self.cpu,
            memory: self.memory,
            gpus: self.gpus,
            env: self.env,
        })
    }
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

/// The fields of [`SettingsBody`] are repeated rather than flattened: serde's `flatten`
/// would accept unknown fields, and a misspelt setting must be refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Lowercase letters, digits and '-', starting with a letter (at most 40).
    name: String,
    /// The registered model.
    model: String,
    /// `local` (this host; the default unless Cairn runs jobs on Kubernetes) or `kubernetes`.
    target: Option<String>,
    /// Serve this version (give this or `alias`).
    version: Option<i64>,
    /// Follow this alias of the model: serve the version it points at, now and after it moves.
    alias: Option<String>,
    replicas: Option<i32>,
    cpu: Option<String>,
    memory: Option<String>,
    gpus: Option<i32>,
    env: Option<BTreeMap<String, String>>,
}

/// Deploys a model version (or the version an alias points at): revision 1, rolled out now.
#[utoipa::path(post, path = "/deployments", tag = "deployments", request_body = CreateDeployment, responses(
    (status = 201, body = DeploymentView),
    (status = 404, description = "No such model, version or alias", body = Problem),
    (status = 409, description = "The name is taken", body = Problem),
    (status = 422, description = "Invalid settings", body = Problem),
))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> Result<Response, ApiError> {
    let CreateDeployment { name, model, target, version, alias, replicas, cpu, memory, gpus, env } = body;
    let changes = SettingsBody { version, alias, replicas, cpu, memory, gpus, env }.changes()?;
    let new = NewDeployment { name, model, target, changes };
    let created = deployments::create(&state, &actor, new).await?;
    Ok((StatusCode::CREATED, Extension(Audited), Json(DeploymentView::new(&state, created))).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentList {
    deployments: Vec<DeploymentView>,
}

/// Lists the deployments in the projects the caller can read, by name.
#[utoipa::path(get, path = "/deployments", tag = "deployments", responses((status = 200, body = DeploymentList)))]
pub async fn list(State(state): State<AppState>, visible: Visible) -> Result<Json<DeploymentList>, ApiError> {
    let rows = deployments::list(&state.db, visible.projects()).await?;
    Ok(Json(DeploymentList { deployments: rows.into_iter().map(|d| DeploymentView::new(&state, d)).collect() }))
}

/// A deployment: settings, status, current revision, endpoint and request metrics.
#[utoipa::path(get, path = "/deployments/{name}", tag = "deployments", params(("name" = String, Path)),
    responses((status = 200, body = DeploymentView), (status = 404, body = Problem)))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<DeploymentView>, ApiError> {
    let deployment = deployments::get(&state.db, &name).await?;
    Ok(Json(DeploymentView::new(&state, deployment)))
}

/// Changes the version served (or the alias followed) and the settings: a new revision,
/// rolled out without downtime.
#[utoipa::path(patch, path = "/deployments/{name}", tag = "deployments", params(("name" = String, Path)),
    request_body = SettingsBody, responses((status = 200, body = DeploymentView), (status = 404, body = Problem),
    (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Response, ApiError> {
    let updated = deployments::update(&state, &actor, &name, body.changes()?).await?;
    Ok((Extension(Audited), Json(DeploymentView::new(&state, updated))).into_response())
}

/// Stops serving and deletes the deployment with its history.
#[utoipa::path(delete, path = "/deployments/{name}", tag = "deployments", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    deployments::delete(&state, &actor, &name).await?;
    Ok((StatusCode::NO_CONTENT, Extension(Audited)).into_response())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The revision whose version to serve again (default: the one before the current).
    revision: Option<i32>,
}

/// Rolls back: a new revision serving the version of an earlier one. A deployment that
/// followed an alias stops following it. The body is optional.
#[utoipa::path(post, path = "/deployments/{name}/rollback", tag = "deployments", params(("name" = String, Path)),
    request_body = RollbackBody, responses((status = 200, body = DeploymentView), (status = 404, body = Problem),
    (status = 422, description = "No earlier revision", body = Problem)))]
pub async fn rollback(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| unprocessable(format!("invalid rollback body: {e}")))?
    };
    let rolled = deployments::rollback(&state, &actor, &name, body.revision).await?;
    Ok((Extension(Audited), Json(DeploymentView::new(&state, rolled))).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct RevisionList {
    revisions: Vec<RevisionView>,
}

/// Every revision, newest first.
#[utoipa::path(get, path = "/deployments/{name}/revisions", tag = "deployments", params(("name" = String, Path)),
    responses((status = 200, body = RevisionList), (status = 404, body = Problem)))]
pub async fn revisions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RevisionList>, ApiError> {
    let (_, rows) = deployments::revisions(&state.db, &name).await?;
    Ok(Json(RevisionList { revisions: rows.into_iter().map(RevisionView::from).collect() }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The last this many lines (default 200, at most 5000).
    tail: Option<usize>,
}

/// The serving process's output (local), or one of its pods' (Kubernetes).
#[utoipa::path(get, path = "/deployments/{name}/logs", tag = "deployments", params(("name" = String, Path), LogQuery),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = Problem)))]
pub async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let text = deployments::logs(&state, &name, q.tail.unwrap_or(200)).await?;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}
