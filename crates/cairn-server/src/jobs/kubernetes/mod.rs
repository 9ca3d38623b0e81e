//! The Kubernetes executor: one pod per job (`restartPolicy: Never`) in the configured
//! namespace, its run-scoped token in a secret owned by the pod. One watcher (the kube-rs
//! runtime's, over the pods labelled `app.kubernetes.io/managed-by=cairn`) feeds every
//! supervised job the latest state of its pod; the job container's log is followed into
//! the job's log file, in the local executor's format (`TIME stdout TEXT`: Kubernetes
//! merges the streams). Cancel and timeout delete the pod; finished pods are deleted after
//! the configured retention. After a restart, jobs recorded as scheduled or running are
//! re-attached to their pods, or failed with the reason when their pod is gone.
//!
//! The lifecycle around this (token, states, run status, retries, the end) is
//! [`super::executor`]'s.

pub(crate) mod pod;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_db::jobs::{self as repo, JobRow};
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use super::executor::{self, Background, Event, Executor, JobEnv, Outcome};
use super::logs::local_log_path;
use crate::config::KubernetesConfig;
use crate::state::AppState;

/// How long a finished job waits for the rest of its log.
const LOG_DRAIN: Duration = Duration::from_secs(10);
/// Attempts to find a pod again after a restart before the job is given up.
const REATTACH_ATTEMPTS: u32 = 5;

/// The latest known state of a job's pod.
#[derive(Clone, Debug)]
enum Seen {
    /// Not known yet (the pod is being created or looked up).
    Unknown,
    Present(Box<Pod>),
    /// Deleted, by someone else or with its node.
    Gone,
}

/// Starts the executor once the API server is reachable.
pub(crate) fn spawn(state: AppState, jobs_dir: PathBuf, config: KubernetesConfig, background: Background) {
    let tasks = background.tasks.clone();
    tasks.spawn(async move {
        let client = loop {
            match connect(&config).await {
                Ok(client) => break client,
                Err(e) => {
                    tracing::error!(error = %e, "cannot use the Kubernetes API; jobs stay queued, retrying in 10 s")
                }
            }
            tokio::select! {
                () = background.shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        };
        tracing::info!(namespace = %config.namespace, "kubernetes executor started");
        let kube = Arc::new(Kube {
            pods: Api::namespaced(client.clone(), &config.namespace),
            secrets: Api::namespaced(client, &config.namespace),
            config,
            jobs_dir,
            tracked: Mutex::new(HashMap::new()),
            background: background.clone(),
        });
        background.tasks.spawn(watch_pods(Arc::clone(&kube)));
        background.tasks.spawn(sweep_finished_pods(state.clone(), Arc::clone(&kube)));
        executor::serve(state, kube, background).await;
    });
}

pub(crate) async fn connect(config: &KubernetesConfig) -> Result<kube::Client, String> {
    let client_config = match &config.api_url {
        Some(url) => {
            kube::Config::new(url.parse::<http::Uri>().map_err(|e| format!("invalid API server URL {url:?}: {e}"))?)
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("neither an in-cluster service account nor a usable KUBECONFIG: {e}"))?,
    };
    kube::Client::try_from(client_config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

/// A kube error in one line, with the API server's reason when it gave one.
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({}, HTTP {})", status.message, status.reason, status.code),
        other => other.to_string(),
    }
}

pub(crate) struct Kube {
    config: KubernetesConfig,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    jobs_dir: PathBuf,
    /// Pod name -> the supervised job's view of it, fed by the watcher.
    tracked: Mutex<HashMap<String, watch::Sender<Seen>>>,
    background: Background,
}

/// A job whose pod exists.
pub(crate) struct PodJob {
    job: JobRow,
    pod: String,
    seen: watch::Receiver<Seen>,
    started: bool,
    last_note: Option<String>,
    log: Option<AbortOnDropHandle<()>>,
    deleted: bool,
}

impl Executor for Kube {
    type Slot = ();
    type Handle = PodJob;
    const WORKER: &'static str = "kubernetes";

    /// The cluster's scheduler queues pods for GPUs; the job stays scheduled meanwhile,
    /// with the scheduler's reason.
    fn capacity(&self) -> i32 {
        i32::MAX
    }

    fn reserve(&self, _job: &JobRow) -> Option<()> {
        Some(())
    }

    async fn start(&self, _state: &AppState, job: &JobRow, (): (), env: &JobEnv) -> Result<PodJob, String> {
        let manifest = pod::pod(&self.config, job, env)?;
        let name = pod::pod_name(job);
        let seen = self.track(&name);
        let created = match self.pods.create(&PostParams::default(), &manifest).await {
            Ok(created) => created,
            Err(e) => {
                self.untrack(&name);
                return Err(format!("could not create the job's pod: {}", describe(&e)));
            }
        };
        self.update(&name, |s| matches!(s, Seen::Unknown), Seen::Present(Box::new(created.clone())));
        let secret = pod::secret(&self.config, job, &created, &env.token);
        if let Err(e) = self.secrets.create(&PostParams::default(), &secret).await {
            self.delete_pod(&name).await;
            self.untrack(&name);
            return Err(format!("could not create the secret with the job's token: {}", describe(&e)));
        }
        Ok(PodJob { job: job.clone(), pod: name, seen, started: false, last_note: None, log: None, deleted: false })
    }

    async fn reattach(&self, _state: &AppState, job: &JobRow) -> Result<PodJob, String> {
        let name = pod::pod_name(job);
        let seen = self.track(&name);
        let mut attempt = 0;
        let found = loop {
            attempt += 1;
            match self.pods.get_opt(&name).await {
                Ok(found) => break found,
                Err(e) if attempt >= REATTACH_ATTEMPTS => {
                    self.untrack(&name);
                    return Err(format!(
                        "could not find the job's pod {name} after the server restarted: {}",
                        describe(&e)
                    ));
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %describe(&e), "could not look up a job's pod; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let Some(found) = found else {
            self.untrack(&name);
            return Err(format!(
                "its pod {name} no longer exists: it was deleted, or its node was lost, while the server was down; \
                 submit it again (retry) to rerun it"
            ));
        };
        self.update(&name, |s| matches!(s, Seen::Unknown), Seen::Present(Box::new(found)));
        let started = job.state() == cairn_core::job::JobState::Running;
        Ok(PodJob { job: job.clone(), pod: name, seen, started, last_note: None, log: None, deleted: false })
    }

    async fn next_event(&self, job: &mut PodJob) -> Event {
        loop {
            let seen = job.seen.borrow_and_update().clone();
            match seen {
                Seen::Unknown => {}
                Seen::Gone => {
                    drain(job).await;
                    return Event::Ended(Outcome::infrastructure(format!(
                        "the pod {} disappeared before it finished (its node was lost, or it was deleted outside Cairn)",
                        job.pod
                    )));
                }
                Seen::Present(found) => {
                    if job.log.is_none() && container_started(&found) {
                        let follow = follow_logs(
                            self.pods.clone(),
                            job.pod.clone(),
                            local_log_path(&self.jobs_dir, job.job.id),
                            job.seen.clone(),
                        );
                        job.log = Some(AbortOnDropHandle::new(tokio::spawn(follow)));
                    }
                    match pod::classify(&found, job.job.spec.timeout_secs) {
                        Some(Event::Started) if !job.started => {
                            job.started = true;
                            return Event::Started;
                        }
                        Some(Event::Waiting(reason)) if job.last_note.as_ref() != Some(&reason) => {
                            job.last_note = Some(reason.clone());
                            return Event::Waiting(reason);
                        }
                        Some(Event::Ended(outcome)) => {
                            // A pod that cannot start (its image cannot be pulled) would
                            // wait for ever: it goes now.
                            if !finished(&Seen::Present(found)) {
                                self.delete_pod(&job.pod).await;
                                job.deleted = true;
                            }
                            drain(job).await;
                            return Event::Ended(outcome);
                        }
                        _ => {}
                    }
                }
            }
            if job.seen.changed().await.is_err() {
                return Event::Ended(Outcome::failed("lost track of the pod: the executor's watch stopped"));
            }
        }
    }

    async fn stop(&self, job: &mut PodJob) {
        self.delete_pod(&job.pod).await;
        job.deleted = true;
        drain(job).await;
    }

    async fn release(&self, _state: &AppState, job: PodJob) {
        self.untrack(&job.pod);
        // The token is revoked already; its secret goes now rather than with the pod.
        let secret = pod::secret_name(&job.job);
        if let Err(e) = self.secrets.delete(&secret, &DeleteParams::default()).await
            && !is_not_found(&e)
        {
            tracing::warn!(secret, error = %describe(&e), "could not delete a job's secret");
        }
        if !job.deleted {
            self.delete_later(job.pod, self.config.pod_retention);
        }
    }
}

impl Kube {
    fn track(&self, name: &str) -> watch::Receiver<Seen> {
        let (tx, rx) = watch::channel(Seen::Unknown);
        if let Ok(mut tracked) = self.tracked.lock() {
            tracked.insert(name.to_owned(), tx);
        }
        rx
    }

    fn untrack(&self, name: &str) {
        if let Ok(mut tracked) = self.tracked.lock() {
            tracked.remove(name);
        }
    }

    /// Sets what is known of pod `name` when `current` holds for what was known.
    fn update(&self, name: &str, current: impl Fn(&Seen) -> bool, seen: Seen) {
        if let Ok(tracked) = self.tracked.lock()
            && let Some(tx) = tracked.get(name)
        {
            tx.send_if_modified(|now| {
                let replace = current(now);
                if replace {
                    *now = seen;
                }
                replace
            });
        }
    }

    fn tracked_names(&self) -> Vec<String> {
        self.tracked.lock().map(|t| t.keys().cloned().collect()).unwrap_or_default()
    }

    async fn delete_pod(&self, name: &str) {
        if let Err(e) = self.pods.delete(name, &DeleteParams::default()).await
            && !is_not_found(&e)
        {
            tracing::warn!(pod = name, error = %describe(&e), "could not delete a job's pod");
        }
    }

    /// Deletes a finished pod after `after`, unless the server stops first (the next one
    /// sweeps it).
    fn delete_later(&self, name: String, after: Duration) {
        let (pods, shutdown) = (self.pods.clone(), self.background.shutdown.clone());
        self.background.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(after) => {}
            }
            if let Err(e) = pods.delete(&name, &DeleteParams::default()).await
                && !is_not_found(&e)
            {
                tracing::warn!(pod = name, error = %describe(&e), "could not delete a finished job's pod");
            }
        });
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

fn container_started(found: &Pod) -> bool {
    let statuses = found.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.into_iter().flatten().any(|c| {
        c.name == pod::JOB_CONTAINER && c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    })
}

fn finished(seen: &Seen) -> bool {
    match seen {
        Seen::Gone => true,
        Seen::Unknown => false,
        Seen::Present(p) => {
            matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
        }
    }
}

/// Waits (a little) for the rest of the job's log.
async fn drain(job: &mut PodJob) {
    if let Some(log) = &mut job.log
        && tokio::time::timeout(LOG_DRAIN, log).await.is_err()
    {
        tracing::warn!(job = %job.job.id, "the job's log did not end within 10 s of the pod");
    }
}

/// Feeds every tracked job the events of its pod.
async fn watch_pods(kube: Arc<Kube>) {
    let config = watcher::Config::default().labels(&pod::selector());
    let mut events = std::pin::pin!(watcher(kube.pods.clone(), config).default_backoff());
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            () = kube.background.shutdown.cancelled() => return,
            event = events.next() => event,
        };
        let Some(event) = event else { return };
        match event {
            Ok(watcher::Event::Apply(found)) => dispatch(&kube, found),
            Ok(watcher::Event::InitApply(found)) => {
                listed.extend(found.metadata.name.clone());
                dispatch(&kube, found);
            }
            Ok(watcher::Event::Delete(gone)) => {
                if let Some(name) = gone.metadata.name {
                    kube.update(&name, |_| true, Seen::Gone);
                }
            }
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitDone) => {
                // Pods deleted while the watch was down: look each one up (a pod created
                // while the list ran may be missing from it and still exist).
                for name in kube.tracked_names().into_iter().filter(|n| !listed.contains(n)) {
                    let kube = Arc::clone(&kube);
                    kube.background.tasks.clone().spawn(async move {
                        if let Ok(None) = kube.pods.get_opt(&name).await {
                            kube.update(&name, |_| true, Seen::Gone);
                        }
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "the watch of jobs' pods failed; it restarts"),
        }
    }
}

fn dispatch(kube: &Kube, found: Pod) {
    if let Some(name) = found.metadata.name.clone() {
        kube.update(&name, |_| true, Seen::Present(Box::new(found)));
    }
}

/// Deletes the finished pods a previous server process left, each when its retention ends.
async fn sweep_finished_pods(state: AppState, kube: Arc<Kube>) {
    let pods = match kube.pods.list(&ListParams::default().labels(&pod::selector())).await {
        Ok(list) => list.items,
        Err(e) => return tracing::warn!(error = %describe(&e), "could not list jobs' pods to clean up"),
    };
    for found in pods {
        let labels = found.metadata.labels.as_ref();
        let Some(id) = labels.and_then(|l| l.get(pod::JOB_ID_LABEL)).and_then(|id| id.parse().ok()) else {
            continue;
        };
        let (Some(name), Ok(Some(job))) = (found.metadata.name, repo::get(&state.db.pool, id).await) else {
            continue;
        };
        if let (true, Some(at)) = (job.state().is_final(), job.finished_at) {
            let age = (Utc::now() - at).to_std().unwrap_or_default();
            kube.delete_later(name, kube.config.pod_retention.saturating_sub(age));
        }
    }
}

/// Appends the job container's output to the job's log until the pod has finished,
/// reconnecting when the stream drops. Lines at or before the last one logged (by this
/// process or the one before a restart) are skipped; so after a restart, lines printed in
/// the same millisecond as the last one logged are lost.
async fn follow_logs(pods: Api<Pod>, name: String, path: PathBuf, mut seen: watch::Receiver<Seen>) {
    if let Some(dir) = path.parent()
        && let Err(e) = tokio::fs::create_dir_all(dir).await
    {
        return tracing::warn!(pod = name, error = %e, "cannot write the job's log");
    }
    // What a previous server process logged (to the millisecond, as the file has it), and
    // what this one did (to the API server's precision).
    let resume = last_logged(&path).await;
    let mut last: Option<DateTime<Utc>> = None;
    let mut file = match tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await {
        Ok(file) => file,
        Err(e) => return tracing::warn!(pod = name, error = %e, "cannot write the job's log"),
    };
    let params = LogParams {
        container: Some(pod::JOB_CONTAINER.into()),
        follow: true,
        timestamps: true,
        ..LogParams::default()
    };
    loop {
        match pods.log_stream(&name, &params).await {
            Ok(stream) => {
                let mut lines = stream.lines();
                while let Some(Ok(line)) = lines.next().await {
                    let (stamp, text) = split_timestamp(&line);
                    if let Some(stamp) = stamp {
                        let logged_before = resume.is_some_and(|r| stamp.trunc_subsecs(3) <= r);
                        if logged_before || last.is_some_and(|l| stamp <= l) {
                            continue;
                        }
                        last = Some(stamp);
                    }
                    let stamp = stamp.unwrap_or_else(Utc::now).to_rfc3339_opts(SecondsFormat::Millis, true);
                    let entry = format!("{stamp} stdout {}\n", text.trim_end_matches(['\n', '\r']));
                    if let Err(e) = file.write_all(entry.as_bytes()).await {
                        tracing::warn!(pod = name, error = %e, "could not write a job log line");
                    }
                }
            }
            Err(e) => tracing::debug!(pod = name, error = %describe(&e), "cannot follow the job's log yet"),
        }
        let _ = file.flush().await;
        // The stream ends when the container does, or when the connection drops.
        if finished(&seen.borrow()) {
            return;
        }
        tokio::select! {
            changed = seen.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// `2026-01-02T03:04:05.123456789Z text` (the API server's `timestamps=true`).
fn split_timestamp(line: &str) -> (Option<DateTime<Utc>>, &str) {
    match line.split_once(' ') {
        Some((stamp, text)) => match DateTime::parse_from_rfc3339(stamp) {
            Ok(at) => (Some(at.with_timezone(&Utc)), text),
            Err(_) => (None, line),
        },
        None => match DateTime::parse_from_rfc3339(line) {
            Ok(at) => (Some(at.with_timezone(&Utc)), ""),
            Err(_) => (None, line),
        },
    }
}

/// The time of the last line in the job's log file, if any.
async fn last_logged(path: &Path) -> Option<DateTime<Utc>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    // The tail is enough: the file can be large.
    let mut file = tokio::fs::File::open(path).await.ok()?;
    let len = file.metadata().await.ok()?.len();
    file.seek(std::io::SeekFrom::Start(len.saturating_sub(64 * 1024))).await.ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).await.ok()?;
    let text = String::from_utf8_lossy(&tail);
    split_timestamp(text.lines().next_back()?).0
}
