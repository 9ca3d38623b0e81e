//! Experiments.

use cairn_core::search::{ExperimentFilter, ExperimentOrderKey, OrderBy};
use cairn_core::tracking::{KeyKind, validate_experiment_name, validate_key, validate_tag_value};
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::tracking::experiments::{self as repo, ExperimentRow};
use cairn_db::tracking::search::{self, ExperimentQuery, ViewType};
use cairn_db::tracking::{KeyValue, now_millis};
use serde_json::json;

use super::{Result, TrackingError};
use crate::audit::Actor;

pub fn parse_experiment_id(raw: &str) -> Result<i64> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| TrackingError::NotFound(format!("Could not find experiment with ID {raw}")))
}

pub async fn create_experiment(
    db: &Db,
    actor: &Actor,
    name: &str,
    artifact_location: Option<&str>,
    tags: &[KeyValue],
) -> Result<ExperimentRow> {
    validate_experiment_name(name)?;
    for tag in tags {
        validate_key(KeyKind::Tag, &tag.key)?;
        validate_tag_value(&tag.key, &tag.value)?;
    }
    let location = artifact_location.filter(|l| !l.is_empty());
    let mut tx = db.pool.begin().await?;
    let row = repo::insert(&mut tx, name, location, actor.user_id, now_millis()).await?;
    if !tags.is_empty() {
        repo::set_tags(&mut *tx, row.id, tags).await?;
    }
    let event = actor.event("experiment.create", format!("experiment:{}", row.id), json!({"name": name}));
    audit::append_in(&mut tx, event).await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn get_experiment(db: &Db, id: i64) -> Result<(ExperimentRow, Vec<KeyValue>)> {
    let row = repo::get(&db.pool, id)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("No Experiment with id={id} exists")))?;
    let tags = repo::tags_of(&db.pool, &[id]).await?.into_iter().map(|(_, t)| t).collect();
    Ok((row, tags))
}

pub async fn get_experiment_by_name(db: &Db, name: &str) -> Result<(ExperimentRow, Vec<KeyValue>)> {
    let row = repo::get_by_name(&db.pool, name)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("Could not find experiment with name '{name}'")))?;
    let tags = repo::tags_of(&db.pool, &[row.id]).await?.into_iter().map(|(_, t)| t).collect();
    Ok((row, tags))
}

async fn require_experiment(db: &Db, id: i64) -> Result<ExperimentRow> {
    repo::get(&db.pool, id).await?.ok_or_else(|| TrackingError::NotFound(format!("No Experiment with id={id} exists")))
}

pub async fn rename_experiment(db: &Db, actor: &Actor, id: i64, new_name: &str) -> Result<()> {
    validate_experiment_name(new_name)?;
    let existing = require_experiment(db, id).await?;
    if existing.lifecycle_stage != "active" {
        return Err(TrackingError::Invalid(format!("Cannot rename a non-active experiment {id}.")));
    }
    let mut tx = db.pool.begin().await?;
    repo::rename(&mut *tx, id, new_name, now_millis()).await?;
    let details = json!({"from": existing.name, "to": new_name});
    audit::append_in(&mut tx, actor.event("experiment.rename", format!("experiment:{id}"), details)).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes (`deleted = true`) or restores an experiment with its runs.
pub async fn set_experiment_deleted(db: &Db, actor: &Actor, id: i64, deleted: bool) -> Result<()> {
    let existing = require_experiment(db, id).await?;
    if deleted && id == 0 {
        return Err(TrackingError::Invalid(
            "Cannot delete the default experiment '0'. This is an internally reserved experiment.".into(),
        ));
    }
    let (stage, action) = if deleted { ("deleted", "experiment.delete") } else { ("active", "experiment.restore") };
    let mut tx = db.pool.begin().await?;
    repo::set_lifecycle(&mut tx, id, stage, now_millis()).await?;
    let details = json!({"name": existing.name});
    audit::append_in(&mut tx, actor.event(action, format!("experiment:{id}"), details)).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_experiment_tag(db: &Db, id: i64, key: &str, value: &str) -> Result<()> {
    validate_key(KeyKind::Tag, key)?;
    validate_tag_value(key, value)?;
    let existing = require_experiment(db, id).await?;
    if existing.lifecycle_stage != "active" {
        return Err(TrackingError::Invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is {}.",
            existing.lifecycle_stage
        )));
    }
    repo::set_tag(&db.pool, id, key, value).await?;
    Ok(())
}

pub async fn delete_experiment_tag(db: &Db, id: i64, key: &str) -> Result<()> {
    require_experiment(db, id).await?;
    if !repo::delete_tag(&db.pool, id, key).await? {
        return Err(TrackingError::NotFound(format!("No tag with name: {key} in experiment with id {id}")));
    }
    Ok(())
}

pub struct ExperimentSearch<'a> {
    pub filter: &'a ExperimentFilter,
    pub order_by: &'a [OrderBy<ExperimentOrderKey>],
    pub view: ViewType,
    pub offset: i64,
    pub max_results: i64,
}

/// One page of experiments with their tags, and whether more follow.
pub async fn search_experiments(
    db: &Db,
    query: &ExperimentSearch<'_>,
) -> Result<(Vec<(ExperimentRow, Vec<KeyValue>)>, bool)> {
    let rows = search::experiments(
        &db.pool,
        &ExperimentQuery {
            filter: query.filter,
            order_by: query.order_by,
            view: query.view,
            offset: query.offset,
            limit: query.max_results + 1,
        },
    )
    .await?;
    let more = rows.len() as i64 > query.max_results;
    let rows: Vec<ExperimentRow> = rows.into_iter().take(query.max_results as usize).collect();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = repo::tags_of(&db.pool, &ids).await?;
    let page = rows
        .into_iter()
        .map(|row| {
            let own = tags.extract_if(.., |(id, _)| *id == row.id).map(|(_, t)| t).collect();
            (row, own)
        })
        .collect();
    Ok((page, more))
}
