//! Model versions.

use sqlx::{PgConnection, PgExecutor};

use super::{VERSION_SELECT, VersionRow};
use crate::DbError;

pub struct NewVersion<'a> {
    pub model_id: i64,
    pub version: i64,
    pub source: &'a str,
    pub storage_location: &'a str,
    /// The source run's internal id.
    pub run_id: Option<i64>,
    pub logged_model_id: Option<&'a str>,
    pub description: Option<&'a str>,
    pub user_id: &'a str,
    pub run_link: Option<&'a str>,
    pub created_by: Option<i64>,
    pub now: i64,
}

/// Inserts a version; returns its id.
pub async fn insert(conn: &mut PgConnection, new: &NewVersion<'_>) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO model_versions (model_id, version, source, storage_location, run_id, logged_model_id, \
         description, user_id, run_link, created_by, creation_time, last_updated_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
    )
    .bind(new.model_id)
    .bind(new.version)
    .bind(new.source)
    .bind(new.storage_location)
    .bind(new.run_id)
    .bind(new.logged_model_id)
    .bind(new.description)
    .bind(new.user_id)
    .bind(new.run_link)
    .bind(new.created_by)
    .bind(new.now)
    .fetch_one(conn)
    .await?)
}

/// A version by model name and number.
pub async fn get(db: impl PgExecutor<'_>, model_name: &str, version: i64) -> Result<Option<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{VERSION_SELECT} WHERE m.name = $1 AND v.version = $2")))
        .bind(model_name)
        .bind(version)
        .fetch_optional(db)
        .await?)
}

/// The version an alias of the model points at.
pub async fn by_alias(db: impl PgExecutor<'_>, model_id: i64, alias: &str) -> Result<Option<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VERSION_SELECT} JOIN model_aliases a ON a.version_id = v.id WHERE a.model_id = $1 AND a.alias = $2"
    )))
    .bind(model_id)
    .bind(alias)
    .fetch_optional(db)
    .await?)
}

/// The highest-numbered version of a model (what the reserved alias `latest` names).
pub async fn latest(db: impl PgExecutor<'_>, model_id: i64) -> Result<Option<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VERSION_SELECT} WHERE v.model_id = $1 ORDER BY v.version DESC LIMIT 1"
    )))
    .bind(model_id)
    .fetch_optional(db)
    .await?)
}

/// The latest version in each stage of several models (MLflow's `latest_versions`), by model
/// and stage. Served by the `(model_id, current_stage, version DESC)` index.
pub async fn latest_per_stage(db: impl PgExecutor<'_>, model_ids: &[i64]) -> Result<Vec<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VERSION_SELECT} WHERE v.id IN (SELECT DISTINCT ON (model_id, current_stage) id FROM model_versions \
         WHERE model_id = ANY($1) ORDER BY model_id, current_stage, version DESC) \
         ORDER BY v.model_id, v.version"
    )))
    .bind(model_ids)
    .fetch_all(db)
    .await?)
}

/// Versions of a model, newest first, those numbered below `before`.
pub async fn page_of_model(
    db: impl PgExecutor<'_>,
    model_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VERSION_SELECT} WHERE v.model_id = $1 AND ($2::bigint IS NULL OR v.version < $2) \
         ORDER BY v.version DESC LIMIT $3"
    )))
    .bind(model_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Aliases of several versions, as (version id, alias), by alias.
pub async fn aliases_of(db: impl PgExecutor<'_>, version_ids: &[i64]) -> Result<Vec<(i64, String)>, DbError> {
    Ok(sqlx::query_as("SELECT version_id, alias FROM model_aliases WHERE version_id = ANY($1) ORDER BY alias")
        .bind(version_ids)
        .fetch_all(db)
        .await?)
}

pub async fn set_description(db: impl PgExecutor<'_>, id: i64, description: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE model_versions SET description = $2, last_updated_time = $3 WHERE id = $1")
        .bind(id)
        .bind(description)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Moves a version to a stage.
pub async fn set_stage(db: impl PgExecutor<'_>, id: i64, stage: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE model_versions SET current_stage = $2, last_updated_time = $3 WHERE id = $1")
        .bind(id)
        .bind(stage)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Archives the model's other versions in `stage`, in one statement; returns their numbers.
pub async fn archive_others(
    conn: &mut PgConnection,
    model_id: i64,
    stage: &str,
    except_id: i64,
    now: i64,
) -> Result<Vec<i64>, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $4 \
         WHERE model_id = $1 AND current_stage = $2 AND id <> $3 RETURNING version",
    )
    .bind(model_id)
    .bind(stage)
    .bind(except_id)
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Deletes a version with its tags and aliases (cascades).
pub async fn delete(db: impl PgExecutor<'_>, id: i64) -> Result<(), DbError> {
    sqlx::query("DELETE FROM model_versions WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// The latest metrics of the versions' source runs, as (version id, key, value), by key.
pub async fn source_run_metrics(
    db: impl PgExecutor<'_>,
    version_ids: &[i64],
) -> Result<Vec<(i64, String, f64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT v.id, l.key, l.value FROM model_versions v JOIN latest_metrics l ON l.run_id = v.run_id \
         WHERE v.id = ANY($1) ORDER BY l.key",
    )
    .bind(version_ids)
    .fetch_all(db)
    .await?)
}
