//! The Kubernetes executor against the fake API server ([`cairn_tests::kube_fake`]): the
//! pods it creates, how pod phases and failure reasons become job states, GPU capacity
//! queueing, cancel, logs, automatic retry after an eviction, and re-attaching after a
//! restart.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_server::{KubernetesConfig, ServerConfig, Toleration};
use cairn_storage::Storage;
use cairn_tests::kube_fake::{FakeNode, KubeFake};
use cairn_tests::{StoppableApp, UserRole};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::datasets::Client;
use crate::jobs::Jobs;

const NAMESPACE: &str = "ml-jobs";

/// Where pods reach Cairn: the in-cluster service, not the public URL.
const IN_CLUSTER_URL: &str = "http://cairn.ml-jobs.svc:8080";

fn gpu_node(name: &str, gpus: u32) -> FakeNode {
    FakeNode { name: name.into(), gpus, labels: BTreeMap::from([("cairn.dev/pool".into(), "gpu".into())]) }
}

fn configure(config: &mut ServerConfig, fake: &KubeFake, jobs_dir: &std::path::Path) {
    let mut kubernetes = KubernetesConfig::new(NAMESPACE, "ghcr.io/cairn/cairn:test");
    kubernetes.api_url = Some(fake.url.clone());
    kubernetes.service_account = Some("trainer".into());
    kubernetes.node_selector = BTreeMap::from([("cairn.dev/pool".into(), "gpu".into())]);
    kubernetes.tolerations = vec![Toleration::parse("nvidia.com/gpu=present:NoSchedule").expect("toleration")];
    kubernetes.image_pull_secrets = vec!["registry-credentials".into()];
    kubernetes.pod_retention = Duration::ZERO;
    kubernetes.cairn_url = Some(IN_CLUSTER_URL.into());
    config.jobs_dir = Some(jobs_dir.to_owned());
    config.kubernetes = Some(kubernetes);
}

/// A server with the Kubernetes executor on the fake, and its storage directory.
async fn start(fake: &KubeFake, db: Option<cairn_db::Db>, dirs: &Dirs) -> StoppableApp {
    let storage = Storage::local(dirs.storage.path()).expect("storage");
    StoppableApp::start(db, storage, |config| configure(config, fake, dirs.jobs.path())).await
}

struct Dirs {
    jobs: tempfile::TempDir,
    storage: tempfile::TempDir,
}

fn dirs() -> Dirs {
    Dirs { jobs: tempfile::tempdir().expect("jobs dir"), storage: tempfile::tempdir().expect("storage dir") }
}

/// The fake with one GPU node of `gpus` GPUs, and a server that uses it.
async fn setup(gpus: u32) -> (KubeFake, Dirs, StoppableApp, Jobs) {
    let fake = KubeFake::start(vec![gpu_node("gpu-a", gpus)]).await;
    let dirs = dirs();
    let server = start(&fake, None, &dirs).await;
    let jobs = jobs_api(&server).await;
    (fake, dirs, server, jobs)
}

async fn job_count(jobs: &Jobs) -> usize {
    let all = jobs.json(reqwest::Method::GET, "/jobs", None, 200).await;
    all["jobs"].as_array().map_or(0, Vec::len)
}

async fn jobs_api(app: &StoppableApp) -> Jobs {
    Jobs { app: app.app.handle(), token: app.app.admin_token().await, _dir: tempfile::tempdir().expect("dir") }
}

fn env_of(pod: &Pod) -> BTreeMap<String, Value> {
    let container = &pod.spec.as_ref().expect("spec").containers[0];
    container
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => json!(v),
                (None, Some(from)) => serde_json::to_value(from).expect("json"),
                _ => Value::Null,
            };
            (e.name.clone(), value)
        })
        .collect()
}

async fn log_of(jobs: &Jobs, id: &str) -> String {
    let (status, log) = jobs.call(reqwest::Method::GET, &format!("/jobs/{id}/logs"), None).await;
    assert_eq!(status, 200, "{log}");
    log
}

#[tokio::test]
async fn a_job_runs_as_a_pod_with_its_image_gpus_env_token_secret_and_datasets() {
    let (fake, _dirs, _server, jobs) = setup(2).await;
    let owner = Client::as_role(&jobs.app, "ds-owner", UserRole::Member).await;
    let (status, version) = owner.push("mnist", &[("train.csv", b"a,b\n1,2\n")]).await;
    assert_eq!(status, 201, "{version}");

    // Without an image a job cannot run as a pod: refused at submission.
    let (status, text) = jobs.call(reqwest::Method::POST, "/jobs", Some(json!({"command": ["x"]}))).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("needs an image"), "{text}");

    let body = json!({"command": ["python", "train.py", "--lr={{lr}}"], "image": "ghcr.io/acme/train:1",
        "params": {"lr": "0.1"}, "env": {"EXTRA": "1"}, "gpus": 1, "cpu": "4", "memory": "16Gi", "datasets": ["mnist"],
        "timeout_secs": 600});
    let id = jobs.submit(body).await;
    let pod = fake.wait_pod(&id).await;
    let job = jobs.job(&id).await;
    let run_id = job["run_id"].as_str().expect("run id");

    let meta = &pod.metadata;
    let labels = meta.labels.clone().expect("labels");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "cairn");
    assert_eq!(labels["cairn.dev/job-id"], id);
    assert_eq!(meta.namespace.as_deref(), Some(NAMESPACE));
    let spec = pod.spec.clone().expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.active_deadline_seconds, Some(600));
    assert_eq!(spec.service_account_name.as_deref(), Some("trainer"));
    assert_eq!(spec.node_selector.clone().expect("node selector")["cairn.dev/pool"], "gpu");
    let toleration = serde_json::to_value(&spec.tolerations.clone().expect("tolerations")[0]).expect("json");
    assert_eq!(
        toleration,
        json!({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"})
    );
    assert_eq!(spec.image_pull_secrets.clone().expect("pull secrets")[0].name, "registry-credentials");
    let container = &spec.containers[0];
    assert_eq!(container.image.as_deref(), Some("ghcr.io/acme/train:1"));
    assert_eq!(container.command.clone().expect("command"), ["python", "train.py", "--lr=0.1"]);
    let resources = container.resources.clone().expect("resources");
    let limits = resources.limits.expect("limits");
    assert_eq!((limits["nvidia.com/gpu"].0.as_str(), limits["memory"].0.as_str()), ("1", "16Gi"));
    assert!(!limits.contains_key("cpu"), "CPU is requested, not capped: {limits:?}");
    let requests = resources.requests.expect("requests");
    assert_eq!((requests["cpu"].0.as_str(), requests["memory"].0.as_str()), ("4", "16Gi"));

    let env = env_of(&pod);
    assert_eq!(env["MLFLOW_TRACKING_URI"], json!(IN_CLUSTER_URL));
    assert_eq!(env["CAIRN_URL"], json!(IN_CLUSTER_URL));
    assert_eq!(env["MLFLOW_RUN_ID"], json!(run_id));
    assert_eq!(env["CAIRN_JOB_ID"], json!(id));
    assert_eq!(env["CAIRN_PARAM_lr"], json!("0.1"));
    assert_eq!(env["EXTRA"], json!("1"));
    assert_eq!(env["CAIRN_DATASETS_DIR"], json!("/data"));
    let secret_name = format!("cairn-job-{id}-token");
    for name in ["MLFLOW_TRACKING_TOKEN", "CAIRN_TOKEN"] {
        assert_eq!(env[name]["secretKeyRef"]["name"], json!(secret_name), "{name} comes from the secret");
    }
    assert!(!env.values().any(|v| v.as_str().is_some_and(|s| s.starts_with("ey"))), "no token in the pod spec");

    // Dataset inputs: an init container with Cairn's image pulls the pinned version.
    let init = &spec.init_containers.clone().expect("init containers")[0];
    assert_eq!(init.image.as_deref(), Some("ghcr.io/cairn/cairn:test"));
    assert_eq!(init.command.clone().expect("command"), ["cairn", "dataset", "pull", "mnist@1", "/data/mnist"]);
    assert_eq!(init.volume_mounts.clone().expect("mounts")[0].mount_path, "/data");
    assert_eq!(container.volume_mounts.clone().expect("mounts")[0].mount_path, "/data");
    assert!(spec.volumes.clone().expect("volumes")[0].empty_dir.is_some());

    // The token secret belongs to the pod and holds a token that logs into the run.
    let secret = fake.secret(NAMESPACE, &secret_name).expect("the token's secret");
    let owner_ref = &secret.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!((owner_ref.kind.as_str(), Some(&owner_ref.uid)), ("Pod", meta.uid.as_ref()));
    let token = String::from_utf8(secret.data.expect("data")["token"].0.clone()).expect("utf-8");
    let run_url = jobs.app.at(&format!("/api/v1/runs/{run_id}"));
    let with_token = jobs.app.client.get(&run_url).bearer_auth(&token).send().await.expect("request");
    assert_eq!(with_token.status(), 200);

    let running = jobs.wait_for(&id, Some("running")).await;
    assert_eq!(jobs.run_status(&running).await, "running");
    fake.print(&pod, "epoch 1 loss=0.5");
    fake.print(&pod, "done");
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.exit(&pod, 0, None);
    let done = jobs.wait_for(&id, None).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["exit_code"], 0);
    let transitions: Vec<&str> =
        done["events"].as_array().expect("events").iter().filter_map(|e| e["to"].as_str()).collect();
    assert_eq!(transitions, ["queued", "scheduled", "running", "succeeded"]);
    assert_eq!(jobs.run_status(&done).await, "finished");

    let log = log_of(&jobs, &id).await;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].ends_with(" stdout epoch 1 loss=0.5") && lines[1].ends_with(" stdout done"), "{log}");
    assert!(chrono::DateTime::parse_from_rfc3339(lines[0].split(' ').next().unwrap_or("")).is_ok(), "{log}");

    // Ended: token revoked, secret deleted, the pod deleted after its retention (zero here).
    let after = jobs.app.client.get(&run_url).bearer_auth(&token).send().await.expect("request");
    assert_eq!(after.status(), 401);
    for _ in 0..100 {
        if fake.pod_of(&id).is_none() && fake.secret(NAMESPACE, &secret_name).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.secret(NAMESPACE, &secret_name).is_none(), "the token's secret is deleted");
    assert!(fake.pod_of(&id).is_none(), "the finished pod is deleted after the retention");
}

#[tokio::test]
async fn pod_failures_become_job_failures_with_the_reason() {
    let (fake, _dirs, _server, jobs) = setup(4).await;
    let image = "ghcr.io/acme/train:1";
    let oom = jobs.submit(json!({"command": ["train"], "image": image})).await;
    let crash = jobs.submit(json!({"command": ["train"], "image": image})).await;
    let missing = jobs.submit(json!({"command": ["train"], "image": "ghcr.io/acme/does-not-exist:1"})).await;

    let oom_pod = fake.wait_pod(&oom).await;
    jobs.wait_for(&oom, Some("running")).await;
    fake.exit(&oom_pod, 137, Some("OOMKilled"));
    let crash_pod = fake.wait_pod(&crash).await;
    jobs.wait_for(&crash, Some("running")).await;
    fake.exit(&crash_pod, 2, None);

    let ended = jobs.wait_for(&oom, None).await;
    assert_eq!((ended["state"].as_str(), ended["exit_code"].as_i64()), (Some("failed"), Some(137)));
    assert!(ended["reason"].as_str().unwrap_or("").contains("OOMKilled"), "{ended}");
    assert_eq!(jobs.run_status(&ended).await, "failed");

    let ended = jobs.wait_for(&crash, None).await;
    assert_eq!((ended["state"].as_str(), ended["exit_code"].as_i64()), (Some("failed"), Some(2)));
    assert_eq!(ended["reason"], "exited with code 2", "a code failure is not retried");

    let ended = jobs.wait_for(&missing, None).await;
    assert_eq!(ended["state"], "failed");
    let reason = ended["reason"].as_str().unwrap_or("");
    assert!(reason.contains("ImagePullBackOff") && reason.contains("does-not-exist"), "{reason}");
    let events: Vec<&str> =
        ended["events"].as_array().expect("events").iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(events.iter().any(|r| r.contains("ErrImagePull")), "the first pull error is noted: {events:?}");
    assert!(fake.pod_of(&missing).is_none(), "a pod that can never start is deleted");

    assert_eq!(job_count(&jobs).await, 3, "nothing was retried");
}

#[tokio::test]
async fn gpu_jobs_wait_for_capacity_with_the_schedulers_reason_and_cancel_deletes_pods() {
    let (fake, _dirs, _server, jobs) = setup(1).await;
    let image = "ghcr.io/acme/train:1";
    let first = jobs.submit(json!({"command": ["train"], "image": image, "gpus": 1})).await;
    jobs.wait_for(&first, Some("running")).await;
    let second = jobs.submit(json!({"command": ["train"], "image": image, "gpus": 1})).await;
    let huge = jobs.submit(json!({"command": ["train"], "image": image, "gpus": 8})).await;

    for id in [&second, &huge] {
        let mut job = jobs.job(id).await;
        for _ in 0..100 {
            if job["reason"].as_str().unwrap_or("").contains("Unschedulable") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            job = jobs.job(id).await;
        }
        assert_eq!(job["state"], "scheduled", "{job}");
        let reason = job["reason"].as_str().unwrap_or("");
        assert!(reason.contains("Unschedulable") && reason.contains("Insufficient nvidia.com/gpu"), "{reason}");
    }

    // The first one ends: the second gets its GPU.
    let first_pod = fake.wait_pod(&first).await;
    fake.exit(&first_pod, 0, None);
    assert_eq!(jobs.wait_for(&first, None).await["state"], "succeeded");
    jobs.wait_for(&second, Some("running")).await;

    // Cancel deletes the pod, running or pending.
    for id in [&second, &huge] {
        jobs.json(reqwest::Method::POST, &format!("/jobs/{id}/cancel"), None, 200).await;
        let cancelled = jobs.wait_for(id, None).await;
        assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
        assert_eq!(jobs.run_status(&cancelled).await, "killed");
        assert!(fake.pod_of(id).is_none(), "the cancelled job's pod is deleted");
    }
}

#[tokio::test]
async fn an_evicted_job_is_retried_once_and_not_twice() {
    let (fake, _dirs, _server, jobs) = setup(1).await;
    let id = jobs.submit(json!({"command": ["train"], "image": "ghcr.io/acme/train:1"})).await;
    jobs.wait_for(&id, Some("running")).await;
    fake.evict(&fake.wait_pod(&id).await);
    let evicted = jobs.wait_for(&id, None).await;
    assert_eq!(evicted["state"], "failed");
    let reason = evicted["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("Evicted") && reason.contains("retried automatically once as job"), "{reason}");
    let retry = reason.rsplit(' ').next().unwrap_or("").to_owned();

    let retried = jobs.job(&retry).await;
    assert_eq!(retried["origin_job_id"], id.as_str());
    assert_eq!(retried["spec"], evicted["spec"]);
    assert_eq!(retried["created_by"], evicted["created_by"], "retried for the same user");
    jobs.wait_for(&retry, Some("running")).await;
    fake.evict(&fake.wait_pod(&retry).await);
    let again = jobs.wait_for(&retry, None).await;
    assert!(again["reason"].as_str().unwrap_or("").contains("not retried a second time"), "{again}");
    assert_eq!(job_count(&jobs).await, 2, "one retry only");
}

#[tokio::test]
async fn a_restarted_server_reattaches_to_running_pods_and_fails_jobs_whose_pod_vanished() {
    let fake = KubeFake::start(vec![gpu_node("gpu-a", 4)]).await;
    let dirs = dirs();
    let first = start(&fake, None, &dirs).await;
    let jobs = jobs_api(&first).await;
    let image = "ghcr.io/acme/train:1";
    let kept = jobs.submit(json!({"command": ["train"], "image": image})).await;
    let lost = jobs.submit(json!({"command": ["train"], "image": image})).await;
    jobs.wait_for(&kept, Some("running")).await;
    jobs.wait_for(&lost, Some("running")).await;
    let kept_pod = fake.wait_pod(&kept).await;
    fake.print(&kept_pod, "before the restart");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (db, _) = first.stop().await;
    fake.print(&kept_pod, "while the server was down");
    fake.vanish(&fake.wait_pod(&lost).await);
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(kept.parse::<uuid::Uuid>().expect("job id"))
        .fetch_one(&db.pool)
        .await
        .expect("job state");
    assert_eq!(state, "running", "a stopped server leaves its jobs to the next one");

    let second = start(&fake, Some(db), &dirs).await;
    let jobs = jobs_api(&second).await;
    let failed = jobs.wait_for(&lost, None).await;
    assert_eq!(failed["state"], "failed");
    assert!(failed["reason"].as_str().unwrap_or("").contains("no longer exists"), "{failed}");

    fake.print(&kept_pod, "after the restart");
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.exit(&kept_pod, 0, None);
    let done = jobs.wait_for(&kept, None).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let log = log_of(&jobs, &kept).await;
    let texts: Vec<&str> = log.lines().filter_map(|l| l.split_once(" stdout ").map(|(_, t)| t)).collect();
    assert_eq!(texts, ["before the restart", "while the server was down", "after the restart"], "{log}");
    second.stop().await;
}

/// Waits until job `id` is still queued with a reason containing `needle`.
async fn held_back(jobs: &Jobs, id: &str, needle: &str) -> Value {
    let mut job = jobs.job(id).await;
    for _ in 0..100 {
        if job["reason"].as_str().unwrap_or("").contains(needle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = jobs.job(id).await;
    }
    assert_eq!(job["state"], "queued", "{job}");
    assert!(job["reason"].as_str().unwrap_or("").contains(needle), "{job}");
    job
}

#[tokio::test]
async fn project_gpu_quotas_hold_jobs_in_the_queue_with_the_reason() {
    let (fake, _dirs, server, jobs) = setup(8).await;
    let pool = &server.app.db.pool;
    // Jobs without an experiment land in the Default experiment, in project `default`.
    sqlx::query("UPDATE projects SET max_concurrent_gpus = 2 WHERE id = 1").execute(pool).await.expect("quota");
    let image = "ghcr.io/acme/train:1";
    let first = jobs.submit(json!({"command": ["train"], "image": image, "gpus": 2})).await;
    jobs.wait_for(&first, Some("running")).await;
    let second = jobs.submit(json!({"command": ["train"], "image": image, "gpus": 1})).await;
    held_back(&jobs, &second, "waiting for project default's GPU limit: 2 of 2 GPUs in use, this job needs 1").await;
    let cpu_only = jobs.submit(json!({"command": ["prepare"], "image": image})).await;
    jobs.wait_for(&cpu_only, Some("running")).await;

    // The first one ends: the second fits under the limit and runs.
    let first_pod = fake.wait_pod(&first).await;
    fake.exit(&first_pod, 0, None);
    assert_eq!(jobs.wait_for(&first, None).await["state"], "succeeded");
    let running = jobs.wait_for(&second, Some("running")).await;
    assert!(!running["reason"].as_str().unwrap_or("").contains("GPU limit"), "{running}");

    // A monthly budget that is used up holds GPU jobs back until it grows.
    sqlx::query("UPDATE projects SET max_concurrent_gpus = NULL, monthly_gpu_hours = 0 WHERE id = 1")
        .execute(pool)
        .await
        .expect("quota");
    let third = jobs.submit(json!({"command": ["train"], "image": image, "gpus": 1})).await;
    held_back(&jobs, &third, "project default has used its 0 GPU-hours for this month").await;
    sqlx::query("UPDATE projects SET monthly_gpu_hours = 1000 WHERE id = 1").execute(pool).await.expect("quota");
    jobs.wait_for(&third, Some("running")).await;
}
