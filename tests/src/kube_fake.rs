//! A fake Kubernetes API server for the Kubernetes executor's tests: real HTTP and JSON
//! shaped like the `k8s-openapi` types, spoken to by the real kube client. It keeps pods
//! and secrets of any namespace, answers list, `?watch=true` streams, get, create, delete
//! and `/log` (with `follow` and `timestamps`), errors as `Status` objects; and the apps/v1
//! Deployments and v1 Services of model serving ([`workloads`]).
//!
//! A simple scheduler and kubelet run on fake GPU nodes: a pending pod is bound to the
//! first node whose labels match its node selector and that has enough free
//! `nvidia.com/gpu`, else it gets an `Unschedulable` condition with the scheduler's
//! message; a bound pod's init containers succeed, then its job container runs (or waits
//! with `ErrImagePull`/`ImagePullBackOff` when its image names `does-not-exist`). The test
//! decides how a running pod ends ([`KubeFake::exit`], [`KubeFake::evict`],
//! [`KubeFake::vanish`]) and what it prints ([`KubeFake::print`]).

mod workloads;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A fake node with GPUs and labels.
#[derive(Debug, Clone)]
pub struct FakeNode {
    pub name: String,
    pub gpus: u32,
    pub labels: BTreeMap<String, String>,
}

#[derive(Default)]
struct Cluster {
    resource_version: u64,
    nodes: Vec<FakeNode>,
    /// `namespace/name` -> pod.
    pods: BTreeMap<String, Pod>,
    secrets: BTreeMap<String, Secret>,
    /// Every pod event so far, for watches that start from an older version.
    history: Vec<(u64, &'static str, Value)>,
    /// `namespace/name` -> the job container's output lines (time, text).
    logs: BTreeMap<String, Vec<(String, String)>>,
    /// Pods the test has ended: the kubelet leaves them alone.
    ended: std::collections::BTreeSet<String>,
    /// Pods whose image pull already failed once.
    pull_failed: std::collections::BTreeSet<String>,
    /// Deployments and services ([`workloads`]).
    workloads: workloads::Workloads,
}

type Shared = Arc<(Mutex<Cluster>, broadcast::Sender<(u64, String)>)>;

pub struct KubeFake {
    pub url: String,
    shared: Shared,
    _task: tokio::task::JoinHandle<()>,
    _kubelet: tokio::task::JoinHandle<()>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Cluster {
    fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Records a change of `pod` (already stored under `key` unless deleted).
    fn emit(&mut self, kind: &'static str, pod: &Pod, events: &broadcast::Sender<(u64, String)>) {
        let value = serde_json::to_value(pod).unwrap_or(Value::Null);
        self.history.push((self.resource_version, kind, value.clone()));
        let line = json!({"type": kind, "object": value}).to_string();
        let _ = events.send((self.resource_version, line));
    }

    fn modify(&mut self, key: &str, events: &broadcast::Sender<(u64, String)>, change: impl FnOnce(&mut Pod)) {
        let rv = self.bump();
        let Some(pod) = self.pods.get_mut(key) else { return };
        change(pod);
        pod.metadata.resource_version = Some(rv);
        let pod = pod.clone();
        self.emit("MODIFIED", &pod, events);
    }

    fn delete(&mut self, key: &str, events: &broadcast::Sender<(u64, String)>) -> Option<Pod> {
        let rv = self.bump();
        let mut pod = self.pods.remove(key)?;
        pod.metadata.resource_version = Some(rv);
        self.emit("DELETED", &pod, events);
        // The garbage collector: secrets owned by the pod go with it.
        let uid = pod.metadata.uid.clone();
        self.secrets.retain(|_, s| {
            !s.metadata.owner_references.iter().flatten().any(|o| o.kind == "Pod" && Some(&o.uid) == uid.as_ref())
        });
        Some(pod)
    }
}

fn gpu_request(pod: &Pod) -> u32 {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    containers
        .iter()
        .filter_map(|c| c.resources.as_ref()?.limits.as_ref()?.get("nvidia.com/gpu"))
        .filter_map(|q| q.0.parse::<u32>().ok())
        .sum()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn container_state(name: &str, image: &str, state: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        state: Some(state),
        ready: false,
        restart_count: 0,
        ..ContainerStatus::default()
    }
}

/// One round of scheduler and kubelet.
fn step(cluster: &mut Cluster, events: &broadcast::Sender<(u64, String)>) {
    let keys: Vec<String> = cluster.pods.keys().cloned().collect();
    for key in keys {
        let Some(pod) = cluster.pods.get(&key).cloned() else { continue };
        if cluster.ended.contains(&key) || matches!(phase(&pod), "Succeeded" | "Failed") {
            continue;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        match &spec.node_name {
            None => {
                let wanted = gpu_request(&pod);
                let selector = spec.node_selector.clone().unwrap_or_default();
                let fits = |node: &FakeNode| {
                    let used: u32 = cluster
                        .pods
                        .values()
                        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(&node.name))
                        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
                        .map(gpu_request)
                        .sum();
                    selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
                        && node.gpus.saturating_sub(used) >= wanted
                };
                match cluster.nodes.iter().find(|n| fits(n)).map(|n| n.name.clone()) {
                    Some(node) => cluster.modify(&key, events, |p| {
                        if let Some(spec) = p.spec.as_mut() {
                            spec.node_name = Some(node);
                        }
                        let status = p.status.get_or_insert_with(PodStatus::default);
                        status.phase = Some("Pending".into());
                        status.conditions = Some(vec![PodCondition {
                            type_: "PodScheduled".into(),
                            status: "True".into(),
                            ..PodCondition::default()
                        }]);
                    }),
                    None => {
                        let total = cluster.nodes.len();
                        let message = format!(
                            "0/{total} nodes are available: {total} Insufficient nvidia.com/gpu. \
                             preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod."
                        );
                        let already = pod
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.reason.as_deref() == Some("Unschedulable")));
                        if !already {
                            cluster.modify(&key, events, |p| {
                                let status = p.status.get_or_insert_with(PodStatus::default);
                                status.phase = Some("Pending".into());
                                status.conditions = Some(vec![PodCondition {
                                    type_: "PodScheduled".into(),
                                    status: "False".into(),
                                    reason: Some("Unschedulable".into()),
                                    message: Some(message),
                                    ..PodCondition::default()
                                }]);
                            });
                        }
                    }
                }
            }
            Some(_) if phase(&pod) == "Pending" => {
                let container = spec.containers.first().cloned().unwrap_or_default();
                let image = container.image.clone().unwrap_or_default();
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let missing_secret = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .flat_map(|c| c.env.iter().flatten())
                    .filter_map(|e| Some(e.value_from.as_ref()?.secret_key_ref.as_ref()?.name.clone()))
                    .find(|s| !cluster.secrets.contains_key(&self::key(&namespace, s)));
                let waiting = if image.contains("does-not-exist") {
                    let first = cluster.pull_failed.insert(key.clone());
                    let reason = if first { "ErrImagePull" } else { "ImagePullBackOff" };
                    Some((reason, format!("Back-off pulling image \"{image}\": not found")))
                } else {
                    missing_secret.map(|s| ("CreateContainerConfigError", format!("secret \"{s}\" not found")))
                };
                cluster.modify(&key, events, |p| {
                    let status = p.status.get_or_insert_with(PodStatus::default);
                    if let Some((reason, message)) = waiting {
                        status.container_statuses = Some(vec![container_state(
                            &container.name,
                            &image,
                            ContainerState {
                                waiting: Some(ContainerStateWaiting {
                                    reason: Some(reason.into()),
                                    message: Some(message),
                                }),
                                ..ContainerState::default()
                            },
                        )]);
                        return;
                    }
                    status.init_container_statuses = spec.init_containers.as_ref().map(|inits| {
                        inits
                            .iter()
                            .map(|c| {
                                container_state(
                                    &c.name,
                                    c.image.as_deref().unwrap_or(""),
                                    ContainerState {
                                        terminated: Some(ContainerStateTerminated {
                                            exit_code: 0,
                                            reason: Some("Completed".into()),
                                            ..ContainerStateTerminated::default()
                                        }),
                                        ..ContainerState::default()
                                    },
                                )
                            })
                            .collect()
                    });
                    status.phase = Some("Running".into());
                    status.start_time = Some(now());
                    status.container_statuses = Some(vec![container_state(
                        &container.name,
                        &image,
                        ContainerState {
                            running: Some(ContainerStateRunning { started_at: Some(now()) }),
                            ..ContainerState::default()
                        },
                    )]);
                });
            }
            Some(_) => {}
        }
    }
}

fn status_error(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response()
}

fn not_found(kind: &str, name: &str) -> Response {
    status_error(404, "NotFound", format!("{kind} \"{name}\" not found"))
}

fn matches_selector(pod: &Pod, selector: Option<&String>) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector.into_iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()).all(|term| match term.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(term),
    })
}

async fn list_pods(
    State(shared): State<Shared>,
    Path(namespace): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let selector = query.get("labelSelector").cloned();
    let (cluster, events) = &*shared;
    if query.get("watch").map(String::as_str) == Some("true") {
        let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let (backlog, mut live) = {
            let Ok(c) = cluster.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
            let live = events.subscribe();
            let backlog: Vec<(u64, String)> = c
                .history
                .iter()
                .filter(|(rv, _, _)| *rv > from)
                .map(|(rv, kind, obj)| (*rv, json!({"type": kind, "object": obj}).to_string()))
                .collect();
            (backlog, live)
        };
        let last = backlog.last().map_or(from, |(rv, _)| *rv);
        let selector2 = selector.clone();
        let wanted = move |line: &str| {
            let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let pod: Option<Pod> = serde_json::from_value(value["object"].clone()).ok();
            pod.is_some_and(|p| {
                p.metadata.namespace.as_deref() == Some(namespace.as_str()) && matches_selector(&p, selector2.as_ref())
            })
        };
        let wanted2 = wanted.clone();
        let backlog = futures::stream::iter(
            backlog
                .into_iter()
                .filter(move |(_, l)| wanted(l))
                .map(|(_, l)| Ok::<_, std::io::Error>(bytes::Bytes::from(l + "\n"))),
        );
        let live = async_stream(move |tx| async move {
            loop {
                match live.recv().await {
                    Ok((rv, line)) if rv > last && wanted2(&line) => {
                        if tx.send(bytes::Bytes::from(line + "\n")).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        use futures::StreamExt;
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(backlog.chain(live)))
            .unwrap_or_default();
    }
    let Ok(c) = cluster.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    let items: Vec<&Pod> = c
        .pods
        .values()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| matches_selector(p, selector.as_ref()))
        .collect();
    axum::Json(json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": c.resource_version.to_string()}, "items": items}))
    .into_response()
}

/// A byte stream fed by a task.
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<bytes::Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

async fn create_pod(State(shared): State<Shared>, Path(namespace): Path<String>, body: axum::body::Bytes) -> Response {
    let mut pod: Pod = match serde_json::from_slice(&body) {
        Ok(pod) => pod,
        Err(e) => return status_error(400, "BadRequest", format!("invalid Pod: {e}")),
    };
    let (cluster, events) = &*shared;
    let Ok(mut c) = cluster.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    let Some(name) = pod.metadata.name.clone() else {
        return status_error(422, "Invalid", "Pod is invalid: metadata.name: Required value".into());
    };
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return status_error(422, "Invalid", "Pod is invalid: spec.containers: Required value".into());
    }
    let key = key(&namespace, &name);
    if c.pods.contains_key(&key) {
        return status_error(409, "AlreadyExists", format!("pods \"{name}\" already exists"));
    }
    let rv = c.bump();
    pod.metadata.namespace = Some(namespace);
    pod.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    pod.metadata.resource_version = Some(rv);
    pod.metadata.creation_timestamp = Some(now());
    pod.status = Some(PodStatus { phase: Some("Pending".into()), ..PodStatus::default() });
    c.pods.insert(key, pod.clone());
    c.emit("ADDED", &pod, events);
    (StatusCode::CREATED, axum::Json(pod)).into_response()
}

async fn get_pod(State(shared): State<Shared>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let Ok(c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    match c.pods.get(&key(&namespace, &name)) {
        Some(pod) => axum::Json(pod).into_response(),
        None => not_found("pods", &name),
    }
}

async fn delete_pod(State(shared): State<Shared>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let (cluster, events) = &*shared;
    let Ok(mut c) = cluster.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    match c.delete(&key(&namespace, &name), events) {
        Some(pod) => axum::Json(pod).into_response(),
        None => not_found("pods", &name),
    }
}

async fn pod_log(
    State(shared): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let key = key(&namespace, &name);
    {
        let Ok(c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
        let Some(pod) = c.pods.get(&key) else { return not_found("pods", &name) };
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some()));
        if !started {
            return status_error(
                400,
                "BadRequest",
                format!("container \"job\" in pod \"{name}\" is waiting to start: ContainerCreating"),
            );
        }
    }
    let follow = query.get("follow").map(String::as_str) == Some("true");
    let timestamps = query.get("timestamps").map(String::as_str) == Some("true");
    let body = async_stream(move |tx| async move {
        let mut sent = 0;
        loop {
            let (lines, done) = {
                let Ok(c) = shared.0.lock() else { return };
                let lines: Vec<(String, String)> = c.logs.get(&key).map(|l| l[sent..].to_vec()).unwrap_or_default();
                let done = c.pods.get(&key).is_none_or(|p| matches!(phase(p), "Succeeded" | "Failed"));
                (lines, done)
            };
            sent += lines.len();
            for (at, text) in lines {
                let line = if timestamps { format!("{at} {text}\n") } else { format!("{text}\n") };
                if tx.send(bytes::Bytes::from(line)).await.is_err() {
                    return;
                }
            }
            if !follow || done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Response::builder().header("content-type", "text/plain").body(Body::from_stream(body)).unwrap_or_default()
}

async fn create_secret(
    State(shared): State<Shared>,
    Path(namespace): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut secret: Secret = match serde_json::from_slice(&body) {
        Ok(secret) => secret,
        Err(e) => return status_error(400, "BadRequest", format!("invalid Secret: {e}")),
    };
    let Ok(mut c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    let Some(name) = secret.metadata.name.clone() else {
        return status_error(422, "Invalid", "Secret is invalid: metadata.name: Required value".into());
    };
    let key = key(&namespace, &name);
    if c.secrets.contains_key(&key) {
        return status_error(409, "AlreadyExists", format!("secrets \"{name}\" already exists"));
    }
    let rv = c.bump();
    secret.metadata.namespace = Some(namespace);
    secret.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    secret.metadata.resource_version = Some(rv);
    c.secrets.insert(key, secret.clone());
    (StatusCode::CREATED, axum::Json(secret)).into_response()
}

async fn get_secret(State(shared): State<Shared>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let Ok(c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    match c.secrets.get(&key(&namespace, &name)) {
        Some(secret) => axum::Json(secret).into_response(),
        None => not_found("secrets", &name),
    }
}

async fn delete_secret(State(shared): State<Shared>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let Ok(mut c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    match c.secrets.remove(&key(&namespace, &name)) {
        Some(_) => axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})).into_response(),
        None => not_found("secrets", &name),
    }
}

impl KubeFake {
    /// Starts the fake on a free local port with these nodes.
    pub async fn start(nodes: Vec<FakeNode>) -> KubeFake {
        let (events, _) = broadcast::channel(4096);
        let shared: Shared = Arc::new((Mutex::new(Cluster { nodes, ..Cluster::default() }), events));
        let router = Router::new()
            .route("/api/v1/namespaces/{ns}/pods", get(list_pods).post(create_pod))
            .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod).delete(delete_pod))
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
            .route("/api/v1/namespaces/{ns}/secrets", axum::routing::post(create_secret))
            .route("/api/v1/namespaces/{ns}/secrets/{name}", get(get_secret).delete(delete_secret))
            .merge(workloads::routes())
            .fallback(|uri: axum::http::Uri| async move {
                status_error(404, "NotFound", format!("the fake API server does not serve {uri}"))
            })
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API server");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let kubelet_state = Arc::clone(&shared);
        let kubelet = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (cluster, events) = &*kubelet_state;
                if let Ok(mut c) = cluster.lock() {
                    step(&mut c, events);
                    c.workloads.step();
                }
            }
        });
        KubeFake { url: format!("http://{addr}"), shared, _task: task, _kubelet: kubelet }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster, &broadcast::Sender<(u64, String)>) -> T) -> T {
        let (cluster, events) = &*self.shared;
        let mut c = cluster.lock().expect("fake cluster lock");
        f(&mut c, events)
    }

    /// The pod of job `job_id` (its `cairn.dev/job-id` label), if it exists.
    pub fn pod_of(&self, job_id: &str) -> Option<Pod> {
        self.with(|c, _| {
            c.pods
                .values()
                .find(|p| {
                    p.metadata.labels.as_ref().and_then(|l| l.get("cairn.dev/job-id")).map(String::as_str)
                        == Some(job_id)
                })
                .cloned()
        })
    }

    /// Waits until job `job_id`'s pod exists.
    pub async fn wait_pod(&self, job_id: &str) -> Pod {
        for _ in 0..200 {
            if let Some(pod) = self.pod_of(job_id) {
                return pod;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no pod was created for job {job_id}");
    }

    /// Waits until `check` holds for job `job_id`'s pod.
    pub async fn wait_pod_until(&self, job_id: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        for _ in 0..200 {
            if let Some(pod) = self.pod_of(job_id).filter(|p| check(p)) {
                return pod;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job_id}'s pod never became {what}: {:?}", self.pod_of(job_id));
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.with(|c, _| c.secrets.get(&key(namespace, name)).cloned())
    }

    /// A Deployment (apps/v1) the fake holds.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<k8s_openapi::api::apps::v1::Deployment> {
        self.with(|c, _| c.workloads.get("deployments", namespace, name))
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<k8s_openapi::api::core::v1::Service> {
        self.with(|c, _| c.workloads.get("services", namespace, name))
    }

    /// How many Deployments and Services the fake holds.
    pub fn workload_count(&self) -> (usize, usize) {
        self.with(|c, _| (c.workloads.count("deployments"), c.workloads.count("services")))
    }

    pub fn pod_count(&self) -> usize {
        self.with(|c, _| c.pods.len())
    }

    /// The job container prints `text` (one line).
    pub fn print(&self, pod: &Pod, text: &str) {
        let key = pod_key(pod);
        let at = k8s_openapi::jiff::Timestamp::now().to_string();
        self.with(|c, _| c.logs.entry(key).or_default().push((at, text.to_owned())));
    }

    /// The job container exits with `code`; `reason` as the kubelet gives it (`OOMKilled`).
    pub fn exit(&self, pod: &Pod, code: i32, reason: Option<&str>) {
        let key = pod_key(pod);
        self.with(|c, events| {
            c.ended.insert(key.clone());
            c.modify(&key, events, |p| {
                let status = p.status.get_or_insert_with(PodStatus::default);
                status.phase = Some(if code == 0 { "Succeeded" } else { "Failed" }.into());
                for container in status.container_statuses.iter_mut().flatten() {
                    container.state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: code,
                            reason: Some(reason.unwrap_or(if code == 0 { "Completed" } else { "Error" }).into()),
                            finished_at: Some(now()),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    });
                }
            });
        });
    }

    /// The kubelet evicts the pod (node pressure).
    pub fn evict(&self, pod: &Pod) {
        let key = pod_key(pod);
        self.with(|c, events| {
            c.ended.insert(key.clone());
            c.modify(&key, events, |p| {
                let status = p.status.get_or_insert_with(PodStatus::default);
                status.phase = Some("Failed".into());
                status.reason = Some("Evicted".into());
                status.message = Some("The node was low on resource: memory.".into());
            });
        });
    }

    /// The pod disappears (its node is lost and the pod garbage-collected, say).
    pub fn vanish(&self, pod: &Pod) {
        let key = pod_key(pod);
        self.with(|c, events| c.delete(&key, events));
    }
}

fn pod_key(pod: &Pod) -> String {
    key(pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""))
}
