//! MLflow 3 logged models.

use cairn_db::Db;
use cairn_db::tracking::logged_models::{self as repo, LoggedModelRow, NewLoggedModel};
use cairn_db::tracking::runs as run_repo;
use cairn_db::tracking::{experiments, now_millis};
use uuid::Uuid;

use super::{Result, TrackingError};
use crate::audit::Actor;

pub struct NewModelRequest<'a> {
    pub experiment_id: i64,
    pub name: Option<&'a str>,
    pub source_run_id: Option<Uuid>,
    pub model_type: Option<&'a str>,
    pub tags: serde_json::Value,
    pub params: serde_json::Value,
}

pub async fn create_logged_model(db: &Db, actor: &Actor, request: NewModelRequest<'_>) -> Result<LoggedModelRow> {
    let experiment = experiments::get(&db.pool, request.experiment_id)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("No Experiment with id={} exists", request.experiment_id)))?;
    let source_run = match request.source_run_id {
        Some(id) => Some(
            run_repo::get(&db.pool, id)
                .await?
                .ok_or_else(|| TrackingError::NotFound(format!("Run with id={} not found", id.simple())))?
                .id,
        ),
        None => None,
    };
    let model_id = format!("m-{}", Uuid::new_v4().simple());
    let name = request
        .name
        .filter(|n| !n.is_empty())
        .map_or_else(|| cairn_core::tracking::generated_run_name(rand::random()), str::to_owned);
    let location = format!("{}/models/{model_id}/artifacts", experiment.artifact_location.trim_end_matches('/'));
    let new = NewLoggedModel {
        model_id: &model_id,
        experiment_id: experiment.id,
        name: &name,
        source_run_id: source_run,
        model_type: request.model_type,
        artifact_location: &location,
        now: now_millis(),
        tags: request.tags,
        params: request.params,
        created_by: actor.user_id,
    };
    repo::insert(&db.pool, &new).await?;
    get_logged_model(db, &model_id).await
}

pub async fn get_logged_model(db: &Db, model_id: &str) -> Result<LoggedModelRow> {
    repo::get(&db.pool, model_id)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("Logged model with ID '{model_id}' not found.")))
}

pub async fn finalize_logged_model(db: &Db, model_id: &str, status: &str) -> Result<LoggedModelRow> {
    if !matches!(status, "LOGGED_MODEL_READY" | "LOGGED_MODEL_UPLOAD_FAILED" | "LOGGED_MODEL_PENDING") {
        return Err(TrackingError::Invalid(format!("Invalid logged model status '{status}'")));
    }
    if !repo::set_status(&db.pool, model_id, status, now_millis()).await? {
        return Err(TrackingError::NotFound(format!("Logged model with ID '{model_id}' not found.")));
    }
    get_logged_model(db, model_id).await
}

pub async fn set_logged_model_tags(db: &Db, model_id: &str, tags: serde_json::Value) -> Result<()> {
    if !repo::merge_tags(&db.pool, model_id, &tags, now_millis()).await? {
        return Err(TrackingError::NotFound(format!("Logged model with ID '{model_id}' not found.")));
    }
    Ok(())
}

pub async fn search_logged_models(
    db: &Db,
    experiment_ids: &[i64],
    name: Option<&str>,
    source_run_id: Option<Uuid>,
    max_results: i64,
) -> Result<Vec<LoggedModelRow>> {
    let run = match source_run_id {
        Some(id) => match run_repo::get(&db.pool, id).await? {
            Some(run) => Some(run.id),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    Ok(repo::search(&db.pool, experiment_ids, name, run, max_results).await?)
}
