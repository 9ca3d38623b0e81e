//! The jobs list as the dashboard shows it: one query per page (keyset on
//! `(created_at, id)`), each job with its template and, while queued, its place in the queue.

use cairn_core::job::{JobSpec, JobState};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct JobLine {
    pub id: Uuid,
    pub state: String,
    pub reason: String,
    pub spec: Json<JobSpec>,
    pub gpus: i32,
    pub run_uuid: Uuid,
    pub created_by: Option<String>,
    pub template: Option<String>,
    pub template_version: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// 1 for the next job a worker will claim; only for queued jobs.
    pub queue_position: Option<i64>,
}

/// A page position: the `(created_at, id)` of the last job of the previous page.
#[derive(Debug, Clone, Copy)]
pub struct After {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Jobs newest first, of experiments in `projects` (None: every project), optionally in
/// one state, after the keyset position `after`. The queue position counts every queued
/// job, whatever its project: it says how long the wait is in the one shared queue. A
/// template in a project outside `projects` is not named (the job shows its command).
pub async fn page(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    state: Option<JobState>,
    after: Option<After>,
    limit: i64,
) -> Result<Vec<JobLine>, DbError> {
    Ok(sqlx::query_as(
        "WITH shown AS (SELECT * FROM jobs j \
           WHERE ($1::text IS NULL OR j.state = $1) \
             AND ($2::timestamptz IS NULL OR (j.created_at, j.id) < ($2, $3)) \
             AND ($5::bigint[] IS NULL OR j.experiment_id IN (SELECT id FROM experiments WHERE project_id = ANY($5))) \
           ORDER BY j.created_at DESC, j.id DESC LIMIT $4), \
         queue AS (SELECT id, row_number() OVER (ORDER BY priority DESC, created_at) AS position \
           FROM jobs WHERE state = 'queued') \
         SELECT s.id, s.state, s.reason, s.spec, s.gpus, r.run_uuid, u.username AS created_by, \
           t.name AS template, t.version AS template_version, s.created_at, s.started_at, s.finished_at, \
           q.position AS queue_position \
         FROM shown s JOIN runs r ON r.id = s.run_id LEFT JOIN users u ON u.id = s.created_by \
           LEFT JOIN job_templates t ON t.id = s.template_id AND ($5::bigint[] IS NULL OR t.project_id = ANY($5)) \
           LEFT JOIN queue q ON q.id = s.id \
         ORDER BY s.created_at DESC, s.id DESC",
    )
    .bind(state.map(JobState::as_str))
    .bind(after.map(|a| a.created_at))
    .bind(after.map(|a| a.id))
    .bind(limit)
    .bind(projects)
    .fetch_all(db)
    .await?)
}

/// How many jobs of experiments in `projects` (None: every project) are in each state now.
pub async fn counts(db: impl PgExecutor<'_>, projects: Option<&[i64]>) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT state, count(*) FROM jobs \
         WHERE $1::bigint[] IS NULL OR experiment_id IN (SELECT id FROM experiments WHERE project_id = ANY($1)) \
         GROUP BY state",
    )
    .bind(projects)
    .fetch_all(db)
    .await?)
}
