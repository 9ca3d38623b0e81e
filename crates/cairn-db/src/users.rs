//! Users: accounts with an argon2 password hash and a server role.

use cairn_core::Role;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, FromRow, PgExecutor};

use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// Set for a service account: the project that owns it. Service accounts cannot log in.
    pub service_project_id: Option<i64>,
}

impl UserRow {
    /// The role column is constrained by a CHECK, so an unknown value means a newer schema;
    /// treat it as the least powerful role rather than failing the request.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

const COLUMNS: &str = "id, username, password_hash, role, disabled, created_at, service_project_id";

pub async fn insert(
    db: impl PgExecutor<'_>,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<UserRow, DbError> {
    let sql = format!("INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING {COLUMNS}");
    let row =
        sqlx::query_as(AssertSqlSafe(sql)).bind(username).bind(password_hash).bind(role.as_str()).fetch_one(db).await;
    match row {
        Ok(row) => Ok(row),
        Err(e) => {
            let err = DbError::from(e);
            if err.is_unique_violation() {
                Err(DbError::Conflict(format!("user {username:?} already exists")))
            } else {
                Err(err)
            }
        }
    }
}

/// A service account of `project_id`: it has no usable password and cannot log in.
pub async fn insert_service_account(
    db: impl PgExecutor<'_>,
    username: &str,
    unusable_hash: &str,
    project_id: i64,
) -> Result<UserRow, DbError> {
    let sql = format!(
        "INSERT INTO users (username, password_hash, role, service_project_id) VALUES ($1, $2, 'member', $3) \
         RETURNING {COLUMNS}"
    );
    let row =
        sqlx::query_as(AssertSqlSafe(sql)).bind(username).bind(unusable_hash).bind(project_id).fetch_one(db).await;
    row.map_err(|e| match DbError::from(e) {
        err if err.is_unique_violation() => DbError::Conflict(format!("user {username:?} already exists")),
        err => err,
    })
}

/// The service accounts that `project_id` owns, by name.
pub async fn service_accounts(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE service_project_id = $1 ORDER BY username");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(project_id).fetch_all(db).await?)
}

pub async fn find_by_name(db: impl PgExecutor<'_>, username: &str) -> Result<Option<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(username).fetch_optional(db).await?)
}

pub async fn find_by_id(db: impl PgExecutor<'_>, id: i64) -> Result<Option<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(db).await?)
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<UserRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY username");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).fetch_all(db).await?)
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(db).await?)
}

/// Returns false when no such user exists.
pub async fn set_role(db: impl PgExecutor<'_>, username: &str, role: Role) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE users SET role = $2, updated_at = now() WHERE username = $1")
        .bind(username)
        .bind(role.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Returns false when no such user exists.
pub async fn set_disabled(db: impl PgExecutor<'_>, username: &str, disabled: bool) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE users SET disabled = $2, updated_at = now() WHERE username = $1")
        .bind(username)
        .bind(disabled)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_password_hash(db: impl PgExecutor<'_>, username: &str, hash: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE username = $1")
        .bind(username)
        .bind(hash)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
