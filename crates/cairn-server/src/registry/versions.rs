//! Model versions: register, read, describe, move between stages, tag, delete, search.

use cairn_core::registry::Stage;
use cairn_core::search::{ModelVersionFilter, ModelVersionOrderKey, OrderBy};
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::registry::search::{self, VersionSearch};
use cairn_db::registry::versions::NewVersion;
use cairn_db::registry::{self as repo, TagOwner, models as model_repo, versions as version_repo};
use cairn_db::tracking::{KeyValue, now_millis};
use serde_json::json;
use uuid::Uuid;

use super::{
    ModelVersion, lock_model, lock_version, model_not_found, source, validate_tags, version_not_found, version_target,
    with_version_details,
};
use crate::audit::Actor;
use crate::tracking::{Result, TrackingError};

/// What `model-versions/create` asks for.
pub struct NewVersionRequest<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub run_id: Option<Uuid>,
    /// The MLflow 3 logged model being registered.
    pub model_id: Option<&'a str>,
    pub tags: &'a [KeyValue],
    pub description: Option<&'a str>,
    pub run_link: Option<&'a str>,
}

/// Registers a new version of an existing model; it is READY at once (nothing is copied).
pub async fn create_version(db: &Db, actor: &Actor, request: NewVersionRequest<'_>) -> Result<ModelVersion> {
    let name = request.name;
    cairn_core::registry::validate_model_name(name)?;
    validate_tags(request.tags)?;
    let resolved = source::resolve(db, request.source, request.run_id, request.model_id).await?;
    let now = now_millis();
    let mut tx = db.pool.begin().await?;
    let model_id = lock_model(&mut tx, name).await?;
    let version = model_repo::next_version(&mut tx, model_id, now).await?;
    let new = NewVersion {
        model_id,
        version,
        source: &resolved.source,
        storage_location: &resolved.storage_location,
        run_id: resolved.run_id,
        logged_model_id: resolved.logged_model_id.as_deref(),
        description: request.description.filter(|d| !d.is_empty()),
        user_id: &actor.name,
        run_link: request.run_link.filter(|l| !l.is_empty()),
        created_by: actor.user_id,
        now,
    };
    let id = version_repo::insert(&mut tx, &new).await?;
    if !request.tags.is_empty() {
        repo::set_tags(&mut *tx, TagOwner::Version, id, request.tags).await?;
    }
    let details = json!({"source": resolved.source, "storage_location": resolved.storage_location});
    audit::append_in(&mut tx, actor.event("model_version.create", version_target(name, version), details)).await?;
    tx.commit().await?;
    get_version(db, name, version).await
}

pub async fn get_version(db: &Db, name: &str, version: i64) -> Result<ModelVersion> {
    let row = version_repo::get(&db.pool, name, version).await?.ok_or_else(|| version_not_found(name, version))?;
    let mut versions = with_version_details(db, vec![row]).await?;
    versions.pop().ok_or_else(|| version_not_found(name, version))
}

/// Where the version's artifacts are, for the client to download.
pub async fn download_uri(db: &Db, name: &str, version: i64) -> Result<String> {
    let row = version_repo::get(&db.pool, name, version).await?.ok_or_else(|| version_not_found(name, version))?;
    Ok(row.storage_location)
}

pub async fn update_version_description(
    db: &Db,
    actor: &Actor,
    name: &str,
    version: i64,
    description: &str,
) -> Result<ModelVersion> {
    let mut tx = db.pool.begin().await?;
    let row = lock_version(&mut tx, name, version).await?;
    version_repo::set_description(&mut *tx, row.id, description, now_millis()).await?;
    let details = json!({"description": description});
    audit::append_in(&mut tx, actor.event("model_version.update", version_target(name, version), details)).await?;
    tx.commit().await?;
    get_version(db, name, version).await
}

/// Moves a version to a legacy stage; with `archive_existing`, the model's other versions in
/// that stage (Staging or Production only) move to Archived in the same transaction.
pub async fn transition_stage(
    db: &Db,
    actor: &Actor,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
) -> Result<ModelVersion> {
    if archive_existing && !stage.is_active() {
        return Err(TrackingError::Invalid(format!(
            "Model version transition cannot archive existing model versions because '{}' is not an Active stage. \
             Valid stages are ['Staging', 'Production']",
            stage.as_str()
        )));
    }
    let now = now_millis();
    let mut tx = db.pool.begin().await?;
    let row = lock_version(&mut tx, name, version).await?;
    let archived = if archive_existing {
        version_repo::archive_others(&mut tx, row.model_id, stage.as_str(), row.id, now).await?
    } else {
        Vec::new()
    };
    version_repo::set_stage(&mut *tx, row.id, stage.as_str(), now).await?;
    model_repo::touch(&mut *tx, row.model_id, now).await?;
    let details = json!({"from": row.current_stage, "to": stage.as_str(), "archived_versions": archived});
    let event = actor.event("model_version.transition_stage", version_target(name, version), details);
    audit::append_in(&mut tx, event).await?;
    tx.commit().await?;
    get_version(db, name, version).await
}

/// Deletes a version with its tags and aliases; its number is not reused.
pub async fn delete_version(db: &Db, actor: &Actor, name: &str, version: i64) -> Result<()> {
    let now = now_millis();
    let mut tx = db.pool.begin().await?;
    let row = lock_version(&mut tx, name, version).await?;
    version_repo::delete(&mut *tx, row.id).await?;
    model_repo::touch(&mut *tx, row.model_id, now).await?;
    let details = json!({"source": row.source});
    audit::append_in(&mut tx, actor.event("model_version.delete", version_target(name, version), details)).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_version_tag(db: &Db, actor: &Actor, name: &str, version: i64, key: &str, value: &str) -> Result<()> {
    let tag = KeyValue { key: key.to_owned(), value: value.to_owned() };
    validate_tags(std::slice::from_ref(&tag))?;
    let mut tx = db.pool.begin().await?;
    let row = lock_version(&mut tx, name, version).await?;
    repo::set_tags(&mut *tx, TagOwner::Version, row.id, &[tag]).await?;
    let details = json!({"key": key, "value": value});
    audit::append_in(&mut tx, actor.event("model_version.set_tag", version_target(name, version), details)).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a tag; one that is not there is no error (the version must exist).
pub async fn delete_version_tag(db: &Db, actor: &Actor, name: &str, version: i64, key: &str) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    let row = lock_version(&mut tx, name, version).await?;
    if repo::delete_tag(&mut *tx, TagOwner::Version, row.id, key).await? {
        let details = json!({"key": key});
        let event = actor.event("model_version.delete_tag", version_target(name, version), details);
        audit::append_in(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The latest version in each of the given stages (all stages when none are given).
pub async fn latest_versions(db: &Db, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
    let model = model_repo::get_by_name(&db.pool, name).await?.ok_or_else(|| model_not_found(name))?;
    let mut rows = version_repo::latest_per_stage(&db.pool, &[model.id]).await?;
    if !stages.is_empty() {
        rows.retain(|row| stages.iter().any(|s| s.as_str() == row.current_stage));
    }
    with_version_details(db, rows).await
}

pub struct VersionSearchQuery<'a> {
    /// Only versions of models in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
    pub filter: &'a ModelVersionFilter,
    pub order_by: &'a [OrderBy<ModelVersionOrderKey>],
    pub offset: i64,
    pub max_results: i64,
}

/// One page of a version search, and whether more follow.
pub async fn search_versions(db: &Db, query: &VersionSearchQuery<'_>) -> Result<(Vec<ModelVersion>, bool)> {
    let search = VersionSearch {
        projects: query.projects,
        filter: query.filter,
        order_by: query.order_by,
        offset: query.offset,
        limit: query.max_results + 1,
    };
    let mut rows = search::versions(&db.pool, &search).await?;
    let more = rows.len() as i64 > query.max_results;
    rows.truncate(usize::try_from(query.max_results).unwrap_or(0));
    Ok((with_version_details(db, rows).await?, more))
}

/// A page of a model's versions, newest first, and the version to continue below.
pub async fn list_versions(
    db: &Db,
    name: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<ModelVersion>, Option<i64>)> {
    let model = model_repo::get_by_name(&db.pool, name).await?.ok_or_else(|| model_not_found(name))?;
    let mut rows = version_repo::page_of_model(&db.pool, model.id, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more { rows.last().map(|r| r.version) } else { None };
    Ok((with_version_details(db, rows).await?, next))
}

/// The latest metrics of the versions' source runs, as (version id, key, value), by key.
pub async fn source_run_metrics(db: &Db, versions: &[ModelVersion]) -> Result<Vec<(i64, String, f64)>> {
    let ids: Vec<i64> = versions.iter().map(|v| v.row.id).collect();
    Ok(version_repo::source_run_metrics(&db.pool, &ids).await?)
}
