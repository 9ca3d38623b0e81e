//! Service accounts: accounts a project owns for CI and similar. They cannot log in (their
//! password hash can never verify, and password authentication refuses them outright) and
//! act only through tokens scoped to their project.
//!
//! A service account `ci` of project `vision` is the user `ci@vision`: user names are one
//! namespace for the whole server, and the suffix lets two projects both have a `ci`.

use cairn_core::{ProjectRole, Username, ValidationError};
use cairn_db::projects::{self, ProjectRow};
use cairn_db::tokens::TokenRow;
use cairn_db::users::UserRow;
use cairn_db::{Db, audit, tokens, users};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::accounts::{self, AccountError, IssuedToken, TokenRequest};
use crate::audit::Actor;
use crate::auth::{TokenKeys, TokenScope};

/// Not a PHC string, so `verify_password` rejects every password against it without
/// hashing anything: no password opens a service account.
pub const UNUSABLE_PASSWORD_HASH: &str = "!service-account:no-password";

/// The user name of service account `name` of `project`.
pub fn username(name: &str, project: &ProjectRow) -> String {
    format!("{name}@{}", project.name)
}

/// A service account's short name: 1 to 32 lower-case letters, digits, '.', '_' and '-',
/// starting with a letter or digit.
fn parse_name(name: &str, project: &ProjectRow) -> Result<Username, ValidationError> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !starts_well || name.len() > 32 || !name.chars().all(valid_char) {
        return Err(ValidationError(format!(
            "invalid service account name {name:?}: use 1 to 32 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
        )));
    }
    Username::parse(&username(name, project))
}

/// A service account with its role in its project and its tokens.
pub struct ServiceAccount {
    /// The short name (without `@project`).
    pub name: String,
    pub user: UserRow,
    pub role: Option<ProjectRole>,
    pub tokens: Vec<TokenRow>,
}

/// Creates service account `name` of `project`, a member of it with `role` (member or viewer).
pub async fn create(
    db: &Db,
    actor: &Actor,
    project: &ProjectRow,
    name: &str,
    role: ProjectRole,
) -> Result<UserRow, AccountError> {
    let username = parse_name(name.trim(), project)?;
    if role == ProjectRole::Owner {
        return Err(ValidationError("a service account can be a member or a viewer, not an owner".into()).into());
    }
    let mut tx = db.pool.begin().await?;
    let user = users::insert_service_account(&mut *tx, username.as_str(), UNUSABLE_PASSWORD_HASH, project.id).await?;
    projects::set_member(&mut *tx, project.id, user.id, role.as_str()).await?;
    let details = json!({"project": project.name, "role": role.as_str()});
    audit::append_in(&mut tx, actor.event("service_account.create", format!("user:{username}"), details)).await?;
    tx.commit().await?;
    Ok(user)
}

/// The project's service accounts with their roles and tokens (three queries in all).
pub async fn list(db: &Db, project: &ProjectRow) -> Result<Vec<ServiceAccount>, AccountError> {
    let accounts = users::service_accounts(&db.pool, project.id).await?;
    let members = projects::members(&db.pool, project.id).await?;
    let mut all_tokens = tokens::list_for_service_accounts(&db.pool, project.id).await?;
    let suffix = format!("@{}", project.name);
    Ok(accounts
        .into_iter()
        .map(|user| {
            let role = members.iter().find(|m| m.user_id == user.id).and_then(|m| m.role.parse().ok());
            let (own, rest): (Vec<_>, Vec<_>) = all_tokens.drain(..).partition(|(t, _)| t.user_id == user.id);
            all_tokens = rest;
            let name = user.username.strip_suffix(&suffix).unwrap_or(&user.username).to_owned();
            ServiceAccount { name, user, role, tokens: own.into_iter().map(|(t, _)| t).collect() }
        })
        .collect())
}

/// Service account `name` of `project`, or NotFound.
pub async fn find(db: &Db, project: &ProjectRow, name: &str) -> Result<UserRow, AccountError> {
    let not_found = || AccountError::NotFound(format!("project {:?} has no service account {name:?}", project.name));
    let user = users::find_by_name(&db.pool, &username(name, project)).await?.ok_or_else(not_found)?;
    if user.service_project_id != Some(project.id) {
        return Err(not_found());
    }
    Ok(user)
}

/// What a new service account token is.
pub struct ServiceTokenRequest<'a> {
    pub name: &'a str,
    pub scope: TokenScope,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issues a token for service account `name`; it is always limited to the project.
pub async fn create_token(
    db: &Db,
    keys: &TokenKeys,
    actor: &Actor,
    project: &ProjectRow,
    name: &str,
    request: ServiceTokenRequest<'_>,
) -> Result<IssuedToken, AccountError> {
    let owner = find(db, project, name).await?;
    let request = TokenRequest {
        name: request.name,
        scope: request.scope,
        expires_at: request.expires_at,
        project_id: Some(project.id),
    };
    accounts::create_token(db, keys, actor, &owner, request).await
}

/// Revokes token `id` of service account `name`; a token of anyone else is not found.
pub async fn revoke_token(
    db: &Db,
    actor: &Actor,
    project: &ProjectRow,
    name: &str,
    id: Uuid,
) -> Result<TokenRow, AccountError> {
    let owner = find(db, project, name).await?;
    let token = tokens::find(&db.pool, id).await?;
    if token.is_none_or(|t| t.user_id != owner.id) {
        return Err(AccountError::NotFound(format!("service account {name:?} has no token with id {id}")));
    }
    // The token's owner never changes, so checking before revoking is safe.
    accounts::revoke_token(db, actor, id, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str) -> ProjectRow {
        ProjectRow {
            id: 7,
            name: name.into(),
            description: String::new(),
            everyone_role: None,
            max_concurrent_gpus: None,
            monthly_gpu_hours: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn service_account_names_carry_their_project() {
        let vision = project("vision");
        assert_eq!(parse_name("ci", &vision).map(|u| u.to_string()).ok().as_deref(), Some("ci@vision"));
        for bad in ["", "CI", "-x", "a b", "x@y", &"x".repeat(33)] {
            assert!(parse_name(bad, &vision).is_err(), "{bad}");
        }
        let long = project(&"p".repeat(40));
        assert!(parse_name(&"x".repeat(30), &long).is_err(), "the whole user name is at most 64 characters");
    }

    #[tokio::test]
    async fn no_password_verifies_against_the_unusable_hash() {
        for password in ["", "!service-account:no-password", "secret"] {
            assert!(!crate::auth::verify_password(password, UNUSABLE_PASSWORD_HASH).await);
        }
    }
}
