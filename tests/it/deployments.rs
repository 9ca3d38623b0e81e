//! Deployments over HTTP: validation (problem details), revisions, rollback, alias
//! following, audit rows, lineage, and the gateway's errors. Local serving runs for real,
//! with a stand-in for MLflow's scoring server (a small Python stdlib HTTP server started
//! through `serving.python`), so rollouts, crash restarts and the gateway's 502/504/413 are
//! exercised without mlflow installed. The real scoring server is covered by
//! tests/python/test_deployments.py.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cairn_server::{KubernetesConfig, ServerConfig, Toleration};
use cairn_storage::ArtifactPath;
use cairn_tests::fake_serving::fake_python;
use cairn_tests::kube_fake::KubeFake;
use cairn_tests::{TestApp, UserRole, spawn_app, spawn_app_with};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use reqwest::Method;
use serde_json::{Value, json};

struct Deploy<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Deploy<'a> {
    async fn admin(app: &'a TestApp) -> Self {
        Deploy { token: app.admin_token().await, app }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.app.client.request(method, self.app.at(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, value) = self.send(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }

    /// A registered model with versions whose files are in Cairn's store: an `MLmodel` and
    /// an `answer` the fake scoring server returns.
    async fn model(&self, name: &str, answers: &[&str]) {
        self.ok(Method::POST, "/api/2.0/mlflow/registered-models/create", Some(json!({"name": name})), 200).await;
        for (i, answer) in answers.iter().enumerate() {
            let dir = format!("mlflow-artifacts/0/{name}-{i}/artifacts/model");
            for (file, content) in [("MLmodel", "flavors: {}\n"), ("answer", *answer)] {
                let path = ArtifactPath::parse(&format!("{dir}/{file}")).expect("path");
                let content = bytes::Bytes::from(content.to_owned());
                let body = futures::stream::once(async move { Ok::<_, std::io::Error>(content) });
                self.app.storage.put_stream(&path, body, 1 << 20).await.expect("store a model file");
            }
            let source = format!("mlflow-artifacts:/0/{name}-{i}/artifacts/model");
            let body = json!({"name": name, "source": source});
            self.ok(Method::POST, "/api/2.0/mlflow/model-versions/create", Some(body), 200).await;
        }
    }

    async fn create(&self, body: Value) -> Value {
        self.ok(Method::POST, "/api/v1/deployments", Some(body), 201).await
    }

    async fn problem(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> String {
        let value = self.ok(method, path, body, status).await;
        assert_eq!(value["status"], status, "problem details: {value}");
        value["detail"].as_str().expect("detail").to_owned()
    }

    /// Waits until the deployment's current revision is `revision` and settled.
    async fn settled(&self, name: &str, revision: i64) -> Value {
        for _ in 0..300 {
            let d = self.ok(Method::GET, &format!("/api/v1/deployments/{name}"), None, 200).await;
            if d["revision"] == revision && d["status"] != "pending" {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("deployment {name} did not settle at revision {revision}");
    }

    async fn predict(&self, name: &str) -> (u16, Value, Option<String>) {
        let response = self
            .app
            .client
            .post(self.app.at(&format!("/serve/{name}/invocations?x=1")))
            .bearer_auth(&self.token)
            .json(&json!({"inputs": [1]}))
            .send()
            .await
            .expect("request");
        let revision = response.headers().get("x-cairn-revision").map(|v| v.to_str().unwrap_or("").to_owned());
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null), revision)
    }
}

async fn serving_app(dir: &Path) -> TestApp {
    let python = fake_python(dir);
    let serving_dir = dir.join("serving");
    spawn_app_with(move |config: &mut ServerConfig| {
        config.serving.dir = Some(serving_dir);
        config.serving.python = python;
        config.serving.ready_timeout = Duration::from_secs(20);
        config.serving.timeout = Duration::from_secs(2);
        config.serving.max_body_bytes = 1000;
    })
    .await
}

#[tokio::test]
async fn bad_deployments_are_refused_with_problem_details() {
    let app = spawn_app().await;
    let api = Deploy::admin(&app).await;
    api.model("fraud", &["a", "b"]).await;
    let post = |body: Value, status: u16| {
        let api = &api;
        async move { api.problem(Method::POST, "/api/v1/deployments", Some(body), status).await }
    };
    let detail = post(json!({"name": "Bad_Name", "model": "fraud", "version": 1}), 422).await;
    assert!(detail.contains("invalid deployment name"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud"}), 422).await;
    assert!(detail.contains("version to serve, or an alias"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "version": 1, "alias": "x"}), 422).await;
    assert!(detail.contains("not both"), "{detail}");
    post(json!({"name": "d", "model": "fraud", "version": 0}), 422).await;
    let detail = post(json!({"name": "d", "model": "nope", "version": 1}), 404).await;
    assert!(detail.contains("no registered model named"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "version": 9}), 404).await;
    assert!(detail.contains("fraud/9"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "alias": "champion"}), 404).await;
    assert!(detail.contains("@champion"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "version": 1, "replicas": 0}), 422).await;
    assert!(detail.contains("replicas"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "version": 1, "cpu": "lots"}), 422).await;
    assert!(detail.contains("Kubernetes quantity"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "version": 1, "target": "kubernetes"}), 422).await;
    assert!(detail.contains("no Kubernetes settings"), "{detail}");
    let detail = post(json!({"name": "d", "model": "fraud", "version": 1, "target": "mars"}), 422).await;
    assert!(detail.contains("unknown target"), "{detail}");
    post(json!({"name": "d", "model": "fraud", "version": 1, "surprise": true}), 422).await;

    api.create(json!({"name": "d", "model": "fraud", "version": 1})).await;
    let detail = post(json!({"name": "d", "model": "fraud", "version": 2}), 409).await;
    assert!(detail.contains("already exists"), "{detail}");
    let detail = api.problem(Method::GET, "/api/v1/deployments/nope", None, 404).await;
    assert!(detail.contains("no deployment named"), "{detail}");
    let detail = api.problem(Method::POST, "/api/v1/deployments/d/rollback", None, 422).await;
    assert!(detail.contains("only one revision"), "{detail}");

    // A model that is deployed cannot be deleted from under its deployments.
    let (status, body) =
        api.send(Method::DELETE, "/api/2.0/mlflow/registered-models/delete", Some(json!({"name": "fraud"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("is deployed (d)"), "{body}");

    // Viewers read deployments but change nothing.
    app.add_user("vera", "vera-password-1", UserRole::Viewer).await;
    let viewer = Deploy { token: app.token_for("vera", "vera-password-1").await, app: &app };
    viewer.ok(Method::GET, "/api/v1/deployments", None, 200).await;
    viewer.problem(Method::POST, "/api/v1/deployments/d/rollback", None, 403).await;
    viewer.problem(Method::DELETE, "/api/v1/deployments/d", None, 403).await;
}

#[tokio::test]
async fn every_change_is_a_revision_and_rollback_serves_an_earlier_version() {
    let app = spawn_app().await;
    let api = Deploy::admin(&app).await;
    api.model("churn", &["v1", "v2", "v3"]).await;
    let created = api.create(json!({"name": "churn-prod", "model": "churn", "version": 1, "env": {"A": "1"}})).await;
    assert_eq!((created["revision"].as_i64(), created["version"].as_i64()), (Some(1), Some(1)));
    assert_eq!(created["target"], "local");
    assert_eq!(created["endpoint_url"], app.at("/serve/churn-prod"));
    assert_eq!(created["created_by"], "admin");

    let path = "/api/v1/deployments/churn-prod";
    let updated = api.ok(Method::PATCH, path, Some(json!({"version": 3})), 200).await;
    assert_eq!((updated["revision"].as_i64(), updated["version"].as_i64()), (Some(2), Some(3)));
    assert_eq!(updated["env"]["A"], "1", "settings not given are kept");
    let updated = api.ok(Method::PATCH, path, Some(json!({"replicas": 2})), 200).await;
    assert_eq!(
        (updated["revision"].as_i64(), updated["version"].as_i64(), updated["replicas"].as_i64()),
        (Some(3), Some(3), Some(2))
    );

    // Rollback to the previous revision's version, then explicitly to revision 1's.
    let rolled = api.ok(Method::POST, &format!("{path}/rollback"), None, 200).await;
    assert_eq!((rolled["revision"].as_i64(), rolled["version"].as_i64()), (Some(4), Some(3)));
    let rolled = api.ok(Method::POST, &format!("{path}/rollback"), Some(json!({"revision": 1})), 200).await;
    assert_eq!((rolled["revision"].as_i64(), rolled["version"].as_i64()), (Some(5), Some(1)));
    let detail = api.problem(Method::POST, &format!("{path}/rollback"), Some(json!({"revision": 5})), 422).await;
    assert!(detail.contains("earlier revision"), "{detail}");

    let revisions = api.ok(Method::GET, &format!("{path}/revisions"), None, 200).await;
    let summary: Vec<(i64, i64, String)> = revisions["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap_or(0),
                r["version"].as_i64().unwrap_or(0),
                r["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [(5, 1, "rollback"), (4, 3, "rollback"), (3, 3, "update"), (2, 3, "update"), (1, 1, "create")];
    assert_eq!(summary, expected.map(|(r, v, why)| (r, v, why.to_owned())));
    assert!(revisions["revisions"].as_array().expect("list").iter().all(|r| r["created_by"] == "admin"));

    // Audited with the actor, inside the same transactions.
    let events = api.ok(Method::GET, "/api/v1/audit?limit=100", None, 200).await;
    let ours: Vec<(&str, &str)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["target"] == "deployment:churn-prod")
        .map(|e| (e["action"].as_str().unwrap_or(""), e["actor"].as_str().unwrap_or("")))
        .collect();
    for action in ["deployment.create", "deployment.update", "deployment.rollback"] {
        assert!(ours.contains(&(action, "admin")), "{action} in {ours:?}");
    }

    // Lineage: the deployment links to the version it serves now.
    let graph = api.ok(Method::GET, "/api/v1/lineage?node=deployment:churn-prod", None, 200).await;
    let upstream: Vec<&str> =
        graph["upstream"]["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["id"].as_str()).collect();
    assert!(upstream.contains(&"model:churn/1"), "{graph}");
    let graph = api.ok(Method::GET, "/api/v1/lineage?node=model:churn/1", None, 200).await;
    assert!(graph.to_string().contains("deployment:churn-prod"), "{graph}");

    api.ok(Method::DELETE, path, None, 204).await;
    api.problem(Method::GET, path, None, 404).await;
    let events = api.ok(Method::GET, "/api/v1/audit?limit=100", None, 200).await;
    assert!(events.to_string().contains("deployment.delete"));
}

#[tokio::test]
async fn a_followed_alias_that_moves_rolls_out_its_new_version() {
    let app = spawn_app().await;
    let api = Deploy::admin(&app).await;
    api.model("ranker", &["v1", "v2"]).await;
    let alias = |version: i64| json!({"name": "ranker", "alias": "champion", "version": version.to_string()});
    api.ok(Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(alias(1)), 200).await;
    let created = api.create(json!({"name": "ranker-prod", "model": "ranker", "alias": "champion"})).await;
    assert_eq!((created["version"].as_i64(), created["alias"].as_str()), (Some(1), Some("champion")));

    api.ok(Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(alias(2)), 200).await;
    let d = api.ok(Method::GET, "/api/v1/deployments/ranker-prod", None, 200).await;
    assert_eq!((d["revision"].as_i64(), d["version"].as_i64()), (Some(2), Some(2)));
    let revisions = api.ok(Method::GET, "/api/v1/deployments/ranker-prod/revisions", None, 200).await;
    assert_eq!(revisions["revisions"][0]["reason"], "alias-moved");
    // Setting the alias to the version it already points at changes nothing.
    api.ok(Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(alias(2)), 200).await;
    let d = api.ok(Method::GET, "/api/v1/deployments/ranker-prod", None, 200).await;
    assert_eq!(d["revision"].as_i64(), Some(2));

    // A rollback pins the version: the deployment stops following the alias.
    let rolled = api.ok(Method::POST, "/api/v1/deployments/ranker-prod/rollback", None, 200).await;
    assert_eq!((rolled["version"].as_i64(), rolled["alias"].as_str()), (Some(1), None));
    api.ok(Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(alias(1)), 200).await;
    api.ok(Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(alias(2)), 200).await;
    let d = api.ok(Method::GET, "/api/v1/deployments/ranker-prod", None, 200).await;
    assert_eq!((d["revision"].as_i64(), d["version"].as_i64()), (Some(3), Some(1)));
}

#[tokio::test]
async fn local_serving_rolls_out_restarts_and_the_gateway_explains_its_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = serving_app(dir.path()).await;
    let api = Deploy::admin(&app).await;
    api.model("echo", &["first", "second"]).await;
    api.create(json!({"name": "echo", "model": "echo", "version": 1})).await;
    let d = api.settled("echo", 1).await;
    assert_eq!(d["status"], "ready", "{d}");
    let (status, body, revision) = api.predict("echo").await;
    assert_eq!((status, body["predictions"].as_str(), revision.as_deref()), (200, Some("first"), Some("1")), "{body}");
    assert_eq!(body["query"], "/invocations?x=1", "the path and query are passed on");

    // Roll out version 2: the old process serves until the new one answers /ping.
    api.ok(Method::PATCH, "/api/v1/deployments/echo", Some(json!({"version": 2})), 200).await;
    let mut served = Vec::new();
    for _ in 0..300 {
        let (status, body, _) = api.predict("echo").await;
        assert_eq!(status, 200, "no request fails during a rollout: {body}");
        served.push(body["predictions"].as_str().unwrap_or("").to_owned());
        if served.last().map(String::as_str) == Some("second") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served.last().map(String::as_str), Some("second"));
    assert_eq!(api.settled("echo", 2).await["status"], "ready");

    // The gateway's own errors.
    let big = app
        .client
        .post(app.at("/serve/echo/invocations"))
        .bearer_auth(&api.token)
        .body(vec![b'x'; 5000])
        .send()
        .await
        .expect("request");
    assert_eq!(big.status(), 413);
    let slow = app.client.get(app.at("/serve/echo/slow")).bearer_auth(&api.token).send().await.expect("request");
    assert_eq!(slow.status(), 504);
    let detail: Value = slow.json().await.expect("problem");
    assert!(detail["detail"].as_str().unwrap_or("").contains("did not answer within 2 s"), "{detail}");
    let anonymous = app.client.post(app.at("/serve/echo/invocations")).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    let (status, body, _) = api.predict("nope").await;
    assert_eq!(status, 404, "{body}");

    // Viewers may ask for predictions.
    app.add_user("vic", "vic-password-12", UserRole::Viewer).await;
    let viewer = Deploy { token: app.token_for("vic", "vic-password-12").await, app: &app };
    assert_eq!(viewer.predict("echo").await.0, 200);

    // A crashed process: 502 until it is started again, then served again.
    let _ = app.client.get(app.at("/serve/echo/crash")).bearer_auth(&api.token).send().await;
    let mut statuses = Vec::new();
    for _ in 0..200 {
        let status = api.predict("echo").await.0;
        statuses.push(status);
        if status == 200 && statuses.contains(&502) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(statuses.contains(&502) && statuses.last() == Some(&200), "{statuses:?}");

    let d = api.ok(Method::GET, "/api/v1/deployments/echo", None, 200).await;
    assert!(d["metrics"]["requests"].as_u64().unwrap_or(0) >= 5, "{d}");
    assert!(d["metrics"]["errors"].as_u64().unwrap_or(0) >= 3, "{d}");
    assert!(d["metrics"]["p99_ms"].as_f64().is_some(), "{d}");
    let logs = app
        .client
        .get(app.at("/api/v1/deployments/echo/logs"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("text");
    assert!(logs.contains("fake scoring server for"), "{logs}");

    // Deleted: the process stops and the endpoint is gone.
    api.ok(Method::DELETE, "/api/v1/deployments/echo", None, 204).await;
    assert_eq!(api.predict("echo").await.0, 404);
}

#[tokio::test]
async fn a_version_that_cannot_start_fails_with_its_reason_and_answers_503() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = serving_app(dir.path()).await;
    let api = Deploy::admin(&app).await;
    api.ok(Method::POST, "/api/2.0/mlflow/registered-models/create", Some(json!({"name": "empty"})), 200).await;
    let body = json!({"name": "empty", "source": "mlflow-artifacts:/0/nothing/artifacts/model"});
    api.ok(Method::POST, "/api/2.0/mlflow/model-versions/create", Some(body), 200).await;
    api.create(json!({"name": "empty", "model": "empty", "version": 1})).await;
    let d = api.settled("empty", 1).await;
    assert_eq!(d["status"], "failed");
    assert!(d["status_message"].as_str().unwrap_or("").contains("no MLmodel file"), "{d}");
    let (status, body, _) = api.predict("empty").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap_or("").contains("not serving yet"), "{body}");
}

/// Waits until the fake holds Deployment `name` with `check` true.
async fn wait_deployment(
    fake: &KubeFake,
    name: &str,
    check: impl Fn(&k8s_openapi::api::apps::v1::Deployment) -> bool,
) -> k8s_openapi::api::apps::v1::Deployment {
    for _ in 0..200 {
        if let Some(d) = fake.deployment(K8S_NAMESPACE, name).filter(|d| check(d)) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Deployment {name} never matched: {:?}", fake.deployment(K8S_NAMESPACE, name));
}

const K8S_NAMESPACE: &str = "ml-serving";

/// A server whose deployments go to the fake cluster, served by `image`.
async fn kube_app(fake: &KubeFake, image: &str) -> TestApp {
    let (url, image) = (fake.url.clone(), image.to_owned());
    spawn_app_with(move |config: &mut ServerConfig| {
        let mut kubernetes = KubernetesConfig::new(K8S_NAMESPACE, "ghcr.io/cairn/cairn:test");
        kubernetes.api_url = Some(url);
        kubernetes.cairn_url = Some("http://cairn.ml-serving.svc:8080".into());
        kubernetes.node_selector = BTreeMap::from([("pool".into(), "gpu".into())]);
        kubernetes.tolerations = vec![Toleration::parse("nvidia.com/gpu:NoSchedule").expect("toleration")];
        config.kubernetes = Some(kubernetes);
        config.serving.image = image;
    })
    .await
}

#[tokio::test]
async fn a_kubernetes_rollout_that_cannot_progress_fails_with_the_reason() {
    let fake = KubeFake::start(Vec::new()).await;
    let app = kube_app(&fake, "registry.example.com/does-not-exist:1").await;
    let api = Deploy::admin(&app).await;
    api.model("stuck", &["a"]).await;
    api.create(json!({"name": "stuck", "model": "stuck", "version": 1})).await;
    let d = api.settled("stuck", 1).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["status_message"].as_str().unwrap_or("").contains("timed out progressing"), "{d}");
    let (status, body, _) = api.predict("stuck").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn kubernetes_deployments_are_deployments_and_services_rolled_out_and_back() {
    let fake = KubeFake::start(Vec::new()).await;
    let app = kube_app(&fake, "registry.example.com/serving:1").await;
    let api = Deploy::admin(&app).await;
    api.model("vision", &["a", "b"]).await;
    let body = json!({"name": "vision", "model": "vision", "version": 1, "gpus": 1, "replicas": 2,
        "cpu": "2", "memory": "8Gi", "env": {"WORKERS": "2"}});
    let created = api.create(body).await;
    assert_eq!(created["target"], "kubernetes", "the default where Cairn runs on Kubernetes");

    let d = wait_deployment(&fake, "cairn-serve-vision", |_| true).await;
    let lead = cairn_db::jobs::try_lead(&app.db.pool, "deployments:kubernetes").await.expect("try the lock");
    assert!(lead.is_none(), "the replica that applied the objects holds the serving lock: others only read status");
    let labels = d.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("cairn"));
    assert_eq!(labels.get("cairn.dev/deployment").map(String::as_str), Some("vision"));
    assert_eq!(d.spec.replicas, Some(2));
    let strategy = d.spec.strategy.clone().and_then(|s| s.rolling_update).expect("rolling update");
    assert_eq!(strategy.max_unavailable, Some(IntOrString::Int(0)), "no replica goes before its successor is ready");
    let template = d.spec.template.clone();
    let pod_labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(pod_labels.get("cairn.dev/revision").map(String::as_str), Some("1"));
    let pod = template.spec.expect("pod spec");
    assert_eq!(pod.node_selector.clone().unwrap_or_default().get("pool").map(String::as_str), Some("gpu"));
    assert!(pod.tolerations.clone().unwrap_or_default().iter().any(|t| t.key.as_deref() == Some("nvidia.com/gpu")));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("registry.example.com/serving:1"));
    let command = container.command.clone().unwrap_or_default().join(" ");
    assert!(command.starts_with("mlflow models serve -m models:/vision/1 --host 0.0.0.0 --port 8080"), "{command}");
    let probe = container.readiness_probe.clone().and_then(|p| p.http_get).expect("readiness probe");
    assert_eq!((probe.path.as_deref(), probe.port.clone()), (Some("/ping"), IntOrString::Int(8080)));
    let resources = container.resources.clone().expect("resources");
    let limits = resources.limits.unwrap_or_default();
    assert_eq!(limits.get("nvidia.com/gpu").map(|q| q.0.as_str()), Some("1"));
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("8Gi"));
    assert_eq!(resources.requests.unwrap_or_default().get("cpu").map(|q| q.0.as_str()), Some("2"));
    let env = container.env.clone().unwrap_or_default();
    let value = |name: &str| env.iter().find(|e| e.name == name).cloned();
    assert_eq!(value("MLFLOW_TRACKING_URI").and_then(|e| e.value).as_deref(), Some("http://cairn.ml-serving.svc:8080"));
    assert_eq!(value("WORKERS").and_then(|e| e.value).as_deref(), Some("2"));
    let token_ref = value("MLFLOW_TRACKING_TOKEN").and_then(|e| e.value_from).and_then(|v| v.secret_key_ref);
    assert_eq!(token_ref.map(|r| r.name), Some("cairn-serve-vision-token".to_owned()));
    let secret = fake.secret(K8S_NAMESPACE, "cairn-serve-vision-token").expect("the token's secret");
    let token = String::from_utf8(secret.data.unwrap_or_default()["token"].0.clone()).expect("utf-8");
    let me = app.client.get(app.at("/api/v1/me")).bearer_auth(&token).send().await.expect("request");
    assert_eq!(me.status(), 200, "the pods' token authenticates");
    let listed = app.get_json("/api/v1/tokens", &token).await;
    let own = listed["tokens"].as_array().and_then(|t| t.iter().find(|t| t["name"] == "deployment vision")).cloned();
    let own = own.expect("the pods' token is listed");
    assert_eq!((own["scope"].as_str(), own["project"].as_str()), (Some("read"), Some("default")), "{own}");

    let service = fake.service(K8S_NAMESPACE, "cairn-serve-vision").expect("service");
    let spec = service.spec.expect("service spec");
    assert_eq!(spec.selector.unwrap_or_default().get("cairn.dev/deployment").map(String::as_str), Some("vision"));
    let port = &spec.ports.unwrap_or_default()[0];
    assert_eq!((port.port, port.target_port.clone()), (80, Some(IntOrString::Int(8080))));

    // The rollout status is watched and shown.
    let ready = api.settled("vision", 1).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(ready["status_message"].as_str().unwrap_or("").contains("2 of 2 replicas ready"), "{ready}");

    // Version 2, then a rollback: the Deployment follows each revision.
    api.ok(Method::PATCH, "/api/v1/deployments/vision", Some(json!({"version": 2})), 200).await;
    wait_deployment(&fake, "cairn-serve-vision", |d| {
        d.spec.template.spec.as_ref().is_some_and(|p| {
            p.containers[0].command.clone().unwrap_or_default().contains(&"models:/vision/2".to_owned())
        })
    })
    .await;
    assert_eq!(api.settled("vision", 2).await["status"], "ready");
    api.ok(Method::POST, "/api/v1/deployments/vision/rollback", None, 200).await;
    let d = wait_deployment(&fake, "cairn-serve-vision", |d| {
        d.metadata.annotations.clone().unwrap_or_default().get("cairn.dev/revision").map(String::as_str) == Some("3")
    })
    .await;
    let command = d.spec.template.spec.expect("pod").containers[0].command.clone().unwrap_or_default().join(" ");
    assert!(command.contains("models:/vision/1"), "{command}");
    assert_eq!(api.settled("vision", 3).await["status"], "ready");

    // A second deployment, which stays when the first is deleted.
    api.create(json!({"name": "other", "model": "vision", "version": 1})).await;
    assert_eq!(api.settled("other", 1).await["status"], "ready");

    // Deleted in Cairn: the objects go.
    api.ok(Method::DELETE, "/api/v1/deployments/vision", None, 204).await;
    for _ in 0..100 {
        if fake.deployment(K8S_NAMESPACE, "cairn-serve-vision").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.deployment(K8S_NAMESPACE, "cairn-serve-vision").is_none());
    assert!(fake.service(K8S_NAMESPACE, "cairn-serve-vision").is_none());
    assert!(fake.secret(K8S_NAMESPACE, "cairn-serve-vision-token").is_none());
    assert_eq!(fake.workload_count(), (1, 1), "the other deployment stays");
}

#[tokio::test]
async fn the_dashboard_shows_deployments_and_only_members_get_the_buttons() {
    use crate::dashboard_pages::{admin, get, viewer};
    let app = spawn_app().await;
    let api = Deploy::admin(&app).await;
    api.model("churn", &["a", "b"]).await;
    let (browser, csrf) = admin(&app).await;
    let (status, html) = get(&browser, &app, "/models/churn/versions/1").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"deploy-button\""), "members get the Deploy form");

    // Deploy with the form, then a second revision through the API.
    let form = [("csrf_token", csrf.as_str()), ("name", "churn-web"), ("model", "churn"), ("serves", "1")];
    let response = browser.post(app.at("/deployments")).form(&form).send().await.expect("request");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/deployments/churn-web");
    api.ok(Method::PATCH, "/api/v1/deployments/churn-web", Some(json!({"version": 2})), 200).await;
    let (status, html) = get(&browser, &app, "/deployments/churn-web").await;
    assert_eq!(status, 200);
    for expected in ["/serve/churn-web/invocations", "curl -X POST", "data-rollback=\"1\"", "id=\"metrics\""] {
        assert!(html.contains(expected), "{expected} on the page");
    }
    let (_, list) = get(&browser, &app, "/deployments").await;
    assert!(list.contains("href=\"/deployments/churn-web\"") && list.contains("churn v2"), "{list}");
    let (_, version_page) = get(&browser, &app, "/models/churn/versions/1").await;
    assert!(version_page.contains("href=\"/deployments/churn-web\""), "the version page lists the deployment");

    // Roll back with the page's form.
    let form = [("csrf_token", csrf.as_str()), ("revision", "1")];
    let response = browser.post(app.at("/deployments/churn-web/rollback")).form(&form).send().await.expect("request");
    assert_eq!(response.status(), 303);
    let d = api.ok(Method::GET, "/api/v1/deployments/churn-web", None, 200).await;
    assert_eq!((d["revision"].as_i64(), d["version"].as_i64()), (Some(3), Some(1)));

    let viewer = viewer(&app).await;
    let (status, html) = get(&viewer, &app, "/deployments/churn-web").await;
    assert_eq!(status, 200);
    assert!(!html.contains("data-rollback"), "viewers see no Rollback buttons");
    let (_, html) = get(&viewer, &app, "/models/churn/versions/1").await;
    assert!(!html.contains("deploy-button"), "viewers see no Deploy form");
}

#[tokio::test]
async fn local_deployments_are_served_again_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let python = fake_python(dir.path());
    let serving_dir = dir.path().join("serving");
    let storage = cairn_storage::Storage::local(&dir.path().join("store")).expect("storage");
    let adjust = |config: &mut ServerConfig| {
        config.serving.dir = Some(serving_dir.clone());
        config.serving.python = python.clone();
        config.serving.ready_timeout = Duration::from_secs(20);
    };
    let first = cairn_tests::StoppableApp::start(None, storage.clone(), adjust).await;
    let api = Deploy::admin(&first.app).await;
    api.model("echo", &["kept"]).await;
    api.create(json!({"name": "echo", "model": "echo", "version": 1})).await;
    assert_eq!(api.settled("echo", 1).await["status"], "ready");
    let (db, storage) = first.stop().await;

    let second = cairn_tests::StoppableApp::start(Some(db), storage, adjust).await;
    let api = Deploy::admin(&second.app).await;
    for _ in 0..200 {
        if api.predict("echo").await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body, _) = api.predict("echo").await;
    assert_eq!((status, body["predictions"].as_str()), (200, Some("kept")), "{body}");
    second.stop().await;
}
