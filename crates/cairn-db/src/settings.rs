//! Server-wide settings kept in the database (for example the token signing secret, so
//! that every replica and the admin commands agree on it).

use sqlx::PgExecutor;

use crate::DbError;

pub async fn get(db: impl PgExecutor<'_>, key: &str) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT value FROM server_settings WHERE key = $1").bind(key).fetch_optional(db).await?)
}

/// Stores `value` unless the key already has one, and returns the value in force: two
/// processes starting at once agree on the first writer's value.
pub async fn get_or_insert(db: impl PgExecutor<'_>, key: &str, value: &str) -> Result<String, DbError> {
    Ok(sqlx::query_scalar(
        "WITH ins AS (INSERT INTO server_settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO NOTHING RETURNING value) \
         SELECT value FROM ins UNION ALL SELECT value FROM server_settings WHERE key = $1 LIMIT 1",
    )
    .bind(key)
    .bind(value)
    .fetch_one(db)
    .await?)
}
