//! Model registry storage: registered models, their versions, tags and aliases. Lists load
//! tags, aliases and latest versions for a whole page at once (`= ANY($1)`), never per row.

pub mod models;
pub mod search;
pub mod versions;

use sqlx::FromRow;

/// A registered model.
#[derive(Debug, Clone, FromRow)]
pub struct ModelRow {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub creation_time: i64,
    pub last_updated_time: i64,
    /// The account that registered it, when one did.
    pub created_by: Option<String>,
    /// The project it belongs to.
    pub project_id: i64,
}

/// A model version, with its model's name and its source run's public id.
#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub id: i64,
    pub model_id: i64,
    pub model_name: String,
    pub version: i64,
    pub source: String,
    pub storage_location: String,
    pub run_uuid: Option<uuid::Uuid>,
    pub logged_model_id: Option<String>,
    pub status: String,
    pub current_stage: String,
    pub description: Option<String>,
    pub user_id: String,
    pub run_link: Option<String>,
    pub creation_time: i64,
    pub last_updated_time: i64,
    /// The project of its model.
    pub project_id: i64,
    /// The project of its source run's experiment, when it has a source run.
    pub run_project_id: Option<i64>,
}

/// An alias of a model, with the version it points at.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AliasRow {
    pub model_id: i64,
    pub alias: String,
    pub version: i64,
}

const MODEL_SELECT: &str = "SELECT m.id, m.name, m.description, m.creation_time, m.last_updated_time, \
                            u.username AS created_by, m.project_id FROM registered_models m LEFT JOIN users u ON u.id = m.created_by";

const VERSION_SELECT: &str = "SELECT v.id, v.model_id, m.name AS model_name, v.version, v.source, v.storage_location, \
                              r.run_uuid, v.logged_model_id, v.status, v.current_stage, v.description, v.user_id, \
                              v.run_link, v.creation_time, v.last_updated_time, m.project_id, \
                              re.project_id AS run_project_id \
                              FROM model_versions v JOIN registered_models m ON m.id = v.model_id \
                              LEFT JOIN runs r ON r.id = v.run_id LEFT JOIN experiments re ON re.id = r.experiment_id";

/// What a tag belongs to: the registry keeps model tags and version tags in two tables of
/// the same shape, so one set of statements serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagOwner {
    Model,
    Version,
}

impl TagOwner {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            TagOwner::Model => ("registered_model_tags", "model_id"),
            TagOwner::Version => ("model_version_tags", "version_id"),
        }
    }
}

/// Sets (inserts or replaces) tags of one model or version in one statement.
pub async fn set_tags(
    db: impl sqlx::PgExecutor<'_>,
    owner: TagOwner,
    id: i64,
    tags: &[crate::tracking::KeyValue],
) -> Result<(), crate::DbError> {
    let (table, column) = owner.table();
    let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
    let values: Vec<&str> = tags.iter().map(|t| t.value.as_str()).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} ({column}, key, value) SELECT $1, k, v FROM UNNEST($2::text[], $3::text[]) AS t(k, v) \
         ON CONFLICT ({column}, key) DO UPDATE SET value = EXCLUDED.value"
    )))
    .bind(id)
    .bind(&keys)
    .bind(&values)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes a tag; returns false when it was not there.
pub async fn delete_tag(
    db: impl sqlx::PgExecutor<'_>,
    owner: TagOwner,
    id: i64,
    key: &str,
) -> Result<bool, crate::DbError> {
    let (table, column) = owner.table();
    let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE {column} = $1 AND key = $2")))
        .bind(id)
        .bind(key)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Tags of several models or versions at once, as (owner id, tag), by key.
pub async fn tags_of(
    db: impl sqlx::PgExecutor<'_>,
    owner: TagOwner,
    ids: &[i64],
) -> Result<Vec<(i64, crate::tracking::KeyValue)>, crate::DbError> {
    let (table, column) = owner.table();
    let rows: Vec<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {column}, key, value FROM {table} WHERE {column} = ANY($1) ORDER BY key"
    )))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(id, key, value)| (id, crate::tracking::KeyValue { key, value })).collect())
}
