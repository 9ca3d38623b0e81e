//! GPU-hour accounting: totals of the GPU-, CPU- and wall-seconds that jobs recorded when
//! they ended (see migration 0008), over a time range, grouped by who submitted them, the
//! template they came from, or the model versions registered from their runs. A job counts
//! in the range it ended in; one aggregate query per grouping.
//!
//! Every query takes the projects the caller can read (None: every project): only jobs of
//! experiments in them count, and a template or model version in another project is not
//! named (its jobs count as if it did not exist: without a template, without a model).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

use crate::DbError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageBy {
    User,
    Template,
    /// The model versions whose source run is a job's run; a job that produced two
    /// versions counts for both, one that produced none is in the row without a key.
    Model,
}

#[derive(Debug, Clone, FromRow)]
pub struct UsageRow {
    /// The user's name, the template's name or `MODEL/VERSION`; `None` for jobs without one.
    pub key: Option<String>,
    pub jobs: i64,
    pub gpu_seconds: f64,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
}

const ENDED: &str = "WITH ended AS (SELECT j.run_id, j.created_by, j.template_id, \
    COALESCE(j.gpu_seconds, 0) AS gpu, COALESCE(j.cpu_seconds, 0) AS cpu, COALESCE(j.wall_seconds, 0) AS wall \
    FROM jobs j WHERE j.finished_at >= $1 AND j.finished_at < $2 \
    AND ($3::bigint[] IS NULL OR j.experiment_id IN (SELECT id FROM experiments WHERE project_id = ANY($3)))) ";

const SUMS: &str = "count(*) AS jobs, COALESCE(sum(gpu), 0)::float8 AS gpu_seconds, COALESCE(sum(cpu), 0)::float8 AS cpu_seconds, \
     COALESCE(sum(wall), 0)::float8 AS wall_seconds";

/// Totals per group for jobs in `projects` that ended in `[from, to)`, most GPU time first.
pub async fn totals(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    by: UsageBy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>, DbError> {
    let grouped = match by {
        UsageBy::User => {
            "SELECT u.username AS key, {SUMS} FROM ended e LEFT JOIN users u ON u.id = e.created_by GROUP BY u.username"
        }
        UsageBy::Template => {
            "SELECT t.name AS key, {SUMS} FROM ended e LEFT JOIN job_templates t ON t.id = e.template_id \
            AND ($3::bigint[] IS NULL OR t.project_id = ANY($3)) GROUP BY t.name"
        }
        UsageBy::Model => {
            "SELECT m.name || '/' || mv.version AS key, {SUMS} FROM ended e \
            LEFT JOIN (model_versions mv JOIN registered_models m ON m.id = mv.model_id \
              AND ($3::bigint[] IS NULL OR m.project_id = ANY($3))) ON mv.run_id = e.run_id \
            GROUP BY m.name, mv.version"
        }
    };
    let sql = format!(
        "{ENDED}{} ORDER BY gpu_seconds DESC, wall_seconds DESC, key NULLS LAST",
        grouped.replace("{SUMS}", SUMS)
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).bind(projects).fetch_all(db).await?)
}

/// Totals of all jobs in `projects` that ended in `[from, to)` (each job once).
pub async fn overall(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<UsageRow, DbError> {
    let sql = format!("{ENDED}SELECT NULL::text AS key, {SUMS} FROM ended");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).bind(projects).fetch_one(db).await?)
}
