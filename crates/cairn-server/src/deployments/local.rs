//! Local serving: each deployment's live revision is a child process of this server,
//! MLflow's scoring server (`python -m uvicorn mlflow.pyfunc.scoring_server.app:app`) on a
//! free port of 127.0.0.1, serving the model files downloaded from Cairn's store into
//! `<serving dir>/NAME/rev-N/model`. Its output goes to `<serving dir>/NAME/serving.log`.
//!
//! One controller task per deployment owns its process. A new revision rolls out without
//! downtime: the new process starts next to the old one, and once it answers `/ping` the
//! gateway switches to it and the old one is stopped. A process that dies is started again
//! after a back-off (1 s, doubling to a minute).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_db::deployments::{self as repo, DeploymentRow};
use cairn_storage::ArtifactPath;
use futures::TryStreamExt;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::runtime::Backend;
use crate::jobs::process;
use crate::state::AppState;
use crate::tracking::{ArtifactRoot, artifact_root};

const MAX_BACKOFF: Duration = Duration::from_secs(60);
const PING_INTERVAL: Duration = Duration::from_millis(250);

/// The handle on one deployment's controller task.
pub(crate) struct Controller {
    desired: watch::Sender<Option<DeploymentRow>>,
    stop: CancellationToken,
}

/// A started serving process.
struct Live {
    revision: i32,
    pid: i32,
    process: tokio::process::Child,
    log: Option<tokio::task::JoinHandle<()>>,
}

impl Live {
    async fn stop(mut self) {
        process::stop_group(self.pid, &mut self.process).await;
        if let Some(log) = self.log.take() {
            let _ = log.await;
        }
    }
}

/// The log file of a local deployment.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("serving.log")
}

impl Controller {
    pub(crate) fn spawn(
        state: &AppState,
        dir: &Path,
        row: DeploymentRow,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> Controller {
        let (desired, watched) = watch::channel(Some(row));
        let task = Task { state: state.clone(), dir: dir.to_owned(), stop: stop.clone() };
        tasks.spawn(task.run(watched));
        Controller { desired, stop }
    }

    /// Tells the controller what the deployment looks like now.
    pub(crate) fn update(&self, row: &DeploymentRow) {
        self.desired.send_if_modified(|current| {
            let changed = current.as_ref().is_none_or(|c| c.current_revision != row.current_revision);
            if changed {
                *current = Some(row.clone());
            }
            changed
        });
    }

    /// Stops the process and the controller.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

struct Task {
    state: AppState,
    dir: PathBuf,
    stop: CancellationToken,
}

impl Task {
    async fn run(self, mut desired: watch::Receiver<Option<DeploymentRow>>) {
        let mut live: Option<Live> = None;
        let mut failed_revision = None;
        let mut backoff = Duration::from_secs(1);
        loop {
            let Some(row) = desired.borrow_and_update().clone() else { break };
            let wanted = row.current_revision;
            if live.as_ref().map(|l| l.revision) != Some(wanted) && failed_revision != Some(wanted) {
                if live.is_none() {
                    self.status(&row, "pending", &format!("starting the serving process of revision {wanted}")).await;
                }
                match self.start(&row).await {
                    Ok(new) => {
                        let port_url = new.1;
                        let old = live.replace(new.0);
                        self.state.serving.set_backend(&row.name, Some(Backend { url: port_url, revision: wanted }));
                        let message =
                            format!("serving version {} (revision {wanted})", row.version.unwrap_or_default());
                        self.status(&row, "ready", &message).await;
                        if let Some(old) = old {
                            old.stop().await;
                        }
                        failed_revision = None;
                        backoff = Duration::from_secs(1);
                    }
                    Err(reason) if self.stop.is_cancelled() => {
                        tracing::info!(deployment = %row.name, %reason, "serving start interrupted by shutdown");
                    }
                    Err(reason) => {
                        tracing::warn!(deployment = %row.name, %reason, "could not start serving");
                        self.status(&row, "failed", &reason).await;
                        failed_revision = Some(wanted);
                    }
                }
            }
            let exited = async {
                match live.as_mut() {
                    Some(l) => l.process.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => break,
                changed = desired.changed() => if changed.is_err() { break },
                status = exited => {
                    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                    if let Some(dead) = live.take() {
                        dead.stop().await;
                    }
                    let message = format!("the serving process ended ({status}); starting it again in {} s", backoff.as_secs());
                    tracing::warn!(deployment = %row.name, %status, "serving process ended");
                    self.status(&row, "failed", &message).await;
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    failed_revision = None;
                }
            }
        }
        if let Some(live) = live.take() {
            live.stop().await;
        }
        let name = desired.borrow().as_ref().map(|r| r.name.clone());
        if let Some(name) = name
            && self.state.serving.backend(&name).is_some()
            && !self.stop.is_cancelled()
        {
            self.state.serving.set_backend(&name, None);
        }
    }

    async fn status(&self, row: &DeploymentRow, status: &str, message: &str) {
        if let Err(e) = repo::set_status(&self.state.db.pool, &row.name, row.current_revision, status, message).await {
            tracing::warn!(deployment = %row.name, error = %e, "could not record the deployment's status");
        }
    }

    /// Downloads the model, starts the process and waits until it answers `/ping`.
    async fn start(&self, row: &DeploymentRow) -> Result<(Live, String), String> {
        let home = self.dir.join(&row.name);
        let model_dir = home.join(format!("rev-{}", row.current_revision)).join("model");
        let version = row.version.ok_or("the revision's model version was deleted")?;
        if !model_dir.join("MLmodel").exists() {
            download_model(&self.state, &row.model_name, version, &model_dir).await?;
        }
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let python = &self.state.config.serving.python;
        let mut command = process::isolated(python);
        command
            .args(["-m", "uvicorn", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("mlflow.pyfunc.scoring_server.app:app")
            .current_dir(&home)
            .envs(&row.settings.env.0)
            .env("__pyfunc_model_path__", &model_dir)
            .env("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", self.state.config.serving.timeout.as_secs().to_string())
            .env("PYTHONUNBUFFERED", "1");
        let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", python.display()))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).ok_or("the serving process has no pid")?;
        let log = process::spawn_log_writer(log_path(&self.dir, &row.name), &mut child)
            .await
            .map_err(|e| format!("cannot write the serving log: {e:#}"))?;
        let mut live = Live { revision: row.current_revision, pid, process: child, log: Some(log) };
        let url = format!("http://127.0.0.1:{port}");
        match self.wait_ready(&mut live, &url).await {
            Ok(()) => Ok((live, url)),
            Err(reason) => {
                live.stop().await;
                let tail = log_tail(&log_path(&self.dir, &row.name), 5).await;
                Err(if tail.is_empty() { reason } else { format!("{reason}; last log lines:\n{tail}") })
            }
        }
    }

    async fn wait_ready(&self, live: &mut Live, url: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.state.config.serving.ready_timeout;
        let ping = format!("{url}/ping");
        loop {
            if let Ok(Some(status)) = live.process.try_wait() {
                return Err(format!("the serving process ended before it was ready ({status})"));
            }
            if self.state.serving.upstream.ping(&ping).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the serving process did not answer /ping within {} s",
                    self.state.config.serving.ready_timeout.as_secs()
                ));
            }
            tokio::select! {
                () = self.stop.cancelled() => return Err("the server is stopping".into()),
                () = tokio::time::sleep(PING_INTERVAL) => {}
            }
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `lines` lines of a log file.
pub async fn log_tail(path: &Path, lines: usize) -> String {
    let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Copies the version's artifacts (an MLflow model directory) from Cairn's store to `dest`.
async fn download_model(state: &AppState, model: &str, version: i64, dest: &Path) -> Result<(), String> {
    let row = crate::registry::get_version(&state.db, model, version).await.map_err(|e| e.to_string())?.row;
    let ArtifactRoot::Stored(root) = artifact_root(&row.storage_location) else {
        return Err(format!(
            "version {version} of {model} is stored at {}, outside Cairn's store; it cannot be served from here",
            row.storage_location
        ));
    };
    let partial = dest.with_extension("partial");
    let _ = tokio::fs::remove_dir_all(&partial).await;
    let store = state.storage.store();
    let prefix = object_store::path::Path::from(root.as_str());
    let mut listing = store.list(Some(&prefix));
    let mut count = 0;
    let could_not = |e: &dyn std::fmt::Display| format!("could not download the model files: {e}");
    while let Some(meta) = listing.try_next().await.map_err(|e| could_not(&e))? {
        let key = meta.location.as_ref();
        let relative = key.strip_prefix(root.as_str()).unwrap_or(key).trim_start_matches('/');
        let relative = ArtifactPath::parse(relative).map_err(|e| could_not(&e))?;
        let target = relative.segments().fold(partial.clone(), |p, s| p.join(s));
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| could_not(&e))?;
        }
        let full = ArtifactPath::parse(key).map_err(|e| could_not(&e))?;
        let mut stream = state.storage.get_stream(&full, None).await.map_err(|e| could_not(&e))?.stream;
        let mut out = tokio::fs::File::create(&target).await.map_err(|e| could_not(&e))?;
        while let Some(chunk) = stream.try_next().await.map_err(|e| could_not(&e))? {
            out.write_all(&chunk).await.map_err(|e| could_not(&e))?;
        }
        out.flush().await.map_err(|e| could_not(&e))?;
        count += 1;
    }
    if count == 0 || !partial.join("MLmodel").exists() {
        let _ = tokio::fs::remove_dir_all(&partial).await;
        return Err(format!(
            "version {version} of {model} has no MLmodel file at {}: it is not an MLflow model",
            row.storage_location
        ));
    }
    tokio::fs::rename(&partial, dest).await.map_err(|e| could_not(&e))?;
    Ok(())
}
