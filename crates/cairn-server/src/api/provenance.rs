//! `GET /api/v1/models/{name}/versions/{version}/provenance`: a model version's provenance
//! as one JSON document (the export behind the dashboard's provenance page).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cairn_db::audit::EventRow;
use cairn_db::datasets::UsedVersion;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use super::openapi::Problem;
use super::run_views::{DatasetInputView, LatestMetricView};
use super::views;
use crate::provenance::{self, Provenance, SourceRun};
use crate::state::AppState;
use crate::ui::links;
use crate::visibility::Visible;

/// Who trained the version, from what, how and on which data.
#[derive(Serialize, ToSchema)]
pub struct ProvenanceView {
    model: String,
    version: i64,
    /// The lineage node id (`model:NAME/VERSION`).
    node: String,
    /// Who registered it (MLflow's user) and when.
    registered_by: String,
    registered_at: Option<DateTime<Utc>>,
    source: String,
    storage_location: String,
    stage: String,
    aliases: Vec<String>,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    /// The run it was registered from; null for a version registered from a bare URI, or
    /// when the run is in a project the caller cannot read (`source_run_hidden`).
    run: Option<SourceRunView>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    source_run_hidden: bool,
    /// Registry audit events about this version and its model (creation, edits, stages,
    /// aliases set on it or moved away from it), oldest first.
    events: Vec<ProvenanceEvent>,
    /// When this document was made.
    exported_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SourceRunView {
    /// 32 hex digits.
    id: String,
    name: String,
    experiment_id: String,
    experiment: String,
    status: String,
    /// The user the MLflow client reported.
    user: String,
    /// The Cairn account that created the run.
    created_by: Option<String>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    deleted: bool,
    params: BTreeMap<String, String>,
    /// The latest value of each metric.
    metrics: BTreeMap<String, LatestMetricView>,
    code: CodeView,
    environment: EnvironmentView,
    /// The Cairn dataset versions the run used.
    datasets: Vec<DatasetVersionView>,
    /// The dataset inputs as the MLflow client logged them (Cairn datasets or not).
    mlflow_inputs: Vec<DatasetInputView>,
    /// The dashboard page of the run.
    url: String,
}

#[derive(Serialize, ToSchema)]
pub struct CodeView {
    /// `mlflow.source.git.repoURL`.
    repository: Option<String>,
    /// `mlflow.source.git.commit`.
    commit: Option<String>,
    /// `mlflow.source.git.branch`.
    branch: Option<String>,
    /// `mlflow.source.name`: the script or notebook that ran.
    entry_point: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentView {
    /// The run's environment snapshot (library versions, image...), as given through
    /// `PUT /api/v1/runs/{id}/environment`.
    #[schema(value_type = Option<Object>)]
    snapshot: Option<serde_json::Value>,
    /// The other `mlflow.*` tags of the run (source type, user, ...).
    mlflow_tags: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetVersionView {
    dataset: String,
    version: i32,
    /// `NAME@VERSION`.
    reference: String,
    /// SHA-256 of the version's manifest.
    digest: String,
    context: String,
    /// The dashboard page of the version.
    url: String,
}

impl From<UsedVersion> for DatasetVersionView {
    fn from(u: UsedVersion) -> Self {
        DatasetVersionView {
            reference: format!("{}@{}", u.dataset, u.version),
            url: links::dataset(&u.dataset, Some(u.version)),
            dataset: u.dataset,
            version: u.version,
            digest: u.digest,
            context: u.context,
        }
    }
}

/// An audit event, as the tamper-evident log holds it.
#[derive(Serialize, ToSchema)]
pub struct ProvenanceEvent {
    /// The row's place in the audit chain.
    id: i64,
    occurred_at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// The row's hash in the chain (hex); `cairn audit verify` checks the chain.
    hash: String,
}

impl From<EventRow> for ProvenanceEvent {
    fn from(r: EventRow) -> Self {
        ProvenanceEvent {
            id: r.id,
            occurred_at: r.occurred_at,
            actor: r.actor_name,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            hash: hex::encode(r.hash),
        }
    }
}

fn run_view(run: SourceRun) -> SourceRunView {
    let record = run.record;
    let row = record.run;
    SourceRunView {
        id: row.run_uuid.simple().to_string(),
        url: links::run(&row.run_uuid),
        name: row.name,
        experiment_id: row.experiment_id.to_string(),
        experiment: run.experiment_name,
        status: row.status,
        user: row.user_id,
        created_by: run.created_by,
        start_time: row.start_time.and_then(views::time),
        end_time: row.end_time.and_then(views::time),
        deleted: row.lifecycle_stage == "deleted",
        params: views::map(record.params),
        metrics: record.metrics.into_iter().map(|m| (m.key.clone(), LatestMetricView::from(m))).collect(),
        code: CodeView {
            repository: run.code.repository,
            commit: run.code.commit,
            branch: run.code.branch,
            entry_point: run.code.entry_point,
        },
        environment: EnvironmentView { snapshot: run.environment, mlflow_tags: views::map(run.system_tags) },
        datasets: run.datasets.into_iter().map(DatasetVersionView::from).collect(),
        mlflow_inputs: record.inputs.into_iter().map(DatasetInputView::from).collect(),
    }
}

pub fn view(p: Provenance) -> ProvenanceView {
    let row = p.version.row;
    ProvenanceView {
        node: format!("model:{}/{}", row.model_name, row.version),
        model: row.model_name,
        version: row.version,
        registered_by: row.user_id,
        registered_at: views::time(row.creation_time),
        source: row.source,
        storage_location: row.storage_location,
        stage: row.current_stage,
        aliases: p.version.aliases,
        description: row.description,
        tags: views::map(p.version.tags),
        run: p.run.map(run_view),
        source_run_hidden: p.run_hidden,
        events: p.events.into_iter().map(ProvenanceEvent::from).collect(),
        exported_at: Utc::now(),
    }
}

/// A model version's provenance: source run (who, when, parameters, metrics, code,
/// environment), dataset versions with digests, and the registry's audit events. With
/// `?download` the answer is an attachment.
#[utoipa::path(get, path = "/models/{name}/versions/{version}/provenance", tag = "lineage",
    params(("name" = String, Path), ("version" = i64, Path),
        ("download" = Option<String>, Query, description = "Present: answer as a file to save")),
    responses(
    (status = 200, body = ProvenanceView),
    (status = 404, body = Problem),
))]
pub async fn model_version(
    State(state): State<AppState>,
    visible: Visible,
    Path((name, version)): Path<(String, String)>,
    query: axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let number = cairn_core::registry::parse_version(&version)
        .map_err(|_| ApiError::not_found(format!("Model Version (name={name}, version={version}) not found")))?;
    let found = provenance::model_version(&state.db, &name, number, visible.projects()).await?;
    let mut response = Json(view(found)).into_response();
    let download = links::pairs(query.0.as_deref()).iter().any(|(k, _)| k == "download");
    if download {
        let file = format!("provenance-{name}-v{number}.json");
        response.headers_mut().insert(header::CONTENT_DISPOSITION, crate::mlflow::artifacts::attachment(&file));
    }
    Ok(response)
}
