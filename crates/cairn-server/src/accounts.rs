//! Account rules: users, API tokens and the bootstrap admin. Used by the HTTP handlers and
//! by the admin commands alike; every change is written to the audit log in the same
//! transaction as the change itself, so a change is never committed without its record.

use cairn_core::{Password, Role, Username, ValidationError};
use cairn_db::audit;
use cairn_db::tokens::{NewToken, TokenRow};
use cairn_db::users::UserRow;
use cairn_db::{Db, DbError, sessions, settings, tokens, users};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::Actor;

/// The lifetimes, in days, a token may be given when it has one (every surface that
/// issues tokens checks against this).
pub const TOKEN_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
use crate::auth::{TokenKeys, TokenScope, hash_password, session::random_token};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for AccountError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(msg) => AccountError::Conflict(msg),
            other => AccountError::Db(other),
        }
    }
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Db(e.into())
    }
}

pub async fn create_user(
    db: &Db,
    actor: &Actor,
    username: &str,
    password: &str,
    role: Role,
) -> Result<UserRow, AccountError> {
    let username = Username::parse(username)?;
    let password = Password::parse(password)?;
    let hash = hash_password(password.expose())
        .await
        .map_err(|e| AccountError::Internal(format!("password hashing failed: {e}")))?;
    let mut tx = db.pool.begin().await?;
    let user = users::insert(&mut *tx, username.as_str(), &hash, role).await?;
    let details = json!({"role": role.as_str()});
    audit::append_in(&mut tx, actor.event("user.create", format!("user:{username}"), details)).await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn set_role(db: &Db, actor: &Actor, username: &str, role: Role) -> Result<(), AccountError> {
    let mut tx = db.pool.begin().await?;
    if !users::set_role(&mut *tx, username, role).await? {
        return Err(AccountError::NotFound(format!("no user named {username:?}")));
    }
    let details = json!({"role": role.as_str()});
    audit::append_in(&mut tx, actor.event("user.set_role", format!("user:{username}"), details)).await?;
    tx.commit().await?;
    Ok(())
}

/// Disables (or re-enables) an account. Disabling also ends its dashboard sessions; its
/// tokens stop working because every token check looks at the owner.
pub async fn set_disabled(db: &Db, actor: &Actor, username: &str, disabled: bool) -> Result<(), AccountError> {
    let mut tx = db.pool.begin().await?;
    let user = users::find_by_name(&mut *tx, username)
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("no user named {username:?}")))?;
    if disabled && Some(user.id) == actor.user_id {
        return Err(AccountError::Forbidden("you cannot disable your own account".into()));
    }
    users::set_disabled(&mut *tx, username, disabled).await?;
    if disabled {
        sessions::delete_for_user(&mut *tx, user.id).await?;
    }
    let action = if disabled { "user.disable" } else { "user.enable" };
    audit::append_in(&mut tx, actor.event(action, format!("user:{username}"), json!({}))).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_password(db: &Db, actor: &Actor, username: &str, password: &str) -> Result<(), AccountError> {
    let password = Password::parse(password)?;
    let hash = hash_password(password.expose())
        .await
        .map_err(|e| AccountError::Internal(format!("password hashing failed: {e}")))?;
    let mut tx = db.pool.begin().await?;
    let user = users::find_by_name(&mut *tx, username)
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("no user named {username:?}")))?;
    users::set_password_hash(&mut *tx, username, &hash).await?;
    sessions::delete_for_user(&mut *tx, user.id).await?;
    audit::append_in(&mut tx, actor.event("user.set_password", format!("user:{username}"), json!({}))).await?;
    tx.commit().await?;
    Ok(())
}

/// A newly issued token: the only time its secret is available.
pub struct IssuedToken {
    pub token: String,
    pub row: TokenRow,
}

pub struct TokenRequest<'a> {
    pub name: &'a str,
    pub scope: TokenScope,
    pub expires_at: Option<DateTime<Utc>>,
    /// The only project the token may touch (None: wherever its owner may).
    pub project_id: Option<i64>,
}

pub async fn create_token(
    db: &Db,
    keys: &TokenKeys,
    actor: &Actor,
    owner: &UserRow,
    request: TokenRequest<'_>,
) -> Result<IssuedToken, AccountError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ValidationError("token name must be 1 to 100 characters".into()).into());
    }
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ValidationError("token expiry must be in the future".into()).into());
    }
    if owner.disabled {
        return Err(AccountError::Forbidden(format!("user {:?} is disabled", owner.username)));
    }
    // A service account's tokens reach its own project only, whoever issues them.
    let project_id = match owner.service_project_id {
        Some(own) if request.project_id.is_some_and(|p| p != own) => {
            return Err(AccountError::Forbidden(format!(
                "{:?} is a service account of another project; its tokens reach only that project",
                owner.username
            )));
        }
        Some(own) => Some(own),
        None => request.project_id,
    };
    let id = Uuid::new_v4();
    let now = Utc::now();
    let token = keys
        .encode(owner.id, id, now.timestamp(), request.expires_at.map(|at| at.timestamp()))
        .map_err(|e| AccountError::Internal(format!("token signing failed: {e}")))?;
    let mut tx = db.pool.begin().await?;
    let new = NewToken {
        id,
        user_id: owner.id,
        name,
        scope: request.scope.as_str(),
        expires_at: request.expires_at,
        project_id,
    };
    let row = tokens::insert(&mut *tx, &new).await?;
    let details = json!({
        "name": name,
        "owner": owner.username,
        "scope": request.scope.as_str(),
        "expires_at": request.expires_at.map(|at| at.to_rfc3339()),
        "project_id": project_id,
    });
    audit::append_in(&mut tx, actor.event("token.create", format!("token:{id}"), details)).await?;
    tx.commit().await?;
    Ok(IssuedToken { token, row })
}

/// Revokes a token. Non-admins may only revoke their own; for them another user's token
/// is reported as not found, so token ids of others are not confirmed.
pub async fn revoke_token(db: &Db, actor: &Actor, id: Uuid, as_admin: bool) -> Result<TokenRow, AccountError> {
    let not_found = || AccountError::NotFound(format!("no token with id {id}"));
    let mut tx = db.pool.begin().await?;
    let existing = tokens::find(&mut *tx, id).await?.ok_or_else(not_found)?;
    if !as_admin && Some(existing.user_id) != actor.user_id {
        return Err(not_found());
    }
    let row = tokens::revoke(&mut *tx, id).await?.ok_or_else(not_found)?;
    audit::append_in(&mut tx, actor.event("token.revoke", format!("token:{id}"), json!({"name": row.name}))).await?;
    tx.commit().await?;
    Ok(row)
}

pub const JWT_SECRET_SETTING: &str = "jwt_signing_secret";

/// The token signing key: the configured one, or the one kept in the database (created on
/// first use), so the server and the admin commands always agree.
pub async fn token_keys(db: &Db, configured: Option<&str>) -> Result<TokenKeys, DbError> {
    let secret = match configured {
        Some(secret) => secret.to_owned(),
        None => {
            settings::get_or_insert(&db.pool, JWT_SECRET_SETTING, &format!("{}{}", random_token(), random_token()))
                .await?
        }
    };
    Ok(TokenKeys::new(secret.as_bytes()))
}

/// What the first start did about the admin account.
pub enum Bootstrap {
    /// Users exist already; nothing was done.
    Existing,
    /// The admin was created with the configured password.
    FromConfig,
    /// The admin was created with this generated password.
    Generated(String),
}

/// Creates user `admin` on the first start. The password is `configured` or, when absent,
/// random (the caller prints it once and stores it for the operator).
pub async fn bootstrap_admin(db: &Db, configured: Option<&str>) -> Result<Bootstrap, AccountError> {
    if users::count(&db.pool).await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let (password, outcome) = match configured {
        Some(p) => (p.to_owned(), Bootstrap::FromConfig),
        None => {
            let generated = random_token()[..24].to_owned();
            (generated.clone(), Bootstrap::Generated(generated))
        }
    };
    match create_user(db, &Actor::system("bootstrap"), "admin", &password, Role::Admin).await {
        Ok(_) => Ok(outcome),
        // Another process bootstrapped at the same moment.
        Err(AccountError::Conflict(_)) => Ok(Bootstrap::Existing),
        Err(e) => Err(e),
    }
}
