//! MLflow 3 logged models: what every `log_model` call creates before uploading artifacts.

use sqlx::{FromRow, PgExecutor};

use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct LoggedModelRow {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub source_run_uuid: Option<uuid::Uuid>,
    pub status: String,
    pub status_message: Option<String>,
    pub model_type: Option<String>,
    pub artifact_location: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub tags: serde_json::Value,
    pub params: serde_json::Value,
}

const SELECT: &str = "SELECT m.model_id, m.experiment_id, m.name, r.run_uuid AS source_run_uuid, m.status, m.status_message, \
                      m.model_type, m.artifact_location, m.creation_time, m.last_updated_time, m.tags, m.params \
                      FROM logged_models m LEFT JOIN runs r ON r.id = m.source_run_id";

pub struct NewLoggedModel<'a> {
    pub model_id: &'a str,
    pub experiment_id: i64,
    pub name: &'a str,
    pub source_run_id: Option<i64>,
    pub model_type: Option<&'a str>,
    pub artifact_location: &'a str,
    pub now: i64,
    pub tags: serde_json::Value,
    pub params: serde_json::Value,
    pub created_by: Option<i64>,
}

pub async fn insert(db: impl PgExecutor<'_>, model: &NewLoggedModel<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO logged_models (model_id, experiment_id, name, source_run_id, model_type, artifact_location, \
         creation_time, last_updated_time, tags, params, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)",
    )
    .bind(model.model_id)
    .bind(model.experiment_id)
    .bind(model.name)
    .bind(model.source_run_id)
    .bind(model.model_type)
    .bind(model.artifact_location)
    .bind(model.now)
    .bind(&model.tags)
    .bind(&model.params)
    .bind(model.created_by)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get(db: impl PgExecutor<'_>, model_id: &str) -> Result<Option<LoggedModelRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE m.model_id = $1")))
        .bind(model_id)
        .fetch_optional(db)
        .await?)
}

/// Returns false when there is no such model.
pub async fn set_status(db: impl PgExecutor<'_>, model_id: &str, status: &str, now: i64) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE logged_models SET status = $2, last_updated_time = $3 WHERE model_id = $1")
        .bind(model_id)
        .bind(status)
        .bind(now)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Merges tags into the model's tags; returns false when there is no such model.
pub async fn merge_tags(
    db: impl PgExecutor<'_>,
    model_id: &str,
    tags: &serde_json::Value,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE logged_models SET tags = tags || $2, last_updated_time = $3 WHERE model_id = $1")
        .bind(model_id)
        .bind(tags)
        .bind(now)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Models of some experiments, optionally only those with a given name, newest first.
pub async fn search(
    db: impl PgExecutor<'_>,
    experiment_ids: &[i64],
    name: Option<&str>,
    source_run_id: Option<i64>,
    limit: i64,
) -> Result<Vec<LoggedModelRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE m.experiment_id = ANY($1) AND ($2::text IS NULL OR m.name = $2) \
         AND ($3::bigint IS NULL OR m.source_run_id = $3) AND m.lifecycle_stage = 'active' \
         ORDER BY m.creation_time DESC LIMIT $4"
    )))
    .bind(experiment_ids)
    .bind(name)
    .bind(source_run_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
