//! The model registry over HTTP: MLflow's `registered-models/*` and `model-versions/*`
//! (shapes, status and error codes, aliases, stages, search), the native `/api/v1/models`
//! API, permissions and the audit rows every change leaves.

use cairn_tests::{TestApp, UserRole, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

/// Calls the MLflow API as the official client does: JSON bodies for POST, PATCH and DELETE,
/// query strings for GET.
struct Mlflow<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Mlflow<'a> {
    async fn admin(app: &'a TestApp) -> Self {
        Mlflow { token: app.admin_token().await, app }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.app.client.request(method, self.app.at(&format!("/api/2.0/mlflow/{path}"))).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        self.send(Method::GET, path_and_query, None).await
    }

    /// A call that must succeed.
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.send(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }

    async fn run_with_logged_model(&self) -> (String, String, String) {
        let exp = self.ok(Method::POST, "experiments/create", Some(json!({"name": "registry"}))).await;
        let exp = exp["experiment_id"].as_str().expect("experiment_id").to_owned();
        let run = self.ok(Method::POST, "runs/create", Some(json!({"experiment_id": exp, "start_time": 1}))).await;
        let run = run["run"]["info"]["run_id"].as_str().expect("run_id").to_owned();
        let metrics = json!({"run_id": run, "metrics": [{"key": "acc", "value": 0.93, "timestamp": 1, "step": 0}]});
        self.ok(Method::POST, "runs/log-batch", Some(metrics)).await;
        let body = json!({"experiment_id": exp, "name": "model", "source_run_id": run});
        let model = self.ok(Method::POST, "logged-models", Some(body)).await;
        let model_id = model["model"]["info"]["model_id"].as_str().expect("model_id").to_owned();
        (exp, run, model_id)
    }
}

fn assert_error(result: (u16, Value), status: u16, code: &str) -> String {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error_code"], code, "{}", result.1);
    result.1["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn registered_model_lifecycle_and_errors() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let body = json!({"name": "fraud", "description": "catches fraud", "tags": [{"key": "team", "value": "risk"}]});
    let created = api.ok(Method::POST, "registered-models/create", Some(body)).await;
    let model = &created["registered_model"];
    assert_eq!(model["name"], "fraud");
    assert_eq!(model["description"], "catches fraud");
    assert_eq!(model["tags"], json!([{"key": "team", "value": "risk"}]));
    assert_eq!(model["user_id"], "admin");
    assert!(model["creation_timestamp"].is_i64() && model["last_updated_timestamp"].is_i64());
    assert!(model.get("latest_versions").is_none(), "empty lists are omitted: {model}");

    let dup = api.post("registered-models/create", json!({"name": "fraud"})).await;
    assert_eq!(assert_error(dup, 400, "RESOURCE_ALREADY_EXISTS"), "Registered Model (name=fraud) already exists.");
    assert_error(api.post("registered-models/create", json!({"name": ""})).await, 400, "INVALID_PARAMETER_VALUE");
    assert_error(api.post("registered-models/create", json!({"name": "a/b"})).await, 400, "INVALID_PARAMETER_VALUE");
    let missing = api.get("registered-models/get?name=nope").await;
    assert_eq!(assert_error(missing, 404, "RESOURCE_DOES_NOT_EXIST"), "Registered Model with name=nope not found");

    let update = json!({"name": "fraud", "description": "v2 text"});
    let updated = api.ok(Method::PATCH, "registered-models/update", Some(update)).await;
    assert_eq!(updated["registered_model"]["description"], "v2 text");

    let tag = json!({"name": "fraud", "key": "owner", "value": "ana"});
    api.ok(Method::POST, "registered-models/set-tag", Some(tag)).await;
    let untag = json!({"name": "fraud", "key": "team"});
    api.ok(Method::DELETE, "registered-models/delete-tag", Some(untag.clone())).await;
    api.ok(Method::DELETE, "registered-models/delete-tag", Some(untag)).await;
    let got = api.ok(Method::GET, "registered-models/get?name=fraud", None).await;
    assert_eq!(got["registered_model"]["tags"], json!([{"key": "owner", "value": "ana"}]));
    let bad_tag = json!({"name": "nope", "key": "k", "value": "v"});
    assert_error(api.post("registered-models/set-tag", bad_tag).await, 404, "RESOURCE_DOES_NOT_EXIST");

    api.ok(Method::POST, "registered-models/create", Some(json!({"name": "other"}))).await;
    let taken = api.post("registered-models/rename", json!({"name": "fraud", "new_name": "other"})).await;
    assert_error(taken, 400, "RESOURCE_ALREADY_EXISTS");
    let renamed =
        api.ok(Method::POST, "registered-models/rename", Some(json!({"name": "fraud", "new_name": "fraud-2"})));
    assert_eq!(renamed.await["registered_model"]["name"], "fraud-2");
    assert_error(api.get("registered-models/get?name=fraud").await, 404, "RESOURCE_DOES_NOT_EXIST");

    api.ok(Method::DELETE, "registered-models/delete", Some(json!({"name": "fraud-2"}))).await;
    assert_error(api.get("registered-models/get?name=fraud-2").await, 404, "RESOURCE_DOES_NOT_EXIST");
    let again = api.send(Method::DELETE, "registered-models/delete", Some(json!({"name": "fraud-2"}))).await;
    assert_error(again, 404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn versions_from_logged_models_runs_and_other_versions() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let (exp, run, model_id) = api.run_with_logged_model().await;
    api.ok(Method::POST, "registered-models/create", Some(json!({"name": "m"}))).await;

    // What MLflow 3's register_model sends: the logged model, with or without the run.
    let body = json!({"name": "m", "source": format!("models:/{model_id}"), "model_id": model_id});
    let v1 = api.ok(Method::POST, "model-versions/create", Some(body)).await["model_version"].clone();
    assert_eq!(v1["version"], "1", "versions are strings");
    assert_eq!(v1["status"], "READY");
    assert_eq!(v1["current_stage"], "None");
    assert_eq!(v1["run_id"], run, "the run comes from the logged model");
    assert_eq!(v1["model_id"], model_id);
    assert_eq!(v1["source"], format!("models:/{model_id}"));
    let uri = api.ok(Method::GET, "model-versions/get-download-uri?name=m&version=1", None).await;
    assert_eq!(uri["artifact_uri"], format!("mlflow-artifacts:/{exp}/models/{model_id}/artifacts"));

    let body = json!({"name": "m", "source": format!("runs:/{run}/model"), "run_id": run,
                      "tags": [{"key": "k", "value": "v"}], "description": "from the run"});
    let v2 = api.ok(Method::POST, "model-versions/create", Some(body)).await["model_version"].clone();
    assert_eq!(v2["version"], "2");
    assert_eq!(v2["tags"], json!([{"key": "k", "value": "v"}]));
    assert_eq!(v2["description"], "from the run");
    let uri = api.ok(Method::GET, "model-versions/get-download-uri?name=m&version=2", None).await;
    assert_eq!(uri["artifact_uri"], format!("mlflow-artifacts:/{exp}/{run}/artifacts/model"));

    let body = json!({"name": "m", "source": "models:/m/1"});
    let v3 = api.ok(Method::POST, "model-versions/create", Some(body)).await["model_version"].clone();
    assert_eq!(v3["run_id"], run, "a registry source carries its version's run");
    let uri = api.ok(Method::GET, "model-versions/get-download-uri?name=m&version=3", None).await;
    assert_eq!(uri["artifact_uri"], format!("mlflow-artifacts:/{exp}/models/{model_id}/artifacts"));

    let mismatch = json!({"name": "m", "source": format!("runs:/{run}/model"), "run_id": "0".repeat(32)});
    assert_error(api.post("model-versions/create", mismatch).await, 400, "INVALID_PARAMETER_VALUE");
    let unknown_run = json!({"name": "m", "source": "s3://bucket/model", "run_id": "f".repeat(32)});
    assert_error(api.post("model-versions/create", unknown_run).await, 404, "RESOURCE_DOES_NOT_EXIST");
    let unknown_model = json!({"name": "m", "source": "models:/m-0123", "model_id": "m-0123"});
    assert_error(api.post("model-versions/create", unknown_model).await, 404, "RESOURCE_DOES_NOT_EXIST");
    let local = json!({"name": "m", "source": "/etc/passwd"});
    assert_error(api.post("model-versions/create", local).await, 400, "INVALID_PARAMETER_VALUE");
    let climbing = json!({"name": "m", "source": format!("runs:/{run}/../other")});
    assert_error(api.post("model-versions/create", climbing).await, 400, "INVALID_PARAMETER_VALUE");
    let no_model = json!({"name": "nope", "source": "s3://bucket/model"});
    assert_error(api.post("model-versions/create", no_model).await, 404, "RESOURCE_DOES_NOT_EXIST");

    let missing = api.get("model-versions/get?name=m&version=9").await;
    let message = assert_error(missing, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(message, "Model Version (name=m, version=9) not found");
    assert_error(api.get("model-versions/get?name=m&version=x").await, 400, "INVALID_PARAMETER_VALUE");

    let update = json!({"name": "m", "version": "1", "description": "first"});
    let updated = api.ok(Method::PATCH, "model-versions/update", Some(update)).await;
    assert_eq!(updated["model_version"]["description"], "first");
    let tag = json!({"name": "m", "version": "1", "key": "validated", "value": "yes"});
    api.ok(Method::POST, "model-versions/set-tag", Some(tag)).await;
    let untag = json!({"name": "m", "version": "2", "key": "k"});
    api.ok(Method::DELETE, "model-versions/delete-tag", Some(untag)).await;
    let got = api.ok(Method::GET, "model-versions/get?name=m&version=2", None).await;
    assert!(got["model_version"].get("tags").is_none(), "{got}");

    // Deleting a version keeps its number from being reused.
    api.ok(Method::DELETE, "model-versions/delete", Some(json!({"name": "m", "version": "3"}))).await;
    assert_error(api.get("model-versions/get?name=m&version=3").await, 404, "RESOURCE_DOES_NOT_EXIST");
    let body = json!({"name": "m", "source": "s3://bucket/model"});
    let v4 = api.ok(Method::POST, "model-versions/create", Some(body)).await;
    assert_eq!(v4["model_version"]["version"], "4");
    assert!(v4["model_version"].get("run_id").is_none());

    // Renaming a model carries its versions along.
    api.ok(Method::POST, "registered-models/rename", Some(json!({"name": "m", "new_name": "m2"}))).await;
    let got = api.ok(Method::GET, "model-versions/get?name=m2&version=1", None).await;
    assert_eq!(got["model_version"]["name"], "m2");
}

#[tokio::test]
async fn aliases_point_at_one_version_each() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    api.ok(Method::POST, "registered-models/create", Some(json!({"name": "m"}))).await;
    for _ in 0..2 {
        api.ok(Method::POST, "model-versions/create", Some(json!({"name": "m", "source": "s3://b/m"}))).await;
    }
    let alias = |version: &str| json!({"name": "m", "alias": "champion", "version": version});
    api.ok(Method::POST, "registered-models/alias", Some(alias("1"))).await;
    let got = api.ok(Method::GET, "registered-models/alias?name=m&alias=champion", None).await;
    assert_eq!(got["model_version"]["version"], "1");
    assert_eq!(got["model_version"]["aliases"], json!(["champion"]));

    api.ok(Method::POST, "registered-models/alias", Some(alias("2"))).await;
    let got = api.ok(Method::GET, "registered-models/alias?name=m&alias=champion", None).await;
    assert_eq!(got["model_version"]["version"], "2", "setting an alias again moves it");
    let model = api.ok(Method::GET, "registered-models/get?name=m", None).await;
    assert_eq!(model["registered_model"]["aliases"], json!([{"alias": "champion", "version": "2"}]));
    let v1 = api.ok(Method::GET, "model-versions/get?name=m&version=1", None).await;
    assert!(v1["model_version"].get("aliases").is_none());

    let latest = api.ok(Method::GET, "registered-models/alias?name=m&alias=latest", None).await;
    assert_eq!(latest["model_version"]["version"], "2");

    let unknown = api.get("registered-models/alias?name=m&alias=nope").await;
    let message = assert_error(unknown, 400, "INVALID_PARAMETER_VALUE");
    assert_eq!(message, "Registered model alias nope not found.");
    assert_error(api.get("registered-models/alias?name=x&alias=a").await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(api.post("registered-models/alias", alias("9")).await, 404, "RESOURCE_DOES_NOT_EXIST");
    for reserved in ["v1", "latest", "has space"] {
        let body = json!({"name": "m", "alias": reserved, "version": "1"});
        assert_error(api.post("registered-models/alias", body).await, 400, "INVALID_PARAMETER_VALUE");
    }

    let remove = json!({"name": "m", "alias": "champion"});
    api.ok(Method::DELETE, "registered-models/alias", Some(remove.clone())).await;
    api.ok(Method::DELETE, "registered-models/alias", Some(remove)).await;
    assert_error(api.get("registered-models/alias?name=m&alias=champion").await, 400, "INVALID_PARAMETER_VALUE");

    // Deleting the version an alias points at removes the alias.
    api.ok(Method::POST, "registered-models/alias", Some(alias("2"))).await;
    api.ok(Method::DELETE, "model-versions/delete", Some(json!({"name": "m", "version": "2"}))).await;
    assert_error(api.get("registered-models/alias?name=m&alias=champion").await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn legacy_stages_and_latest_versions() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    api.ok(Method::POST, "registered-models/create", Some(json!({"name": "m"}))).await;
    for _ in 0..3 {
        api.ok(Method::POST, "model-versions/create", Some(json!({"name": "m", "source": "s3://b/m"}))).await;
    }
    let stage = |version: &str, stage: &str, archive: bool| json!({"name": "m", "version": version, "stage": stage, "archive_existing_versions": archive});
    let moved = api.ok(Method::POST, "model-versions/transition-stage", Some(stage("1", "production", false))).await;
    assert_eq!(moved["model_version"]["current_stage"], "Production", "stages are canonicalised");
    api.ok(Method::POST, "model-versions/transition-stage", Some(stage("2", "Staging", false))).await;
    api.ok(Method::POST, "model-versions/transition-stage", Some(stage("3", "Production", true))).await;
    let v1 = api.ok(Method::GET, "model-versions/get?name=m&version=1", None).await;
    assert_eq!(v1["model_version"]["current_stage"], "Archived", "archive_existing_versions archived it");

    let bad = api.post("model-versions/transition-stage", stage("2", "Deployed", false)).await;
    assert_error(bad, 400, "INVALID_PARAMETER_VALUE");
    let bad = api.post("model-versions/transition-stage", stage("2", "Archived", true)).await;
    assert_error(bad, 400, "INVALID_PARAMETER_VALUE");

    let latest = api.ok(Method::POST, "registered-models/get-latest-versions", Some(json!({"name": "m"}))).await;
    let mut by_stage: Vec<(String, String)> = latest["model_versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["current_stage"].as_str().unwrap_or("").to_owned(), v["version"].as_str().unwrap_or("").to_owned()))
        .collect();
    by_stage.sort();
    let expected = [("Archived", "1"), ("Production", "3"), ("Staging", "2")];
    assert_eq!(by_stage, expected.map(|(s, v)| (s.to_owned(), v.to_owned())));
    let body = json!({"name": "m", "stages": ["staging"]});
    let staging = api.ok(Method::POST, "registered-models/get-latest-versions", Some(body)).await;
    assert_eq!(staging["model_versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(staging["model_versions"][0]["version"], "2");
    let model = api.ok(Method::GET, "registered-models/get?name=m", None).await;
    assert_eq!(model["registered_model"]["latest_versions"].as_array().map(Vec::len), Some(3));
    let unknown = api.post("registered-models/get-latest-versions", json!({"name": "nope"})).await;
    assert_error(unknown, 404, "RESOURCE_DOES_NOT_EXIST");
}

/// The names (or name/version pairs) a search returns, following page tokens.
async fn all_pages(api: &Mlflow<'_>, path: &str, list: &str, query: &str) -> Vec<String> {
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = token.as_deref().map(|t| format!("&page_token={}", urlencode(t))).unwrap_or_default();
        let got = api.ok(Method::GET, &format!("{path}?max_results=2&{query}{page}"), None).await;
        for item in got[list].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or("").to_owned();
            seen.push(match item["version"].as_str() {
                Some(version) => format!("{name}/{version}"),
                None => name,
            });
        }
        match got["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return seen,
        }
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn searches_filter_order_and_page() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let (_, run, _) = api.run_with_logged_model().await;
    for name in ["alpha", "beta", "gamma", "Alpine", "prompt-x"] {
        api.ok(Method::POST, "registered-models/create", Some(json!({"name": name}))).await;
    }
    let tag = json!({"name": "prompt-x", "key": "mlflow.prompt.is_prompt", "value": "true"});
    api.ok(Method::POST, "registered-models/set-tag", Some(tag)).await;
    api.ok(Method::POST, "registered-models/set-tag", Some(json!({"name": "beta", "key": "team", "value": "risk"})))
        .await;

    // The client appends the prompt exclusion to every model search.
    let prompts = urlencode("tag.`mlflow.prompt.is_prompt` != 'true'");
    let names = all_pages(&api, "registered-models/search", "registered_models", &format!("filter={prompts}")).await;
    assert_eq!(names, ["Alpine", "alpha", "beta", "gamma"], "by name, prompts excluded, over pages");
    let filter = urlencode("name ILIKE 'al%' AND tag.`mlflow.prompt.is_prompt` != 'true'");
    let names = all_pages(&api, "registered-models/search", "registered_models", &format!("filter={filter}")).await;
    assert_eq!(names, ["Alpine", "alpha"]);
    let filter = urlencode("name LIKE 'al%'");
    let names = all_pages(&api, "registered-models/search", "registered_models", &format!("filter={filter}")).await;
    assert_eq!(names, ["alpha"]);
    let filter = urlencode("tags.team = 'risk'");
    let names = all_pages(&api, "registered-models/search", "registered_models", &format!("filter={filter}")).await;
    assert_eq!(names, ["beta"]);
    let filter = urlencode("name != 'beta'");
    let query = format!("filter={filter}&order_by={}", urlencode("name DESC"));
    let names = all_pages(&api, "registered-models/search", "registered_models", &query).await;
    assert_eq!(names, ["prompt-x", "gamma", "alpha", "Alpine"]);
    let filter = urlencode("name IN ('alpha', 'gamma', 'nope') AND name NOT IN ('gamma')");
    let names = all_pages(&api, "registered-models/search", "registered_models", &format!("filter={filter}")).await;
    assert_eq!(names, ["alpha"], "lists of names, as MLflow 3.17 takes them");

    let bad = api.get(&format!("registered-models/search?filter={}", urlencode("metrics.x > 1"))).await;
    assert_error(bad, 400, "INVALID_PARAMETER_VALUE");
    assert_error(api.get("registered-models/search?max_results=1001").await, 400, "INVALID_PARAMETER_VALUE");
    assert_error(api.get("registered-models/search?page_token=garbage").await, 400, "INVALID_PARAMETER_VALUE");
    let bad_order = api.get(&format!("registered-models/search?order_by={}", urlencode("tags.x"))).await;
    assert_error(bad_order, 400, "INVALID_PARAMETER_VALUE");

    for (name, source) in
        [("alpha", format!("runs:/{run}/model")), ("alpha", "s3://b/a2".into()), ("beta", "s3://b/b1".into())]
    {
        api.ok(Method::POST, "model-versions/create", Some(json!({"name": name, "source": source}))).await;
    }
    let tag = json!({"name": "alpha", "version": "2", "key": "validated", "value": "true"});
    api.ok(Method::POST, "model-versions/set-tag", Some(tag)).await;
    let search = |filter: &str| format!("filter={}&order_by={}", urlencode(filter), urlencode("version_number ASC"));
    let versions = all_pages(&api, "model-versions/search", "model_versions", &search("name = 'alpha'")).await;
    assert_eq!(versions, ["alpha/1", "alpha/2"]);
    let versions =
        all_pages(&api, "model-versions/search", "model_versions", &search(&format!("run_id = '{run}'"))).await;
    assert_eq!(versions, ["alpha/1"]);
    let by_source = search("source_path LIKE 's3://%' AND version_number >= 1");
    let versions = all_pages(&api, "model-versions/search", "model_versions", &by_source).await;
    assert_eq!(versions, ["beta/1", "alpha/2"], "by version number, then name");
    let versions = all_pages(&api, "model-versions/search", "model_versions", &search("tags.validated = 'true'")).await;
    assert_eq!(versions, ["alpha/2"]);
    let versions = all_pages(&api, "model-versions/search", "model_versions", "").await;
    assert_eq!(versions.len(), 3, "no filter: every version ({versions:?})");
    // MLflow 3.17 takes lists for the name as for the run id.
    let versions = all_pages(&api, "model-versions/search", "model_versions", &search("name IN ('beta', 'x')")).await;
    assert_eq!(versions, ["beta/1"]);
    let versions = all_pages(&api, "model-versions/search", "model_versions", &search("name NOT IN ('alpha')")).await;
    assert_eq!(versions, ["beta/1"]);
    let other_runs = search("run_id NOT IN ('0123456789abcdef0123456789abcdef')");
    let versions = all_pages(&api, "model-versions/search", "model_versions", &other_runs).await;
    assert_eq!(versions, ["alpha/1"], "versions without a run match no run id, as in SQL");
    let bad = api.get(&format!("model-versions/search?filter={}", urlencode("source_path IN ('a')"))).await;
    assert_error(bad, 400, "INVALID_PARAMETER_VALUE");
    assert_error(api.get("model-versions/search?max_results=0").await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn viewers_read_but_cannot_change_the_registry_and_every_change_is_audited() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    api.ok(Method::POST, "registered-models/create", Some(json!({"name": "m"}))).await;
    api.ok(Method::POST, "model-versions/create", Some(json!({"name": "m", "source": "s3://b/m"}))).await;
    let changes: Vec<(Method, &str, Value)> = vec![
        (Method::PATCH, "registered-models/update", json!({"name": "m", "description": "d"})),
        (Method::POST, "registered-models/set-tag", json!({"name": "m", "key": "k", "value": "v"})),
        (Method::DELETE, "registered-models/delete-tag", json!({"name": "m", "key": "k"})),
        (Method::POST, "registered-models/alias", json!({"name": "m", "alias": "champion", "version": "1"})),
        (Method::DELETE, "registered-models/alias", json!({"name": "m", "alias": "champion"})),
        (Method::PATCH, "model-versions/update", json!({"name": "m", "version": "1", "description": "d"})),
        (Method::POST, "model-versions/set-tag", json!({"name": "m", "version": "1", "key": "k", "value": "v"})),
        (Method::DELETE, "model-versions/delete-tag", json!({"name": "m", "version": "1", "key": "k"})),
        (Method::POST, "model-versions/transition-stage", json!({"name": "m", "version": "1", "stage": "Staging"})),
        (Method::POST, "model-versions/create", json!({"name": "m", "source": "s3://b/m"})),
        (Method::DELETE, "model-versions/delete", json!({"name": "m", "version": "2"})),
        (Method::POST, "registered-models/rename", json!({"name": "m", "new_name": "m2"})),
        (Method::DELETE, "registered-models/delete", json!({"name": "m2"})),
    ];

    app.add_user("viv", "viewer-password", UserRole::Viewer).await;
    let viewer = Mlflow { token: app.token_for("viv", "viewer-password").await, app: &app };
    viewer.ok(Method::GET, "registered-models/get?name=m", None).await;
    viewer.ok(Method::GET, "registered-models/search", None).await;
    viewer.ok(Method::GET, "model-versions/search", None).await;
    viewer.ok(Method::POST, "registered-models/get-latest-versions", Some(json!({"name": "m"}))).await;
    viewer.ok(Method::GET, "model-versions/get-download-uri?name=m&version=1", None).await;
    for (method, path, body) in &changes {
        let refused = viewer.send(method.clone(), path, Some(body.clone())).await;
        assert_error(refused, 403, "PERMISSION_DENIED");
    }
    let created = viewer.post("registered-models/create", json!({"name": "v"})).await;
    assert_error(created, 403, "PERMISSION_DENIED");

    for (method, path, body) in changes {
        api.ok(method, path, Some(body)).await;
    }
    let events = cairn_db::audit::recent(&app.db.pool, 200).await.expect("audit");
    let find = |action: &str, target: &str| {
        events.iter().find(|e| e.action == action && e.target == target).unwrap_or_else(|| {
            let seen: Vec<(&str, &str)> = events.iter().map(|e| (e.action.as_str(), e.target.as_str())).collect();
            panic!("no {action} on {target} in {seen:?}")
        })
    };
    for (action, target) in [
        ("registered_model.create", "model:m"),
        ("registered_model.update", "model:m"),
        ("registered_model.set_tag", "model:m"),
        ("registered_model.delete_tag", "model:m"),
        ("model_version.create", "model:m/1"),
        ("model_alias.set", "model:m/1"),
        ("model_alias.delete", "model:m/1"),
        ("model_version.update", "model:m/1"),
        ("model_version.set_tag", "model:m/1"),
        ("model_version.delete_tag", "model:m/1"),
        ("model_version.transition_stage", "model:m/1"),
        ("model_version.delete", "model:m/2"),
        ("registered_model.rename", "model:m2"),
        ("registered_model.delete", "model:m2"),
    ] {
        let event = find(action, target);
        assert_eq!(event.actor_name, "admin", "{action}");
        assert_eq!(event.outcome, "success", "{action}");
    }
    assert_eq!(
        find("model_alias.set", "model:m/1").details,
        r#"{"alias":"champion","previous_version":null,"version":1}"#
    );
    let denied = events.iter().filter(|e| e.actor_name == "viv" && e.outcome == "denied").count();
    assert_eq!(denied, 14, "every refused change is recorded");
    let reads = events.iter().filter(|e| e.action.contains("search") || e.action.contains("get-latest")).count();
    assert_eq!(reads, 0, "reads are not audited");
    let verified = cairn_db::audit::verify(&app.db.pool).await.expect("verify");
    assert!(verified.first_break.is_none());
}

#[tokio::test]
async fn registry_bodies_get_mlflow_errors() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    assert_error(api.post("registered-models/create", json!({})).await, 400, "INVALID_PARAMETER_VALUE");
    let response = app
        .client
        .delete(app.at("/api/2.0/mlflow/registered-models/delete"))
        .bearer_auth(&api.token)
        .header("content-type", "text/plain")
        .body("{\"name\": \"m\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    api.ok(Method::POST, "registered-models/create", Some(json!({"name": "m"}))).await;
    let no_source = api.post("model-versions/create", json!({"name": "m"})).await;
    assert_error(no_source, 400, "INVALID_PARAMETER_VALUE");
    let no_stage = api.post("model-versions/transition-stage", json!({"name": "m", "version": "1"})).await;
    assert_error(no_stage, 400, "INVALID_PARAMETER_VALUE");
    let ajax = app
        .client
        .get(app.at("/ajax-api/2.0/mlflow/registered-models/get?name=m"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("request");
    assert_eq!(ajax.status(), 200, "the ajax-api prefix serves the registry too");
}

/// The native API: `/api/v1/models`.
async fn native(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.client.request(method, app.at(&format!("/api/v1{path}"))).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    if status == 204 {
        return (status, Value::Null);
    }
    let is_problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/problem+json"));
    let value: Value = response.json().await.expect("json body");
    assert_eq!(is_problem, status >= 400, "errors and only errors are problem details: {value}");
    (status, value)
}

#[tokio::test]
async fn native_api_lists_models_versions_and_manages_aliases() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let (_, run, model_id) = api.run_with_logged_model().await;
    for name in ["a-model", "b-model", "c-model"] {
        api.ok(Method::POST, "registered-models/create", Some(json!({"name": name}))).await;
    }
    let body = json!({"name": "b-model", "source": format!("models:/{model_id}"), "model_id": model_id});
    api.ok(Method::POST, "model-versions/create", Some(body)).await;
    api.ok(Method::POST, "model-versions/create", Some(json!({"name": "b-model", "source": "s3://b/m"}))).await;
    let token = &api.token;

    let (status, page) = native(&app, token, Method::GET, "/models?limit=2", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        page["models"].as_array().expect("models").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["a-model", "b-model"]);
    let next = page["next_cursor"].as_str().expect("a next page");
    let (_, rest) = native(&app, token, Method::GET, &format!("/models?limit=2&cursor={next}"), None).await;
    assert_eq!(rest["models"][0]["name"], "c-model");
    assert!(rest["next_cursor"].is_null());
    let (_, filtered) = native(&app, token, Method::GET, "/models?name_like=B%25", None).await;
    assert_eq!(filtered["models"].as_array().map(Vec::len), Some(1));
    assert_eq!(native(&app, token, Method::GET, "/models?cursor=junk", None).await.0, 400);

    let (status, model) = native(&app, token, Method::GET, "/models/b-model", None).await;
    assert_eq!(status, 200);
    assert_eq!(model["created_by"], "admin");
    assert_eq!(model["latest_versions"][0]["version"], 2, "the newest version in stage None");
    assert_eq!(native(&app, token, Method::GET, "/models/nope", None).await.0, 404);

    let (status, versions) = native(&app, token, Method::GET, "/models/b-model/versions?limit=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(versions["versions"][0]["version"], 2, "newest first");
    let next = versions["next_cursor"].as_str().expect("a next page");
    let (_, older) = native(&app, token, Method::GET, &format!("/models/b-model/versions?cursor={next}"), None).await;
    let v1 = &older["versions"][0];
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["run_id"], run);
    assert_eq!(v1["logged_model_id"], model_id);
    assert!(v1["storage_location"].as_str().is_some_and(|l| l.ends_with(&format!("/models/{model_id}/artifacts"))));
    assert_eq!(native(&app, token, Method::GET, "/models/b-model/versions/9", None).await.0, 404);
    assert_eq!(native(&app, token, Method::GET, "/models/b-model/versions/x", None).await.0, 404);

    let description = Some(json!({"description": "the best one"}));
    let (status, changed) = native(&app, token, Method::PATCH, "/models/b-model", description.clone()).await;
    assert_eq!((status, changed["description"].as_str()), (200, Some("the best one")));
    let (status, changed) = native(&app, token, Method::PATCH, "/models/b-model/versions/1", description).await;
    assert_eq!((status, changed["description"].as_str()), (200, Some("the best one")));

    let target = Some(json!({"version": 1}));
    let (status, aliased) = native(&app, token, Method::PUT, "/models/b-model/aliases/champion", target.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(aliased["aliases"], json!(["champion"]));
    let (_, model) = native(&app, token, Method::GET, "/models/b-model", None).await;
    assert_eq!(model["aliases"], json!({"champion": 1}));
    assert_eq!(native(&app, token, Method::PUT, "/models/b-model/aliases/v2", target).await.0, 422);
    let missing = Some(json!({"version": 7}));
    assert_eq!(native(&app, token, Method::PUT, "/models/b-model/aliases/champion", missing).await.0, 404);
    assert_eq!(native(&app, token, Method::DELETE, "/models/b-model/aliases/champion", None).await.0, 204);
    let (_, model) = native(&app, token, Method::GET, "/models/b-model", None).await;
    assert_eq!(model["aliases"], json!({}));

    app.add_user("viv", "viewer-password", UserRole::Viewer).await;
    let viewer = app.token_for("viv", "viewer-password").await;
    assert_eq!(native(&app, &viewer, Method::GET, "/models/b-model/versions", None).await.0, 200);
    let target = Some(json!({"version": 1}));
    assert_eq!(native(&app, &viewer, Method::PUT, "/models/b-model/aliases/x", target).await.0, 403);
    let description = Some(json!({"description": "no"}));
    assert_eq!(native(&app, &viewer, Method::PATCH, "/models/b-model", description).await.0, 403);

    let events = cairn_db::audit::recent(&app.db.pool, 100).await.expect("audit");
    let actions: Vec<(&str, &str)> = events.iter().map(|e| (e.action.as_str(), e.target.as_str())).collect();
    for expected in [
        ("registered_model.update", "model:b-model"),
        ("model_version.update", "model:b-model/1"),
        ("model_alias.set", "model:b-model/1"),
        ("model_alias.delete", "model:b-model/1"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
}

#[tokio::test]
async fn dashboard_model_pages_and_forms() {
    use crate::dashboard_pages::{admin, get, viewer};

    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let (_, run, model_id) = api.run_with_logged_model().await;
    let body = json!({"name": "fraud <b>", "description": "catches <i>fraud</i>"});
    api.ok(Method::POST, "registered-models/create", Some(body)).await;
    let body = json!({"name": "fraud <b>", "source": format!("models:/{model_id}"), "model_id": model_id});
    api.ok(Method::POST, "model-versions/create", Some(body)).await;
    api.ok(
        Method::POST,
        "registered-models/alias",
        Some(json!({"name": "fraud <b>", "alias": "champion", "version": "1"})),
    )
    .await;

    let (browser, csrf) = admin(&app).await;
    let (status, list) = get(&browser, &app, "/models").await;
    assert_eq!(status, 200);
    assert!(list.contains("href=\"/models/fraud%20%3Cb%3E\""), "{list}");
    assert!(!list.contains("fraud <b>"), "names are escaped");
    assert!(list.contains("href=\"/models\">Models</a>"), "the header links the models list");
    let (_, empty) = get(&browser, &app, "/models?q=nothing-like-it").await;
    assert!(empty.contains("No model has"));

    let (status, page) = get(&browser, &app, "/models/fraud%20%3Cb%3E").await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("href=\"/runs/{run}\"")), "the source run is linked");
    assert!(page.contains("<span>acc</span>0.93"), "the source run's latest metric: {page}");
    assert!(page.contains("@champion"));
    assert!(page.contains("catches") && !page.contains("<i>fraud"), "descriptions are escaped");
    assert!(page.contains("/aliases/delete") && page.contains("Save description"), "members get the forms");

    let url = app.at("/models/fraud%20%3Cb%3E");
    let set = browser
        .post(format!("{url}/aliases"))
        .form(&[("csrf_token", csrf.as_str()), ("alias", "staging"), ("version", "1")])
        .send()
        .await
        .expect("request");
    assert_eq!(set.status(), 303);
    let reserved = browser
        .post(format!("{url}/aliases"))
        .form(&[("csrf_token", csrf.as_str()), ("alias", "v7"), ("version", "1")])
        .send()
        .await
        .expect("request");
    assert_eq!(reserved.status(), 422);
    assert!(reserved.text().await.expect("html").contains("is reserved"), "the refusal shows on the page");
    let forged = browser
        .post(format!("{url}/aliases/delete"))
        .form(&[("csrf_token", "forged"), ("alias", "champion")])
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 403);
    let removed = browser
        .post(format!("{url}/aliases/delete"))
        .form(&[("csrf_token", csrf.as_str()), ("alias", "champion")])
        .send()
        .await
        .expect("request");
    assert_eq!(removed.status(), 303);
    let described = browser
        .post(format!("{url}/description"))
        .form(&[("csrf_token", csrf.as_str()), ("description", "new text\r\n")])
        .send()
        .await
        .expect("request");
    assert_eq!(described.status(), 303);
    let model = api.ok(Method::GET, "registered-models/get?name=fraud%20%3Cb%3E", None).await;
    assert_eq!(model["registered_model"]["description"], "new text");
    assert_eq!(model["registered_model"]["aliases"], json!([{"alias": "staging", "version": "1"}]));

    let (status, version) = get(&browser, &app, "/models/fraud%20%3Cb%3E/versions/1").await;
    assert_eq!(status, 200);
    assert!(version.contains(&format!("/models/{model_id}/artifacts")), "where the artifacts are");
    assert_eq!(get(&browser, &app, "/models/fraud%20%3Cb%3E/versions/2").await.0, 404);
    assert_eq!(get(&browser, &app, "/models/nope").await.0, 404);

    let reader = viewer(&app).await;
    let (status, page) = get(&reader, &app, "/models/fraud%20%3Cb%3E").await;
    assert_eq!(status, 200);
    assert!(!page.contains("Set alias") && !page.contains("Save description"), "viewers get no forms");
    let viewer_csrf = cairn_tests::hidden_input(&page, "csrf_token").expect("csrf");
    let refused = reader
        .post(format!("{url}/aliases"))
        .form(&[("csrf_token", viewer_csrf.as_str()), ("alias", "x"), ("version", "1")])
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);

    let events = cairn_db::audit::recent(&app.db.pool, 100).await.expect("audit");
    let set_by_form = events.iter().find(|e| e.action == "model_alias.set" && e.details.contains("staging"));
    assert!(set_by_form.is_some_and(|e| e.actor_name == "admin"), "dashboard changes are audited with the actor");
}
