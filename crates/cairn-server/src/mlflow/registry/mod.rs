//! `registered-models/*` and `model-versions/*`: MLflow's model registry, aliases and the
//! legacy stages. Shapes follow `model_registry.proto` (versions are strings, times are
//! epoch-millisecond numbers, empty fields omitted); rules live in [`crate::registry`].

mod models;
mod versions;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use cairn_core::search::FilterError;
use serde::Serialize;

use super::types::{Tag, run_id_string};
use super::{MlflowError, required};
use crate::audit::Audited;
use crate::registry::{ModelVersion, RegisteredModel};
use crate::state::AppState;

/// The registry routes, relative to `/api/2.0/mlflow`. Reads are GETs except
/// `get-latest-versions`, which the client POSTs (listed as read-only in [`crate::access`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registered-models/create", post(models::create))
        .route("/registered-models/get", get(models::get))
        .route("/registered-models/search", get(models::search))
        .route("/registered-models/update", axum::routing::patch(models::update))
        .route("/registered-models/rename", post(models::rename))
        .route("/registered-models/delete", axum::routing::delete(models::delete))
        .route("/registered-models/set-tag", post(models::set_tag))
        .route("/registered-models/delete-tag", axum::routing::delete(models::delete_tag))
        .route("/registered-models/get-latest-versions", post(versions::latest_post).get(versions::latest_get))
        .route(
            "/registered-models/alias",
            post(models::set_alias).get(models::get_by_alias).delete(models::delete_alias),
        )
        .route("/model-versions/create", post(versions::create))
        .route("/model-versions/get", get(versions::get))
        .route("/model-versions/get-download-uri", get(versions::download_uri))
        .route("/model-versions/search", get(versions::search))
        .route("/model-versions/update", axum::routing::patch(versions::update))
        .route("/model-versions/transition-stage", post(versions::transition_stage))
        .route("/model-versions/delete", axum::routing::delete(versions::delete))
        .route("/model-versions/set-tag", post(versions::set_tag))
        .route("/model-versions/delete-tag", axum::routing::delete(versions::delete_tag))
}

/// `ModelVersion` of `model_registry.proto`.
#[derive(Debug, Serialize)]
pub struct ModelVersionView {
    name: String,
    version: String,
    creation_timestamp: i64,
    last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    user_id: String,
    current_stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    status: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_link: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<String>,
}

impl From<ModelVersion> for ModelVersionView {
    fn from(v: ModelVersion) -> Self {
        let row = v.row;
        ModelVersionView {
            name: row.model_name,
            version: row.version.to_string(),
            creation_timestamp: row.creation_time,
            last_updated_timestamp: row.last_updated_time,
            user_id: row.user_id,
            current_stage: row.current_stage,
            description: row.description,
            source: row.source,
            run_id: row.run_uuid.map(run_id_string),
            status: row.status,
            tags: v.tags.into_iter().map(Tag::from).collect(),
            run_link: row.run_link,
            aliases: v.aliases,
            model_id: row.logged_model_id,
        }
    }
}

/// `RegisteredModelAlias`.
#[derive(Debug, Serialize)]
struct AliasView {
    alias: String,
    version: String,
}

/// `RegisteredModel`, with the latest version per stage and the aliases.
#[derive(Debug, Serialize)]
pub struct RegisteredModelView {
    name: String,
    creation_timestamp: i64,
    last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    latest_versions: Vec<ModelVersionView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<AliasView>,
}

impl From<RegisteredModel> for RegisteredModelView {
    fn from(m: RegisteredModel) -> Self {
        RegisteredModelView {
            name: m.row.name,
            creation_timestamp: m.row.creation_time,
            last_updated_timestamp: m.row.last_updated_time,
            user_id: m.row.created_by,
            description: m.row.description,
            latest_versions: m.latest_versions.into_iter().map(ModelVersionView::from).collect(),
            tags: m.tags.into_iter().map(Tag::from).collect(),
            aliases: m
                .aliases
                .into_iter()
                .map(|(alias, version)| AliasView { alias, version: version.to_string() })
                .collect(),
        }
    }
}

/// A change's answer: the body, marked as audited by the service.
fn audited(body: serde_json::Value) -> Response {
    (Extension(Audited), Json(body)).into_response()
}

/// A search's answer: the items under `key` and, when more follow, the token of the next
/// page; both left out when empty, as MLflow does.
fn search_page<T: Serialize>(key: &str, items: Vec<T>, next_offset: Option<i64>) -> serde_json::Value {
    let mut response = serde_json::json!({});
    if !items.is_empty() {
        response[key] = serde_json::json!(items);
    }
    if let Some(offset) = next_offset {
        response["next_page_token"] = serde_json::json!(super::types::page_token::encode(offset));
    }
    response
}

fn filter_error(e: FilterError) -> MlflowError {
    MlflowError::invalid(e.message())
}

/// A search's query string: `filter`, `max_results`, `order_by` (repeatable), `page_token`.
#[derive(Default)]
struct SearchParams {
    filter: String,
    max_results: Option<i64>,
    order_by: Vec<String>,
    page_token: Option<String>,
}

impl SearchParams {
    fn parse(raw: Option<&str>) -> Result<SearchParams, MlflowError> {
        let mut params = SearchParams::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "filter" => params.filter = value.into_owned(),
                "max_results" => {
                    params.max_results = Some(value.trim().parse().map_err(|_| {
                        MlflowError::invalid(format!("Parameter 'max_results' must be an integer, got '{value}'."))
                    })?);
                }
                "order_by" => params.order_by.push(value.into_owned()),
                "page_token" => params.page_token = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(params)
    }

    /// `max_results` within MLflow's bounds for this search.
    fn max_results(&self, default: i64, most: i64) -> Result<i64, MlflowError> {
        let max_results = self.max_results.unwrap_or(default);
        if max_results < 1 {
            return Err(MlflowError::invalid(format!(
                "Invalid value for max_results. It must be a positive integer, but got {max_results}"
            )));
        }
        if max_results > most {
            return Err(MlflowError::invalid(format!(
                "Invalid value for request parameter max_results. It must be at most {most}, but got value \
                 {max_results}"
            )));
        }
        Ok(max_results)
    }
}

/// A model name from a request, required.
fn name(value: Option<String>) -> Result<String, MlflowError> {
    required(value.filter(|n| !n.is_empty()), "name")
}

/// A version number from a request (a string, or a number from lenient clients), required.
fn version(value: Option<serde_json::Value>) -> Result<i64, MlflowError> {
    let raw = match required(value, "version")? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    cairn_core::registry::parse_version(&raw).map_err(|e| MlflowError::invalid(e.0))
}
