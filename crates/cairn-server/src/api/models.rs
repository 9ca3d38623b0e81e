//! `/api/v1/models`: the model registry for people and scripts. List models (by name,
//! keyset-paged), get one, edit its description; list and get versions, edit a version's
//! description; set and remove aliases. Rules, transactions and audit rows are the registry
//! service's.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Problem;
use super::query::{self, ApiQuery, cursor};
use super::views;
use super::{ApiError, ApiJson};
use crate::audit::{Actor, Audited};
use crate::registry::{self, ModelVersion, RegisteredModel};
use crate::state::AppState;
use crate::visibility::Visible;

/// A registered model.
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    #[schema(example = "fraud-detector")]
    name: String,
    description: Option<String>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    /// The account that registered it.
    created_by: Option<String>,
    tags: BTreeMap<String, String>,
    /// Alias -> version number.
    aliases: BTreeMap<String, i64>,
    /// The newest version in each legacy stage.
    latest_versions: Vec<VersionView>,
}

impl From<RegisteredModel> for ModelView {
    fn from(m: RegisteredModel) -> Self {
        ModelView {
            name: m.row.name,
            description: m.row.description,
            created_at: views::time(m.row.creation_time),
            updated_at: views::time(m.row.last_updated_time),
            created_by: m.row.created_by,
            tags: views::map(m.tags),
            aliases: m.aliases.into_iter().collect(),
            latest_versions: m.latest_versions.into_iter().map(VersionView::from).collect(),
        }
    }
}

/// A version of a registered model.
#[derive(Serialize, ToSchema)]
pub struct VersionView {
    model: String,
    #[schema(example = 3)]
    version: i64,
    /// What was registered, as given (`models:/m-...`, `runs:/<run>/<path>`, a URI).
    source: String,
    /// Where the artifacts are; nothing was copied.
    storage_location: String,
    /// The run that produced it (32 hex digits).
    run_id: Option<String>,
    /// The MLflow logged model it was registered from.
    logged_model_id: Option<String>,
    #[schema(example = "READY")]
    status: String,
    /// The legacy stage: `None`, `Staging`, `Production` or `Archived`.
    stage: String,
    description: Option<String>,
    /// Who registered it.
    created_by: String,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    tags: BTreeMap<String, String>,
    aliases: Vec<String>,
}

impl From<ModelVersion> for VersionView {
    fn from(v: ModelVersion) -> Self {
        let row = v.row;
        VersionView {
            model: row.model_name,
            version: row.version,
            source: row.source,
            storage_location: row.storage_location,
            run_id: row.run_uuid.map(|id| id.simple().to_string()),
            logged_model_id: row.logged_model_id,
            status: row.status,
            stage: row.current_stage,
            description: row.description,
            created_by: row.user_id,
            created_at: views::time(row.creation_time),
            updated_at: views::time(row.last_updated_time),
            tags: views::map(v.tags),
            aliases: v.aliases,
        }
    }
}

/// A page of models, by name.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    models: Vec<ModelView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

/// A page of versions, newest first.
#[derive(Serialize, ToSchema)]
pub struct VersionList {
    versions: Vec<VersionView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only models whose name matches this case-insensitive SQL `LIKE` pattern, e.g. `%fraud%`.
    name_like: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists the registered models in the projects the caller can read, by name.
#[utoipa::path(get, path = "/models", tag = "models", params(ListQuery), responses(
    (status = 200, body = ModelList),
    (status = 400, description = "Bad limit or cursor", body = Problem),
))]
pub async fn list(
    State(state): State<AppState>,
    visible: Visible,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ModelList>, ApiError> {
    let after = q.cursor.as_deref().map(cursor::parse_model).transpose()?;
    let limit = query::limit(q.limit, query::DEFAULT_LIMIT, query::MAX_LIMIT)?;
    let name_like = q.name_like.as_deref().filter(|p| !p.is_empty());
    let (models, next) =
        registry::list_models(&state.db, visible.projects(), name_like, after.as_deref(), limit).await?;
    let models = models.into_iter().map(ModelView::from).collect();
    Ok(Json(ModelList { models, next_cursor: next.as_deref().map(cursor::model) }))
}

/// Gets a registered model with its aliases and latest versions.
#[utoipa::path(get, path = "/models/{name}", tag = "models", params(("name" = String, Path)), responses(
    (status = 200, body = ModelView),
    (status = 404, body = Problem),
))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<ModelView>, ApiError> {
    Ok(Json(registry::get_model(&state.db, &name).await?.into()))
}

/// A new description.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DescriptionChange {
    /// Replaces the description; empty clears it.
    description: String,
}

/// Edits a model's description (audited).
#[utoipa::path(patch, path = "/models/{name}", tag = "models", params(("name" = String, Path)),
    request_body = DescriptionChange, responses(
    (status = 200, body = ModelView),
    (status = 404, body = Problem),
))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DescriptionChange>,
) -> Result<Response, ApiError> {
    let model = registry::update_model_description(&state.db, &actor, &name, &body.description).await?;
    Ok((Extension(Audited), Json(ModelView::from(model))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists a model's versions, newest first.
#[utoipa::path(get, path = "/models/{name}/versions", tag = "models",
    params(("name" = String, Path), VersionsQuery), responses(
    (status = 200, body = VersionList),
    (status = 400, description = "Bad limit or cursor", body = Problem),
    (status = 404, body = Problem),
))]
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<VersionsQuery>,
) -> Result<Json<VersionList>, ApiError> {
    let before = q.cursor.as_deref().map(cursor::parse_version).transpose()?;
    let limit = query::limit(q.limit, query::DEFAULT_LIMIT, query::MAX_LIMIT)?;
    let (versions, next) = registry::list_versions(&state.db, &name, before, limit).await?;
    let versions = versions.into_iter().map(VersionView::from).collect();
    Ok(Json(VersionList { versions, next_cursor: next.map(cursor::version) }))
}

/// A version number from the path; anything else names no version.
fn version_number(name: &str, raw: &str) -> Result<i64, ApiError> {
    cairn_core::registry::parse_version(raw)
        .map_err(|_| ApiError::not_found(format!("Model Version (name={name}, version={raw}) not found")))
}

/// Gets one version.
#[utoipa::path(get, path = "/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path), ("version" = i64, Path)), responses(
    (status = 200, body = VersionView),
    (status = 404, body = Problem),
))]
pub async fn version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let number = version_number(&name, &version)?;
    Ok(Json(registry::get_version(&state.db, &name, number).await?.into()))
}

/// Edits a version's description (audited).
#[utoipa::path(patch, path = "/models/{name}/versions/{version}", tag = "models",
    params(("name" = String, Path), ("version" = i64, Path)), request_body = DescriptionChange, responses(
    (status = 200, body = VersionView),
    (status = 404, body = Problem),
))]
pub async fn update_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((name, version)): Path<(String, String)>,
    ApiJson(body): ApiJson<DescriptionChange>,
) -> Result<Response, ApiError> {
    let number = version_number(&name, &version)?;
    let updated = registry::update_version_description(&state.db, &actor, &name, number, &body.description).await?;
    Ok((Extension(Audited), Json(VersionView::from(updated))).into_response())
}

/// Which version an alias names.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasTarget {
    #[schema(example = 3)]
    version: i64,
}

/// Points an alias at a version, moving it from any other (audited). `latest` and `v<number>`
/// are reserved.
#[utoipa::path(put, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(("name" = String, Path), ("alias" = String, Path)), request_body = AliasTarget, responses(
    (status = 200, description = "The version the alias now names", body = VersionView),
    (status = 404, description = "No such model or version", body = Problem),
    (status = 422, description = "Invalid or reserved alias", body = Problem),
))]
pub async fn set_alias(
    State(state): State<AppState>,
    actor: Actor,
    Path((name, alias)): Path<(String, String)>,
    ApiJson(body): ApiJson<AliasTarget>,
) -> Result<Response, ApiError> {
    registry::set_alias(&state.db, &actor, &name, &alias, body.version).await?;
    let version = registry::get_version(&state.db, &name, body.version).await?;
    Ok((Extension(Audited), Json(VersionView::from(version))).into_response())
}

/// Removes an alias (audited); removing one that is not set is no error.
#[utoipa::path(delete, path = "/models/{name}/aliases/{alias}", tag = "models",
    params(("name" = String, Path), ("alias" = String, Path)), responses(
    (status = 204, description = "The alias is gone"),
    (status = 404, description = "No such model", body = Problem),
))]
pub async fn delete_alias(
    State(state): State<AppState>,
    actor: Actor,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    registry::delete_alias(&state.db, &actor, &name, &alias).await?;
    Ok((StatusCode::NO_CONTENT, Extension(Audited)).into_response())
}
