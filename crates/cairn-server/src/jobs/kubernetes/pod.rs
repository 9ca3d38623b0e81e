//! The objects the Kubernetes executor creates for a job (its pod and its token's secret),
//! and what a pod's status says about the job. Pure functions: no API calls here.

use std::collections::BTreeMap;

use cairn_db::jobs::JobRow;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EmptyDirVolumeSource, EnvVar, EnvVarSource, LocalObjectReference, Pod, PodSpec,
    ResourceRequirements, Secret, SecretKeySelector, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::config::KubernetesConfig;
use crate::jobs::executor::{Event, JobEnv, Outcome};

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "cairn");
pub const JOB_ID_LABEL: &str = "cairn.dev/job-id";
pub const RUN_ID_LABEL: &str = "cairn.dev/run-id";
/// The container that runs the job's code (init containers pull its datasets).
pub const JOB_CONTAINER: &str = "job";
/// The key of the token in the job's secret.
pub(crate) const TOKEN_KEY: &str = "token";
/// Where dataset inputs are downloaded to, `DATA_DIR/NAME`.
pub const DATA_DIR: &str = "/data";
pub(crate) const GPU_RESOURCE: &str = "nvidia.com/gpu";

pub fn selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

pub fn pod_name(job: &JobRow) -> String {
    format!("cairn-job-{}", job.id.simple())
}

pub fn secret_name(job: &JobRow) -> String {
    format!("cairn-job-{}-token", job.id.simple())
}

fn labels(job: &JobRow) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (JOB_ID_LABEL.to_owned(), job.id.simple().to_string()),
        (RUN_ID_LABEL.to_owned(), job.run_uuid.simple().to_string()),
    ])
}

pub(crate) fn var(name: impl Into<String>, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

pub(crate) fn from_secret(name: &str, secret: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: TOKEN_KEY.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The job's pod: `restartPolicy: Never`, the spec's image and command, the tracking
/// variables with the token from the job's secret, GPUs as `nvidia.com/gpu` limits, the
/// configured placement, and one init container per dataset input that pulls it into the
/// shared `/data` volume with Cairn's own image.
pub fn pod(config: &KubernetesConfig, job: &JobRow, env: &JobEnv) -> Result<Pod, String> {
    let spec = &job.spec.0;
    let image = spec.image.clone().ok_or("the job has no image; the Kubernetes executor runs jobs in containers")?;
    let secret = secret_name(job);
    let mut vars: Vec<EnvVar> = spec.env.iter().map(|(k, v)| var(k, v)).collect();
    vars.extend(spec.params.iter().map(|(k, v)| var(format!("CAIRN_PARAM_{k}"), v)));
    vars.extend(env.public_vars().into_iter().map(|(k, v)| var(k, v)));
    vars.extend(JobEnv::TOKEN_VARS.map(|name| from_secret(name, &secret)));

    // GPUs and memory are requested and capped; CPU is requested only, so that a job may use
    // idle cores instead of being throttled at its reservation.
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if spec.gpus > 0 {
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(spec.gpus.to_string()));
    }
    if let Some(memory) = &spec.memory {
        limits.insert("memory".to_owned(), Quantity(memory.clone()));
        requests.insert("memory".to_owned(), Quantity(memory.clone()));
    }
    if let Some(cpu) = &spec.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    let data_mount = VolumeMount { name: "data".into(), mount_path: DATA_DIR.into(), ..VolumeMount::default() };
    let has_data = !spec.datasets.is_empty();
    if has_data {
        vars.push(var("CAIRN_DATASETS_DIR", DATA_DIR));
    }
    let container = Container {
        name: JOB_CONTAINER.into(),
        image: Some(image),
        command: Some(spec.resolved_command()),
        env: Some(vars),
        resources: Some(ResourceRequirements {
            limits: (!limits.is_empty()).then_some(limits),
            requests: (!requests.is_empty()).then_some(requests),
            ..ResourceRequirements::default()
        }),
        volume_mounts: has_data.then(|| vec![data_mount.clone()]),
        ..Container::default()
    };
    let init_containers: Vec<Container> = spec
        .datasets
        .iter()
        .enumerate()
        .map(|(i, reference)| {
            let name = reference.split('@').next().unwrap_or(reference);
            Container {
                name: format!("dataset-{i}"),
                image: Some(config.cairn_image.clone()),
                command: Some(
                    ["cairn", "dataset", "pull", reference, &format!("{DATA_DIR}/{name}")].map(String::from).to_vec(),
                ),
                env: Some(vec![var("CAIRN_URL", &env.tracking_uri), from_secret("CAIRN_TOKEN", &secret)]),
                volume_mounts: Some(vec![data_mount.clone()]),
                ..Container::default()
            }
        })
        .collect();
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(job)),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels(job)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(i64::try_from(spec.timeout_secs).unwrap_or(i64::MAX)),
            containers: vec![container],
            init_containers: has_data.then_some(init_containers),
            volumes: has_data.then(|| {
                vec![Volume {
                    name: "data".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                }]
            }),
            service_account_name: config.service_account.clone(),
            // Jobs get API credentials only from a service account chosen for them.
            automount_service_account_token: Some(config.service_account.is_some()),
            ..placement(config)
        }),
        status: None,
    })
}

/// Where the configured pods go: node selector, tolerations and image pull secrets (shared
/// by jobs' pods and serving pods).
pub(crate) fn placement(config: &KubernetesConfig) -> PodSpec {
    let tolerations: Vec<Toleration> = config
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: Some(t.key.clone()),
            operator: Some(if t.value.is_some() { "Equal" } else { "Exists" }.into()),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: None,
        })
        .collect();
    PodSpec {
        node_selector: (!config.node_selector.is_empty()).then(|| config.node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| {
            config.image_pull_secrets.iter().map(|name| LocalObjectReference { name: name.clone() }).collect()
        }),
        ..PodSpec::default()
    }
}

/// The secret holding the job's token, owned by its pod so that it goes when the pod goes.
pub fn secret(config: &KubernetesConfig, job: &JobRow, pod: &Pod, token: &str) -> Secret {
    let owner = pod.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod_name(job),
        uid,
        controller: None,
        block_owner_deletion: None,
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(job)),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels(job)),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(TOKEN_KEY.to_owned(), ByteString(token.as_bytes().to_vec()))])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Container waiting reasons that will not go away by themselves.
const FATAL_WAITING: &[&str] = &["ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];
/// Pod failure reasons that are the infrastructure's, not the job's.
const INFRASTRUCTURE: &[&str] =
    &["Evicted", "NodeLost", "NodeShutdown", "Shutdown", "Terminated", "UnexpectedAdmissionError"];

/// What the pod's status says: `None` when nothing worth reporting.
pub fn classify(pod: &Pod, timeout_secs: u64) -> Option<Event> {
    let status = pod.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let pod_reason = status.reason.as_deref().unwrap_or("");
    let pod_message = status.message.as_deref().unwrap_or("").trim();
    let job_container = status.container_statuses.iter().flatten().find(|c| c.name == JOB_CONTAINER);
    let init = status.init_container_statuses.iter().flatten();
    match phase {
        "Succeeded" => Some(Event::Ended(Outcome::exited(0))),
        "Failed" => Some(Event::Ended(failure(pod, pod_reason, pod_message, job_container, timeout_secs))),
        "Running" => Some(Event::Started),
        "Unknown" => Some(Event::Waiting(format!(
            "the pod's node stopped reporting; its state is unknown{}",
            suffix(pod_message)
        ))),
        _ => {
            // Pending: why it waits.
            for c in init.clone().chain(job_container) {
                if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                    let reason = waiting.reason.as_deref().unwrap_or("");
                    let message = waiting.message.as_deref().unwrap_or("");
                    if FATAL_WAITING.contains(&reason) {
                        return Some(Event::Ended(Outcome::failed(format!(
                            "cannot pull image {} ({reason}){}",
                            c.image,
                            suffix(message)
                        ))));
                    }
                    if !reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing" {
                        return Some(Event::Waiting(format!(
                            "container {} is waiting: {reason}{}",
                            c.name,
                            suffix(message)
                        )));
                    }
                }
            }
            if let Some(unschedulable) = status.conditions.iter().flatten().find(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            }) {
                let message = unschedulable.message.as_deref().unwrap_or("no node fits");
                return Some(Event::Waiting(format!("waiting for a node (Unschedulable): {message}")));
            }
            if init.clone().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())) {
                return Some(Event::Waiting("downloading dataset inputs".into()));
            }
            None
        }
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

fn failure(
    pod: &Pod,
    pod_reason: &str,
    pod_message: &str,
    job_container: Option<&ContainerStatus>,
    timeout_secs: u64,
) -> Outcome {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("its node");
    if INFRASTRUCTURE.contains(&pod_reason) {
        return Outcome::infrastructure(format!("the pod failed on {node} ({pod_reason}){}", suffix(pod_message)));
    }
    if pod_reason == "DeadlineExceeded" {
        return Outcome::failed(format!("timed out after {timeout_secs} s (activeDeadlineSeconds)"));
    }
    let status = pod.status.as_ref();
    for c in status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten() {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            let what = c.name.strip_prefix("dataset-").map_or("an init container", |_| "downloading a dataset input");
            return Outcome::failed(format!(
                "{what} failed (container {}, exit code {}){}",
                c.name,
                t.exit_code,
                suffix(t.message.as_deref().unwrap_or(""))
            ));
        }
    }
    match job_container.and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.as_ref()) {
        Some(t) if t.reason.as_deref() == Some("OOMKilled") => Outcome {
            exit_code: Some(t.exit_code),
            ..Outcome::failed(format!(
                "killed for using more memory than its limit (OOMKilled, exit code {})",
                t.exit_code
            ))
        },
        Some(t) => {
            let mut outcome = Outcome::exited(t.exit_code);
            if t.exit_code == 0 {
                // The container succeeded but the pod failed: say what the pod says.
                outcome = Outcome::failed(format!("the pod failed{}", suffix(pod_message)));
            } else if let Some(reason) = t.reason.as_deref().filter(|r| *r != "Error") {
                outcome.reason = format!("{} ({reason})", outcome.reason);
            }
            outcome
        }
        None => Outcome::failed(format!(
            "the pod failed{}{}",
            if pod_reason.is_empty() { String::new() } else { format!(" ({pod_reason})") },
            suffix(pod_message)
        )),
    }
}
