//! Datasets over the native API: blob uploads checked against their digest, versions
//! created from manifests (deduplicated, schema of CSV files recorded), file downloads,
//! diffs, run links, permissions and audit rows.

use cairn_tests::{TestApp, UserRole, spawn_app};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub(crate) struct Client<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Client<'a> {
    pub(crate) async fn as_role(app: &'a TestApp, name: &str, role: UserRole) -> Self {
        let password = format!("{name}-password");
        app.add_user(name, &password, role).await;
        Client { token: app.token_for(name, &password).await, app }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app.client.request(method, self.app.at(&format!("/api/v1{path}"))).bearer_auth(&self.token)
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON") })
    }

    async fn put_blob(&self, sha: &str, content: &[u8]) -> (u16, Value) {
        self.json(self.request(reqwest::Method::PUT, &format!("/blobs/{sha}")).body(content.to_vec())).await
    }

    /// Uploads the files' contents and creates a version from them.
    pub(crate) async fn push(&self, name: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
        let mut manifest = Vec::new();
        for (path, content) in files {
            let sha = sha256(content);
            let (status, body) = self.put_blob(&sha, content).await;
            assert_eq!(status, 200, "{body}");
            manifest.push(json!({"path": path, "size": content.len(), "sha256": sha}));
        }
        self.post(&format!("/datasets/{name}/versions"), json!({"files": manifest, "message": "test"})).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.json(self.request(reqwest::Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(self.request(reqwest::Method::POST, path).json(&body)).await
    }
}

fn sha256(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

fn ok(result: (u16, Value), status: u16) -> Value {
    assert_eq!(result.0, status, "{}", result.1);
    result.1
}

fn detail(result: (u16, Value), status: u16) -> String {
    assert_eq!(result.0, status, "{}", result.1);
    result.1["detail"].as_str().expect("problem details").to_owned()
}

async fn stored_blobs(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dataset_blobs").fetch_one(&app.db.pool).await.expect("count")
}

const CSV: &[u8] = b"id,score,label\n1,0.5,cat\n2,0.75,dog\n3,1,\"a, b\"\n";

#[tokio::test]
async fn versions_are_manifests_over_deduplicated_contents() {
    let app = spawn_app().await;
    let api = Client::as_role(&app, "pusher", UserRole::Member).await;

    let first =
        ok(api.push("images", &[("train/a.csv", CSV), ("README", b"hello"), ("copy/README", b"hello")]).await, 201);
    assert_eq!((first["version"].as_i64(), first["created"].as_bool()), (Some(1), Some(true)));
    assert_eq!(first["reference"], "images@1");
    assert_eq!(first["file_count"], 3);
    assert_eq!(stored_blobs(&app).await, 2, "identical files are stored once");
    let schema = &first["schema"]["files"]["train/a.csv"];
    assert_eq!(schema["rows"], 3);
    let columns: Vec<(String, String)> = schema["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or("").to_owned(), c["type"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        columns,
        [("id".into(), "integer".into()), ("score".into(), "float".into()), ("label".into(), "string".into())]
    );

    // The same content again: no new version.
    let again =
        ok(api.push("images", &[("README", b"hello"), ("copy/README", b"hello"), ("train/a.csv", CSV)]).await, 200);
    assert_eq!((again["version"].as_i64(), again["created"].as_bool()), (Some(1), Some(false)));

    // One file changed, one added, one removed: only the new content is stored.
    let second =
        ok(api.push("images", &[("train/a.csv", CSV), ("README", b"hello v2"), ("new.bin", b"\x00\x01")]).await, 201);
    assert_eq!(second["version"], 2);
    assert_eq!(stored_blobs(&app).await, 4);
    let missing = ok(api.post("/blobs/missing", json!({"sha256": [sha256(CSV), sha256(b"never sent")]})).await, 200);
    assert_eq!(missing["missing"], json!([sha256(b"never sent")]));

    let diff = ok(api.get("/datasets/images/diff?from=1&to=2").await, 200);
    assert_eq!(diff, json!({"added": ["new.bin"], "removed": ["copy/README"], "changed": ["README"], "unchanged": 1}));

    let dataset = ok(api.get("/datasets/images").await, 200);
    let versions: Vec<i64> =
        dataset["versions"].as_array().expect("versions").iter().filter_map(|v| v["version"].as_i64()).collect();
    assert_eq!(versions, [2, 1], "newest first");
    let listed = ok(api.get("/datasets").await, 200);
    assert_eq!(listed["datasets"][0]["latest_version"], 2);

    let latest = ok(api.get("/datasets/images/versions/latest").await, 200);
    assert_eq!(latest["version"], 2);
    let paths: Vec<&str> =
        latest["files"].as_array().expect("files").iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, ["README", "new.bin", "train/a.csv"]);
    let v1 = ok(api.get("/datasets/images/versions/1").await, 200);
    assert_eq!(v1["files"].as_array().map(Vec::len), Some(3), "old versions are kept whole");

    let download =
        api.request(reqwest::Method::GET, "/datasets/images/versions/1/files/copy/README").send().await.expect("get");
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["x-content-sha256"], sha256(b"hello").as_str());
    assert_eq!(download.bytes().await.expect("bytes").as_ref(), b"hello");
    detail(api.get("/datasets/images/versions/2/files/copy/README").await, 404);
}

#[tokio::test]
async fn bad_uploads_and_manifests_are_refused_with_the_reason_and_store_nothing() {
    let app = spawn_app().await;
    let api = Client::as_role(&app, "pusher", UserRole::Member).await;
    let sha = sha256(b"right");

    assert!(detail(api.put_blob("not-a-digest", b"x").await, 422).contains("SHA-256"));
    let wrong = detail(api.put_blob(&sha, b"wrong").await, 422);
    assert!(wrong.contains(&sha256(b"wrong")), "{wrong}");
    assert_eq!(stored_blobs(&app).await, 0);

    let file = |path: &str, sha: &str, size: i64| json!({"path": path, "size": size, "sha256": sha});
    let create = |files: Vec<Value>| api.post("/datasets/d/versions", json!({"files": files}));
    assert!(detail(create(vec![file("a", &sha, 5)]).await, 422).contains("not uploaded"));
    ok(api.put_blob(&sha, b"right").await, 200);
    for (files, why) in [
        (vec![], "at least one file"),
        (vec![file("../a", &sha, 5)], "invalid file path"),
        (vec![file("/abs", &sha, 5)], "invalid file path"),
        (vec![file("a", &sha, 5), file("a", &sha, 5)], "twice"),
        (vec![file("a", &sha, 5), file("a/b", &sha, 5)], "both a file and the directory"),
        (vec![file("a", &sha, 6)], "manifest says 6 bytes"),
    ] {
        let message = detail(create(files).await, 422);
        assert!(message.contains(why), "{message:?} should say {why:?}");
    }
    let bad_name = api.post("/datasets/bad%20name/versions", json!({"files": [file("a", &sha, 5)]})).await;
    assert!(detail(bad_name, 422).contains("invalid dataset name"));
    detail(api.get("/datasets/d").await, 404);
    assert!(detail(api.get("/datasets/d/versions/x").await, 400).contains("version"));
    let unknown = api.post("/datasets/d/versions", json!({"files": [], "surprise": 1})).await;
    assert_eq!(unknown.0, 422, "unknown fields are refused: {}", unknown.1);
}

#[tokio::test]
async fn runs_link_to_versions_viewers_read_and_pushes_are_audited() {
    let app = spawn_app().await;
    let member = Client::as_role(&app, "pusher", UserRole::Member).await;
    let viewer = Client::as_role(&app, "reader", UserRole::Viewer).await;
    ok(member.push("tabular", &[("t.csv", CSV)]).await, 201);

    assert_eq!(viewer.put_blob(&sha256(b"a\n1\n"), b"a\n1\n").await.0, 403, "viewers cannot upload");
    let manifest = json!({"files": [{"path": "t.csv", "size": CSV.len(), "sha256": sha256(CSV)}]});
    assert_eq!(viewer.post("/datasets/tabular/versions", manifest).await.0, 403, "nor create versions");
    ok(viewer.get("/datasets/tabular/versions/1").await, 200);

    let experiment = ok(member.post("/experiments", json!({"name": "e"})).await, 201);
    let run = ok(member.post("/runs", json!({"experiment_id": experiment["id"]})).await, 201);
    let run_id = run["id"].as_str().expect("run id");
    let linked = ok(
        member.post(&format!("/runs/{run_id}/datasets"), json!({"dataset": "tabular", "context": "training"})).await,
        200,
    );
    assert_eq!(linked["reference"], "tabular@1");
    let used = ok(viewer.get(&format!("/runs/{run_id}/datasets")).await, 200);
    assert_eq!(used[0]["reference"], "tabular@1");
    assert_eq!(used[0]["context"], "training");
    let version = ok(viewer.get("/datasets/tabular/versions/1").await, 200);
    assert_eq!(version["runs"][0]["run_id"], run_id);
    detail(member.post(&format!("/runs/{run_id}/datasets"), json!({"dataset": "tabular@7"})).await, 404);
    detail(member.post(&format!("/runs/{run_id}/datasets"), json!({"dataset": "no/such"})).await, 422);

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id").fetch_all(&app.db.pool).await.expect("audit");
    for expected in ["dataset.blob.upload", "dataset.version.create", "run.dataset.link"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} in {actions:?}");
    }
}
