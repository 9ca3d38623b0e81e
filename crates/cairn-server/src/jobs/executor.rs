//! The part of running a job that does not depend on where it runs: claiming queued jobs,
//! the run-scoped token, the job's run status, cancel polling, the timeout, recording the
//! end (state, run, log in storage, token revoked), one automatic retry after an
//! infrastructure failure, and re-attaching to what a previous server process left.
//!
//! An [`Executor`] only starts a job, reports what happens to it, stops it and re-attaches
//! to it: the local executor with child processes, the Kubernetes executor with pods.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::job::JobState;
use cairn_db::jobs::{self as repo, JobRow};
use cairn_db::projects::ObjectKey;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::logs::{local_log_path, stored_log_key};
use crate::audit::Actor;
use crate::auth::TokenScope;
use crate::state::AppState;

/// How often a started job checks for a cancel request.
const CANCEL_POLL: Duration = Duration::from_secs(1);
/// How often the queue is looked at without being woken.
const QUEUE_POLL: Duration = Duration::from_secs(2);
/// How often a standby replica tries to take over the executor.
const LEADERSHIP_POLL: Duration = Duration::from_secs(2);
/// Said in the reason of a job that failed for the infrastructure's sake and was retried;
/// a job whose origin says so about it is not retried again.
const AUTO_RETRY: &str = "retried automatically once as job";

static WAKE: Notify = Notify::const_new();

/// Tells the executor a job was queued or capacity was freed.
pub fn wake() {
    WAKE.notify_one();
}

/// What the job's code is given to log into its run.
pub(crate) struct JobEnv {
    pub tracking_uri: String,
    pub run_id: String,
    pub job_id: String,
    /// The run-scoped token (a secret: never logged).
    pub token: String,
}

impl JobEnv {
    /// The variables every job gets, except the token's (`MLFLOW_TRACKING_TOKEN`,
    /// `CAIRN_TOKEN`), which executors pass as a secret their own way.
    pub fn public_vars(&self) -> Vec<(String, String)> {
        [
            ("MLFLOW_TRACKING_URI", &self.tracking_uri),
            ("MLFLOW_RUN_ID", &self.run_id),
            ("CAIRN_URL", &self.tracking_uri),
            ("CAIRN_RUN_ID", &self.run_id),
            ("CAIRN_JOB_ID", &self.job_id),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }

    /// The names the token is exported under.
    pub const TOKEN_VARS: [&str; 2] = ["MLFLOW_TRACKING_TOKEN", "CAIRN_TOKEN"];
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub state: JobState,
    pub reason: String,
    pub exit_code: Option<i32>,
    /// The infrastructure failed (pod evicted, node lost), not the job's code: retried once.
    pub infrastructure: bool,
}

impl Outcome {
    pub fn failed(reason: impl Into<String>) -> Outcome {
        Outcome { state: JobState::Failed, reason: reason.into(), exit_code: None, infrastructure: false }
    }

    pub fn infrastructure(reason: impl Into<String>) -> Outcome {
        Outcome { infrastructure: true, ..Outcome::failed(reason) }
    }

    pub fn exited(code: i32) -> Outcome {
        if code == 0 {
            Outcome {
                state: JobState::Succeeded,
                reason: "exited with code 0".into(),
                exit_code: Some(0),
                infrastructure: false,
            }
        } else {
            Outcome { exit_code: Some(code), ..Outcome::failed(format!("exited with code {code}")) }
        }
    }
}

/// What an executor reports about a started job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The job's code is running now.
    Started,
    /// Still waiting to run, for this reason (the scheduler's message, say).
    Waiting(String),
    Ended(Outcome),
}

/// Where jobs run. Its futures must be `Send`: each job is supervised by a task of its own.
pub(crate) trait Executor: Send + Sync + 'static {
    /// What `reserve` sets aside for one job (GPUs).
    type Slot: Send;
    /// A started job.
    type Handle: Send;
    /// The executor's name in `jobs.worker`.
    const WORKER: &'static str;

    /// GPUs a job may ask for to be claimed now.
    fn capacity(&self) -> i32;
    /// Sets aside what the job needs; `None` sends it back to the queue.
    fn reserve(&self, job: &JobRow) -> Option<Self::Slot>;
    /// Starts the job; `Err` is the reason it could not start.
    fn start(
        &self,
        state: &AppState,
        job: &JobRow,
        slot: Self::Slot,
        env: &JobEnv,
    ) -> impl Future<Output = Result<Self::Handle, String>> + Send;
    /// Finds a job that a previous server process started; `Err` is why it is lost.
    fn reattach(&self, state: &AppState, job: &JobRow) -> impl Future<Output = Result<Self::Handle, String>> + Send;
    /// The next thing that happens to the job. Cancel-safe: it is raced against the
    /// timeout and cancel polling.
    fn next_event(&self, handle: &mut Self::Handle) -> impl Future<Output = Event> + Send;
    /// Stops the job (cancel, timeout); its end is recorded afterwards.
    fn stop(&self, handle: &mut Self::Handle) -> impl Future<Output = ()> + Send;
    /// After the end is recorded: frees what the job held.
    fn release(&self, state: &AppState, handle: Self::Handle) -> impl Future<Output = ()> + Send;
}

/// The running executor's background work, ended by `shutdown`.
#[derive(Clone)]
pub(crate) struct Background {
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// Re-attaches to the jobs `E` held when the server last stopped, then claims and runs
/// queued jobs until shut down.
pub(crate) async fn serve<E: Executor>(state: AppState, executor: Arc<E>, background: Background) {
    let Some(leadership) = lead(&state, E::WORKER, &background.shutdown).await else {
        return;
    };
    match repo::held_by(&state.db.pool, E::WORKER).await {
        Ok(held) => {
            for job in held {
                let (state, executor) = (state.clone(), Arc::clone(&executor));
                let shutdown = background.shutdown.clone();
                background.tasks.spawn(async move {
                    match executor.reattach(&state, &job).await {
                        Ok(handle) => {
                            tracing::info!(job = %job.id, "re-attached to a job started before the restart");
                            supervise(&state, &*executor, &job, handle, &shutdown).await;
                        }
                        Err(reason) => end(&state, &job, Outcome::failed(reason)).await,
                    }
                });
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for jobs left by a previous run"),
    }
    loop {
        match repo::claim_next(&state.db.pool, E::WORKER, executor.capacity()).await {
            Ok(Some(id)) => {
                let (state, executor) = (state.clone(), Arc::clone(&executor));
                let shutdown = background.shutdown.clone();
                background.tasks.spawn(async move { run(&state, &*executor, id, &shutdown).await });
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not claim a job"),
        }
        tokio::select! {
            () = background.shutdown.cancelled() => break,
            () = WAKE.notified() => {}
            () = tokio::time::sleep(QUEUE_POLL) => {}
        }
    }
    leadership.release().await;
}

/// Waits until this process leads executor `worker` (another replica may); `None` when the
/// server shuts down first.
async fn lead(state: &AppState, worker: &str, shutdown: &CancellationToken) -> Option<repo::Leadership> {
    let mut waiting = false;
    loop {
        match repo::try_lead(&state.db.pool, worker).await {
            Ok(Some(leadership)) => {
                if waiting {
                    tracing::info!(executor = worker, "took over the job executor");
                }
                return Some(leadership);
            }
            Ok(None) if !waiting => {
                tracing::info!(executor = worker, "another Cairn process runs the job executor; standing by");
                waiting = true;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(executor = worker, error = %e, "could not take the job executor's lock"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(LEADERSHIP_POLL) => {}
        }
    }
}

async fn run<E: Executor>(state: &AppState, executor: &E, id: Uuid, shutdown: &CancellationToken) {
    let job = match repo::get(&state.db.pool, id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(e) => return tracing::warn!(job = %id, error = %e, "could not load a claimed job"),
    };
    let Some(slot) = executor.reserve(&job) else {
        // Another job took the capacity between the claim and now: back to the queue.
        let _ = repo::transition(&state.db.pool, id, JobState::Queued, "waiting for free GPUs", None).await;
        return;
    };
    let env = match job_token(state, &job).await {
        Ok(token) => JobEnv {
            tracking_uri: tracking_uri(state),
            run_id: job.run_uuid.simple().to_string(),
            job_id: job.id.simple().to_string(),
            token,
        },
        Err(e) => return end(state, &job, Outcome::failed(format!("could not start the job: {e:#}"))).await,
    };
    match executor.start(state, &job, slot, &env).await {
        Ok(handle) => supervise(state, executor, &job, handle, shutdown).await,
        Err(reason) => end(state, &job, Outcome::failed(reason)).await,
    }
    wake();
}

/// Follows a started job to its end, cancelling or timing it out when asked. On shutdown it
/// returns at once: the job is left as it is for the next process to re-attach to.
async fn supervise<E: Executor>(
    state: &AppState,
    executor: &E,
    job: &JobRow,
    mut handle: E::Handle,
    shutdown: &CancellationToken,
) {
    let timeout = Duration::from_secs(job.spec.timeout_secs);
    // A re-attached job's clock started when it did.
    let mut deadline = job.started_at.filter(|_| job.state() == JobState::Running).map(|started| {
        let elapsed = (chrono::Utc::now() - started).to_std().unwrap_or_default();
        tokio::time::Instant::now() + timeout.saturating_sub(elapsed)
    });
    let mut started = job.state() == JobState::Running;
    let mut poll = tokio::time::interval(CANCEL_POLL);
    let outcome = loop {
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = executor.next_event(&mut handle) => match event {
                Event::Started => {
                    if !started {
                        started = true;
                        deadline = Some(tokio::time::Instant::now() + timeout);
                        if let Err(reason) = mark_running(state, job).await {
                            executor.stop(&mut handle).await;
                            break Outcome::failed(reason);
                        }
                    }
                }
                Event::Waiting(reason) => {
                    if let Err(e) = repo::note(&state.db.pool, job.id, &reason).await {
                        tracing::warn!(job = %job.id, error = %e, "could not record why a job waits");
                    }
                }
                Event::Ended(outcome) => {
                    // A job can end before anyone saw it run (a short pod between two watch
                    // events): it ran all the same.
                    if !started && outcome.state == JobState::Succeeded && let Err(reason) = mark_running(state, job).await {
                        break Outcome::failed(reason);
                    }
                    break outcome;
                }
            },
            () = timer => {
                executor.stop(&mut handle).await;
                break Outcome::failed(format!("timed out after {} s", job.spec.timeout_secs));
            }
            _ = poll.tick() => {
                if repo::cancel_requested(&state.db.pool, job.id).await.unwrap_or(false) {
                    executor.stop(&mut handle).await;
                    break Outcome { state: JobState::Cancelled, reason: "cancelled".into(), exit_code: None, infrastructure: false };
                }
            }
        }
    };
    end(state, job, outcome).await;
    executor.release(state, handle).await;
}

async fn mark_running(state: &AppState, job: &JobRow) -> Result<(), String> {
    match repo::transition(&state.db.pool, job.id, JobState::Running, "started", None).await {
        Ok(true) => {}
        Ok(false) => return Err("the job left the scheduled state while it started".into()),
        Err(e) => return Err(format!("could not record that the job started: {e}")),
    }
    let running = crate::tracking::RunChange { status: Some("RUNNING"), end_time: None, run_name: None };
    if let Err(e) = crate::tracking::update_run(&state.db, job.run_uuid, running).await {
        tracing::warn!(job = %job.id, error = %e, "could not mark the job's run running");
    }
    Ok(())
}

/// The URL jobs reach this server at: for pods the configured in-cluster URL, else the
/// public URL, else the listen address.
fn tracking_uri(state: &AppState) -> String {
    let config = &state.config;
    let in_cluster = config.kubernetes.as_ref().and_then(|k| k.cairn_url.clone());
    in_cluster
        .or_else(|| config.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned()
}

/// A token the job's code logs with: the submitter's, limited to the job's project and run
/// (see [`crate::access`]'s run scope), expiring after the job's timeout (and revoked as
/// soon as the job ends).
async fn job_token(state: &AppState, job: &JobRow) -> anyhow::Result<String> {
    let owner = match &job.created_by {
        Some(name) => cairn_db::users::find_by_name(&state.db.pool, name).await?,
        None => None,
    };
    let owner = owner.ok_or_else(|| anyhow::anyhow!("the job has no submitting user to log as"))?;
    let expires = chrono::Utc::now()
        + chrono::Duration::seconds(i64::try_from(job.spec.timeout_secs).unwrap_or(i64::MAX / 2))
        + chrono::Duration::hours(1);
    let name = format!("job {}", job.id.simple());
    // The token reaches only the project of the job's experiment, whatever else its
    // submitter may touch: a job's code cannot read or change other projects.
    let project = cairn_db::projects::project_of(&state.db.pool, &ObjectKey::Experiment(job.experiment_id))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the job's experiment no longer exists"))?;
    let request = crate::accounts::TokenRequest {
        name: &name,
        scope: TokenScope::Write,
        expires_at: Some(expires),
        project_id: Some(project),
    };
    let issued =
        crate::accounts::create_token(&state.db, &state.token_keys, &Actor::system("jobs"), &owner, request).await?;
    cairn_db::tokens::limit_to_run(&state.db.pool, issued.row.id, job.run_uuid).await?;
    repo::set_process(&state.db.pool, job.id, None, Some(issued.row.id)).await?;
    Ok(issued.token)
}

/// Records how a job ended: its state, its run's status, its log in storage, its token
/// revoked; an infrastructure failure is submitted again once.
pub(crate) async fn end(state: &AppState, job: &JobRow, outcome: Outcome) {
    let db = &state.db;
    let mut reason = outcome.reason.clone();
    if outcome.infrastructure {
        reason = match retry_after_infrastructure_failure(state, job).await {
            Ok(Some(new)) => format!("{reason}: an infrastructure failure, {AUTO_RETRY} {}", new.simple()),
            Ok(None) => format!("{reason}: an infrastructure failure again; not retried a second time"),
            Err(e) => format!("{reason}: an infrastructure failure; the automatic retry failed: {e}"),
        };
    }
    // The run, the log and the token first: whoever sees the job ended finds them final.
    super::finish_run(db, job, outcome.state).await;
    if let Some(jobs_dir) = &state.config.jobs_dir
        && let Ok(file) = tokio::fs::File::open(local_log_path(jobs_dir, job.id)).await
    {
        let body = tokio_util::io::ReaderStream::new(file);
        if let Err(e) = state.storage.put_stream(&stored_log_key(job.id), body, u64::MAX).await {
            tracing::warn!(job = %job.id, error = %e, "could not store the job's log");
        }
    }
    let token_id = repo::get(&db.pool, job.id).await.ok().flatten().and_then(|j| j.token_id);
    if let Some(token_id) = token_id
        && let Err(e) = crate::accounts::revoke_token(db, &Actor::system("jobs"), token_id, true).await
    {
        tracing::warn!(job = %job.id, error = %e, "could not revoke the job's token");
    }
    match repo::transition(&db.pool, job.id, outcome.state, &reason, outcome.exit_code).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(job = %job.id, to = %outcome.state, "the job was no longer in a state that could end so")
        }
        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not record the end of a job"),
    }
}

/// Submits the job's spec again for its submitter (as `jobs::retry` does), unless this job
/// is itself the automatic retry of one.
async fn retry_after_infrastructure_failure(state: &AppState, job: &JobRow) -> anyhow::Result<Option<Uuid>> {
    if let Some(origin) = job.origin_job_id
        && let Some(origin) = repo::get(&state.db.pool, origin).await?
        && origin.reason.contains(&format!("{AUTO_RETRY} {}", job.id.simple()))
    {
        return Ok(None);
    }
    let owner = match &job.created_by {
        Some(name) => cairn_db::users::find_by_name(&state.db.pool, name).await?,
        None => None,
    };
    let owner = owner.ok_or_else(|| anyhow::anyhow!("the job has no submitting user"))?;
    let actor = Actor { user_id: Some(owner.id), ..Actor::system("jobs") };
    Ok(Some(super::retry(state, &actor, job.id).await?.id))
}
