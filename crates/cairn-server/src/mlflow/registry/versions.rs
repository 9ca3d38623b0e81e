//! `model-versions/*` handlers and `registered-models/get-latest-versions`.

use axum::Json;
use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use cairn_core::registry::Stage;
use cairn_core::search::{parse_model_version_filter, parse_model_version_order_by, parse_order_by_list};
use cairn_db::tracking::KeyValue;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::types::{Tag, page_token};
use super::super::{MlflowError, MlflowJson, required};
use super::{ModelVersionView, SearchParams, audited, filter_error, name, search_page, version};
use crate::audit::Actor;
use crate::registry::{self, ModelVersion, NewVersionRequest, VersionSearchQuery};
use crate::state::AppState;
use crate::tracking::parse_run_id;
use crate::visibility::Visible;

fn version_body(version: ModelVersion) -> Value {
    json!({"model_version": ModelVersionView::from(version)})
}

#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<CreateBody>,
) -> Result<Response, MlflowError> {
    let name = name(body.name)?;
    let source = required(body.source, "source")?;
    let run_id = body.run_id.as_deref().filter(|r| !r.is_empty()).map(parse_run_id).transpose()?;
    let tags: Vec<KeyValue> = body.tags.into_iter().map(KeyValue::from).collect();
    let request = NewVersionRequest {
        name: &name,
        source: &source,
        run_id,
        model_id: body.model_id.as_deref().filter(|m| !m.is_empty()),
        tags: &tags,
        description: body.description.as_deref(),
        run_link: body.run_link.as_deref(),
    };
    Ok(audited(version_body(registry::create_version(&state.db, &actor, request).await?)))
}

#[derive(Deserialize)]
pub struct VersionQuery {
    name: Option<String>,
    version: Option<String>,
}

impl VersionQuery {
    fn parse(self) -> Result<(String, i64), MlflowError> {
        Ok((name(self.name)?, version(self.version.map(Value::String))?))
    }
}

pub async fn get(State(state): State<AppState>, Query(q): Query<VersionQuery>) -> Result<Json<Value>, MlflowError> {
    let (name, version) = q.parse()?;
    Ok(Json(version_body(registry::get_version(&state.db, &name, version).await?)))
}

pub async fn download_uri(
    State(state): State<AppState>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, MlflowError> {
    let (name, version) = q.parse()?;
    Ok(Json(json!({"artifact_uri": registry::download_uri(&state.db, &name, version).await?})))
}

/// Searches the projects the caller can read.
pub async fn search(
    State(state): State<AppState>,
    visible: Visible,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, MlflowError> {
    let params = SearchParams::parse(raw.as_deref())?;
    let max_results = params.max_results(10_000, 200_000)?;
    let filter = parse_model_version_filter(&params.filter).map_err(filter_error)?;
    let order_by = parse_order_by_list(&params.order_by, parse_model_version_order_by).map_err(filter_error)?;
    let offset = page_token::decode(params.page_token.as_deref()).map_err(MlflowError::invalid)?;
    let query =
        VersionSearchQuery { projects: visible.projects(), filter: &filter, order_by: &order_by, offset, max_results };
    let (versions, more) = registry::search_versions(&state.db, &query).await?;
    let views: Vec<ModelVersionView> = versions.into_iter().map(ModelVersionView::from).collect();
    Ok(Json(search_page("model_versions", views, more.then_some(offset + max_results))))
}

#[derive(Deserialize)]
pub struct VersionBody {
    name: Option<String>,
    version: Option<Value>,
    description: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<VersionBody>,
) -> Result<Response, MlflowError> {
    let (name, version) = (name(body.name)?, version(body.version)?);
    let description = body.description.unwrap_or_default();
    let updated = registry::update_version_description(&state.db, &actor, &name, version, &description).await?;
    Ok(audited(version_body(updated)))
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<VersionBody>,
) -> Result<Response, MlflowError> {
    let (name, version) = (name(body.name)?, version(body.version)?);
    registry::delete_version(&state.db, &actor, &name, version).await?;
    Ok(audited(json!({})))
}

#[derive(Deserialize)]
pub struct StageBody {
    name: Option<String>,
    version: Option<Value>,
    stage: Option<String>,
    #[serde(default)]
    archive_existing_versions: bool,
}

pub async fn transition_stage(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<StageBody>,
) -> Result<Response, MlflowError> {
    let (name, version) = (name(body.name)?, version(body.version)?);
    let stage = Stage::parse(&required(body.stage, "stage")?).map_err(|e| MlflowError::invalid(e.0))?;
    let archive = body.archive_existing_versions;
    let moved = registry::transition_stage(&state.db, &actor, &name, version, stage, archive).await?;
    Ok(audited(version_body(moved)))
}

#[derive(Deserialize)]
pub struct TagBody {
    name: Option<String>,
    version: Option<Value>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

pub async fn set_tag(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<TagBody>,
) -> Result<Response, MlflowError> {
    let (name, version) = (name(body.name)?, version(body.version)?);
    let key = required(body.key, "key")?;
    registry::set_version_tag(&state.db, &actor, &name, version, &key, &body.value).await?;
    Ok(audited(json!({})))
}

pub async fn delete_tag(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<TagBody>,
) -> Result<Response, MlflowError> {
    let (name, version) = (name(body.name)?, version(body.version)?);
    let key = required(body.key, "key")?;
    registry::delete_version_tag(&state.db, &actor, &name, version, &key).await?;
    Ok(audited(json!({})))
}

#[derive(Deserialize, Default)]
pub struct LatestBody {
    name: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}

async fn latest(state: &AppState, body: LatestBody) -> Result<Json<Value>, MlflowError> {
    let name = name(body.name)?;
    let stages = body
        .stages
        .iter()
        .map(|s| Stage::parse(s).map_err(|e| MlflowError::invalid(e.0)))
        .collect::<Result<Vec<_>, _>>()?;
    let versions = registry::latest_versions(&state.db, &name, &stages).await?;
    let views: Vec<ModelVersionView> = versions.into_iter().map(ModelVersionView::from).collect();
    Ok(Json(if views.is_empty() { json!({}) } else { json!({"model_versions": views}) }))
}

pub async fn latest_post(
    State(state): State<AppState>,
    MlflowJson(body): MlflowJson<LatestBody>,
) -> Result<Json<Value>, MlflowError> {
    latest(&state, body).await
}

/// The GET form: `?name=...&stages=Staging&stages=Production`.
pub async fn latest_get(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Value>, MlflowError> {
    let mut body = LatestBody::default();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "name" => body.name = Some(value.into_owned()),
            "stages" => body.stages.push(value.into_owned()),
            _ => {}
        }
    }
    latest(&state, body).await
}
