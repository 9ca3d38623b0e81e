//! Lineage and provenance over HTTP: `GET /api/v1/lineage` (upstream and downstream, node
//! names and links, malformed and unknown nodes), runs linked to dataset versions by the
//! digest of an MLflow `log-inputs` call, and a model version's provenance export.

use cairn_tests::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub struct Api<'a> {
    app: &'a TestApp,
    pub token: String,
}

impl<'a> Api<'a> {
    pub async fn admin(app: &'a TestApp) -> Self {
        Api { token: app.admin_token().await, app }
    }

    /// Calls as whoever `token` belongs to.
    pub fn with_token(app: &'a TestApp, token: String) -> Self {
        Api { app, token }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.app.client.request(method, self.app.at(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON") })
    }

    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
        value
    }

    pub async fn mlflow(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, &format!("/api/2.0/mlflow/{path}"), Some(body)).await
    }

    /// Pushes a one-file dataset version; its manifest digest.
    pub async fn push(&self, name: &str, content: &[u8]) -> String {
        self.push_with_message(name, content, "").await
    }

    pub async fn push_with_message(&self, name: &str, content: &[u8], message: &str) -> String {
        let sha = hex::encode(Sha256::digest(content));
        let upload = self.app.client.put(self.app.at(&format!("/api/v1/blobs/{sha}"))).bearer_auth(&self.token);
        let status = upload.body(content.to_vec()).send().await.expect("upload").status();
        assert_eq!(status, 200);
        let file = json!({"path": "data.csv", "size": content.len(), "sha256": sha});
        let manifest = json!({"files": [file], "message": message});
        let version = self.ok(Method::POST, &format!("/api/v1/datasets/{name}/versions"), Some(manifest)).await;
        version["digest"].as_str().expect("digest").to_owned()
    }

    pub async fn run(&self, experiment_id: &str, name: &str) -> String {
        let body = json!({"experiment_id": experiment_id, "run_name": name, "start_time": 1_700_000_000_000_i64});
        let run = self.mlflow("runs/create", body).await;
        run["run"]["info"]["run_id"].as_str().expect("run_id").to_owned()
    }

    pub async fn register(&self, model: &str, run: &str) -> i64 {
        let body = json!({"name": model, "source": format!("runs:/{run}/model"), "run_id": run});
        let created = self.mlflow("model-versions/create", body).await;
        created["model_version"]["version"].as_str().and_then(|v| v.parse().ok()).expect("version")
    }

    pub async fn lineage(&self, node: &str) -> (u16, Value) {
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("node", node).finish();
        self.call(Method::GET, &format!("/api/v1/lineage?{query}"), None).await
    }
}

fn input(name: &str, digest: &str, context: &str) -> Value {
    json!({
        "tags": [{"key": "mlflow.data.context", "value": context}],
        "dataset": {"name": name, "digest": digest, "source_type": "local", "source": "{}"},
    })
}

fn ids(side: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        side["nodes"].as_array().expect("nodes").iter().map(|n| n["id"].as_str().expect("id").to_owned()).collect();
    ids.sort();
    ids
}

fn edges(side: &Value) -> Vec<(String, String, String, String)> {
    let mut edges: Vec<_> = side["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            (text("from"), text("to"), text("kind"), text("context"))
        })
        .collect();
    edges.sort();
    edges
}

fn edge(from: &str, to: &str, kind: &str, context: &str) -> (String, String, String, String) {
    (from.to_owned(), to.to_owned(), kind.to_owned(), context.to_owned())
}

/// Two datasets, two runs (one trains the model from `train@1` and `eval@1`, one only reads
/// `train@1`), two versions of `fraud` registered from the first run.
pub struct World {
    pub train_digest: String,
    pub trainer: String,
    pub explorer: String,
}

pub async fn world(api: &Api<'_>) -> World {
    let train_digest = api.push("train", b"x,y\n1,2\n").await;
    let eval_digest = api.push("eval", b"x,y\n3,4\n").await;
    let exp = api.mlflow("experiments/create", json!({"name": "lineage"})).await;
    let exp = exp["experiment_id"].as_str().expect("experiment_id").to_owned();
    let trainer = api.run(&exp, "trainer").await;
    let explorer = api.run(&exp, "").await;
    // The trainer logs both inputs through the MLflow API, plus one that is no Cairn dataset.
    let inputs = json!({"run_id": trainer, "datasets": [
        input("train", &train_digest, "training"),
        input("eval-copy", &eval_digest, "evaluation"),
        input("elsewhere", "0123abcd", "training"),
    ]});
    api.mlflow("runs/log-inputs", inputs).await;
    // The explorer is linked through the native API.
    let link = json!({"dataset": "train@1", "context": "exploration"});
    api.ok(Method::POST, &format!("/api/v1/runs/{explorer}/datasets"), Some(link)).await;
    api.mlflow("registered-models/create", json!({"name": "fraud"})).await;
    assert_eq!(api.register("fraud", &trainer).await, 1);
    assert_eq!(api.register("fraud", &trainer).await, 2);
    World { train_digest, trainer, explorer }
}

#[tokio::test]
async fn log_inputs_links_runs_to_the_dataset_versions_with_their_digest() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let w = world(&api).await;

    let used = api.ok(Method::GET, &format!("/api/v1/runs/{}/datasets", w.trainer), None).await;
    let used: Vec<(String, String, String)> = used
        .as_array()
        .expect("list")
        .iter()
        .map(|u| {
            let text = |k: &str| u[k].as_str().unwrap_or("").to_owned();
            (text("reference"), text("digest"), text("context"))
        })
        .collect();
    assert_eq!(used[1], ("train@1".to_owned(), w.train_digest.clone(), "training".to_owned()));
    assert_eq!((used.len(), used[0].0.as_str(), used[0].2.as_str()), (2, "eval@1", "evaluation"), "{used:?}");

    // Logging it again in another context moves the link's context; no duplicate.
    let again = json!({"run_id": w.trainer, "datasets": [input("train", &w.train_digest, "validation")]});
    api.mlflow("runs/log-inputs", again).await;
    let version = api.ok(Method::GET, "/api/v1/datasets/train/versions/1", None).await;
    let runs: Vec<(String, String)> = version["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| (r["run_id"].as_str().unwrap_or("").to_owned(), r["context"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.contains(&(w.trainer.clone(), "validation".to_owned())), "{runs:?}");
    assert!(runs.contains(&(w.explorer.clone(), "exploration".to_owned())), "{runs:?}");

    // Each link is audited with the versions it made.
    let links: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'run.dataset.link' AND target = $1 \
         AND details LIKE '%mlflow log-inputs%'",
    )
    .bind(format!("run:{}", w.trainer))
    .fetch_all(&app.db.pool)
    .await
    .expect("audit");
    assert_eq!(links, [2]);
}

#[tokio::test]
async fn the_lineage_of_a_model_version_reaches_its_run_and_datasets() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let w = world(&api).await;
    let trainer = format!("run:{}", w.trainer);

    let (status, graph) = api.lineage("model:fraud/1").await;
    assert_eq!(status, 200, "{graph}");
    assert_eq!(
        graph["node"],
        json!({"kind": "model", "id": "model:fraud/1", "name": "fraud v1", "url": "/models/fraud/versions/1"})
    );
    assert_eq!(ids(&graph["upstream"]), ["dataset:eval@1", "dataset:train@1", trainer.as_str()]);
    assert_eq!(
        edges(&graph["upstream"]),
        [
            edge("dataset:eval@1", &trainer, "input", "evaluation"),
            edge("dataset:train@1", &trainer, "input", "training"),
            edge(&trainer, "model:fraud/1", "produced", ""),
        ]
    );
    assert_eq!(graph["downstream"], json!({"nodes": [], "edges": [], "truncated": false}));
    let run = graph["upstream"]["nodes"].as_array().expect("nodes").iter().find(|n| n["kind"] == "run").cloned();
    let run = run.expect("the run");
    assert_eq!((run["name"].as_str(), run["url"].as_str()), (Some("trainer"), Some(&*format!("/runs/{}", w.trainer))));

    // From the dataset: both runs, then both versions registered from the trainer.
    let (_, graph) = api.lineage("dataset:train@1").await;
    let explorer = format!("run:{}", w.explorer);
    let mut expected = vec!["model:fraud/1".to_owned(), "model:fraud/2".to_owned(), explorer.clone(), trainer.clone()];
    expected.sort();
    assert_eq!(ids(&graph["downstream"]), expected);
    assert_eq!(edges(&graph["downstream"]).len(), 4);
    assert_eq!(ids(&graph["upstream"]), Vec::<String>::new());
    let generated = graph["downstream"]["nodes"].as_array().expect("nodes").iter().find(|n| n["id"] == explorer);
    let generated = generated.and_then(|n| n["name"].as_str()).unwrap_or("");
    assert!(!generated.is_empty() && generated != "trainer", "the server named the run: {generated:?}");
    assert_eq!(graph["node"]["url"], "/datasets/train?version=1");

    // From the run: its datasets upstream, its versions downstream.
    let (_, graph) = api.lineage(&trainer.to_uppercase().replacen("RUN", "run", 1)).await;
    assert_eq!(graph["node"]["id"], trainer);
    assert_eq!(ids(&graph["upstream"]), ["dataset:eval@1", "dataset:train@1"]);
    assert_eq!(ids(&graph["downstream"]), ["model:fraud/1", "model:fraud/2"]);
}

#[tokio::test]
async fn malformed_and_unknown_lineage_nodes_are_explained() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    for bad in ["fraud", "model:fraud", "run:1234", "dataset:x@0", "job:1"] {
        let (status, problem) = api.lineage(bad).await;
        assert_eq!(status, 400, "{bad}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or("");
        assert!(detail.contains("dataset:NAME@VERSION") && detail.contains("deployment:NAME"), "{bad}: {detail}");
    }
    let (status, problem) = api.call(Method::GET, "/api/v1/lineage", None).await;
    assert_eq!(status, 400, "{problem}");
    for (node, says) in [
        ("deployment:prod", "no deployment named \"prod\""),
        ("model:fraud/3", "no model version fraud/3"),
        ("dataset:train@2", "no dataset version train@2"),
        ("run:0123456789abcdef0123456789abcdef", "no run with id"),
    ] {
        let (status, problem) = api.lineage(node).await;
        assert_eq!(status, 404, "{node}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or("").contains(says), "{node}: {problem}");
    }
}

#[tokio::test]
async fn provenance_exports_the_run_code_environment_data_and_registry_events() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let w = world(&api).await;
    let tags = json!({"run_id": w.trainer,
    "params": [{"key": "lr", "value": "0.01"}],
    "metrics": [{"key": "auc", "value": 0.91, "timestamp": 5, "step": 3}],
    "tags": [
        {"key": "mlflow.source.git.repoURL", "value": "https://git.example.com/risk/fraud.git"},
        {"key": "mlflow.source.git.commit", "value": "4f2a9c1e0b7d"},
        {"key": "mlflow.source.name", "value": "train.py"},
        {"key": "mlflow.source.type", "value": "LOCAL"},
    ]});
    api.mlflow("runs/log-batch", tags).await;
    let env = json!({"python_version": "3.12.4", "libraries": {"torch": "2.4.0"}, "image": "ghcr.io/risk/train:7"});
    api.ok(Method::PUT, &format!("/api/v1/runs/{}/environment", w.trainer), Some(env)).await;
    // champion: on v1, then moved to v2; staging set on v1 and removed.
    for (alias, version) in [("champion", 1), ("staging", 1), ("champion", 2)] {
        let body = json!({"version": version});
        api.ok(Method::PUT, &format!("/api/v1/models/fraud/aliases/{alias}"), Some(body)).await;
    }
    api.ok(Method::DELETE, "/api/v1/models/fraud/aliases/staging", None).await;

    let p = api.ok(Method::GET, "/api/v1/models/fraud/versions/1/provenance", None).await;
    assert_eq!(
        (p["model"].as_str(), p["version"].as_i64(), p["node"].as_str()),
        (Some("fraud"), Some(1), Some("model:fraud/1"))
    );
    let run = &p["run"];
    assert_eq!(run["id"], w.trainer);
    assert_eq!((run["name"].as_str(), run["created_by"].as_str()), (Some("trainer"), Some("admin")));
    assert_eq!(run["params"], json!({"lr": "0.01"}));
    assert_eq!(run["metrics"]["auc"]["value"], 0.91);
    assert_eq!(
        run["code"],
        json!({"repository": "https://git.example.com/risk/fraud.git", "commit": "4f2a9c1e0b7d", "branch": null,
               "entry_point": "train.py"})
    );
    assert_eq!(run["environment"]["snapshot"]["libraries"], json!({"torch": "2.4.0"}));
    assert_eq!(run["environment"]["mlflow_tags"]["mlflow.source.type"], "LOCAL");
    assert!(run["environment"]["mlflow_tags"].get("mlflow.source.git.commit").is_none(), "shown under code");
    let datasets: Vec<(&str, &str)> = run["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .map(|d| (d["reference"].as_str().unwrap_or(""), d["digest"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(datasets[1], ("train@1", w.train_digest.as_str()));
    assert_eq!(run["datasets"][1]["url"], "/datasets/train?version=1");
    assert_eq!(run["mlflow_inputs"].as_array().map(Vec::len), Some(3));

    let events: Vec<(String, String, Value)> = p["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            (text("action"), text("target"), e["details"]["alias"].clone())
        })
        .collect();
    let actions: Vec<(&str, &str, Option<&str>)> =
        events.iter().map(|(a, t, alias)| (a.as_str(), t.as_str(), alias.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("registered_model.create", "model:fraud", None),
            ("model_version.create", "model:fraud/1", None),
            ("model_alias.set", "model:fraud/1", Some("champion")),
            ("model_alias.set", "model:fraud/1", Some("staging")),
            ("model_alias.set", "model:fraud/2", Some("champion")),
            ("model_alias.delete", "model:fraud/1", Some("staging")),
        ],
        "v2's registration is not about v1; champion moving away from v1 is"
    );
    let ids: Vec<i64> = p["events"].as_array().expect("events").iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the chain's order: {ids:?}");
    assert!(p["events"][0]["actor"] == "admin" && p["events"][0]["hash"].as_str().is_some_and(|h| h.len() == 64));

    // The download variant is the same document as an attachment.
    let response = app
        .client
        .get(app.at("/api/v1/models/fraud/versions/1/provenance?download"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("request");
    let disposition = response.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(disposition.starts_with("attachment") && disposition.contains("provenance-fraud-v1.json"), "{disposition}");

    for (path, status) in
        [("/api/v1/models/fraud/versions/7/provenance", 404), ("/api/v1/models/nope/versions/1/provenance", 404)]
    {
        assert_eq!(api.call(Method::GET, path, None).await.0, status, "{path}");
    }
}
