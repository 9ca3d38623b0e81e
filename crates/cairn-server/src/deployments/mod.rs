//! Deployments: a registered model version served over HTTP. This module owns the rules
//! (names, settings, which version a change serves) and the history: every change (create,
//! update, rollback, the followed alias moving) appends a numbered revision and its audit
//! row in one transaction. Making the current revision live is the [`runtime`]'s job (local
//! processes in [`local`], Kubernetes objects in [`kubernetes`]); requests reach it through
//! the [`gateway`] at `/serve/NAME/...`.

pub mod gateway;
pub mod kubernetes;
pub mod local;
pub mod runtime;

use std::collections::BTreeMap;

use cairn_db::deployments::{self as repo, DeploymentRow, RevisionRow, Settings};
use cairn_db::registry::{models as model_repo, versions as version_repo};
use cairn_db::{Db, audit};
use serde_json::json;
use sqlx::PgConnection;

pub use runtime::{Serving, wake};

use crate::audit::Actor;
use crate::state::AppState;
use crate::tracking::{Result, TrackingError};

/// The serving runtime every deployment uses today: MLflow's pyfunc scoring server.
pub const RUNTIME: &str = "mlflow-pyfunc";
/// Longest deployment name: `cairn-serve-` plus the name stays a valid Kubernetes name.
pub const MAX_NAME_LEN: usize = 40;

/// Where a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Local,
    Kubernetes,
}

impl Target {
    pub fn parse(raw: &str) -> Result<Target> {
        match raw {
            "local" => Ok(Target::Local),
            "kubernetes" => Ok(Target::Kubernetes),
            other => Err(invalid(format!("unknown target {other:?}: use local or kubernetes"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Kubernetes => "kubernetes",
        }
    }
}

fn invalid(message: impl Into<String>) -> TrackingError {
    TrackingError::Invalid(message.into())
}

fn not_found(name: &str) -> TrackingError {
    TrackingError::NotFound(format!("no deployment named {name:?}"))
}

/// A deployment name: lowercase letters, digits and '-', starting with a letter (it becomes
/// a Kubernetes object name and a URL path segment).
pub fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid deployment name {name:?}: use 1 to {MAX_NAME_LEN} lowercase letters, digits or '-', \
             starting with a letter and not ending with '-'"
        )))
    }
}

/// What serves: a fixed version, or whatever version an alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serves {
    Version(i64),
    Alias(String),
}

/// The settings a create or update gives; absent ones keep their value (or the default).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub serves: Option<Serves>,
    pub replicas: Option<i32>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub gpus: Option<i32>,
    pub env: Option<BTreeMap<String, String>>,
}

pub struct NewDeployment {
    pub name: String,
    pub model: String,
    pub target: Option<String>,
    pub changes: Changes,
}

/// A Kubernetes quantity as users write them ("2", "500m", "8Gi", "1.5").
fn validate_quantity(what: &str, value: &str) -> Result<()> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    let number_ok = !digits.is_empty() && digits.parse::<f64>().is_ok_and(|n| n > 0.0);
    let suffixes = ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"];
    if number_ok && suffixes.contains(&suffix) {
        Ok(())
    } else {
        Err(invalid(format!("invalid {what} {value:?}: use a Kubernetes quantity such as 500m, 2 or 8Gi")))
    }
}

fn apply_changes(settings: &mut Settings, changes: &Changes) -> Result<()> {
    if let Some(serves) = &changes.serves {
        settings.alias = match serves {
            Serves::Alias(alias) => {
                cairn_core::registry::validate_alias(alias)?;
                Some(alias.clone())
            }
            Serves::Version(_) => None,
        };
    }
    if let Some(replicas) = changes.replicas {
        if !(1..=100).contains(&replicas) {
            return Err(invalid(format!("replicas must be 1 to 100, not {replicas}")));
        }
        settings.replicas = replicas;
    }
    if let Some(gpus) = changes.gpus {
        if !(0..=64).contains(&gpus) {
            return Err(invalid(format!("gpus must be 0 to 64, not {gpus}")));
        }
        settings.gpus = gpus;
    }
    if let Some(cpu) = &changes.cpu {
        validate_quantity("cpu", cpu)?;
        settings.cpu = Some(cpu.clone());
    }
    if let Some(memory) = &changes.memory {
        validate_quantity("memory", memory)?;
        settings.memory = Some(memory.clone());
    }
    if let Some(env) = &changes.env {
        for key in env.keys() {
            let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(invalid(format!("invalid environment variable name {key:?}")));
            }
        }
        settings.env = sqlx::types::Json(env.clone());
    }
    Ok(())
}

/// The version id and number that `serves` resolves to now, for the locked model.
async fn resolve(conn: &mut PgConnection, model: &str, model_id: i64, serves: &Serves) -> Result<(i64, i64)> {
    let row = match serves {
        Serves::Version(version) => version_repo::get(&mut *conn, model, *version)
            .await?
            .ok_or_else(|| TrackingError::NotFound(format!("no model version {model}/{version}")))?,
        Serves::Alias(alias) => version_repo::by_alias(&mut *conn, model_id, alias)
            .await?
            .ok_or_else(|| TrackingError::NotFound(format!("model {model} has no alias @{alias}")))?,
    };
    Ok((row.id, row.version))
}

fn target_id(name: &str) -> String {
    format!("deployment:{name}")
}

/// Creates a deployment and its first revision; the runtime starts serving it.
pub async fn create(state: &AppState, actor: &Actor, new: NewDeployment) -> Result<DeploymentRow> {
    validate_name(&new.name)?;
    cairn_core::registry::validate_model_name(&new.model)?;
    let default_target = if state.config.kubernetes.is_some() { Target::Kubernetes } else { Target::Local };
    let target = new.target.as_deref().map(Target::parse).transpose()?.unwrap_or(default_target);
    if target == Target::Kubernetes && state.config.kubernetes.is_none() {
        return Err(invalid("this server has no Kubernetes settings (--executor kubernetes): use target local"));
    }
    let serves =
        new.changes.serves.clone().ok_or_else(|| invalid("give the version to serve, or an alias to follow"))?;
    let mut settings = Settings {
        model_id: 0,
        alias: None,
        runtime: RUNTIME.into(),
        replicas: 1,
        cpu: None,
        memory: None,
        gpus: 0,
        env: sqlx::types::Json(BTreeMap::new()),
        target: target.as_str().into(),
    };
    apply_changes(&mut settings, &new.changes)?;

    let mut tx = state.db.pool.begin().await?;
    settings.model_id = model_repo::lock_by_name(&mut tx, &new.model)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("no registered model named {:?}", new.model)))?;
    let (version_id, version) = resolve(&mut tx, &new.model, settings.model_id, &serves).await?;
    let id = match repo::insert(&mut tx, &new.name, &settings, actor.user_id).await {
        Err(e) if e.is_unique_violation() => {
            return Err(TrackingError::AlreadyExists(format!("a deployment named {:?} already exists", new.name)));
        }
        other => other?,
    };
    let revision = repo::add_revision(&mut tx, id, version_id, "create", actor.user_id, &actor.name).await?;
    let details = json!({"model": new.model, "version": version, "alias": settings.alias, "target": settings.target,
        "revision": revision});
    audit::append_in(&mut tx, actor.event("deployment.create", target_id(&new.name), details)).await?;
    tx.commit().await?;
    wake();
    get(&state.db, &new.name).await
}

pub async fn get(db: &Db, name: &str) -> Result<DeploymentRow> {
    repo::get(&db.pool, name).await?.ok_or_else(|| not_found(name))
}

/// The deployments in `projects` (None: every project), by name.
pub async fn list(db: &Db, projects: Option<&[i64]>) -> Result<Vec<DeploymentRow>> {
    Ok(repo::list(&db.pool, projects).await?)
}

pub async fn revisions(db: &Db, name: &str) -> Result<(DeploymentRow, Vec<RevisionRow>)> {
    let deployment = get(db, name).await?;
    let revisions = repo::revisions(&db.pool, deployment.id).await?;
    Ok((deployment, revisions))
}

/// Locks the deployment and its model; the row as it is now.
async fn lock(conn: &mut PgConnection, name: &str) -> Result<DeploymentRow> {
    validate_name(name)?;
    let current = repo::get(&mut *conn, name).await?.ok_or_else(|| not_found(name))?;
    model_repo::lock_by_name(&mut *conn, &current.model_name).await?;
    repo::lock(&mut *conn, name).await?.ok_or_else(|| not_found(name))?;
    // Read again under the lock: a concurrent change may have landed meanwhile.
    repo::get(&mut *conn, name).await?.ok_or_else(|| not_found(name))
}

/// Changes a deployment's settings or the version it serves: a new revision, rolled out.
pub async fn update(state: &AppState, actor: &Actor, name: &str, changes: Changes) -> Result<DeploymentRow> {
    let mut tx = state.db.pool.begin().await?;
    let current = lock(&mut tx, name).await?;
    let mut settings = current.settings.clone();
    apply_changes(&mut settings, &changes)?;
    let serves = match (&changes.serves, &settings.alias) {
        (Some(serves), _) => serves.clone(),
        (None, Some(alias)) => Serves::Alias(alias.clone()),
        (None, None) => Serves::Version(current.version.unwrap_or_default()),
    };
    let (version_id, version) = resolve(&mut tx, &current.model_name, current.settings.model_id, &serves).await?;
    repo::update_settings(&mut tx, current.id, &settings).await?;
    let revision = repo::add_revision(&mut tx, current.id, version_id, "update", actor.user_id, &actor.name).await?;
    let details = json!({"version": version, "previous_version": current.version, "alias": settings.alias,
        "replicas": settings.replicas, "gpus": settings.gpus, "revision": revision});
    audit::append_in(&mut tx, actor.event("deployment.update", target_id(name), details)).await?;
    tx.commit().await?;
    wake();
    get(&state.db, name).await
}

/// Serves the version of an earlier revision again (the one before the current by
/// default), as a new revision. A deployment that followed an alias stops following it.
pub async fn rollback(state: &AppState, actor: &Actor, name: &str, to: Option<i32>) -> Result<DeploymentRow> {
    let mut tx = state.db.pool.begin().await?;
    let current = lock(&mut tx, name).await?;
    let to = match to {
        Some(r) if r >= 1 && r < current.current_revision => r,
        Some(r) => {
            return Err(invalid(format!(
                "cannot roll back to revision {r}: choose an earlier revision than the current one ({})",
                current.current_revision
            )));
        }
        None if current.current_revision > 1 => current.current_revision - 1,
        None => return Err(invalid("the deployment has only one revision: there is nothing to roll back to")),
    };
    let earlier = repo::revision(&mut *tx, current.id, to)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("deployment {name} has no revision {to}")))?;
    let (version_id, version) =
        resolve(&mut tx, &current.model_name, current.settings.model_id, &Serves::Version(earlier.version))
            .await
            .map_err(|_| invalid(format!("revision {to} served version {} which no longer exists", earlier.version)))?;
    if current.settings.alias.is_some() {
        let mut settings = current.settings.clone();
        settings.alias = None;
        repo::update_settings(&mut tx, current.id, &settings).await?;
    }
    let revision = repo::add_revision(&mut tx, current.id, version_id, "rollback", actor.user_id, &actor.name).await?;
    let details = json!({"to_revision": to, "version": version, "previous_version": current.version,
        "revision": revision});
    audit::append_in(&mut tx, actor.event("deployment.rollback", target_id(name), details)).await?;
    tx.commit().await?;
    wake();
    get(&state.db, name).await
}

/// Deletes a deployment and its history; the runtime stops serving it.
pub async fn delete(state: &AppState, actor: &Actor, name: &str) -> Result<()> {
    let mut tx = state.db.pool.begin().await?;
    let current = lock(&mut tx, name).await?;
    repo::delete(&mut tx, current.id).await?;
    let details =
        json!({"model": current.model_name, "version": current.version, "revision": current.current_revision});
    audit::append_in(&mut tx, actor.event("deployment.delete", target_id(name), details)).await?;
    tx.commit().await?;
    // The gateway stops answering for it now; the runtime stops its processes or objects.
    state.serving.set_backend(name, None);
    wake();
    Ok(())
}

/// Inside the transaction that moves `alias` of the model to `version_id`: a new revision
/// (reason `alias-moved`) for every deployment following it that served another version.
/// The caller wakes the runtime after committing.
pub async fn follow_alias_in(
    conn: &mut PgConnection,
    actor: &Actor,
    model_id: i64,
    alias: &str,
    version_id: i64,
) -> Result<usize> {
    let mut moved = 0;
    for name in repo::following(&mut *conn, model_id, alias).await? {
        let Some(current) = repo::get(&mut *conn, &name).await? else { continue };
        let version = version_repo::get(&mut *conn, &current.model_name, current.version.unwrap_or_default()).await?;
        if version.is_some_and(|v| v.id == version_id) {
            continue;
        }
        let revision =
            repo::add_revision(conn, current.id, version_id, "alias-moved", actor.user_id, &actor.name).await?;
        let details = json!({"alias": alias, "previous_version": current.version, "revision": revision});
        audit::append_in(conn, actor.event("deployment.alias_moved", target_id(&name), details)).await?;
        moved += 1;
    }
    Ok(moved)
}

/// Where callers reach the deployment through the gateway.
pub fn endpoint_url(state: &AppState, name: &str) -> String {
    let base = state.config.public_url.clone().unwrap_or_else(|| format!("http://{}", state.config.listen));
    format!("{}/serve/{name}", base.trim_end_matches('/'))
}

/// Most log lines [`logs`] returns.
pub const MAX_LOG_LINES: usize = 5000;

/// The last `lines` lines of the serving process's output (local), or of one of its pods
/// (Kubernetes).
pub async fn logs(state: &AppState, name: &str, lines: usize) -> Result<String> {
    let deployment = get(&state.db, name).await?;
    let lines = lines.clamp(1, MAX_LOG_LINES);
    match Target::parse(&deployment.settings.target)? {
        Target::Local => Ok(match &state.config.serving.dir {
            Some(dir) => local::log_tail(&local::log_path(dir, name), lines).await,
            None => String::new(),
        }),
        Target::Kubernetes => Ok(kubernetes::logs(state, name, lines).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_safe() {
        for good in ["a", "fraud-prod", "m2", &"a".repeat(MAX_NAME_LEN)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Fraud", "2fast", "a_b", "a.b", "a-", "a/b", &"a".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_are_checked() {
        for good in ["1", "500m", "1.5", "8Gi", "512Mi"] {
            assert!(validate_quantity("cpu", good).is_ok(), "{good}");
        }
        for bad in ["", "-1", "0", "lots", "8GB", "1 Gi"] {
            assert!(validate_quantity("cpu", bad).is_err(), "{bad}");
        }
    }
}
