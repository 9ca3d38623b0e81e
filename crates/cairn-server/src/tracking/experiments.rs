//! Experiments.

use cairn_core::search::{ExperimentFilter, ExperimentOrderKey, OrderBy};
use cairn_core::tracking::{KeyKind, validate_experiment_name, validate_key, validate_tag_value};
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::tracking::experiments::{self as repo, ExperimentRow};
use cairn_db::tracking::search::{self, ExperimentQuery, ViewType};
use cairn_db::tracking::{KeyValue, now_millis};
use serde_json::json;
use sqlx::PgConnection;

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
    project_id: i64,
) -> Result<ExperimentRow> {
    validate_experiment_name(name)?;
    validate_tags(tags)?;
    let location = artifact_location.filter(|l| !l.is_empty());
    let mut tx = db.pool.begin().await?;
    let row = repo::insert(&mut tx, name, location, project_id, actor.user_id, now_millis()).await?;
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
    rename_in(&mut tx, actor, &existing, new_name).await?;
    tx.commit().await?;
    Ok(())
}

fn validate_tags(tags: &[KeyValue]) -> Result<()> {
    for tag in tags {
        validate_key(KeyKind::Tag, &tag.key)?;
        validate_tag_value(&tag.key, &tag.value)?;
    }
    Ok(())
}

/// Renames an experiment and records who did it.
async fn rename_in(conn: &mut PgConnection, actor: &Actor, existing: &ExperimentRow, new_name: &str) -> Result<()> {
    let id = existing.id;
    repo::rename(&mut *conn, id, new_name, now_millis()).await?;
    let details = json!({"from": existing.name, "to": new_name});
    audit::append_in(conn, actor.event("experiment.rename", format!("experiment:{id}"), details)).await?;
    Ok(())
}

/// A change to an experiment: a new name, tags to set, tags to remove.
#[derive(Default)]
pub struct ExperimentChange<'a> {
    pub name: Option<&'a str>,
    pub set_tags: Vec<KeyValue>,
    pub remove_tags: Vec<String>,
}

/// Renames and retags an active experiment in one transaction; a rename is audited, and
/// removing a tag that is not there is no error. Returns whether the name changed.
pub async fn update_experiment(db: &Db, actor: &Actor, id: i64, change: ExperimentChange<'_>) -> Result<bool> {
    if let Some(name) = change.name {
        validate_experiment_name(name)?;
    }
    validate_tags(&change.set_tags)?;
    let existing = require_experiment(db, id).await?;
    if existing.lifecycle_stage != "active" {
        return Err(TrackingError::Invalid(format!("Cannot change a non-active experiment {id}.")));
    }
    let mut tx = db.pool.begin().await?;
    let renamed = match change.name {
        Some(name) if name != existing.name => {
            rename_in(&mut tx, actor, &existing, name).await?;
            true
        }
        _ => false,
    };
    if !change.set_tags.is_empty() {
        repo::set_tags(&mut *tx, id, &change.set_tags).await?;
    }
    for key in &change.remove_tags {
        repo::delete_tag(&mut *tx, id, key).await?;
    }
    tx.commit().await?;
    Ok(renamed)
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
    /// Only experiments in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
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
            projects: query.projects,
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
    Ok((with_tags(db, rows).await?, more))
}

/// Experiments with their tags, in the order given.
async fn with_tags(db: &Db, rows: Vec<ExperimentRow>) -> Result<Vec<(ExperimentRow, Vec<KeyValue>)>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = repo::tags_of(&db.pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = tags.extract_if(.., |(id, _)| *id == row.id).map(|(_, t)| t).collect();
            (row, own)
        })
        .collect())
}

/// One page of the experiment list, newest first.
pub struct ExperimentPage<'a> {
    /// Only experiments in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
    /// A case-insensitive SQL `LIKE` pattern on the name.
    pub name_like: Option<&'a str>,
    pub view: ViewType,
    /// The last experiment of the previous page.
    pub after: Option<i64>,
    pub limit: i64,
}

/// A page of experiments with their tags and, when more follow, the id to continue after.
pub async fn list_experiments(
    db: &Db,
    page: &ExperimentPage<'_>,
) -> Result<(Vec<(ExperimentRow, Vec<KeyValue>)>, Option<i64>)> {
    let mut rows =
        repo::page(&db.pool, page.projects, page.name_like, page.view.stages(), page.after, page.limit + 1).await?;
    let more = rows.len() as i64 > page.limit;
    rows.truncate(usize::try_from(page.limit).unwrap_or(0));
    let next = if more { rows.last().map(|r| r.id) } else { None };
    Ok((with_tags(db, rows).await?, next))
}
