//! Model registry rules: registered models, versions, tags, aliases and the legacy stages.
//! Used by the MLflow-compatible API, the native API and the dashboard; every change runs in
//! one transaction that also appends its audit event (with the actor), and changes to one
//! model serialise on its row.
//!
//! Errors are the tracking service's [`TrackingError`]: the registry answers with the same
//! kinds of refusal (invalid, not found, already exists) and every surface already maps them.

mod models;
mod source;
mod versions;

pub use models::*;
pub use versions::*;

use cairn_db::Db;
use cairn_db::registry::{self as repo, models as model_repo, versions as version_repo};
use cairn_db::registry::{AliasRow, ModelRow, TagOwner, VersionRow};
use cairn_db::tracking::KeyValue;
use sqlx::PgConnection;

use crate::tracking::{Result, TrackingError};

/// A registered model with its tags, aliases and the latest version in each stage.
#[derive(Debug, Clone)]
pub struct RegisteredModel {
    pub row: ModelRow,
    pub tags: Vec<KeyValue>,
    /// (alias, version number), by alias.
    pub aliases: Vec<(String, i64)>,
    pub latest_versions: Vec<ModelVersion>,
}

/// A model version with its tags and aliases.
#[derive(Debug, Clone)]
pub struct ModelVersion {
    pub row: VersionRow,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
}

fn model_not_found(name: &str) -> TrackingError {
    TrackingError::NotFound(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> TrackingError {
    TrackingError::NotFound(format!("Model Version (name={name}, version={version}) not found"))
}

/// The audit target of a model, and of one of its versions (the lineage node ids).
fn model_target(name: &str) -> String {
    format!("model:{name}")
}

fn version_target(name: &str, version: i64) -> String {
    format!("model:{name}/{version}")
}

/// Locks the model for the rest of the transaction; its id.
async fn lock_model(conn: &mut PgConnection, name: &str) -> Result<i64> {
    model_repo::lock_by_name(conn, name).await?.ok_or_else(|| model_not_found(name))
}

/// Locks the model and reads one of its versions.
async fn lock_version(conn: &mut PgConnection, name: &str, version: i64) -> Result<VersionRow> {
    lock_model(conn, name).await?;
    version_repo::get(&mut *conn, name, version).await?.ok_or_else(|| version_not_found(name, version))
}

/// Versions with their tags and aliases, in the order given: one query per table for all.
async fn with_version_details(db: &Db, rows: Vec<VersionRow>) -> Result<Vec<ModelVersion>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = repo::tags_of(&db.pool, TagOwner::Version, &ids).await?;
    let mut aliases = version_repo::aliases_of(&db.pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own_tags = tags.extract_if(.., |(id, _)| *id == row.id).map(|(_, t)| t).collect();
            let own_aliases = aliases.extract_if(.., |(id, _)| *id == row.id).map(|(_, a)| a).collect();
            ModelVersion { row, tags: own_tags, aliases: own_aliases }
        })
        .collect())
}

/// Models with their tags, aliases and latest versions, in the order given.
async fn with_model_details(db: &Db, rows: Vec<ModelRow>) -> Result<Vec<RegisteredModel>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = repo::tags_of(&db.pool, TagOwner::Model, &ids).await?;
    let mut aliases: Vec<AliasRow> = model_repo::aliases_of(&db.pool, &ids).await?;
    let mut latest = with_version_details(db, version_repo::latest_per_stage(&db.pool, &ids).await?).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            RegisteredModel {
                tags: tags.extract_if(.., |(owner, _)| *owner == id).map(|(_, t)| t).collect(),
                aliases: aliases.extract_if(.., |a| a.model_id == id).map(|a| (a.alias, a.version)).collect(),
                latest_versions: latest.extract_if(.., |v| v.row.model_id == id).collect(),
                row,
            }
        })
        .collect())
}

fn validate_tags(tags: &[KeyValue]) -> Result<()> {
    use cairn_core::tracking::{KeyKind, validate_key, validate_tag_value};
    for tag in tags {
        validate_key(KeyKind::Tag, &tag.key)?;
        validate_tag_value(&tag.key, &tag.value)?;
    }
    Ok(())
}
