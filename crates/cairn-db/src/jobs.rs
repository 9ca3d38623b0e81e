//! The job queue and state machine. Every transition is one conditional `UPDATE` (it only
//! applies from the states that allow it) plus a `job_events` row, in one statement, so
//! concurrent workers, cancels and restarts never disagree about a job's state.

use cairn_core::job::{JobSpec, JobState};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::DbError;

/// The right to run one executor's jobs: a session-level advisory lock, held for as long as
/// this value (and its dedicated connection) lives. With several server replicas on one
/// database only the holder claims, supervises and re-attaches to that executor's jobs; when
/// it stops or dies, its connection closes and another replica takes over. (A pooler in
/// transaction mode between Cairn and PostgreSQL would break session locks: connect directly.)
pub struct Leadership {
    connection: PgConnection,
}

impl Leadership {
    /// Hands the leadership on at once (dropping it does too, once PostgreSQL notices the
    /// closed connection).
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut self.connection).await;
        let _ = sqlx::Connection::close(self.connection).await;
    }
}

/// Takes the leadership of executor `worker`, or `None` when another process holds it.
pub async fn try_lead(pool: &PgPool, worker: &str) -> Result<Option<Leadership>, DbError> {
    let mut connection = pool.acquire().await?.detach();
    let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("cairn.executor.{worker}"))
        .fetch_one(&mut connection)
        .await?;
    Ok(won.then_some(Leadership { connection }))
}

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub state: String,
    pub spec: Json<JobSpec>,
    pub experiment_id: i64,
    pub run_uuid: Uuid,
    pub run_id: i64,
    pub priority: i32,
    pub gpus: i32,
    pub origin_job_id: Option<Uuid>,
    pub reason: String,
    pub exit_code: Option<i32>,
    pub worker: Option<String>,
    pub pid: Option<i32>,
    pub token_id: Option<Uuid>,
    pub cancel_requested: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobRow {
    pub fn state(&self) -> JobState {
        JobState::parse(&self.state).unwrap_or(JobState::Failed)
    }
}

const SELECT: &str = "SELECT j.id, j.state, j.spec, j.experiment_id, r.run_uuid, j.run_id, j.priority, j.gpus, \
    j.origin_job_id, j.reason, j.exit_code, j.worker, j.pid, j.token_id, j.cancel_requested, u.username AS created_by, \
    j.created_at, j.scheduled_at, j.started_at, j.finished_at \
    FROM jobs j JOIN runs r ON r.id = j.run_id LEFT JOIN users u ON u.id = j.created_by";

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: DateTime<Utc>,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
}

pub struct NewJob<'a> {
    pub id: Uuid,
    pub spec: &'a JobSpec,
    pub experiment_id: i64,
    pub run_id: i64,
    pub priority: i32,
    pub origin_job_id: Option<Uuid>,
    /// The template version it was submitted from; `None` inherits the origin job's.
    pub template_id: Option<i64>,
    pub created_by: Option<i64>,
}

pub async fn insert(db: impl PgExecutor<'_>, job: &NewJob<'_>) -> Result<(), DbError> {
    sqlx::query(
        "WITH job AS (INSERT INTO jobs (id, spec, experiment_id, run_id, priority, gpus, origin_job_id, created_by, \
         template_id, cpu_cores) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id) \
         INSERT INTO job_events (job_id, to_state, reason) SELECT id, 'queued', 'submitted' FROM job",
    )
    .bind(job.id)
    .bind(Json(job.spec))
    .bind(job.experiment_id)
    .bind(job.run_id)
    .bind(job.priority)
    .bind(i32::try_from(job.spec.gpus).unwrap_or(i32::MAX))
    .bind(job.origin_job_id)
    .bind(job.created_by)
    .bind(job.template_id)
    .bind(job.spec.charged_cores())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<JobRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE j.id = $1"))).bind(id).fetch_optional(db).await?)
}

/// Newest first, of experiments in `projects` (None: every project), optionally in one
/// state, before `before` (keyset).
pub async fn list(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    state: Option<JobState>,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<JobRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE ($1::text IS NULL OR j.state = $1) AND ($2::timestamptz IS NULL OR j.created_at < $2) \
         AND ($4::bigint[] IS NULL OR j.experiment_id IN (SELECT id FROM experiments WHERE project_id = ANY($4))) \
         ORDER BY j.created_at DESC LIMIT $3"
    )))
    .bind(state.map(JobState::as_str))
    .bind(before)
    .bind(limit)
    .bind(projects)
    .fetch_all(db)
    .await?)
}

/// The newest job that ran in the run with this public id.
pub async fn by_run(db: impl PgExecutor<'_>, run_uuid: Uuid) -> Result<Option<JobRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE r.run_uuid = $1 ORDER BY j.created_at DESC LIMIT 1"
    )))
    .bind(run_uuid)
    .fetch_optional(db)
    .await?)
}

pub async fn events(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<EventRow>, DbError> {
    Ok(sqlx::query_as("SELECT at, from_state, to_state, reason FROM job_events WHERE job_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(db)
        .await?)
}

/// Moves the job to `to` if it is in one of the states that may become `to`; records the
/// event. Returns whether it moved. `exit_code` and `reason` are recorded with it.
pub async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    to: JobState,
    reason: &str,
    exit_code: Option<i32>,
) -> Result<bool, DbError> {
    let from: Vec<&str> = JobState::ALL.into_iter().filter(|s| s.may_become(to)).map(JobState::as_str).collect();
    let moved: Option<(String,)> = sqlx::query_as(
        "WITH old AS (SELECT state FROM jobs WHERE id = $1 FOR UPDATE), \
         moved AS (UPDATE jobs j SET state = $2, reason = $3, exit_code = COALESCE($4, j.exit_code), \
           scheduled_at = CASE WHEN $2 = 'scheduled' THEN now() ELSE j.scheduled_at END, \
           started_at = CASE WHEN $2 = 'running' THEN now() ELSE j.started_at END, \
           finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') THEN now() ELSE j.finished_at END \
           FROM old WHERE j.id = $1 AND old.state = ANY($5) RETURNING old.state), \
         event AS (INSERT INTO job_events (job_id, from_state, to_state, reason) SELECT $1, state, $2, $3 FROM moved) \
         SELECT state FROM moved",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(reason)
    .bind(exit_code)
    .bind(&from)
    .fetch_optional(db)
    .await?;
    Ok(moved.is_some())
}

/// Claims the most urgent queued job that needs at most `free_gpus` and that its project's
/// GPU quotas admit, for `worker`: it becomes `scheduled`. Queued GPU jobs the quotas hold
/// back get the reason as their `reason` (once, not on every poll). Concurrent claimers skip
/// each other's rows; with several replicas only the executor's leader claims, so the
/// quota sums cannot race.
///
/// Quotas (per project, NULL: none): `max_concurrent_gpus`, the GPUs its scheduled and
/// running jobs may hold at once; `monthly_gpu_hours`, the GPU time its jobs may use in a
/// calendar month (UTC), counting ended jobs' GPU-seconds and running jobs' time so far.
pub async fn claim_next(db: impl PgExecutor<'_>, worker: &str, free_gpus: i32) -> Result<Option<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "WITH month AS (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS start), \
         used AS (SELECT e.project_id, \
             COALESCE(sum(j.gpus) FILTER (WHERE j.state IN ('scheduled', 'running')), 0) AS gpus_held, \
             COALESCE(sum(j.gpu_seconds) FILTER (WHERE j.finished_at >= month.start), 0) \
             + COALESCE(sum(j.gpus * extract(epoch FROM now() - GREATEST(j.started_at, month.start))) \
                 FILTER (WHERE j.state = 'running' AND j.started_at IS NOT NULL), 0) AS gpu_seconds \
           FROM jobs j JOIN experiments e ON e.id = j.experiment_id, month \
           WHERE j.state IN ('scheduled', 'running') OR j.finished_at >= month.start \
           GROUP BY e.project_id), \
         queued AS (SELECT j.id, j.gpus, j.priority, j.created_at, j.reason, CASE \
             WHEN j.gpus > 0 AND p.max_concurrent_gpus IS NOT NULL \
               AND COALESCE(u.gpus_held, 0) + j.gpus > p.max_concurrent_gpus THEN \
               format('waiting for project %s''s GPU limit: %s of %s GPUs in use, this job needs %s', \
                 p.name, COALESCE(u.gpus_held, 0), p.max_concurrent_gpus, j.gpus) \
             WHEN j.gpus > 0 AND p.monthly_gpu_hours IS NOT NULL \
               AND COALESCE(u.gpu_seconds, 0) >= p.monthly_gpu_hours * 3600 THEN \
               format('project %s has used its %s GPU-hours for this month (%s used); \
                 the job waits for next month or a higher quota', \
                 p.name, p.monthly_gpu_hours, round((COALESCE(u.gpu_seconds, 0) / 3600)::numeric, 2)) \
             END AS held_back \
           FROM jobs j JOIN experiments e ON e.id = j.experiment_id JOIN projects p ON p.id = e.project_id \
           LEFT JOIN used u ON u.project_id = e.project_id WHERE j.state = 'queued'), \
         noted AS (UPDATE jobs j SET reason = q.held_back FROM queued q \
           WHERE j.id = q.id AND q.held_back IS NOT NULL AND j.reason <> q.held_back), \
         next AS (SELECT j.id FROM jobs j JOIN queued q ON q.id = j.id \
           WHERE q.held_back IS NULL AND j.gpus <= $2 AND j.state = 'queued' \
           ORDER BY j.priority DESC, j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED), \
         claimed AS (UPDATE jobs j SET state = 'scheduled', worker = $1, scheduled_at = now(), reason = '' FROM next \
           WHERE j.id = next.id RETURNING j.id), \
         event AS (INSERT INTO job_events (job_id, from_state, to_state, reason) \
           SELECT id, 'queued', 'scheduled', 'claimed by ' || $1 FROM claimed) \
         SELECT id FROM claimed",
    )
    .bind(worker)
    .bind(free_gpus)
    .fetch_optional(db)
    .await?)
}

pub async fn set_process(
    db: impl PgExecutor<'_>,
    id: Uuid,
    pid: Option<i32>,
    token_id: Option<Uuid>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE jobs SET pid = COALESCE($2, pid), token_id = COALESCE($3, token_id) WHERE id = $1")
        .bind(id)
        .bind(pid)
        .bind(token_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks a cancel request; the worker that runs the job stops it.
pub async fn request_cancel(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), DbError> {
    sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

pub async fn cancel_requested(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .unwrap_or(false))
}

/// Jobs a worker had scheduled or running, e.g. when it restarts.
pub async fn held_by(db: impl PgExecutor<'_>, worker: &str) -> Result<Vec<JobRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE j.state IN ('scheduled', 'running') AND j.worker = $1"
    )))
    .bind(worker)
    .fetch_all(db)
    .await?)
}

/// Records why a scheduled or running job is where it is (the scheduler's message, say) as
/// its reason and as an event, when that reason is new.
pub async fn note(db: impl PgExecutor<'_>, id: Uuid, reason: &str) -> Result<bool, DbError> {
    let noted: Option<(String,)> = sqlx::query_as(
        "WITH noted AS (UPDATE jobs SET reason = $2 WHERE id = $1 AND state IN ('scheduled', 'running') \
           AND reason <> $2 RETURNING state), \
         event AS (INSERT INTO job_events (job_id, from_state, to_state, reason) SELECT $1, state, state, $2 FROM noted) \
         SELECT state FROM noted",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(db)
    .await?;
    Ok(noted.is_some())
}
