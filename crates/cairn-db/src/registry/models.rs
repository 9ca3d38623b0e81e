//! Registered models and their aliases.

use sqlx::{PgConnection, PgExecutor};

use super::{AliasRow, MODEL_SELECT, ModelRow};
use crate::DbError;

fn taken(name: &str) -> DbError {
    DbError::Conflict(format!("Registered Model (name={name}) already exists."))
}

/// Maps a unique violation on the name to [`DbError::Conflict`].
fn name_conflict(e: sqlx::Error, name: &str) -> DbError {
    let err = DbError::from(e);
    if err.is_unique_violation() { taken(name) } else { err }
}

pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    description: Option<&str>,
    project_id: i64,
    created_by: Option<i64>,
    now: i64,
) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "INSERT INTO registered_models (name, description, creation_time, last_updated_time, created_by, project_id) \
         VALUES ($1, $2, $3, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(now)
    .bind(created_by)
    .bind(project_id)
    .fetch_one(conn)
    .await
    .map_err(|e| name_conflict(e, name))
}

pub async fn get_by_name(db: impl PgExecutor<'_>, name: &str) -> Result<Option<ModelRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{MODEL_SELECT} WHERE m.name = $1")))
        .bind(name)
        .fetch_optional(db)
        .await?)
}

/// The model's id, its row locked until the transaction ends: changes to one model (new
/// versions, stage transitions, aliases) serialise on it.
pub async fn lock_by_name(conn: &mut PgConnection, name: &str) -> Result<Option<i64>, DbError> {
    Ok(sqlx::query_scalar("SELECT id FROM registered_models WHERE name = $1 FOR UPDATE")
        .bind(name)
        .fetch_optional(conn)
        .await?)
}

pub async fn rename(conn: &mut PgConnection, id: i64, new_name: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE registered_models SET name = $2, last_updated_time = $3 WHERE id = $1")
        .bind(id)
        .bind(new_name)
        .bind(now)
        .execute(conn)
        .await
        .map_err(|e| name_conflict(e, new_name))?;
    Ok(())
}

pub async fn set_description(db: impl PgExecutor<'_>, id: i64, description: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE registered_models SET description = $2, last_updated_time = $3 WHERE id = $1")
        .bind(id)
        .bind(description)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks the model as changed (a version, tag or alias of it changed).
pub async fn touch(db: impl PgExecutor<'_>, id: i64, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE registered_models SET last_updated_time = $2 WHERE id = $1 AND last_updated_time < $2")
        .bind(id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes the model with its versions, tags and aliases (cascades).
pub async fn delete(db: impl PgExecutor<'_>, id: i64) -> Result<(), DbError> {
    sqlx::query("DELETE FROM registered_models WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Draws the next version number of a locked model (numbers are never reused).
pub async fn next_version(conn: &mut PgConnection, id: i64, now: i64) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE registered_models SET last_version = last_version + 1, last_updated_time = $2 WHERE id = $1 \
         RETURNING last_version",
    )
    .bind(id)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Aliases of several models, by model and alias.
pub async fn aliases_of(db: impl PgExecutor<'_>, model_ids: &[i64]) -> Result<Vec<AliasRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT a.model_id, a.alias, v.version FROM model_aliases a JOIN model_versions v ON v.id = a.version_id \
         WHERE a.model_id = ANY($1) ORDER BY a.model_id, a.alias",
    )
    .bind(model_ids)
    .fetch_all(db)
    .await?)
}

/// Points an alias at a version, moving it if it pointed elsewhere. Returns the version it
/// pointed at before, if any.
pub async fn set_alias(
    conn: &mut PgConnection,
    model_id: i64,
    alias: &str,
    version_id: i64,
) -> Result<Option<i64>, DbError> {
    let before: Option<i64> = sqlx::query_scalar(
        "SELECT v.version FROM model_aliases a JOIN model_versions v ON v.id = a.version_id \
         WHERE a.model_id = $1 AND a.alias = $2",
    )
    .bind(model_id)
    .bind(alias)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO model_aliases (model_id, alias, version_id) VALUES ($1, $2, $3) \
         ON CONFLICT (model_id, alias) DO UPDATE SET version_id = EXCLUDED.version_id",
    )
    .bind(model_id)
    .bind(alias)
    .bind(version_id)
    .execute(conn)
    .await?;
    Ok(before)
}

/// Removes an alias; returns the version it pointed at, or `None` when there was no such alias.
pub async fn delete_alias(conn: &mut PgConnection, model_id: i64, alias: &str) -> Result<Option<i64>, DbError> {
    Ok(sqlx::query_scalar(
        "DELETE FROM model_aliases a USING model_versions v WHERE a.model_id = $1 AND a.alias = $2 \
         AND v.id = a.version_id RETURNING v.version",
    )
    .bind(model_id)
    .bind(alias)
    .fetch_optional(conn)
    .await?)
}

/// One page of models by name, for the native API and the dashboard: those in `projects`
/// (None: every project) whose name matches the case-insensitive `LIKE` pattern and sorts
/// after `after`. Served by the name index.
pub async fn page(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    name_like: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ModelRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MODEL_SELECT} WHERE ($1::text IS NULL OR m.name ILIKE $1) AND ($2::text IS NULL OR m.name > $2) \
         AND ($4::bigint[] IS NULL OR m.project_id = ANY($4)) ORDER BY m.name LIMIT $3"
    )))
    .bind(name_like)
    .bind(after)
    .bind(limit)
    .bind(projects)
    .fetch_all(db)
    .await?)
}
