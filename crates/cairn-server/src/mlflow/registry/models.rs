//! `registered-models/*` handlers, aliases included.

use axum::Json;
use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use cairn_core::search::{parse_order_by_list, parse_registered_model_filter, parse_registered_model_order_by};
use cairn_db::tracking::KeyValue;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::types::{Tag, page_token};
use super::super::{MlflowError, MlflowJson, required};
use super::{ModelVersionView, RegisteredModelView, SearchParams, audited, filter_error, name, search_page, version};
use crate::access::NewObjectProject;
use crate::audit::Actor;
use crate::registry::{self, ModelSearchQuery};
use crate::state::AppState;
use crate::visibility::Visible;

fn model_body(model: registry::RegisteredModel) -> Value {
    json!({"registered_model": RegisteredModelView::from(model)})
}

#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    description: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    NewObjectProject(project): NewObjectProject,
    MlflowJson(body): MlflowJson<CreateBody>,
) -> Result<Response, MlflowError> {
    let name = name(body.name)?;
    let tags: Vec<KeyValue> = body.tags.into_iter().map(KeyValue::from).collect();
    let description = body.description.as_deref();
    let model = registry::create_model(&state.db, &actor, &name, description, &tags, project).await?;
    Ok(audited(model_body(model)))
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

pub async fn get(State(state): State<AppState>, Query(q): Query<NameQuery>) -> Result<Json<Value>, MlflowError> {
    Ok(Json(model_body(registry::get_model(&state.db, &name(q.name)?).await?)))
}

/// Searches the projects the caller can read.
pub async fn search(
    State(state): State<AppState>,
    visible: Visible,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, MlflowError> {
    let params = SearchParams::parse(raw.as_deref())?;
    let max_results = params.max_results(100, 1000)?;
    let filter = parse_registered_model_filter(&params.filter).map_err(filter_error)?;
    let order_by = parse_order_by_list(&params.order_by, parse_registered_model_order_by).map_err(filter_error)?;
    let offset = page_token::decode(params.page_token.as_deref()).map_err(MlflowError::invalid)?;
    let query =
        ModelSearchQuery { projects: visible.projects(), filter: &filter, order_by: &order_by, offset, max_results };
    let (models, more) = registry::search_models(&state.db, &query).await?;
    let views: Vec<RegisteredModelView> = models.into_iter().map(RegisteredModelView::from).collect();
    Ok(Json(search_page("registered_models", views, more.then_some(offset + max_results))))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<UpdateBody>,
) -> Result<Response, MlflowError> {
    let name = name(body.name)?;
    let description = body.description.unwrap_or_default();
    let model = registry::update_model_description(&state.db, &actor, &name, &description).await?;
    Ok(audited(model_body(model)))
}

#[derive(Deserialize)]
pub struct RenameBody {
    name: Option<String>,
    new_name: Option<String>,
}

pub async fn rename(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<RenameBody>,
) -> Result<Response, MlflowError> {
    let name = name(body.name)?;
    let new_name = required(body.new_name, "new_name")?;
    Ok(audited(model_body(registry::rename_model(&state.db, &actor, &name, &new_name).await?)))
}

#[derive(Deserialize)]
pub struct NameBody {
    name: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<NameBody>,
) -> Result<Response, MlflowError> {
    registry::delete_model(&state.db, &actor, &name(body.name)?).await?;
    Ok(audited(json!({})))
}

#[derive(Deserialize)]
pub struct TagBody {
    name: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

pub async fn set_tag(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<TagBody>,
) -> Result<Response, MlflowError> {
    let key = required(body.key, "key")?;
    registry::set_model_tag(&state.db, &actor, &name(body.name)?, &key, &body.value).await?;
    Ok(audited(json!({})))
}

pub async fn delete_tag(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<TagBody>,
) -> Result<Response, MlflowError> {
    let key = required(body.key, "key")?;
    registry::delete_model_tag(&state.db, &actor, &name(body.name)?, &key).await?;
    Ok(audited(json!({})))
}

#[derive(Deserialize)]
pub struct AliasBody {
    name: Option<String>,
    alias: Option<String>,
    version: Option<Value>,
}

pub async fn set_alias(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<AliasBody>,
) -> Result<Response, MlflowError> {
    let name = name(body.name)?;
    let alias = required(body.alias, "alias")?;
    registry::set_alias(&state.db, &actor, &name, &alias, version(body.version)?).await?;
    Ok(audited(json!({})))
}

pub async fn delete_alias(
    State(state): State<AppState>,
    actor: Actor,
    MlflowJson(body): MlflowJson<AliasBody>,
) -> Result<Response, MlflowError> {
    let name = name(body.name)?;
    let alias = required(body.alias, "alias")?;
    registry::delete_alias(&state.db, &actor, &name, &alias).await?;
    Ok(audited(json!({})))
}

#[derive(Deserialize)]
pub struct AliasQuery {
    name: Option<String>,
    alias: Option<String>,
}

pub async fn get_by_alias(
    State(state): State<AppState>,
    Query(q): Query<AliasQuery>,
) -> Result<Json<Value>, MlflowError> {
    let name = name(q.name)?;
    let alias = required(q.alias, "alias")?;
    let version = registry::get_version_by_alias(&state.db, &name, &alias).await?;
    Ok(Json(json!({"model_version": ModelVersionView::from(version)})))
}
