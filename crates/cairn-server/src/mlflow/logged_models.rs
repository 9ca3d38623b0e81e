//! `logged-models/*`: MLflow 3's logged models, created by every `log_model` call.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_db::tracking::logged_models::LoggedModelRow;
use serde::Deserialize;
use serde_json::json;

use super::types::{Tag, run_id_string};
use super::{MlflowError, MlflowJson, required};
use crate::audit::{Actor, AuditExempt, Audited};
use crate::state::AppState;
use crate::tracking::{self, NewModelRequest, parse_experiment_id, parse_run_id};

/// `{"key": value}` stored as a JSON object, shown as MLflow's list of `{key, value}`.
fn pairs(object: &serde_json::Value) -> Vec<serde_json::Value> {
    object
        .as_object()
        .map(|o| o.iter().map(|(k, v)| json!({"key": k, "value": v.as_str().unwrap_or_default()})).collect())
        .unwrap_or_default()
}

fn to_object(tags: Vec<Tag>) -> serde_json::Value {
    serde_json::Value::Object(tags.into_iter().map(|t| (t.key, serde_json::Value::String(t.value))).collect())
}

fn model_view(row: LoggedModelRow) -> serde_json::Value {
    let mut info = json!({
        "model_id": row.model_id,
        "experiment_id": row.experiment_id.to_string(),
        "name": row.name,
        "artifact_uri": row.artifact_location,
        "creation_timestamp_ms": row.creation_time,
        "last_updated_timestamp_ms": row.last_updated_time,
        "status": row.status,
    });
    if let Some(run) = row.source_run_uuid {
        info["source_run_id"] = json!(run_id_string(run));
    }
    if let Some(model_type) = row.model_type {
        info["model_type"] = json!(model_type);
    }
    if let Some(message) = row.status_message {
        info["status_message"] = json!(message);
    }
    let tags = pairs(&row.tags);
    if !tags.is_empty() {
        info["tags"] = json!(tags);
    }
    let params = pairs(&row.params);
    let data = if params.is_empty() { json!({}) } else { json!({"params": params}) };
    json!({"info": info, "data": data})
}

#[derive(Deserialize)]
pub struct CreateBody {
    experiment_id: Option<String>,
    name: Option<String>,
    source_run_id: Option<String>,
    model_type: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    params: Vec<Tag>,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<CreateBody>,
) -> Result<Response, MlflowError> {
    let experiment_id = parse_experiment_id(&required(body.experiment_id, "experiment_id")?)?;
    let source_run_id = body.source_run_id.as_deref().filter(|s| !s.is_empty()).map(parse_run_id).transpose()?;
    let request = NewModelRequest {
        experiment_id,
        name: body.name.as_deref(),
        source_run_id,
        model_type: body.model_type.as_deref(),
        tags: to_object(body.tags),
        params: to_object(body.params),
    };
    let row = tracking::create_logged_model(&state.db, &actor, request).await?;
    Ok((Extension(Audited), Json(json!({"model": model_view(row)}))).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    Ok(Json(json!({"model": model_view(tracking::get_logged_model(&state.db, &model_id).await?)})))
}

#[derive(Deserialize)]
pub struct FinalizeBody {
    status: Option<String>,
}

pub async fn finalize(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    MlflowJson(body): MlflowJson<FinalizeBody>,
) -> Result<Response, MlflowError> {
    let row = tracking::finalize_logged_model(&state.db, &model_id, &required(body.status, "status")?).await?;
    Ok((Extension(AuditExempt), Json(json!({"model": model_view(row)}))).into_response())
}

#[derive(Deserialize)]
pub struct TagsBody {
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn set_tags(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    MlflowJson(body): MlflowJson<TagsBody>,
) -> Result<Response, MlflowError> {
    tracking::set_logged_model_tags(&state.db, &model_id, to_object(body.tags)).await?;
    Ok((Extension(AuditExempt), Json(json!({}))).into_response())
}

#[derive(Deserialize)]
pub struct SearchBody {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    max_results: Option<i64>,
}

/// The filters the client sends: `name = '...'` and `source_run_id = '...'`, joined by AND.
fn parse_filter(filter: &str) -> Result<(Option<String>, Option<String>), MlflowError> {
    let (mut name, mut run) = (None, None);
    let lower = filter.to_ascii_lowercase();
    let mut rest = filter;
    let mut offset = 0;
    while !rest.trim().is_empty() {
        let end = lower[offset..].find(" and ").map_or(rest.len(), |i| i);
        let clause = rest[..end].trim();
        let (key, value) = clause
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(_, v)| {
                v.len() >= 2 && (v.starts_with('\'') && v.ends_with('\'') || v.starts_with('"') && v.ends_with('"'))
            })
            .ok_or_else(|| MlflowError::invalid(format!("Unsupported logged model filter clause: {clause:?}")))?;
        let value = value[1..value.len() - 1].to_owned();
        match key.trim_start_matches("attributes.") {
            "name" => name = Some(value),
            "source_run_id" => run = Some(value),
            other => return Err(MlflowError::invalid(format!("Unsupported logged model filter key: {other:?}"))),
        }
        let consumed = (end + 5).min(rest.len());
        rest = &rest[consumed..];
        offset += consumed;
    }
    Ok((name, run))
}

pub async fn search(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<SearchBody>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let experiment_ids = body
        .experiment_ids
        .iter()
        .map(|id| parse_experiment_id(id).map_err(MlflowError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let (name, run) = parse_filter(body.filter.as_deref().unwrap_or(""))?;
    let run = run.as_deref().map(parse_run_id).transpose()?;
    let limit = body.max_results.unwrap_or(100).clamp(1, 1000);
    let rows = tracking::search_logged_models(&state.db, &experiment_ids, name.as_deref(), run, limit).await?;
    Ok(Json(json!({"models": rows.into_iter().map(model_view).collect::<Vec<_>>()})))
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filters_the_client_sends() {
        assert_eq!(parse_filter("").expect("empty"), (None, None));
        assert_eq!(parse_filter("name = 'model'").expect("name"), (Some("model".into()), None));
        let both = parse_filter("name = 'm' AND source_run_id = 'abc'").expect("both");
        assert_eq!(both, (Some("m".into()), Some("abc".into())));
        assert!(parse_filter("metrics.x > 1").is_err());
        assert!(parse_filter("name = unquoted").is_err());
    }
}
