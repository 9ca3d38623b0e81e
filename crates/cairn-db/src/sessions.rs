//! Dashboard sessions. The cookie carries a random secret; only its SHA-256 is stored,
//! so a leaked table cannot be replayed as cookies.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

use crate::DbError;
use crate::users::UserRow;

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    secret_hash: &[u8],
    user_id: i64,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO sessions (secret_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(secret_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// A live (unexpired) session and its user.
pub async fn find_live(db: impl PgExecutor<'_>, secret_hash: &[u8]) -> Result<Option<(SessionRow, UserRow)>, DbError> {
    #[derive(FromRow)]
    struct Joined {
        user_id: i64,
        csrf_token: String,
        expires_at: DateTime<Utc>,
        username: String,
        password_hash: String,
        role: String,
        disabled: bool,
        created_at: DateTime<Utc>,
        service_project_id: Option<i64>,
    }
    let row: Option<Joined> = sqlx::query_as(
        "SELECT s.user_id, s.csrf_token, s.expires_at, u.username, u.password_hash, u.role, u.disabled, \
         u.created_at, u.service_project_id FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.secret_hash = $1 AND s.expires_at > now()",
    )
    .bind(secret_hash)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let session = SessionRow { user_id: r.user_id, csrf_token: r.csrf_token, expires_at: r.expires_at };
        let user = UserRow {
            id: r.user_id,
            username: r.username,
            password_hash: r.password_hash,
            role: r.role,
            disabled: r.disabled,
            created_at: r.created_at,
            service_project_id: r.service_project_id,
        };
        (session, user)
    }))
}

pub async fn delete(db: impl PgExecutor<'_>, secret_hash: &[u8]) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sessions WHERE secret_hash = $1").bind(secret_hash).execute(db).await?;
    Ok(())
}

/// Ends every session of a user (disabled accounts, password changes).
pub async fn delete_for_user(db: impl PgExecutor<'_>, user_id: i64) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(db).await?;
    Ok(())
}

pub async fn delete_expired(db: impl PgExecutor<'_>) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= now()").execute(db).await?;
    Ok(done.rows_affected())
}
