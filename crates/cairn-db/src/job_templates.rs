//! Job templates: named specs, one immutable row per version, and the link from a job to
//! the template version it was submitted from.

use cairn_core::job::JobSpec;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    pub id: i64,
    pub name: String,
    pub version: i32,
    pub spec: Json<JobSpec>,
    pub description: String,
    pub experiment_id: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The project the template belongs to (every version has its first version's).
    pub project_id: i64,
}

const SELECT: &str = "SELECT t.id, t.name, t.version, t.spec, t.description, t.experiment_id, \
    u.username AS created_by, t.created_at, t.project_id FROM job_templates t LEFT JOIN users u ON u.id = t.created_by";

pub struct NewTemplate<'a> {
    pub name: &'a str,
    pub spec: &'a JobSpec,
    pub description: &'a str,
    pub experiment_id: Option<i64>,
    pub created_by: Option<i64>,
    /// Where a new template goes when neither an earlier version nor its experiment decides.
    pub project_id: i64,
}

/// Adds the next version of template `name` (1 for a new name). Two concurrent updates of
/// one name cannot get the same number: the loser fails on the unique (name, version).
/// A template stays in the project of its first version; a new one goes to its
/// experiment's project, else to `project_id`.
pub async fn insert_version(db: impl PgExecutor<'_>, new: &NewTemplate<'_>) -> Result<(i64, i32), DbError> {
    Ok(sqlx::query_as(
        "INSERT INTO job_templates (name, version, spec, description, experiment_id, created_by, project_id) \
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5, COALESCE(min(project_id), \
         (SELECT project_id FROM experiments WHERE id = $4), $6) FROM job_templates WHERE name = $1 \
         RETURNING id, version",
    )
    .bind(new.name)
    .bind(Json(new.spec))
    .bind(new.description)
    .bind(new.experiment_id)
    .bind(new.created_by)
    .bind(new.project_id)
    .fetch_one(db)
    .await?)
}

/// Version `version` of `name`, or its latest when `version` is `None`.
pub async fn get(db: impl PgExecutor<'_>, name: &str, version: Option<i32>) -> Result<Option<TemplateRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE t.name = $1 AND ($2::integer IS NULL OR t.version = $2) ORDER BY t.version DESC LIMIT 1"
    )))
    .bind(name)
    .bind(version)
    .fetch_optional(db)
    .await?)
}

/// The latest version of every template in `projects` (None: every project), by name.
pub async fn list_latest(db: impl PgExecutor<'_>, projects: Option<&[i64]>) -> Result<Vec<TemplateRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE t.version = (SELECT max(version) FROM job_templates l WHERE l.name = t.name) \
         AND ($1::bigint[] IS NULL OR t.project_id = ANY($1)) ORDER BY t.name"
    )))
    .bind(projects)
    .fetch_all(db)
    .await?)
}

/// Every version of `name`, newest first.
pub async fn versions(db: impl PgExecutor<'_>, name: &str) -> Result<Vec<TemplateRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.name = $1 ORDER BY t.version DESC")))
        .bind(name)
        .fetch_all(db)
        .await?)
}

/// The template version (`name`, `version`, project id) a job came from, if any.
pub async fn of_job(db: impl PgExecutor<'_>, job: Uuid) -> Result<Option<(String, i32, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT t.name, t.version, t.project_id FROM jobs j JOIN job_templates t ON t.id = j.template_id WHERE j.id = $1",
    )
    .bind(job)
    .fetch_optional(db)
    .await?)
}
