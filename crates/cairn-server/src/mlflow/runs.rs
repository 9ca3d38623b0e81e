//! `runs/*` and `metrics/get-history`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::search::{parse_order_by_list, parse_run_filter, parse_run_order_by};
use cairn_db::tracking::KeyValue;
use cairn_db::tracking::metrics::{HistoryCursor, MetricPoint};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::types::{RunInfo, RunView, Tag, lenient_f64, lenient_i64, mlflow_f64, page_token};
use super::{MlflowError, MlflowJson, max_results, required, view_type};
use crate::audit::{Actor, AuditExempt, Audited};
use crate::state::AppState;
use crate::tracking::{
    self, Batch, DatasetInput, NewRunRequest, RunChange, RunSearch, parse_experiment_id, parse_run_id,
};

fn kv(tags: Vec<Tag>) -> Vec<KeyValue> {
    tags.into_iter().map(KeyValue::from).collect()
}

/// The client sends the id as both `run_id` and `run_uuid`; either will do.
fn run_of(run_id: Option<String>, run_uuid: Option<String>) -> Result<Uuid, MlflowError> {
    let raw = run_id.or(run_uuid).filter(|s| !s.is_empty());
    Ok(parse_run_id(&required(raw, "run_id")?)?)
}

fn telemetry_ok() -> Response {
    (Extension(AuditExempt), Json(json!({}))).into_response()
}

#[derive(Deserialize)]
pub struct CreateBody {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<CreateBody>,
) -> Result<Response, MlflowError> {
    let experiment_id = parse_experiment_id(body.experiment_id.as_deref().unwrap_or("0"))?;
    let request = NewRunRequest {
        experiment_id,
        user_id: body.user_id.as_deref().filter(|u| !u.is_empty()),
        run_name: body.run_name.as_deref(),
        start_time: body.start_time,
        tags: kv(body.tags),
    };
    let record = tracking::create_run(&state.db, &actor, request).await?;
    Ok((Extension(Audited), Json(json!({"run": RunView::from(record)}))).into_response())
}

#[derive(Deserialize)]
pub struct RunIdQuery {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

pub async fn get(
    State(state): State<AppState>,
    Query(q): Query<RunIdQuery>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let record = tracking::get_run(&state.db, run_of(q.run_id, q.run_uuid)?).await?;
    Ok(Json(json!({"run": RunView::from(record)})))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<UpdateBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    let change =
        RunChange { status: body.status.as_deref(), end_time: body.end_time, run_name: body.run_name.as_deref() };
    // A rename is audited by the service; status changes are telemetry.
    let row = tracking::update_run_by(&state.db, &actor, id, change).await?;
    Ok((Extension(AuditExempt), Json(json!({"run_info": RunInfo::new(&row)}))).into_response())
}

#[derive(Deserialize)]
pub struct IdBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<IdBody>,
) -> Result<Response, MlflowError> {
    tracking::set_run_deleted(&state.db, &actor, run_of(body.run_id, body.run_uuid)?, true).await?;
    Ok((Extension(Audited), Json(json!({}))).into_response())
}

pub async fn restore(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<IdBody>,
) -> Result<Response, MlflowError> {
    tracking::set_run_deleted(&state.db, &actor, run_of(body.run_id, body.run_uuid)?, false).await?;
    Ok((Extension(Audited), Json(json!({}))).into_response())
}

#[derive(Deserialize)]
pub struct KeyValueBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<serde_json::Value>,
}

/// MLflow sends param and tag values as strings; accept numbers and booleans as their text.
fn text_value(value: Option<serde_json::Value>) -> Result<String, MlflowError> {
    match value {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        None | Some(serde_json::Value::Null) => Err(MlflowError::invalid(
            "Missing value for required parameter 'value'. See the API docs for more information about request parameters.",
        )),
        Some(other) => {
            Err(MlflowError::invalid(format!("Invalid value {other} for parameter 'value': expected a string")))
        }
    }
}

pub async fn set_tag(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<KeyValueBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    let tag = KeyValue { key: required(body.key, "key")?, value: text_value(body.value)? };
    tracking::log_batch(&state.db, id, Batch { tags: vec![tag], ..Batch::default() }).await?;
    Ok(telemetry_ok())
}

pub async fn delete_tag(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<KeyValueBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    tracking::delete_run_tag(&state.db, id, &required(body.key, "key")?).await?;
    Ok(telemetry_ok())
}

pub async fn log_parameter(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<KeyValueBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    let param = KeyValue { key: required(body.key, "key")?, value: text_value(body.value)? };
    tracking::log_batch(&state.db, id, Batch { params: vec![param], ..Batch::default() }).await?;
    Ok(telemetry_ok())
}

#[derive(Deserialize)]
pub struct MetricBody {
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    step: Option<i64>,
}

impl MetricBody {
    fn point(self) -> Result<MetricPoint, MlflowError> {
        Ok(MetricPoint {
            key: required(self.key, "key")?,
            value: required(self.value, "value")?,
            timestamp: required(self.timestamp, "timestamp")?,
            step: self.step.unwrap_or(0),
        })
    }
}

#[derive(Deserialize)]
pub struct LogMetricBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(flatten)]
    metric: MetricBody,
}

pub async fn log_metric(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<LogMetricBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    let point = body.metric.point()?;
    tracking::log_batch(&state.db, id, Batch { metrics: vec![point], ..Batch::default() }).await?;
    Ok(telemetry_ok())
}

#[derive(Deserialize)]
pub struct LogBatchBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<MetricBody>,
    #[serde(default)]
    params: Vec<Tag>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn log_batch(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<LogBatchBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    // Check the count before converting, so an oversized batch fails with MLflow's message.
    cairn_core::tracking::validate_batch_sizes(body.metrics.len(), body.params.len(), body.tags.len())
        .map_err(|e| MlflowError::invalid(e.0))?;
    let metrics = body.metrics.into_iter().map(MetricBody::point).collect::<Result<Vec<_>, _>>()?;
    let batch = Batch { metrics, params: kv(body.params), tags: kv(body.tags) };
    tracking::log_batch(&state.db, id, batch).await?;
    Ok(telemetry_ok())
}

#[derive(Deserialize)]
pub struct DatasetBody {
    name: Option<String>,
    digest: Option<String>,
    #[serde(default)]
    source_type: String,
    #[serde(default)]
    source: String,
    schema: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
pub struct DatasetInputBody {
    #[serde(default)]
    tags: Vec<Tag>,
    dataset: Option<DatasetBody>,
}

#[derive(Deserialize)]
pub struct LogInputsBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputBody>,
}

pub async fn log_inputs(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<LogInputsBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    let inputs = body
        .datasets
        .into_iter()
        .map(|input| {
            let dataset = required(input.dataset, "dataset")?;
            Ok(DatasetInput {
                name: required(dataset.name, "dataset.name")?,
                digest: required(dataset.digest, "dataset.digest")?,
                source_type: dataset.source_type,
                source: dataset.source,
                schema: dataset.schema,
                profile: dataset.profile,
                tags: kv(input.tags),
            })
        })
        .collect::<Result<Vec<_>, MlflowError>>()?;
    tracking::log_inputs(&state.db, &actor, id, &inputs).await?;
    Ok(telemetry_ok())
}

#[derive(Deserialize)]
pub struct ModelOutputBody {
    model_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    step: Option<i64>,
}

#[derive(Deserialize)]
pub struct OutputsBody {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    models: Vec<ModelOutputBody>,
}

pub async fn log_outputs(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<OutputsBody>,
) -> Result<Response, MlflowError> {
    let id = run_of(body.run_id, body.run_uuid)?;
    let outputs = body
        .models
        .into_iter()
        .map(|m| Ok((required(m.model_id, "model_id")?, m.step.unwrap_or(0))))
        .collect::<Result<Vec<_>, MlflowError>>()?;
    tracking::log_outputs(&state.db, id, &outputs).await?;
    Ok(telemetry_ok())
}

#[derive(Deserialize)]
pub struct SearchBody {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<SearchBody>,
) -> Result<Json<SearchResponse>, MlflowError> {
    let max_results = max_results(body.max_results, 1000)?;
    let experiment_ids = body
        .experiment_ids
        .iter()
        .map(|id| id.trim().parse::<i64>().map_err(|_| MlflowError::invalid(format!("Invalid experiment ID '{id}'"))))
        .collect::<Result<Vec<_>, _>>()?;
    let filter =
        parse_run_filter(body.filter.as_deref().unwrap_or("")).map_err(|e| MlflowError::invalid(e.message()))?;
    let order_by =
        parse_order_by_list(&body.order_by, parse_run_order_by).map_err(|e| MlflowError::invalid(e.message()))?;
    let offset = page_token::decode(body.page_token.as_deref()).map_err(MlflowError::invalid)?;
    let query = RunSearch {
        experiment_ids: &experiment_ids,
        filter: &filter,
        order_by: &order_by,
        view: view_type(body.run_view_type.as_deref())?,
        offset,
        max_results,
    };
    let (records, more) = tracking::search_runs(&state.db, &query).await?;
    // Serialized straight from the views, without an intermediate `serde_json::Value`.
    Ok(Json(SearchResponse {
        runs: records.into_iter().map(RunView::from).collect(),
        next_page_token: more.then(|| page_token::encode(offset + max_results)),
    }))
}

#[derive(serde::Serialize)]
pub struct SearchResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<RunView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    page_token: Option<String>,
    max_results: Option<String>,
}

#[derive(serde::Serialize)]
struct HistoryView<'a> {
    key: &'a str,
    #[serde(serialize_with = "mlflow_f64")]
    value: f64,
    timestamp: i64,
    step: i64,
}

fn decode_cursor(token: &str) -> Result<HistoryCursor, MlflowError> {
    use base64::Engine;
    let invalid = || MlflowError::invalid(format!("Invalid page token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':').map(str::parse::<i64>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(step)), Some(Ok(timestamp)), Some(Ok(id)), None) => Ok(HistoryCursor { step, timestamp, id }),
        _ => Err(invalid()),
    }
}

fn encode_cursor(c: HistoryCursor) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", c.step, c.timestamp, c.id))
}

pub async fn get_history(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, MlflowError> {
    let id = run_of(q.run_id, q.run_uuid)?;
    let key = required(q.metric_key, "metric_key")?;
    let max_results = match q.max_results.as_deref() {
        None | Some("") => 25_000,
        Some(raw) => raw.parse::<i64>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
            MlflowError::invalid(format!("Invalid value {raw:?} for parameter 'max_results': use 1 to 1000000"))
        })?,
    };
    let after = q.page_token.as_deref().filter(|t| !t.is_empty()).map(decode_cursor).transpose()?;
    let (points, next) = tracking::metric_history(&state.db, id, &key, after, max_results).await?;
    let metrics: Vec<HistoryView> = points
        .iter()
        .map(|p| HistoryView { key: &key, value: p.value, timestamp: p.timestamp, step: p.step })
        .collect();
    // Serialized straight from the views: a page can hold a million points.
    let body = HistoryResponse { metrics, next_page_token: next.map(encode_cursor) };
    Ok(Json(body).into_response())
}

#[derive(serde::Serialize)]
struct HistoryResponse<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<HistoryView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}
