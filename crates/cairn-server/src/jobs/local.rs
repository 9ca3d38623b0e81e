//! The local executor: queued jobs run as child processes of this server, one process group
//! each, in a working directory under the jobs directory with their dataset inputs
//! downloaded into `datasets/NAME/`. GPUs found by `nvidia-smi` are handed out through
//! `CUDA_VISIBLE_DEVICES`; a job waits in the queue until enough are free.
//!
//! Children die with the server (PR_SET_PDEATHSIG); when the server starts again it marks
//! the jobs it had been running as failed, so none is left "running" for ever. The rest of
//! a job's life (token, run status, cancel, timeout, the end) is in [`super::executor`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cairn_core::dataset::DatasetRef;
use cairn_db::jobs::{self as repo, JobRow};
use cairn_storage::{ArtifactPath, BlobDigest};
use futures::TryStreamExt;
use tokio::io::AsyncWriteExt;

use super::executor::{self, Background, Event, Executor, JobEnv, Outcome};
use super::logs::local_log_path;
use super::process;
use crate::state::AppState;

static GPUS: OnceLock<Vec<u32>> = OnceLock::new();

/// GPUs on this host, once the executor has looked.
pub fn gpu_count() -> Option<u32> {
    GPUS.get().map(|g| u32::try_from(g.len()).unwrap_or(u32::MAX))
}

/// Child processes on this host.
pub(crate) struct Local {
    jobs_dir: PathBuf,
    free: Mutex<BTreeSet<u32>>,
}

/// A started child process.
pub(crate) struct Running {
    process: tokio::process::Child,
    pid: Option<i32>,
    gpus: Vec<u32>,
    log: Option<tokio::task::JoinHandle<()>>,
    announced: bool,
}

/// Starts the executor: reconciles what a previous process left, then runs queued jobs.
pub(crate) fn spawn(state: AppState, jobs_dir: PathBuf, background: Background) {
    let tasks = background.tasks.clone();
    tasks.spawn(async move {
        let gpus = GPUS.get_or_init(discover_gpus).clone();
        tracing::info!(gpus = gpus.len(), dir = %jobs_dir.display(), "local executor started");
        let local = Local { jobs_dir, free: Mutex::new(gpus.into_iter().collect()) };
        executor::serve(state, Arc::new(local), background).await;
    });
}

impl Executor for Local {
    type Slot = Vec<u32>;
    type Handle = Running;
    const WORKER: &'static str = "local";

    fn capacity(&self) -> i32 {
        i32::try_from(self.free.lock().map_or(0, |f| f.len())).unwrap_or(i32::MAX)
    }

    fn reserve(&self, job: &JobRow) -> Option<Vec<u32>> {
        let wanted = usize::try_from(job.gpus).unwrap_or(0);
        let gpus: Vec<u32> =
            self.free.lock().map(|mut f| (0..wanted).filter_map(|_| f.pop_first()).collect()).unwrap_or_default();
        if gpus.len() < wanted {
            self.give_back(gpus);
            return None;
        }
        Some(gpus)
    }

    async fn start(&self, state: &AppState, job: &JobRow, gpus: Vec<u32>, env: &JobEnv) -> Result<Running, String> {
        match self.execute(state, job, &gpus, env).await {
            Ok(running) => Ok(Running { gpus, ..running }),
            Err(reason) => {
                self.give_back(gpus);
                Err(reason)
            }
        }
    }

    /// Its process died with the previous server (or is killed now): the job is lost.
    async fn reattach(&self, _state: &AppState, job: &JobRow) -> Result<Running, String> {
        if let Some(pid) = job.pid {
            process::signal_group(pid, libc::SIGKILL);
        }
        Err("the server stopped while the job was running; submit it again (retry) to rerun it".into())
    }

    async fn next_event(&self, running: &mut Running) -> Event {
        if !running.announced {
            running.announced = true;
            return Event::Started;
        }
        let status = running.process.wait().await;
        if let Some(log) = running.log.take() {
            let _ = log.await;
        }
        Event::Ended(match status {
            Err(e) => Outcome::failed(format!("lost the job's process: {e}")),
            Ok(status) => match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                (Some(code), _) => Outcome::exited(code),
                (None, Some(signal)) => Outcome::failed(format!("killed by signal {signal}")),
                (None, None) => Outcome::failed("ended without an exit code"),
            },
        })
    }

    async fn stop(&self, running: &mut Running) {
        if let Some(pid) = running.pid {
            process::stop_group(pid, &mut running.process).await;
        }
        if let Some(log) = running.log.take() {
            let _ = log.await;
        }
    }

    async fn release(&self, _state: &AppState, running: Running) {
        self.give_back(running.gpus);
    }
}

impl Local {
    fn give_back(&self, gpus: Vec<u32>) {
        if let Ok(mut f) = self.free.lock() {
            f.extend(gpus);
        }
    }

    /// Prepares the working directory and starts the command.
    async fn execute(&self, state: &AppState, job: &JobRow, gpus: &[u32], env: &JobEnv) -> Result<Running, String> {
        let home = self.jobs_dir.join(job.id.simple().to_string());
        let work = home.join("work");
        let could_not = |e: anyhow::Error| format!("could not start the job: {e:#}");
        tokio::fs::create_dir_all(&work).await.map_err(|e| could_not(e.into()))?;
        for input in &job.spec.datasets {
            download_dataset(state, input, &work.join("datasets")).await.map_err(could_not)?;
        }
        let spec = &job.spec.0;
        let command = spec.resolved_command();
        let mut child = process::isolated(&command[0]);
        child.args(&command[1..]).current_dir(&work);
        child
            .envs(&spec.env)
            .envs(spec.params.iter().map(|(k, v)| (format!("CAIRN_PARAM_{k}"), v)))
            .envs(env.public_vars())
            .envs(JobEnv::TOKEN_VARS.map(|name| (name, &env.token)))
            .env("CAIRN_DATASETS_DIR", work.join("datasets"))
            .env("CUDA_VISIBLE_DEVICES", gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        let mut process = child.spawn().map_err(|e| format!("cannot start {:?}: {e}", command[0]))?;
        let pid = process.id().and_then(|p| i32::try_from(p).ok());
        repo::set_process(&state.db.pool, job.id, pid, None).await.map_err(|e| could_not(e.into()))?;
        let log =
            process::spawn_log_writer(local_log_path(&self.jobs_dir, job.id), &mut process).await.map_err(could_not)?;
        Ok(Running { process, pid, gpus: Vec::new(), log: Some(log), announced: false })
    }
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
