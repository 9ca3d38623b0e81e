//! `experiments/*`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::search::{parse_experiment_filter, parse_experiment_order_by};
use cairn_db::tracking::KeyValue;
use serde::Deserialize;
use serde_json::json;

use super::types::{ExperimentView, Tag, lenient_i64, page_token};
use super::{MlflowError, MlflowJson, max_results, required, view_type};
use crate::access::NewObjectProject;
use crate::audit::{Actor, Audited};
use crate::state::AppState;
use crate::tracking::{self, ExperimentSearch, parse_experiment_id};
use crate::visibility::Visible;

fn view(row: cairn_db::tracking::experiments::ExperimentRow, tags: Vec<KeyValue>) -> ExperimentView {
    ExperimentView::new(row, tags.into_iter().map(Tag::from).collect())
}

#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    NewObjectProject(project): NewObjectProject,
    MlflowJson(body): MlflowJson<CreateBody>,
) -> Result<Response, MlflowError> {
    let name = required(body.name, "name")?;
    let tags: Vec<KeyValue> = body.tags.into_iter().map(KeyValue::from).collect();
    let location = body.artifact_location.as_deref();
    let row = tracking::create_experiment(&state.db, &actor, &name, location, &tags, project).await?;
    Ok((Extension(Audited), Json(json!({"experiment_id": row.id.to_string()}))).into_response())
}

#[derive(Deserialize)]
pub struct GetQuery {
    experiment_id: Option<String>,
}

pub async fn get(
    State(state): State<AppState>,
    Query(q): Query<GetQuery>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let id = parse_experiment_id(&required(q.experiment_id, "experiment_id")?)?;
    let (row, tags) = tracking::get_experiment(&state.db, id).await?;
    Ok(Json(json!({"experiment": view(row, tags)})))
}

#[derive(Deserialize)]
pub struct GetByNameQuery {
    experiment_name: Option<String>,
}

pub async fn get_by_name(
    State(state): State<AppState>,
    Query(q): Query<GetByNameQuery>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let name = required(q.experiment_name, "experiment_name")?;
    let (row, tags) = tracking::get_experiment_by_name(&state.db, &name).await?;
    Ok(Json(json!({"experiment": view(row, tags)})))
}

#[derive(Deserialize, Default)]
pub struct SearchBody {
    #[serde(default, deserialize_with = "lenient_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    view_type: Option<String>,
}

pub async fn search_post(
    State(state): State<AppState>,
    visible: Visible,
    MlflowJson(body): MlflowJson<SearchBody>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    search(&state, &visible, body).await
}

pub async fn search_get(
    State(state): State<AppState>,
    visible: Visible,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let mut body = SearchBody::default();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "max_results" => {
                body.max_results =
                    Some(value.parse().map_err(|_| MlflowError::invalid(format!("Invalid max_results {value:?}")))?)
            }
            "page_token" => body.page_token = Some(value.into_owned()),
            "filter" => body.filter = Some(value.into_owned()),
            "order_by" => body.order_by.push(value.into_owned()),
            "view_type" => body.view_type = Some(value.into_owned()),
            _ => {}
        }
    }
    search(&state, &visible, body).await
}

/// Searches the experiments in the projects the caller can read.
async fn search(state: &AppState, visible: &Visible, body: SearchBody) -> Result<Json<serde_json::Value>, MlflowError> {
    let max_results = max_results(body.max_results, 1000)?;
    let filter =
        parse_experiment_filter(body.filter.as_deref().unwrap_or("")).map_err(|e| MlflowError::invalid(e.message()))?;
    let order_by = body
        .order_by
        .iter()
        .filter(|o| !o.trim().is_empty())
        .map(|o| parse_experiment_order_by(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MlflowError::invalid(e.message()))?;
    let offset = page_token::decode(body.page_token.as_deref()).map_err(MlflowError::invalid)?;
    let query = ExperimentSearch {
        projects: visible.projects(),
        filter: &filter,
        order_by: &order_by,
        view: view_type(body.view_type.as_deref())?,
        offset,
        max_results,
    };
    let (page, more) = tracking::search_experiments(&state.db, &query).await?;
    let experiments: Vec<ExperimentView> = page.into_iter().map(|(row, tags)| view(row, tags)).collect();
    let mut response = json!({});
    if !experiments.is_empty() {
        response["experiments"] = json!(experiments);
    }
    if more {
        response["next_page_token"] = json!(page_token::encode(offset + max_results));
    }
    Ok(Json(response))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<UpdateBody>,
) -> Result<Response, MlflowError> {
    let id = parse_experiment_id(&required(body.experiment_id, "experiment_id")?)?;
    if let Some(name) = body.new_name {
        tracking::rename_experiment(&state.db, &actor, id, &name).await?;
    }
    Ok((Extension(Audited), Json(json!({}))).into_response())
}

#[derive(Deserialize)]
pub struct IdBody {
    experiment_id: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<IdBody>,
) -> Result<Response, MlflowError> {
    let id = parse_experiment_id(&required(body.experiment_id, "experiment_id")?)?;
    tracking::set_experiment_deleted(&state.db, &actor, id, true).await?;
    Ok((Extension(Audited), Json(json!({}))).into_response())
}

pub async fn restore(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<IdBody>,
) -> Result<Response, MlflowError> {
    let id = parse_experiment_id(&required(body.experiment_id, "experiment_id")?)?;
    tracking::set_experiment_deleted(&state.db, &actor, id, false).await?;
    Ok((Extension(Audited), Json(json!({}))).into_response())
}

#[derive(Deserialize)]
pub struct TagBody {
    experiment_id: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

pub async fn set_tag(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<TagBody>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let id = parse_experiment_id(&required(body.experiment_id, "experiment_id")?)?;
    tracking::set_experiment_tag(&state.db, id, &required(body.key, "key")?, &body.value).await?;
    Ok(Json(json!({})))
}

pub async fn delete_tag(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<TagBody>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let id = parse_experiment_id(&required(body.experiment_id, "experiment_id")?)?;
    tracking::delete_experiment_tag(&state.db, id, &required(body.key, "key")?).await?;
    Ok(Json(json!({})))
}
