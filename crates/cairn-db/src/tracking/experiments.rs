//! Experiments and their tags.

use sqlx::{FromRow, PgConnection, PgExecutor};

use super::KeyValue;
use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct ExperimentRow {
    pub id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    /// The project it belongs to (and its runs, logged models and jobs with it).
    pub project_id: i64,
}

const COLUMNS: &str = "id, name, artifact_location, lifecycle_stage, creation_time, last_update_time, project_id";

/// Inserts an experiment. Without an explicit artifact location it gets
/// `mlflow-artifacts:/<id>`, so the id is drawn first.
pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    artifact_location: Option<&str>,
    project_id: i64,
    created_by: Option<i64>,
    now: i64,
) -> Result<ExperimentRow, DbError> {
    let id: i64 =
        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('experiments', 'id'))").fetch_one(&mut *conn).await?;
    let location = artifact_location.map_or_else(|| format!("mlflow-artifacts:/{id}"), str::to_owned);
    let result = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO experiments (id, name, artifact_location, creation_time, last_update_time, created_by, project_id) \
         VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(name)
    .bind(&location)
    .bind(now)
    .bind(created_by)
    .bind(project_id)
    .fetch_one(&mut *conn)
    .await;
    result.map_err(|e| {
        let err = DbError::from(e);
        if err.is_unique_violation() { DbError::Conflict(format!("Experiment '{name}' already exists.")) } else { err }
    })
}

pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Option<ExperimentRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM experiments WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn get_by_name(db: impl PgExecutor<'_>, name: &str) -> Result<Option<ExperimentRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM experiments WHERE name = $1")))
        .bind(name)
        .fetch_optional(db)
        .await?)
}

/// Tags of several experiments at once, as (experiment id, tag).
pub async fn tags_of(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<(i64, KeyValue)>, DbError> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id = ANY($1) ORDER BY key",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(id, key, value)| (id, KeyValue { key, value })).collect())
}

pub async fn rename(db: impl PgExecutor<'_>, id: i64, name: &str, now: i64) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE experiments SET name = $2, last_update_time = $3 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(db)
        .await;
    match done {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(e) => {
            let err = DbError::from(e);
            if err.is_unique_violation() {
                Err(DbError::Conflict(format!("Experiment '{name}' already exists.")))
            } else {
                Err(err)
            }
        }
    }
}

/// Deletes or restores an experiment and, as MLflow does, all of its runs.
pub async fn set_lifecycle(conn: &mut PgConnection, id: i64, stage: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE experiments SET lifecycle_stage = $2, last_update_time = $3 WHERE id = $1")
        .bind(id)
        .bind(stage)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let deleted_time = (stage == "deleted").then_some(now);
    sqlx::query("UPDATE runs SET lifecycle_stage = $2, deleted_time = $3 WHERE experiment_id = $1")
        .bind(id)
        .bind(stage)
        .bind(deleted_time)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_tag(db: impl PgExecutor<'_>, id: i64, key: &str, value: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(id)
    .bind(key)
    .bind(value)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_tags(db: impl PgExecutor<'_>, id: i64, tags: &[KeyValue]) -> Result<(), DbError> {
    let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
    let values: Vec<&str> = tags.iter().map(|t| t.value.as_str()).collect();
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) SELECT $1, k, v FROM UNNEST($2::text[], $3::text[]) AS t(k, v) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(id)
    .bind(&keys)
    .bind(&values)
    .execute(db)
    .await?;
    Ok(())
}

/// Returns false when the tag did not exist.
pub async fn delete_tag(db: impl PgExecutor<'_>, id: i64, key: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch(db: impl PgExecutor<'_>, id: i64, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE experiments SET last_update_time = $2 WHERE id = $1 AND last_update_time < $2")
        .bind(id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// One page of experiments, newest first (by id), for keyset paging: those in `projects`
/// (None: every project) with an id below `before`, whose name matches the
/// case-insensitive `LIKE` pattern `name_like`, in the given lifecycle stages. Served by
/// the primary key (or, for a caller with few projects, `experiments_by_project`).
pub async fn page(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    name_like: Option<&str>,
    stages: &[&str],
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ExperimentRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM experiments WHERE lifecycle_stage = ANY($1) AND ($2::text IS NULL OR name ILIKE $2) \
         AND ($3::bigint IS NULL OR id < $3) AND ($5::bigint[] IS NULL OR project_id = ANY($5)) ORDER BY id DESC LIMIT $4"
    )))
    .bind(stages)
    .bind(name_like)
    .bind(before)
    .bind(limit)
    .bind(projects)
    .fetch_all(db)
    .await?)
}
