//! The local executor: queued jobs run as child processes of this server, one process group
//! each, in a working directory under the jobs directory with their dataset inputs
//! downloaded into `datasets/NAME/`. GPUs found by `nvidia-smi` are handed out through
//! `CUDA_VISIBLE_DEVICES`; a job waits in the queue until enough are free.
//!
//! Children die with the server (PR_SET_PDEATHSIG); when the server starts again it marks
//! the jobs it had been running as failed, so none is left "running" for ever.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cairn_core::dataset::DatasetRef;
use cairn_core::job::JobState;
use cairn_db::jobs::{self as repo, JobRow};
use cairn_storage::{ArtifactPath, BlobDigest};
use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::logs::{local_log_path, stored_log_key};
use crate::audit::Actor;
use crate::auth::TokenScope;
use crate::state::AppState;

/// The executor's name in `jobs.worker`: one local executor per data directory.
const WORKER: &str = "local";
/// How often a running job checks for a cancel request.
const CANCEL_POLL: Duration = Duration::from_secs(1);
/// Between SIGTERM and SIGKILL when a job is stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Environment variables passed from the server to jobs; everything else (database URLs,
/// storage keys, secrets) is withheld.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

static WAKE: Notify = Notify::const_new();
static GPUS: OnceLock<Vec<u32>> = OnceLock::new();

/// Tells the executor a job was queued.
pub fn wake() {
    WAKE.notify_one();
}

/// GPUs on this host, once the executor has looked.
pub fn gpu_count() -> Option<u32> {
    GPUS.get().map(|g| u32::try_from(g.len()).unwrap_or(u32::MAX))
}

/// Starts the executor: reconciles what a previous process left, then runs queued jobs.
pub fn spawn(state: AppState, jobs_dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let gpus = GPUS.get_or_init(discover_gpus).clone();
        tracing::info!(gpus = gpus.len(), dir = %jobs_dir.display(), "local executor started");
        reconcile(&state, &jobs_dir).await;
        let free = Arc::new(Mutex::new(gpus.into_iter().collect::<BTreeSet<u32>>()));
        loop {
            let free_count = free.lock().map_or(0, |f| f.len());
            match repo::claim_next(&state.db.pool, WORKER, i32::try_from(free_count).unwrap_or(i32::MAX)).await {
                Ok(Some(id)) => {
                    let state = state.clone();
                    let (free, jobs_dir) = (Arc::clone(&free), jobs_dir.clone());
                    tokio::spawn(async move { run(state, jobs_dir, id, free).await });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not claim a job"),
            }
            tokio::select! {
                () = WAKE.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    })
}

/// GPU indexes from `nvidia-smi`; none when it is missing or fails.
fn discover_gpus() -> Vec<u32> {
    let output = std::process::Command::new("nvidia-smi").args(["--query-gpu=index", "--format=csv,noheader"]).output();
    match output {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
        }
        _ => Vec::new(),
    }
}

/// Jobs this executor held when the server last stopped: their processes died with it
/// (or are killed now); they are marked failed with the reason.
async fn reconcile(state: &AppState, jobs_dir: &Path) {
    let held = match repo::held_by(&state.db.pool, WORKER).await {
        Ok(held) => held,
        Err(e) => return tracing::warn!(error = %e, "could not look for jobs left by a previous run"),
    };
    for job in held {
        if let Some(pid) = job.pid {
            signal_group(pid, libc::SIGKILL);
        }
        let reason = "the server stopped while the job was running; submit it again (retry) to rerun it";
        end(state, jobs_dir, &job, JobState::Failed, reason, None).await;
    }
}

async fn run(state: AppState, jobs_dir: PathBuf, id: Uuid, free: Arc<Mutex<BTreeSet<u32>>>) {
    let job = match repo::get(&state.db.pool, id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(e) => return tracing::warn!(job = %id, error = %e, "could not load a claimed job"),
    };
    let wanted = usize::try_from(job.gpus).unwrap_or(0);
    let gpus: Vec<u32> =
        free.lock().map(|mut f| (0..wanted).filter_map(|_| f.pop_first()).collect()).unwrap_or_default();
    if gpus.len() < wanted {
        // Another job took them between the claim and now: back to the queue.
        release(&free, gpus);
        let _ = repo::transition(&state.db.pool, id, JobState::Queued, "waiting for free GPUs", None).await;
        return;
    }
    let (outcome, reason, exit_code) = match execute(&state, &jobs_dir, &job, &gpus).await {
        Ok(ended) => ended,
        Err(e) => (JobState::Failed, format!("could not start the job: {e:#}"), None),
    };
    release(&free, gpus);
    end(&state, &jobs_dir, &job, outcome, &reason, exit_code).await;
    wake();
}

fn release(free: &Mutex<BTreeSet<u32>>, gpus: Vec<u32>) {
    if let Ok(mut f) = free.lock() {
        f.extend(gpus);
    }
}

/// Prepares the working directory and the token, runs the command, and says how it ended.
async fn execute(
    state: &AppState,
    jobs_dir: &Path,
    job: &JobRow,
    gpus: &[u32],
) -> anyhow::Result<(JobState, String, Option<i32>)> {
    let home = jobs_dir.join(job.id.simple().to_string());
    let work = home.join("work");
    tokio::fs::create_dir_all(&work).await?;
    for input in &job.spec.datasets {
        download_dataset(state, input, &work.join("datasets")).await?;
    }
    let token = job_token(state, job).await?;
    if !repo::transition(&state.db.pool, job.id, JobState::Running, "started", None).await? {
        return Ok((JobState::Cancelled, "cancelled before it started".into(), None));
    }
    let running = crate::tracking::RunChange { status: Some("RUNNING"), end_time: None, run_name: None };
    crate::tracking::update_run(&state.db, job.run_uuid, running).await?;

    let spec = &job.spec.0;
    let command = spec.resolved_command();
    let tracking_uri = state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.listen))
        .trim_end_matches('/')
        .to_owned();
    let run_id = job.run_uuid.simple().to_string();
    let mut child = tokio::process::Command::new(&command[0]);
    child.args(&command[1..]).current_dir(&work).env_clear().kill_on_drop(true);
    for name in INHERITED_ENV {
        if let Ok(value) = std::env::var(name) {
            child.env(name, value);
        }
    }
    child
        .envs(&spec.env)
        .envs(spec.params.iter().map(|(k, v)| (format!("CAIRN_PARAM_{k}"), v)))
        .env("MLFLOW_TRACKING_URI", &tracking_uri)
        .env("MLFLOW_RUN_ID", &run_id)
        .env("MLFLOW_TRACKING_TOKEN", &token)
        .env("CAIRN_URL", &tracking_uri)
        .env("CAIRN_TOKEN", &token)
        .env("CAIRN_RUN_ID", &run_id)
        .env("CAIRN_JOB_ID", job.id.simple().to_string())
        .env("CUDA_VISIBLE_DEVICES", gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
    unsafe {
        child.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut process = match child.spawn() {
        Ok(p) => p,
        Err(e) => return Ok((JobState::Failed, format!("cannot start {:?}: {e}", command[0]), None)),
    };
    let pid = process.id().and_then(|p| i32::try_from(p).ok());
    repo::set_process(&state.db.pool, job.id, pid, None).await?;
    let log = spawn_log_writer(local_log_path(jobs_dir, job.id), &mut process).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(spec.timeout_secs);
    let mut poll = tokio::time::interval(CANCEL_POLL);
    let stopped_because = loop {
        tokio::select! {
            status = process.wait() => {
                let status = status?;
                let _ = log.await;
                return Ok(match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (Some(0), _) => (JobState::Succeeded, "exited with code 0".into(), Some(0)),
                    (Some(code), _) => (JobState::Failed, format!("exited with code {code}"), Some(code)),
                    (None, Some(signal)) => (JobState::Failed, format!("killed by signal {signal}"), None),
                    (None, None) => (JobState::Failed, "ended without an exit code".into(), None),
                });
            }
            () = tokio::time::sleep_until(deadline) => break (JobState::Failed, format!("timed out after {} s", spec.timeout_secs)),
            _ = poll.tick() => {
                if repo::cancel_requested(&state.db.pool, job.id).await.unwrap_or(false) {
                    break (JobState::Cancelled, "cancelled".to_owned());
                }
            }
        }
    };
    if let Some(pid) = pid {
        stop_group(pid, &mut process).await;
    }
    let _ = log.await;
    Ok((stopped_because.0, stopped_because.1, None))
}

/// SIGTERM to the job's process group, then SIGKILL if it is still there after the grace.
async fn stop_group(pid: i32, process: &mut tokio::process::Child) {
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, process.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = process.wait().await;
    }
}

fn signal_group(pid: i32, signal: i32) {
    // SAFETY: killpg(2) with a process group id we created (the child's pid).
    unsafe {
        libc::killpg(pid, signal);
    }
}

/// A token the job's code logs with: the submitter's, expiring after the job's timeout
/// (and revoked as soon as the job ends).
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
    let request = crate::accounts::TokenRequest { name: &name, scope: TokenScope::Write, expires_at: Some(expires) };
    let issued =
        crate::accounts::create_token(&state.db, &state.token_keys, &Actor::system("jobs"), &owner, request).await?;
    repo::set_process(&state.db.pool, job.id, None, Some(issued.row.id)).await?;
    Ok(issued.token)
}

/// Downloads dataset version `input` (`NAME@VERSION`) into `root/NAME/`.
async fn download_dataset(state: &AppState, input: &str, root: &Path) -> anyhow::Result<()> {
    let reference: DatasetRef = input.parse().map_err(|e: cairn_core::ValidationError| anyhow::anyhow!(e.0))?;
    let (_, version) = crate::datasets::get_version(&state.db, &reference).await?;
    let files = cairn_db::datasets::files(&state.db.pool, version.id).await?;
    let dir = root.join(&reference.name);
    for file in files {
        let path = ArtifactPath::parse(&file.path)?;
        let dest = path.segments().fold(dir.clone(), |p, s| p.join(s));
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut stream = state.storage.get_blob(&BlobDigest::parse(&file.sha256)?).await?.stream;
        let mut out = tokio::fs::File::create(&dest).await?;
        while let Some(chunk) = stream.try_next().await? {
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
    }
    Ok(())
}

/// Copies the child's output, line by line with a timestamp and the stream's name, to the
/// log file. The returned task ends when both streams have closed.
async fn spawn_log_writer(
    path: PathBuf,
    process: &mut tokio::process::Child,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
    let (tx, mut rx) = mpsc::channel::<(&'static str, Vec<u8>)>(1024);
    if let Some(out) = process.stdout.take() {
        tokio::spawn(forward_lines(out, "stdout", tx.clone()));
    }
    if let Some(err) = process.stderr.take() {
        tokio::spawn(forward_lines(err, "stderr", tx.clone()));
    }
    drop(tx);
    Ok(tokio::spawn(async move {
        while let Some((stream, line)) = rx.recv().await {
            let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let text = String::from_utf8_lossy(&line);
            let entry = format!("{stamp} {stream} {}\n", text.trim_end_matches(['\n', '\r']));
            if let Err(e) = file.write_all(entry.as_bytes()).await {
                tracing::warn!(error = %e, "could not write a job log line");
            }
        }
        let _ = file.flush().await;
    }))
}

async fn forward_lines(stream: impl AsyncRead + Unpin, name: &'static str, tx: mpsc::Sender<(&'static str, Vec<u8>)>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send((name, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Records how a job ended: its state, its run's status, its log in storage, its token revoked.
async fn end(state: &AppState, jobs_dir: &Path, job: &JobRow, outcome: JobState, reason: &str, exit_code: Option<i32>) {
    let db = &state.db;
    match repo::transition(&db.pool, job.id, outcome, reason, exit_code).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = %job.id, to = %outcome, "the job was no longer in a state that could end so"),
        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not record the end of a job"),
    }
    super::finish_run(db, job, outcome).await;
    let log = local_log_path(jobs_dir, job.id);
    if let Ok(file) = tokio::fs::File::open(&log).await {
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
}
