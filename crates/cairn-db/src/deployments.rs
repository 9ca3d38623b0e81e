//! Deployments and their numbered revisions. A deployment row carries its settings and the
//! live status; each change appends a revision (which model version, who, why) in the same
//! transaction that moves `current_revision`.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};

use crate::DbError;

/// A deployment with its model's name and the version its current revision serves.
#[derive(Debug, Clone, FromRow)]
pub struct DeploymentRow {
    pub id: i64,
    pub name: String,
    pub model_name: String,
    #[sqlx(flatten)]
    pub settings: Settings,
    pub status: String,
    pub status_message: String,
    pub current_revision: i32,
    /// The version the current revision serves.
    pub version: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub project_id: i64,
}

const SELECT: &str = "SELECT d.id, d.name, d.model_id, m.name AS model_name, d.alias, d.runtime, d.replicas, d.cpu, \
    d.memory, d.gpus, d.env, d.target, d.status, d.status_message, d.current_revision, r.version, \
    u.username AS created_by, d.created_at, d.updated_at, d.project_id \
    FROM deployments d JOIN registered_models m ON m.id = d.model_id \
    LEFT JOIN deployment_revisions r ON r.deployment_id = d.id AND r.revision = d.current_revision \
    LEFT JOIN users u ON u.id = d.created_by";

#[derive(Debug, Clone, FromRow)]
pub struct RevisionRow {
    pub revision: i32,
    pub version: i64,
    pub reason: String,
    pub actor_name: String,
    pub created_at: DateTime<Utc>,
}

/// The settings of a deployment: which model (and alias followed), where and how it runs.
#[derive(Debug, Clone, FromRow)]
pub struct Settings {
    pub model_id: i64,
    pub alias: Option<String>,
    pub runtime: String,
    pub replicas: i32,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub gpus: i32,
    pub env: Json<std::collections::BTreeMap<String, String>>,
    pub target: String,
}

/// Inserts a deployment (no revision yet); its id.
pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    s: &Settings,
    created_by: Option<i64>,
) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO deployments (name, model_id, alias, runtime, replicas, cpu, memory, gpus, env, target, created_by, \
         project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         (SELECT project_id FROM registered_models WHERE id = $2)) RETURNING id",
    )
    .bind(name)
    .bind(s.model_id)
    .bind(&s.alias)
    .bind(&s.runtime)
    .bind(s.replicas)
    .bind(&s.cpu)
    .bind(&s.memory)
    .bind(s.gpus)
    .bind(&s.env)
    .bind(&s.target)
    .bind(created_by)
    .fetch_one(conn)
    .await?)
}

/// Replaces the settings (not the name, model or target).
pub async fn update_settings(conn: &mut PgConnection, id: i64, s: &Settings) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE deployments SET alias = $2, runtime = $3, replicas = $4, cpu = $5, memory = $6, gpus = $7, env = $8, \
         updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&s.alias)
    .bind(&s.runtime)
    .bind(s.replicas)
    .bind(&s.cpu)
    .bind(&s.memory)
    .bind(s.gpus)
    .bind(&s.env)
    .execute(conn)
    .await?;
    Ok(())
}

/// A new revision that serves `version_id`, made current; its number.
pub async fn add_revision(
    conn: &mut PgConnection,
    deployment_id: i64,
    version_id: i64,
    reason: &str,
    actor_id: Option<i64>,
    actor_name: &str,
) -> Result<i32, DbError> {
    Ok(sqlx::query_scalar(
        "WITH next AS (UPDATE deployments SET current_revision = current_revision + 1, status = 'pending', \
           status_message = 'rolling out', updated_at = now() WHERE id = $1 RETURNING current_revision) \
         INSERT INTO deployment_revisions (deployment_id, revision, model_version_id, version, reason, created_by, actor_name) \
         SELECT $1, next.current_revision, v.id, v.version, $3, $4, $5 FROM next, model_versions v WHERE v.id = $2 \
         RETURNING revision",
    )
    .bind(deployment_id)
    .bind(version_id)
    .bind(reason)
    .bind(actor_id)
    .bind(actor_name)
    .fetch_one(conn)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, name: &str) -> Result<Option<DeploymentRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE d.name = $1"))).bind(name).fetch_optional(db).await?)
}

/// Locks the deployment's row for the rest of the transaction (changes serialise on it).
pub async fn lock(conn: &mut PgConnection, name: &str) -> Result<Option<i64>, DbError> {
    Ok(sqlx::query_scalar("SELECT id FROM deployments WHERE name = $1 FOR UPDATE")
        .bind(name)
        .fetch_optional(conn)
        .await?)
}

/// Every deployment in `projects` (None: every project), by name (a team has tens, not
/// thousands).
pub async fn list(db: impl PgExecutor<'_>, projects: Option<&[i64]>) -> Result<Vec<DeploymentRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE $1::bigint[] IS NULL OR d.project_id = ANY($1) ORDER BY d.name"
    )))
    .bind(projects)
    .fetch_all(db)
    .await?)
}

/// The deployments that serve (now) one of the model's versions.
pub async fn of_model(db: impl PgExecutor<'_>, model_id: i64) -> Result<Vec<DeploymentRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE d.model_id = $1 ORDER BY d.name")))
        .bind(model_id)
        .fetch_all(db)
        .await?)
}

/// Revisions, newest first.
pub async fn revisions(db: impl PgExecutor<'_>, deployment_id: i64) -> Result<Vec<RevisionRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT revision, version, reason, actor_name, created_at FROM deployment_revisions \
         WHERE deployment_id = $1 ORDER BY revision DESC",
    )
    .bind(deployment_id)
    .fetch_all(db)
    .await?)
}

pub async fn revision(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    revision: i32,
) -> Result<Option<RevisionRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT revision, version, reason, actor_name, created_at FROM deployment_revisions \
         WHERE deployment_id = $1 AND revision = $2",
    )
    .bind(deployment_id)
    .bind(revision)
    .fetch_optional(db)
    .await?)
}

/// Records what the serving side reports, for `revision` only: a report about a revision
/// that is no longer current is dropped.
pub async fn set_status(
    db: impl PgExecutor<'_>,
    name: &str,
    revision: i32,
    status: &str,
    message: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE deployments SET status = $3, status_message = $4, updated_at = now() \
         WHERE name = $1 AND current_revision = $2 AND (status <> $3 OR status_message <> $4)",
    )
    .bind(name)
    .bind(revision)
    .bind(status)
    .bind(message)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<(), DbError> {
    sqlx::query("DELETE FROM deployments WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// The deployments following `alias` of the model.
pub async fn following(db: impl PgExecutor<'_>, model_id: i64, alias: &str) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT name FROM deployments WHERE model_id = $1 AND alias = $2 ORDER BY name")
        .bind(model_id)
        .bind(alias)
        .fetch_all(db)
        .await?)
}

/// Lineage: a deployment and the model version its current revision serves.
#[derive(Debug, Clone, FromRow)]
pub struct ServingEdge {
    pub deployment_id: i64,
    pub name: String,
    /// The deployment's project (the model version's is in `model`).
    pub deployment_project_id: i64,
    #[sqlx(flatten)]
    pub model: crate::lineage::ModelVersionNode,
}

const SERVING: &str = "SELECT d.id AS deployment_id, d.name, d.project_id AS deployment_project_id, v.id, \
    m.name AS model, v.version, m.project_id FROM deployments d \
    JOIN deployment_revisions r ON r.deployment_id = d.id AND r.revision = d.current_revision \
    JOIN model_versions v ON v.id = r.model_version_id JOIN registered_models m ON m.id = v.model_id";

/// Downstream of model versions: the deployments serving them now (at most `limit`).
pub async fn serving(db: impl PgExecutor<'_>, version_ids: &[i64], limit: i64) -> Result<Vec<ServingEdge>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SERVING} WHERE v.id = ANY($1) ORDER BY d.name LIMIT $2")))
        .bind(version_ids)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// Upstream of deployments: the model versions they serve now.
pub async fn served(db: impl PgExecutor<'_>, deployment_ids: &[i64]) -> Result<Vec<ServingEdge>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SERVING} WHERE d.id = ANY($1)")))
        .bind(deployment_ids)
        .fetch_all(db)
        .await?)
}

/// A deployment's id by name.
pub async fn id_of(db: impl PgExecutor<'_>, name: &str) -> Result<Option<i64>, DbError> {
    Ok(sqlx::query_scalar("SELECT id FROM deployments WHERE name = $1").bind(name).fetch_optional(db).await?)
}
