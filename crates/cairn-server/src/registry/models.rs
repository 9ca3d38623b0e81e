//! Registered models: create, read, rename, describe, tag, delete, search, and aliases.

use cairn_core::registry::{validate_alias, validate_model_name, validate_new_alias};
use cairn_core::search::{OrderBy, RegisteredModelFilter, RegisteredModelOrderKey};
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::registry::search::{self, ModelSearch};
use cairn_db::registry::{self as repo, TagOwner, models as model_repo, versions as version_repo};
use cairn_db::tracking::{KeyValue, now_millis};
use serde_json::json;

use super::{
    ModelVersion, RegisteredModel, lock_model, model_not_found, model_target, validate_tags, version_not_found,
    version_target, with_model_details, with_version_details,
};
use crate::audit::Actor;
use crate::tracking::{Result, TrackingError};

pub async fn create_model(
    db: &Db,
    actor: &Actor,
    name: &str,
    description: Option<&str>,
    tags: &[KeyValue],
    project_id: i64,
) -> Result<RegisteredModel> {
    validate_model_name(name)?;
    validate_tags(tags)?;
    let description = description.filter(|d| !d.is_empty());
    let mut tx = db.pool.begin().await?;
    let id = model_repo::insert(&mut tx, name, description, project_id, actor.user_id, now_millis()).await?;
    if !tags.is_empty() {
        repo::set_tags(&mut *tx, TagOwner::Model, id, tags).await?;
    }
    audit::append_in(&mut tx, actor.event("registered_model.create", model_target(name), json!({}))).await?;
    tx.commit().await?;
    get_model(db, name).await
}

pub async fn get_model(db: &Db, name: &str) -> Result<RegisteredModel> {
    let row = model_repo::get_by_name(&db.pool, name).await?.ok_or_else(|| model_not_found(name))?;
    let mut models = with_model_details(db, vec![row]).await?;
    models.pop().ok_or_else(|| model_not_found(name))
}

pub async fn rename_model(db: &Db, actor: &Actor, name: &str, new_name: &str) -> Result<RegisteredModel> {
    if new_name.trim().is_empty() {
        return Err(TrackingError::Invalid("Missing value for required parameter 'new_name'.".into()));
    }
    validate_model_name(new_name)?;
    let mut tx = db.pool.begin().await?;
    let id = lock_model(&mut tx, name).await?;
    model_repo::rename(&mut tx, id, new_name, now_millis()).await?;
    let details = json!({"from": name, "to": new_name});
    audit::append_in(&mut tx, actor.event("registered_model.rename", model_target(new_name), details)).await?;
    tx.commit().await?;
    get_model(db, new_name).await
}

pub async fn update_model_description(
    db: &Db,
    actor: &Actor,
    name: &str,
    description: &str,
) -> Result<RegisteredModel> {
    let mut tx = db.pool.begin().await?;
    let id = lock_model(&mut tx, name).await?;
    model_repo::set_description(&mut *tx, id, description, now_millis()).await?;
    let details = json!({"description": description});
    audit::append_in(&mut tx, actor.event("registered_model.update", model_target(name), details)).await?;
    tx.commit().await?;
    get_model(db, name).await
}

/// Deletes the model with all its versions, tags and aliases.
pub async fn delete_model(db: &Db, actor: &Actor, name: &str) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    let id = lock_model(&mut tx, name).await?;
    let deployed = cairn_db::deployments::of_model(&mut *tx, id).await?;
    if !deployed.is_empty() {
        let names: Vec<&str> = deployed.iter().map(|d| d.name.as_str()).collect();
        return Err(TrackingError::Invalid(format!(
            "model {name} is deployed ({}): delete those deployments first",
            names.join(", ")
        )));
    }
    model_repo::delete(&mut *tx, id).await?;
    audit::append_in(&mut tx, actor.event("registered_model.delete", model_target(name), json!({}))).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_model_tag(db: &Db, actor: &Actor, name: &str, key: &str, value: &str) -> Result<()> {
    validate_model_name(name)?;
    let tag = KeyValue { key: key.to_owned(), value: value.to_owned() };
    validate_tags(std::slice::from_ref(&tag))?;
    let mut tx = db.pool.begin().await?;
    let id = lock_model(&mut tx, name).await?;
    repo::set_tags(&mut *tx, TagOwner::Model, id, &[tag]).await?;
    let details = json!({"key": key, "value": value});
    audit::append_in(&mut tx, actor.event("registered_model.set_tag", model_target(name), details)).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a tag; as in MLflow, a tag that is not there is no error (the model must exist).
pub async fn delete_model_tag(db: &Db, actor: &Actor, name: &str, key: &str) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    let id = lock_model(&mut tx, name).await?;
    if repo::delete_tag(&mut *tx, TagOwner::Model, id, key).await? {
        let details = json!({"key": key});
        audit::append_in(&mut tx, actor.event("registered_model.delete_tag", model_target(name), details)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Points `alias` at a version of the model (moving it from another version).
pub async fn set_alias(db: &Db, actor: &Actor, name: &str, alias: &str, version: i64) -> Result<()> {
    validate_model_name(name)?;
    validate_new_alias(alias)?;
    let mut tx = db.pool.begin().await?;
    let model_id = lock_model(&mut tx, name).await?;
    let target = version_repo::get(&mut *tx, name, version).await?.ok_or_else(|| version_not_found(name, version))?;
    let before = model_repo::set_alias(&mut tx, model_id, alias, target.id).await?;
    model_repo::touch(&mut *tx, model_id, now_millis()).await?;
    let details = json!({"alias": alias, "version": version, "previous_version": before});
    audit::append_in(&mut tx, actor.event("model_alias.set", version_target(name, version), details)).await?;
    // Deployments following the alias get their new revision in the same transaction.
    let moved = crate::deployments::follow_alias_in(&mut tx, actor, model_id, alias, target.id).await?;
    tx.commit().await?;
    if moved > 0 {
        crate::deployments::wake();
    }
    Ok(())
}

/// Removes an alias; one that is not there is no error (the model must exist).
pub async fn delete_alias(db: &Db, actor: &Actor, name: &str, alias: &str) -> Result<()> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    let mut tx = db.pool.begin().await?;
    let model_id = lock_model(&mut tx, name).await?;
    if let Some(version) = model_repo::delete_alias(&mut tx, model_id, alias).await? {
        model_repo::touch(&mut *tx, model_id, now_millis()).await?;
        let details = json!({"alias": alias, "version": version});
        audit::append_in(&mut tx, actor.event("model_alias.delete", version_target(name, version), details)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The version an alias points at; `latest` (any case) is the highest version. An unknown
/// alias is an invalid parameter, as in MLflow, not a missing resource.
pub async fn get_version_by_alias(db: &Db, name: &str, alias: &str) -> Result<ModelVersion> {
    validate_model_name(name)?;
    validate_alias(alias)?;
    let model = model_repo::get_by_name(&db.pool, name).await?.ok_or_else(|| model_not_found(name))?;
    let row = if alias.eq_ignore_ascii_case("latest") {
        version_repo::latest(&db.pool, model.id)
            .await?
            .ok_or_else(|| TrackingError::NotFound(format!("Latest version not found for model {name}.")))?
    } else {
        version_repo::by_alias(&db.pool, model.id, alias)
            .await?
            .ok_or_else(|| TrackingError::Invalid(format!("Registered model alias {alias} not found.")))?
    };
    let mut versions = with_version_details(db, vec![row]).await?;
    versions.pop().ok_or_else(|| model_not_found(name))
}

pub struct ModelSearchQuery<'a> {
    /// Only models in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
    pub filter: &'a RegisteredModelFilter,
    pub order_by: &'a [OrderBy<RegisteredModelOrderKey>],
    pub offset: i64,
    pub max_results: i64,
}

/// One page of a model search, and whether more follow.
pub async fn search_models(db: &Db, query: &ModelSearchQuery<'_>) -> Result<(Vec<RegisteredModel>, bool)> {
    let search = ModelSearch {
        projects: query.projects,
        filter: query.filter,
        order_by: query.order_by,
        offset: query.offset,
        limit: query.max_results + 1,
    };
    let mut rows = search::models(&db.pool, &search).await?;
    let more = rows.len() as i64 > query.max_results;
    rows.truncate(usize::try_from(query.max_results).unwrap_or(0));
    Ok((with_model_details(db, rows).await?, more))
}

/// One page of models by name (those in `projects` after `after`; None: every project),
/// and the name to continue after.
pub async fn list_models(
    db: &Db,
    projects: Option<&[i64]>,
    name_like: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<RegisteredModel>, Option<String>)> {
    let mut rows = model_repo::page(&db.pool, projects, name_like, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more { rows.last().map(|r| r.name.clone()) } else { None };
    Ok((with_model_details(db, rows).await?, next))
}
