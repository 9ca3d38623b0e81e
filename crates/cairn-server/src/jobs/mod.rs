//! Training jobs: submit (the job's run is created first, its dataset inputs pinned to exact
//! versions and the resolved spec recorded, so the record alone reproduces the job),
//! cancel, retry, and the executors that run queued jobs: child processes on this host
//! ([`local`]) or pods ([`kubernetes`]), around one shared lifecycle ([`executor`]).

mod executor;
pub mod kubernetes;
pub mod local;
mod logs;
pub(crate) mod process;

use cairn_core::dataset::DatasetRef;
use cairn_core::job::{JobSpec, JobState};
use cairn_db::job_templates::TemplateRow;
use cairn_db::jobs::{self as repo, JobRow, NewJob};
use cairn_db::tracking::KeyValue;
use cairn_db::{Db, audit};
use serde_json::json;
use uuid::Uuid;

pub use executor::wake;
pub use logs::{LogSource, log_source};

use crate::audit::Actor;
use crate::datasets;
use crate::service_error::{ServiceError, invalid};
use crate::state::AppState;
use crate::tracking::{self, NewRunRequest, RunExtras, TrackingError};

/// Tag on a job's run naming the job.
pub const JOB_TAG: &str = "cairn.job_id";
/// Tag on a retried or retrained job's run naming the run it repeats.
pub const ORIGIN_RUN_TAG: &str = "cairn.origin_run_id";

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

pub struct Submission {
    pub experiment_id: i64,
    pub spec: JobSpec,
    pub priority: i32,
    /// The job this one repeats (retry, retrain).
    pub origin: Option<Uuid>,
    /// The template version the job was made from (retries and retrains inherit their
    /// origin's).
    pub template: Option<TemplateRow>,
}

/// Creates the job's run (params logged, source recorded, dataset versions linked) and
/// queues the job.
pub async fn submit(state: &AppState, actor: &Actor, submission: Submission) -> Result<JobRow> {
    submit_as(state, actor, submission, "job.submit").await
}

/// [`submit`], audited as `action` (`job.submit`, `job.retry`, `job.retrain`).
async fn submit_as(state: &AppState, actor: &Actor, mut submission: Submission, action: &str) -> Result<JobRow> {
    submission.spec.validate()?;
    if state.config.kubernetes.is_some() && submission.spec.image.is_none() {
        return Err(invalid("jobs run as Kubernetes pods here: the job needs an image"));
    }
    if state.config.kubernetes.is_none()
        && let Some(gpus) = local::gpu_count()
        && submission.spec.gpus > gpus
    {
        return Err(invalid(format!(
            "the job asks for {} GPUs but this host has {gpus}; no job could ever run it",
            submission.spec.gpus
        )));
    }
    // Pin every dataset input to the exact version it resolves to now.
    let mut pinned = Vec::new();
    for input in &submission.spec.datasets {
        let reference = input.parse::<DatasetRef>().map_err(|e| invalid(e.0))?;
        pinned.push(datasets::get_version(&state.db, &reference).await?);
    }
    submission.spec.datasets = pinned
        .iter()
        .map(|(dataset, version)| DatasetRef { name: dataset.name.clone(), version: Some(version.version) }.to_string())
        .collect();

    let id = Uuid::new_v4();
    let mut tags = vec![KeyValue { key: JOB_TAG.into(), value: id.simple().to_string() }];
    if let Some(source) = &submission.spec.source {
        tags.push(KeyValue { key: "mlflow.source.git.repoURL".into(), value: source.repository.clone() });
        tags.push(KeyValue { key: "mlflow.source.git.commit".into(), value: source.commit.clone() });
    }
    tags.push(KeyValue { key: "mlflow.source.name".into(), value: submission.spec.command.join(" ") });
    if let Some(origin) = submission.origin
        && let Some(job) = repo::get(&state.db.pool, origin).await?
    {
        tags.push(KeyValue { key: ORIGIN_RUN_TAG.into(), value: job.run_uuid.simple().to_string() });
    }
    let run_name = format!("job-{}", &id.simple().to_string()[..8]);
    let request = NewRunRequest {
        experiment_id: submission.experiment_id,
        user_id: None,
        run_name: Some(&run_name),
        start_time: None,
        tags,
    };
    let params = submission.spec.params.iter().map(|(k, v)| KeyValue { key: k.clone(), value: v.clone() }).collect();
    let extras = RunExtras { params, status: Some("SCHEDULED"), ..RunExtras::default() };

    // The run, its dataset links, the job and the template it came from: all or nothing, so
    // a crash never leaves a scheduled run without its job.
    let mut tx = state.db.pool.begin().await.map_err(TrackingError::from)?;
    let run = tracking::create_run_in(&mut tx, &state.db, actor, request, extras).await?;
    for (dataset, version) in &pinned {
        datasets::link_run_in(&mut tx, actor, &run.run, dataset, version, "training").await?;
    }
    let new = NewJob {
        id,
        spec: &submission.spec,
        experiment_id: submission.experiment_id,
        run_id: run.run.id,
        priority: submission.priority,
        origin_job_id: submission.origin,
        template_id: submission.template.as_ref().map(|t| t.id),
        created_by: actor.user_id,
    };
    repo::insert(&mut *tx, &new).await?;
    let details = json!({"run_id": run.run.run_uuid.simple().to_string(), "gpus": submission.spec.gpus, "origin": submission.origin});
    audit::append_in(&mut tx, actor.event(action, format!("job:{id}"), details)).await?;
    if let Some(template) = &submission.template {
        let details = json!({"template": template.name, "version": template.version});
        audit::append_in(&mut tx, actor.event("job_template.use", format!("job:{id}"), details)).await?;
    }
    tx.commit().await.map_err(TrackingError::from)?;
    tracking::touch_experiment(&state.db, submission.experiment_id).await?;
    wake();
    get(&state.db, id).await
}

/// The executor's background work, stopped with the server.
pub struct RunningExecutor(Option<executor::Background>);

impl RunningExecutor {
    /// Stops supervising jobs (local children die with the process; pods keep running, for
    /// the next server to re-attach to) and waits a little for the tasks to end.
    pub async fn stop(self) {
        if let Some(background) = self.0 {
            background.shutdown.cancel();
            background.tasks.close();
            if tokio::time::timeout(std::time::Duration::from_secs(10), background.tasks.wait()).await.is_err() {
                tracing::warn!("the job executor's tasks did not stop within 10 s");
            }
        }
    }
}

/// Starts the configured executor: none without a jobs directory, Kubernetes when
/// configured, else local processes.
pub fn start_executor(state: &AppState) -> RunningExecutor {
    let Some(jobs_dir) = state.config.jobs_dir.clone() else {
        return RunningExecutor(None);
    };
    let background = executor::Background {
        shutdown: tokio_util::sync::CancellationToken::new(),
        tasks: tokio_util::task::TaskTracker::new(),
    };
    match state.config.kubernetes.clone() {
        Some(config) => kubernetes::spawn(state.clone(), jobs_dir, config, background.clone()),
        None => local::spawn(state.clone(), jobs_dir, background.clone()),
    }
    RunningExecutor(Some(background))
}

pub async fn get(db: &Db, id: Uuid) -> Result<JobRow> {
    Ok(repo::get(&db.pool, id).await?.ok_or_else(|| TrackingError::NotFound(format!("no job with id {id}")))?)
}

/// Cancels a job: a queued one at once, a scheduled or running one by its executor, which
/// stops its process.
pub async fn cancel(db: &Db, actor: &Actor, id: Uuid) -> Result<JobRow> {
    let job = get(db, id).await?;
    if job.state().is_final() {
        return Err(invalid(format!("job {id} has already ended ({})", job.state)));
    }
    let mut tx = db.pool.begin().await.map_err(TrackingError::from)?;
    repo::request_cancel(&mut *tx, id).await?;
    let ended_now = job.state() == JobState::Queued
        && repo::transition(&mut *tx, id, JobState::Cancelled, &format!("cancelled by {}", actor.name), None).await?;
    audit::append_in(&mut tx, actor.event("job.cancel", format!("job:{id}"), json!({"state": job.state}))).await?;
    tx.commit().await.map_err(TrackingError::from)?;
    if ended_now {
        finish_run(db, &job, JobState::Cancelled).await;
    }
    get(db, id).await
}

/// Submits the same resolved spec again, as a new job with a new run.
pub async fn retry(state: &AppState, actor: &Actor, id: Uuid) -> Result<JobRow> {
    let job = get(&state.db, id).await?;
    let submission = Submission {
        experiment_id: job.experiment_id,
        spec: job.spec.0.clone(),
        priority: job.priority,
        origin: Some(id),
        template: None,
    };
    submit_as(state, actor, submission, "job.retry").await
}

/// What a retrain changes in the spec of the job it repeats.
#[derive(Debug, Default)]
pub struct Overrides {
    pub params: std::collections::BTreeMap<String, String>,
    /// `NAME` or `NAME@VERSION`: replaces the input with that name, or adds it.
    pub datasets: Vec<String>,
}

/// Retrain: the job that produced `run` submitted again with `overrides`; the new run
/// names the run it retrains.
pub async fn retrain(state: &AppState, actor: &Actor, run: Uuid, overrides: Overrides) -> Result<JobRow> {
    let job = repo::by_run(&state.db.pool, run).await?.ok_or_else(|| {
        TrackingError::NotFound(format!("run {} was not produced by a job; nothing to retrain", run.simple()))
    })?;
    let mut spec = job.spec.0.clone();
    spec.params.extend(overrides.params);
    for replacement in overrides.datasets {
        let reference = replacement.parse::<DatasetRef>().map_err(|e| invalid(e.0))?;
        spec.datasets.retain(|d| d.parse::<DatasetRef>().map_or(true, |existing| existing.name != reference.name));
        spec.datasets.push(replacement);
    }
    let submission = Submission {
        experiment_id: job.experiment_id,
        spec,
        priority: job.priority,
        origin: Some(job.id),
        template: None,
    };
    submit_as(state, actor, submission, "job.retrain").await
}

/// Sets the run's status and end time to match how its job ended.
async fn finish_run(db: &Db, job: &JobRow, state: JobState) {
    let status = match state {
        JobState::Succeeded => "FINISHED",
        JobState::Cancelled => "KILLED",
        _ => "FAILED",
    };
    let change =
        tracking::RunChange { status: Some(status), end_time: Some(cairn_db::tracking::now_millis()), run_name: None };
    if let Err(e) = tracking::update_run(db, job.run_uuid, change).await {
        tracing::warn!(job = %job.id, error = %e, "could not record the end of the job's run");
    }
}
