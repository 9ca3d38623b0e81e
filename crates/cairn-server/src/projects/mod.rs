//! Project rules: creating projects and changing their settings and members; service
//! accounts and their tokens are in [`service_accounts`].
//!
//! Whether a caller may touch a project at all is decided before the handler runs, by the
//! route table in `crate::access::policy` (owners manage a project; readers see it). What is
//! here are the rules that hold whoever calls: a project keeps an owner unless it gives
//! every account a role, quotas are set by server admins only (they share out the
//! server's GPUs, so a project's owners must not raise their own), and a service account
//! belongs to its own project only. Every change writes its audit event in the same
//! transaction as the change.

pub mod service_accounts;

use cairn_core::{ProjectName, ProjectRole, ValidationError};
use cairn_db::projects::{self, ProjectRow, ProjectSettings};
use cairn_db::users::UserRow;
use cairn_db::{Db, audit, users};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::accounts::AccountError;
use crate::audit::Actor;

/// The audit target of a project.
pub fn target(name: &str) -> String {
    format!("project:{name}")
}

/// What a server admin gives a new project.
pub struct NewProject<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub everyone_role: Option<ProjectRole>,
    /// A person to make its first owner.
    pub owner: Option<&'a str>,
    pub max_concurrent_gpus: Option<i32>,
    pub monthly_gpu_hours: Option<f64>,
}

/// Changes to a project's settings; None leaves a setting as it is, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProjectChange {
    pub description: Option<String>,
    pub everyone_role: Option<Option<ProjectRole>>,
    pub max_concurrent_gpus: Option<Option<i32>>,
    pub monthly_gpu_hours: Option<Option<f64>>,
}

impl ProjectChange {
    pub fn is_empty(&self) -> bool {
        self.description.is_none()
            && self.everyone_role.is_none()
            && self.max_concurrent_gpus.is_none()
            && self.monthly_gpu_hours.is_none()
    }

    fn changes_quotas(&self) -> bool {
        self.max_concurrent_gpus.is_some() || self.monthly_gpu_hours.is_some()
    }
}

const MAX_DESCRIPTION_CHARS: usize = 2000;

fn check_description(description: &str) -> Result<(), ValidationError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ValidationError(format!("a project description has at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok(())
}

/// The everyone-role as stored: viewer or member. Owners are always named people, so that
/// "who may manage this project" has a short answer.
fn everyone_role_column(role: Option<ProjectRole>) -> Result<Option<&'static str>, ValidationError> {
    match role {
        Some(ProjectRole::Owner) => {
            Err(ValidationError("everyone_role may be viewer or member; owners are named one by one".into()))
        }
        other => Ok(other.map(ProjectRole::as_str)),
    }
}

fn check_quotas(gpus: Option<i32>, hours: Option<f64>) -> Result<(), ValidationError> {
    if gpus.is_some_and(|g| g < 0) {
        return Err(ValidationError("max_concurrent_gpus cannot be negative".into()));
    }
    if hours.is_some_and(|h| !h.is_finite() || h < 0.0) {
        return Err(ValidationError("monthly_gpu_hours must be a number of hours, 0 or more".into()));
    }
    Ok(())
}

/// Creates a project (server admins), optionally with its first owner.
pub async fn create(db: &Db, actor: &Actor, new: NewProject<'_>) -> Result<ProjectRow, AccountError> {
    let name = ProjectName::parse(new.name.trim())?;
    let description = new.description.trim();
    check_description(description)?;
    let everyone_role = everyone_role_column(new.everyone_role)?;
    check_quotas(new.max_concurrent_gpus, new.monthly_gpu_hours)?;
    let settings = ProjectSettings {
        description,
        everyone_role,
        max_concurrent_gpus: new.max_concurrent_gpus,
        monthly_gpu_hours: new.monthly_gpu_hours,
    };
    let mut tx = db.pool.begin().await?;
    let row = match projects::insert(&mut *tx, name.as_str(), &settings, actor.user_id).await {
        Err(e) if e.is_unique_violation() => {
            return Err(AccountError::Conflict(format!("a project named {:?} exists already", name.as_str())));
        }
        other => other?,
    };
    let details = json!({
        "description": row.description,
        "everyone_role": row.everyone_role,
        "max_concurrent_gpus": row.max_concurrent_gpus,
        "monthly_gpu_hours": row.monthly_gpu_hours,
        "owner": new.owner,
    });
    audit::append_in(&mut tx, actor.event("project.create", target(&row.name), details)).await?;
    if let Some(owner) = new.owner {
        let user = person(&mut tx, owner, &row)
            .await?
            .ok_or_else(|| ValidationError(format!("no user named {owner:?} to make the owner")))?;
        projects::set_member(&mut *tx, row.id, user.id, ProjectRole::Owner.as_str()).await?;
        let details = json!({"user": user.username, "role": "owner", "previous": null});
        audit::append_in(&mut tx, actor.event("project.member.set", target(&row.name), details)).await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Changes a project's settings (its owners; quotas only `as_admin`).
pub async fn update(
    db: &Db,
    actor: &Actor,
    project_id: i64,
    change: ProjectChange,
    as_admin: bool,
) -> Result<ProjectRow, AccountError> {
    if change.is_empty() {
        return Err(ValidationError(
            "nothing to change: give description, everyone_role, max_concurrent_gpus or monthly_gpu_hours".into(),
        )
        .into());
    }
    if change.changes_quotas() && !as_admin {
        return Err(AccountError::Forbidden("only server admins set a project's GPU quotas".into()));
    }
    let mut tx = db.pool.begin().await?;
    let before = projects::lock(&mut *tx, project_id).await?.ok_or_else(|| not_found_id(project_id))?;
    let description = change.description.as_deref().map_or(before.description.as_str(), str::trim);
    check_description(description)?;
    let everyone_role = match change.everyone_role {
        Some(role) => everyone_role_column(role)?,
        None => before.everyone_role.as_deref().and_then(|r| r.parse::<ProjectRole>().ok()).map(ProjectRole::as_str),
    };
    let max_concurrent_gpus = change.max_concurrent_gpus.unwrap_or(before.max_concurrent_gpus);
    let monthly_gpu_hours = change.monthly_gpu_hours.unwrap_or(before.monthly_gpu_hours);
    check_quotas(max_concurrent_gpus, monthly_gpu_hours)?;
    let settings = ProjectSettings { description, everyone_role, max_concurrent_gpus, monthly_gpu_hours };
    let after = projects::update(&mut *tx, project_id, &settings).await?.ok_or_else(|| not_found_id(project_id))?;
    let mut details = serde_json::Map::new();
    let fields: [(&str, Value, Value); 4] = [
        ("description", json!(before.description), json!(after.description)),
        ("everyone_role", json!(before.everyone_role), json!(after.everyone_role)),
        ("max_concurrent_gpus", json!(before.max_concurrent_gpus), json!(after.max_concurrent_gpus)),
        ("monthly_gpu_hours", json!(before.monthly_gpu_hours), json!(after.monthly_gpu_hours)),
    ];
    for (field, from, to) in fields {
        if from != to {
            details.insert(field.to_owned(), json!({"from": from, "to": to}));
        }
    }
    audit::append_in(&mut tx, actor.event("project.update", target(&after.name), Value::Object(details))).await?;
    tx.commit().await?;
    Ok(after)
}

fn not_found_id(id: i64) -> AccountError {
    AccountError::NotFound(format!("no project with id {id}"))
}

/// The account named `username` that may be a member of `project`: a person, or one of
/// the project's own service accounts. None when there is no such account.
async fn person(tx: &mut PgConnection, username: &str, project: &ProjectRow) -> Result<Option<UserRow>, AccountError> {
    let Some(user) = users::find_by_name(&mut *tx, username).await? else {
        return Ok(None);
    };
    match user.service_project_id {
        Some(owner) if owner != project.id => Err(ValidationError(format!(
            "{username:?} is a service account of another project; it can only be a member there"
        ))
        .into()),
        _ => Ok(Some(user)),
    }
}

/// Refuses a change that leaves a project without owners, unless every account has a role
/// there (the default project) or a server admin makes it (admins manage every project).
async fn keep_an_owner(
    tx: &mut PgConnection,
    project: &ProjectRow,
    as_admin: bool,
    what: &str,
) -> Result<(), AccountError> {
    if as_admin || project.everyone_role.is_some() {
        return Ok(());
    }
    if projects::owner_count(&mut *tx, project.id).await? == 0 {
        return Err(AccountError::Conflict(format!(
            "{what} would leave project {:?} without an owner; make someone else owner first",
            project.name
        )));
    }
    Ok(())
}

/// Adds `username` to the project with `role`, or changes their role. Returns the role they
/// had before (None: newly added).
pub async fn set_member(
    db: &Db,
    actor: &Actor,
    project_id: i64,
    username: &str,
    role: ProjectRole,
    as_admin: bool,
) -> Result<Option<ProjectRole>, AccountError> {
    let mut tx = db.pool.begin().await?;
    let project = projects::lock(&mut *tx, project_id).await?.ok_or_else(|| not_found_id(project_id))?;
    let user = person(&mut tx, username, &project)
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("no user named {username:?}")))?;
    if user.service_project_id.is_some() && role == ProjectRole::Owner {
        return Err(ValidationError("a service account can be a member or a viewer, not an owner".into()).into());
    }
    let previous = projects::set_member(&mut *tx, project.id, user.id, role.as_str()).await?;
    if previous.as_deref() == Some("owner") && role != ProjectRole::Owner {
        keep_an_owner(&mut tx, &project, as_admin, &format!("making {username:?} a {role}")).await?;
    }
    let details = json!({"user": user.username, "role": role.as_str(), "previous": previous});
    audit::append_in(&mut tx, actor.event("project.member.set", target(&project.name), details)).await?;
    tx.commit().await?;
    Ok(previous.and_then(|p| p.parse().ok()))
}

/// Removes `username`'s membership; returns the role they had.
pub async fn remove_member(
    db: &Db,
    actor: &Actor,
    project_id: i64,
    username: &str,
    as_admin: bool,
) -> Result<ProjectRole, AccountError> {
    let mut tx = db.pool.begin().await?;
    let project = projects::lock(&mut *tx, project_id).await?.ok_or_else(|| not_found_id(project_id))?;
    let not_member = || AccountError::NotFound(format!("{username:?} is not a member of project {:?}", project.name));
    let user = users::find_by_name(&mut *tx, username).await?.ok_or_else(not_member)?;
    let removed = projects::remove_member(&mut *tx, project.id, user.id).await?.ok_or_else(not_member)?;
    if removed == "owner" {
        keep_an_owner(&mut tx, &project, as_admin, &format!("removing {username:?}")).await?;
    }
    let details = json!({"user": user.username, "previous": removed});
    audit::append_in(&mut tx, actor.event("project.member.remove", target(&project.name), details)).await?;
    tx.commit().await?;
    Ok(removed.parse().unwrap_or(ProjectRole::Viewer))
}

/// The project named `name`, or NotFound.
pub async fn find(db: &Db, name: &str) -> Result<ProjectRow, AccountError> {
    projects::find_by_name(&db.pool, name)
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("no project named {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_never_everyone() {
        assert!(everyone_role_column(Some(ProjectRole::Owner)).is_err());
        assert_eq!(everyone_role_column(Some(ProjectRole::Member)).ok(), Some(Some("member")));
        assert_eq!(everyone_role_column(None).ok(), Some(None));
    }

    #[test]
    fn quotas_are_non_negative_numbers() {
        assert!(check_quotas(Some(-1), None).is_err());
        assert!(check_quotas(None, Some(f64::NAN)).is_err());
        assert!(check_quotas(None, Some(-0.5)).is_err());
        assert!(check_quotas(Some(0), Some(12.5)).is_ok());
        assert!(check_quotas(None, None).is_ok());
    }

    #[test]
    fn an_empty_change_is_empty() {
        assert!(ProjectChange::default().is_empty());
        assert!(!ProjectChange { everyone_role: Some(None), ..Default::default() }.is_empty());
        assert!(ProjectChange { max_concurrent_gpus: Some(Some(2)), ..Default::default() }.changes_quotas());
    }
}
