//! What the API shows of a run: a summary for tables and lists, the full detail for one run,
//! and the environment snapshot's documented shape.

use std::collections::BTreeMap;

use cairn_db::tracking::metrics::LatestMetric;
use cairn_db::tracking::runs::{InputRow, RunDetailRow, RunRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::views::{self, Lifecycle, NonFinite, split_value};

/// A run's state. Filters use MLflow's spelling (`attributes.status = 'FINISHED'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    /// The stored (MLflow) spelling.
    pub fn as_stored(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    fn of(stored: &str) -> RunStatus {
        match stored {
            "SCHEDULED" => RunStatus::Scheduled,
            "FINISHED" => RunStatus::Finished,
            "FAILED" => RunStatus::Failed,
            "KILLED" => RunStatus::Killed,
            // The column's CHECK constraint admits nothing else.
            _ => RunStatus::Running,
        }
    }
}

/// The latest value of a metric.
#[derive(Serialize, ToSchema)]
pub struct LatestMetricView {
    /// Null when the value is NaN or infinite; `non_finite` then says which.
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    non_finite: Option<NonFinite>,
    step: i64,
    timestamp: Option<DateTime<Utc>>,
}

impl From<LatestMetric> for LatestMetricView {
    fn from(m: LatestMetric) -> Self {
        let (value, non_finite) = split_value(m.value);
        LatestMetricView { value, non_finite, step: m.step, timestamp: views::time(m.timestamp) }
    }
}

/// A run as lists and tables show it.
#[derive(Serialize, ToSchema)]
pub struct RunSummary {
    /// 32 hex digits, the same id the MLflow API uses.
    #[schema(example = "5f0e6f4bd2b54a4a9a1a4b8d1c6f3e21")]
    id: String,
    experiment_id: String,
    name: String,
    status: RunStatus,
    /// Who ran it (MLflow's free-form user name).
    user: String,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    lifecycle: Lifecycle,
    params: BTreeMap<String, String>,
    /// The latest value of each metric.
    metrics: BTreeMap<String, LatestMetricView>,
    /// Every tag, the system tags MLflow clients send (`mlflow.source.git.commit`, ...) included.
    tags: BTreeMap<String, String>,
}

/// A dataset the run used.
#[derive(Serialize, ToSchema)]
pub struct DatasetInputView {
    name: String,
    digest: String,
    source_type: String,
    source: String,
    /// The dataset's schema as the client described it (JSON when it parses as JSON).
    #[schema(value_type = Option<Object>)]
    schema: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    profile: Option<serde_json::Value>,
    /// Input tags, such as `mlflow.data.context` (`training`, `evaluation`...).
    tags: BTreeMap<String, String>,
}

/// JSON text as JSON when it parses, else as a string.
fn json_or_text(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

impl From<InputRow> for DatasetInputView {
    fn from(row: InputRow) -> Self {
        let tags = row
            .tags
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t.get("key")?.as_str()?.to_owned(), t.get("value")?.as_str()?.to_owned())))
            .collect();
        DatasetInputView {
            name: row.name,
            digest: row.digest,
            source_type: row.source_type,
            source: row.source,
            schema: json_or_text(row.schema),
            profile: json_or_text(row.profile),
            tags,
        }
    }
}

/// A model the run logged.
#[derive(Serialize, ToSchema)]
pub struct ModelOutputView {
    model_id: String,
    step: i64,
}

/// Everything about one run.
#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    summary: RunSummary,
    artifact_uri: String,
    /// The run this one is nested in.
    parent_run_id: Option<String>,
    /// How many active runs are nested in this one.
    child_runs: i64,
    inputs: Vec<DatasetInputView>,
    outputs: Vec<ModelOutputView>,
    /// What the run ran on, as given at creation or with `PUT .../environment`.
    #[schema(value_type = Option<EnvironmentSnapshot>)]
    environment: Option<serde_json::Value>,
}

impl RunSummary {
    pub fn new(record: RunRecord) -> (RunSummary, RunRecordRest) {
        let run = record.run;
        let summary = RunSummary {
            id: run.run_uuid.simple().to_string(),
            experiment_id: run.experiment_id.to_string(),
            name: run.name,
            status: RunStatus::of(&run.status),
            user: run.user_id,
            start_time: run.start_time.and_then(views::time),
            end_time: run.end_time.and_then(views::time),
            lifecycle: Lifecycle::of(&run.lifecycle_stage),
            params: views::map(record.params),
            metrics: record.metrics.into_iter().map(|m| (m.key.clone(), m.into())).collect(),
            tags: views::map(record.tags),
        };
        let rest = RunRecordRest { artifact_uri: run.artifact_uri, inputs: record.inputs, outputs: record.outputs };
        (summary, rest)
    }
}

/// The parts of a run record that only the detail shows.
pub struct RunRecordRest {
    artifact_uri: String,
    inputs: Vec<InputRow>,
    outputs: Vec<(String, i64)>,
}

impl From<RunRecord> for RunSummary {
    fn from(record: RunRecord) -> Self {
        RunSummary::new(record).0
    }
}

impl RunDetail {
    pub fn new(record: RunRecord, details: RunDetailRow) -> RunDetail {
        let (summary, rest) = RunSummary::new(record);
        RunDetail {
            summary,
            artifact_uri: rest.artifact_uri,
            parent_run_id: details.parent_run_uuid.map(|id| id.simple().to_string()),
            child_runs: details.child_runs,
            inputs: rest.inputs.into_iter().map(DatasetInputView::from).collect(),
            outputs: rest.outputs.into_iter().map(|(model_id, step)| ModelOutputView { model_id, step }).collect(),
            environment: details.environment,
        }
    }
}

/// A run's environment snapshot, for reproducibility. The fields below are conventional
/// and typed; any other keys are kept as given. At most 64 KiB of JSON.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnvironmentSnapshot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "3.12.4")]
    python_version: Option<String>,
    /// Installed packages and their versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(example = json!({"torch": "2.4.0", "numpy": "2.0.1"}))]
    libraries: BTreeMap<String, String>,
    /// The container image the run ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    image_digest: Option<String>,
    /// Operating system and architecture, e.g. `linux-x86_64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

impl EnvironmentSnapshot {
    /// The snapshot as the JSON object it is stored as.
    pub fn into_json(self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
