//! What a job's token may change. It acts for the job's submitter inside the job's project
//! (a project-scoped token), and further only on its own run: the job's code may log to its
//! run and to runs nested under it, start nested runs and log models in the run's
//! experiment, upload their artifacts, and register models in the project. It may not
//! change other runs, experiments, datasets, templates, jobs, deployments or accounts.
//! Reading is not limited beyond the project.

use cairn_db::DbError;
use sqlx::PgPool;
use uuid::Uuid;

use super::policy::Object;

/// Routes that add to the run's experiment (a nested run, a logged model); every other
/// write that names an experiment changes the experiment itself.
const ADDS_TO_EXPERIMENT: &[&str] = &["/2.0/mlflow/runs/create", "/2.0/mlflow/logged-models"];

/// Whether a job token of run `own` may change the object `raw` names on `route`.
pub async fn allows(pool: &PgPool, own: Uuid, route: &str, object: Object, raw: &str) -> Result<bool, DbError> {
    match object {
        Object::Run => match crate::tracking::parse_run_id(raw) {
            Ok(run) => within(pool, own, run).await,
            Err(_) => Ok(true),
        },
        Object::Experiment if ADDS_TO_EXPERIMENT.iter().any(|r| route.ends_with(r)) => {
            let Ok(experiment) = crate::tracking::parse_experiment_id(raw) else { return Ok(true) };
            in_experiment_of(pool, own, experiment).await
        }
        Object::LoggedModel => Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM logged_models m JOIN runs r ON r.experiment_id = m.experiment_id \
             WHERE m.model_id = $1 AND r.run_uuid = $2)",
        )
        .bind(raw)
        .bind(own)
        .fetch_one(pool)
        .await?),
        Object::ArtifactPath => {
            let mut parts = raw.trim_start_matches('/').split('/');
            let (experiment, second) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match (experiment.parse::<i64>(), second) {
                (Ok(experiment), "models") => in_experiment_of(pool, own, experiment).await,
                (Ok(_), run) => match uuid::Uuid::try_parse(run) {
                    Ok(run) => within(pool, own, run).await,
                    Err(_) => Ok(false),
                },
                _ => Ok(false),
            }
        }
        Object::Model => Ok(true),
        _ => Ok(false),
    }
}

/// Whether `run` is `own` or nested (at any depth) under it.
async fn within(pool: &PgPool, own: Uuid, run: Uuid) -> Result<bool, DbError> {
    if run == own {
        return Ok(true);
    }
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE up AS (SELECT id, parent_run_id, run_uuid FROM runs WHERE run_uuid = $1 \
           UNION ALL SELECT r.id, r.parent_run_id, r.run_uuid FROM runs r JOIN up ON r.id = up.parent_run_id) \
         SELECT EXISTS (SELECT 1 FROM up WHERE run_uuid = $2)",
    )
    .bind(run)
    .bind(own)
    .fetch_one(pool)
    .await?)
}

async fn in_experiment_of(pool: &PgPool, own: Uuid, experiment: i64) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM runs WHERE run_uuid = $1 AND experiment_id = $2)")
        .bind(own)
        .bind(experiment)
        .fetch_one(pool)
        .await?)
}
