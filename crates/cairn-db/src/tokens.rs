//! API tokens: the stored half of each signed JWT (its id, owner, scope, expiry and
//! revocation). The signed token itself is never stored.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, FromRow, PgExecutor};
use uuid::Uuid;

use crate::DbError;
use crate::users::UserRow;

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub user_id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The only project the token may touch (None: wherever its owner may).
    pub project_id: Option<i64>,
    /// A job's token: the run (public id) it may change, with the runs nested under it.
    pub run_id: Option<Uuid>,
}

const COLUMNS: &str = "id, user_id, name, scope, created_at, expires_at, revoked_at, last_used_at, project_id, run_id";

pub struct NewToken<'a> {
    pub id: Uuid,
    pub user_id: i64,
    pub name: &'a str,
    pub scope: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub project_id: Option<i64>,
}

pub async fn insert(db: impl PgExecutor<'_>, token: &NewToken<'_>) -> Result<TokenRow, DbError> {
    let sql = format!(
        "INSERT INTO api_tokens (id, user_id, name, scope, expires_at, project_id) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(token.id)
        .bind(token.user_id)
        .bind(token.name)
        .bind(token.scope)
        .bind(token.expires_at)
        .bind(token.project_id)
        .fetch_one(db)
        .await?)
}

pub async fn list_for_user(db: impl PgExecutor<'_>, user_id: i64) -> Result<Vec<TokenRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(user_id).fetch_all(db).await?)
}

/// Every token, with its owner's name, newest first.
pub async fn list_all(db: impl PgExecutor<'_>) -> Result<Vec<(TokenRow, String)>, DbError> {
    with_owner_names(db, None).await
}

/// The tokens of the service accounts that `project_id` owns, with each owner's name.
pub async fn list_for_service_accounts(
    db: impl PgExecutor<'_>,
    project_id: i64,
) -> Result<Vec<(TokenRow, String)>, DbError> {
    with_owner_names(db, Some(project_id)).await
}

/// Tokens with their owners' names: all (newest first), or those of one project's service
/// accounts (by account, then newest first).
async fn with_owner_names(
    db: impl PgExecutor<'_>,
    service_project: Option<i64>,
) -> Result<Vec<(TokenRow, String)>, DbError> {
    #[derive(FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        token: TokenRow,
        username: String,
    }
    let rows: Vec<Joined> = sqlx::query_as(
        "SELECT t.id, t.user_id, t.name, t.scope, t.created_at, t.expires_at, t.revoked_at, \
         t.last_used_at, t.project_id, t.run_id, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE $1::bigint IS NULL OR u.service_project_id = $1 \
         ORDER BY CASE WHEN $1::bigint IS NULL THEN '' ELSE u.username END, t.created_at DESC",
    )
    .bind(service_project)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.token, r.username)).collect())
}

pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<TokenRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(db).await?)
}

/// The token and its owner in one query: what every token-authenticated request needs.
pub async fn find_with_user(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<(TokenRow, UserRow)>, DbError> {
    #[derive(FromRow)]
    struct Joined {
        id: Uuid,
        user_id: i64,
        name: String,
        scope: String,
        created_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
        last_used_at: Option<DateTime<Utc>>,
        project_id: Option<i64>,
        run_id: Option<Uuid>,
        username: String,
        password_hash: String,
        role: String,
        disabled: bool,
        user_created_at: DateTime<Utc>,
        service_project_id: Option<i64>,
    }
    let row: Option<Joined> = sqlx::query_as(
        "SELECT t.id, t.user_id, t.name, t.scope, t.created_at, t.expires_at, t.revoked_at, \
         t.last_used_at, t.project_id, t.run_id, u.username, u.password_hash, u.role, u.disabled, u.created_at AS user_created_at, u.service_project_id \
         FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let token = TokenRow {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            scope: r.scope,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            project_id: r.project_id,
            run_id: r.run_id,
        };
        let user = UserRow {
            id: r.user_id,
            username: r.username,
            password_hash: r.password_hash,
            role: r.role,
            disabled: r.disabled,
            created_at: r.user_created_at,
            service_project_id: r.service_project_id,
        };
        (token, user)
    }))
}

/// Limits a token to one run (a job's token, right after it is issued).
pub async fn limit_to_run(db: impl PgExecutor<'_>, id: Uuid, run: Uuid) -> Result<(), DbError> {
    sqlx::query("UPDATE api_tokens SET run_id = $2 WHERE id = $1").bind(id).bind(run).execute(db).await?;
    Ok(())
}

/// Marks the token revoked; returns the row, or None when it does not exist.
/// Revoking twice keeps the first revocation time.
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<TokenRow>, DbError> {
    let sql =
        format!("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(db).await?)
}

pub async fn touch_last_used(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), DbError> {
    sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}
