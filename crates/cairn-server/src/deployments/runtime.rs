//! Making every deployment's current revision live. One reconciler task compares what the
//! database says should serve with what does: it starts a controller per local deployment
//! ([`super::local`]) and applies the objects of Kubernetes deployments
//! ([`super::kubernetes`]), then keeps watching their status. It runs when woken by a
//! change ([`wake`]) and every few seconds, and at start-up, so the deployments recorded as
//! live are served again after a restart.
//!
//! [`Serving`] is the state the gateway reads: where each deployment's live revision
//! answers, and its request metrics.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use cairn_db::deployments::{self as repo, DeploymentRow};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gateway::{Metrics, Upstream};
use super::{Target, kubernetes, local};
use crate::state::AppState;

/// How often the reconciler looks without being woken (Kubernetes rollout status too).
const RECONCILE_POLL: Duration = Duration::from_secs(2);

/// The advisory lock's name (see [`cairn_db::jobs::try_lead`]) for Kubernetes serving.
const KUBERNETES_LEAD: &str = "deployments:kubernetes";

static WAKE: Notify = Notify::const_new();

/// Tells the reconciler that a deployment changed.
pub fn wake() {
    WAKE.notify_one();
}

/// Where a deployment's live revision answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `http://127.0.0.1:PORT` or the Kubernetes service's URL, without a trailing slash.
    pub url: String,
    pub revision: i32,
}

/// What the gateway needs: backends and metrics, by deployment name.
#[derive(Default)]
pub struct Serving {
    backends: RwLock<HashMap<String, Backend>>,
    pub metrics: Metrics,
    pub upstream: Upstream,
}

impl Serving {
    pub fn backend(&self, name: &str) -> Option<Backend> {
        self.backends.read().ok().and_then(|b| b.get(name).cloned())
    }

    pub(crate) fn set_backend(&self, name: &str, backend: Option<Backend>) {
        if let Ok(mut backends) = self.backends.write() {
            match backend {
                Some(b) => backends.insert(name.to_owned(), b),
                None => backends.remove(name),
            };
        }
    }
}

/// The reconciler and the controllers it started, stopped with the server.
pub struct RunningServing {
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl RunningServing {
    /// Stops the local serving processes (Kubernetes objects stay: the next server finds
    /// them) and waits for the tasks to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(15), self.tasks.wait()).await.is_err() {
            tracing::warn!("the serving tasks did not stop within 15 s");
        }
    }
}

/// Starts the reconciler.
pub fn start(state: &AppState) -> RunningServing {
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (state, token, tracker) = (state.clone(), shutdown.clone(), tasks.clone());
    tasks.spawn(async move { reconcile_loop(state, token, tracker).await });
    RunningServing { shutdown, tasks }
}

async fn reconcile_loop(state: AppState, shutdown: CancellationToken, tasks: TaskTracker) {
    let mut controllers: HashMap<String, local::Controller> = HashMap::new();
    let mut cluster = kubernetes::Cluster::connect(&state).await;
    let mut leadership = None;
    loop {
        if cluster.is_some() && leadership.is_none() {
            leadership = take_kubernetes_lead(&state).await;
        }
        // Every deployment: the runtime serves all projects.
        match repo::list(&state.db.pool, None).await {
            Ok(rows) => {
                reconcile_local(&state, &rows, &mut controllers, &shutdown, &tasks).await;
                if let Some(cluster) = cluster.as_mut() {
                    cluster.reconcile(&state, &rows, leadership.is_some()).await;
                } else {
                    refuse_kubernetes(&state, &rows).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the deployments to serve"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = WAKE.notified() => {}
            () = tokio::time::sleep(RECONCILE_POLL) => {}
        }
    }
    for (_, controller) in controllers.drain() {
        controller.stop();
    }
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
}

/// The lock that lets one replica change the cluster's serving objects; the others only
/// read rollout status, so that replicas never apply or delete the same objects at once.
/// Local deployments need none: each replica serves its own processes for its gateway.
async fn take_kubernetes_lead(state: &AppState) -> Option<cairn_db::jobs::Leadership> {
    match cairn_db::jobs::try_lead(&state.db.pool, KUBERNETES_LEAD).await {
        Ok(Some(leadership)) => {
            tracing::info!("this process applies the Kubernetes serving objects");
            Some(leadership)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not take the Kubernetes serving lock");
            None
        }
    }
}

fn target(row: &DeploymentRow) -> Target {
    Target::parse(&row.settings.target).unwrap_or(Target::Local)
}

/// Local deployments: a controller each, told the current row; deleted ones are stopped.
async fn reconcile_local(
    state: &AppState,
    rows: &[DeploymentRow],
    controllers: &mut HashMap<String, local::Controller>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    let local_rows: Vec<&DeploymentRow> = rows.iter().filter(|r| target(r) == Target::Local).collect();
    controllers.retain(|name, controller| {
        let keep = local_rows.iter().any(|r| &r.name == name);
        if !keep {
            controller.stop();
            state.serving.set_backend(name, None);
            state.serving.metrics.forget(name);
        }
        keep
    });
    let Some(dir) = state.config.serving.dir.clone() else {
        for row in local_rows {
            let message = "this server does not serve models locally (it has no serving directory)";
            let _ = repo::set_status(&state.db.pool, &row.name, row.current_revision, "failed", message).await;
        }
        return;
    };
    for row in local_rows {
        match controllers.get(&row.name) {
            Some(controller) => controller.update(row),
            None => {
                let controller = local::Controller::spawn(state, &dir, row.clone(), shutdown.child_token(), tasks);
                controllers.insert(row.name.clone(), controller);
            }
        }
    }
}

/// Kubernetes deployments on a server without a cluster: said so in their status.
async fn refuse_kubernetes(state: &AppState, rows: &[DeploymentRow]) {
    for row in rows.iter().filter(|r| target(r) == Target::Kubernetes) {
        let message = "this server has no Kubernetes connection";
        let _ = repo::set_status(&state.db.pool, &row.name, row.current_revision, "failed", message).await;
    }
}
