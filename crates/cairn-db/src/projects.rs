//! Projects, their members, and which project an object belongs to (what every route's
//! access check looks up).

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, FromRow, PgExecutor};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub everyone_role: Option<String>,
    pub max_concurrent_gpus: Option<i32>,
    pub monthly_gpu_hours: Option<f64>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, description, everyone_role, max_concurrent_gpus, monthly_gpu_hours, created_at";

/// A project a user can see, with what gives them a role there.
#[derive(Debug, Clone, FromRow)]
pub struct StandingRow {
    pub id: i64,
    pub name: String,
    pub membership: Option<String>,
    pub everyone_role: Option<String>,
}

/// The projects where `user_id` has a membership or that give every account a role; all
/// projects when `every_project` (server admins). `only` restricts to one project (a
/// project-scoped token). One indexed query per request.
pub async fn standings(
    db: impl PgExecutor<'_>,
    user_id: i64,
    every_project: bool,
    only: Option<i64>,
) -> Result<Vec<StandingRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.name, m.role AS membership, p.everyone_role FROM projects p \
         LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $1 \
         WHERE ($2 OR m.role IS NOT NULL OR p.everyone_role IS NOT NULL) AND ($3::bigint IS NULL OR p.id = $3) \
         ORDER BY p.name",
    )
    .bind(user_id)
    .bind(every_project)
    .bind(only)
    .fetch_all(db)
    .await?)
}

/// What the changeable settings of a project are set to.
pub struct ProjectSettings<'a> {
    pub description: &'a str,
    pub everyone_role: Option<&'a str>,
    pub max_concurrent_gpus: Option<i32>,
    pub monthly_gpu_hours: Option<f64>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    settings: &ProjectSettings<'_>,
    created_by: Option<i64>,
) -> Result<ProjectRow, DbError> {
    let sql = format!(
        "INSERT INTO projects (name, description, everyone_role, max_concurrent_gpus, monthly_gpu_hours, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as(AssertSqlSafe(sql))
        .bind(name)
        .bind(settings.description)
        .bind(settings.everyone_role)
        .bind(settings.max_concurrent_gpus)
        .bind(settings.monthly_gpu_hours)
        .bind(created_by)
        .fetch_one(db)
        .await
        .map_err(DbError::from)?;
    Ok(row)
}

/// Replaces the settings; returns the row, or None when the project does not exist.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: i64,
    settings: &ProjectSettings<'_>,
) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!(
        "UPDATE projects SET description = $2, everyone_role = $3, max_concurrent_gpus = $4, monthly_gpu_hours = $5 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .bind(settings.description)
        .bind(settings.everyone_role)
        .bind(settings.max_concurrent_gpus)
        .bind(settings.monthly_gpu_hours)
        .fetch_optional(db)
        .await?)
}

pub async fn find_by_name(db: impl PgExecutor<'_>, name: &str) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE name = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(name).fetch_optional(db).await?)
}

/// The project's row, locked until the transaction ends: membership changes take it so that
/// two concurrent demotions cannot both leave the project without its last owner.
pub async fn lock(db: impl PgExecutor<'_>, id: i64) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1 FOR UPDATE");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(db).await?)
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> Result<Option<ProjectRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(db).await?)
}

/// The projects among `ids` (all projects when None), by name.
pub async fn list(db: impl PgExecutor<'_>, ids: Option<&[i64]>) -> Result<Vec<ProjectRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE $1::bigint[] IS NULL OR id = ANY($1) ORDER BY name");
    Ok(sqlx::query_as(AssertSqlSafe(sql)).bind(ids).fetch_all(db).await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
    pub role: String,
    /// A service account of this project, rather than a person.
    pub service_account: bool,
    pub disabled: bool,
    pub added_at: DateTime<Utc>,
}

pub async fn members(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<MemberRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT m.user_id, u.username, m.role, u.service_project_id IS NOT NULL AS service_account, u.disabled, m.added_at \
         FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.username",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?)
}

/// Adds the member or changes their role; returns the previous role (None: newly added).
pub async fn set_member(
    db: impl PgExecutor<'_>,
    project_id: i64,
    user_id: i64,
    role: &str,
) -> Result<Option<String>, DbError> {
    let previous: Option<Option<String>> = sqlx::query_scalar(
        "WITH before AS (SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2) \
         INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role \
         RETURNING (SELECT role FROM before)",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role)
    .fetch_optional(db)
    .await?;
    Ok(previous.flatten())
}

/// Returns the removed membership's role, or None when there was none.
pub async fn remove_member(db: impl PgExecutor<'_>, project_id: i64, user_id: i64) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 RETURNING role")
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?)
}

/// How many owners the project has (a project keeps at least one, unless admins manage it).
pub async fn owner_count(db: impl PgExecutor<'_>, project_id: i64) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM project_members WHERE project_id = $1 AND role = 'owner'")
        .bind(project_id)
        .fetch_one(db)
        .await?)
}

/// An object a request names, by the key the request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKey {
    Project(String),
    Experiment(i64),
    ExperimentName(String),
    Run(Uuid),
    LoggedModel(String),
    Model(String),
    Dataset(String),
    Job(Uuid),
    JobTemplate(String),
    Deployment(String),
}

/// The project `key`'s object belongs to, or None when there is no such object.
pub async fn project_of(db: impl PgExecutor<'_>, key: &ObjectKey) -> Result<Option<i64>, DbError> {
    let by_text = |sql: &'static str, text: &str| sqlx::query_scalar(sql).bind(text.to_owned());
    let by_uuid = |sql: &'static str, id: Uuid| sqlx::query_scalar(sql).bind(id);
    let query = match key {
        ObjectKey::Project(name) => by_text("SELECT id FROM projects WHERE name = $1", name),
        ObjectKey::Experiment(id) => sqlx::query_scalar("SELECT project_id FROM experiments WHERE id = $1").bind(*id),
        ObjectKey::ExperimentName(name) => by_text("SELECT project_id FROM experiments WHERE name = $1", name),
        ObjectKey::Run(id) => by_uuid(
            "SELECT e.project_id FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.run_uuid = $1",
            *id,
        ),
        ObjectKey::LoggedModel(id) => by_text(
            "SELECT e.project_id FROM logged_models m JOIN experiments e ON e.id = m.experiment_id \
             WHERE m.model_id = $1",
            id,
        ),
        ObjectKey::Model(name) => by_text("SELECT project_id FROM registered_models WHERE name = $1", name),
        ObjectKey::Dataset(name) => by_text("SELECT project_id FROM datasets WHERE name = $1", name),
        ObjectKey::Job(id) => {
            by_uuid("SELECT e.project_id FROM jobs j JOIN experiments e ON e.id = j.experiment_id WHERE j.id = $1", *id)
        }
        ObjectKey::JobTemplate(name) => by_text("SELECT project_id FROM job_templates WHERE name = $1 LIMIT 1", name),
        ObjectKey::Deployment(name) => by_text("SELECT project_id FROM deployments WHERE name = $1", name),
    };
    Ok(query.fetch_optional(db).await?)
}
