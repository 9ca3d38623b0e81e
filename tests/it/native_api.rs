//! The native tracking API under `/api/v1` over HTTP: experiments, runs, batch logging,
//! environment snapshots, keyset paging, downsampled metric history, permissions, and the
//! OpenAPI document's coverage of every route.

use std::collections::{BTreeSet, HashSet};

use cairn_tests::{TestApp, UserRole, spawn_app};
use serde_json::{Value, json};

/// Calls `/api/v1` with a token and returns the status and the JSON body (null when empty).
struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Api<'a> {
    async fn admin(app: &'a TestApp) -> Self {
        Api { token: app.admin_token().await, app }
    }

    async fn as_user(app: &'a TestApp, name: &str, role: UserRole) -> Self {
        let password = format!("{name}-password");
        app.add_user(name, &password, role).await;
        Api { token: app.token_for(name, &password).await, app }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.app.client.request(method, self.app.at(&format!("/api/v1{path}"))).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        // Exports are files (JSON Lines, CSV), not one JSON document.
        let file = response.headers().contains_key("content-disposition");
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else if file {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// A request that must succeed with `status`; returns the body.
    async fn ok(&self, result: impl Future<Output = (u16, Value)>, status: u16) -> Value {
        let (got, body) = result.await;
        assert_eq!(got, status, "{body}");
        body
    }

    async fn experiment(&self, name: &str) -> String {
        let created = self.ok(self.post("/experiments", json!({"name": name})), 201).await;
        created["id"].as_str().expect("id").to_owned()
    }

    async fn run(&self, experiment_id: &str, body: Value) -> Value {
        let mut body = body;
        body["experiment_id"] = json!(experiment_id);
        self.ok(self.post("/runs", body), 201).await
    }

    async fn log(&self, run_id: &str, body: Value) {
        let (status, response) = self.post(&format!("/runs/{run_id}/log"), body).await;
        assert_eq!(status, 204, "{response}");
    }

    async fn audit_actions(&self) -> Vec<String> {
        let events = self.ok(self.get("/audit?limit=1000"), 200).await;
        events["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["action"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// Asserts a problem-details error with `status`; returns its detail.
fn problem(result: (u16, Value), status: u16) -> String {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["status"], status, "problem details: {}", result.1);
    result.1["detail"].as_str().expect("detail").to_owned()
}

fn is_rfc3339(value: &Value) -> bool {
    value.as_str().is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[tokio::test]
async fn experiments_are_created_read_renamed_retagged_deleted_and_restored() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let created =
        api.ok(api.post("/experiments", json!({"name": "vision", "tags": {"team": "cv", "gpus": 8}})), 201).await;
    let id = created["id"].as_str().expect("id as a string");
    assert_eq!(created["name"], "vision");
    assert_eq!(created["lifecycle"], "active");
    assert_eq!(created["tags"], json!({"team": "cv", "gpus": "8"}), "numbers are kept as text");
    assert_eq!(created["artifact_location"], format!("mlflow-artifacts:/{id}"));
    assert!(is_rfc3339(&created["created_at"]), "{created}");

    let got = api.ok(api.get(&format!("/experiments/{id}")), 200).await;
    assert_eq!(got, created);
    problem(api.post("/experiments", json!({"name": "vision"})).await, 409);
    problem(api.post("/experiments", json!({"name": "  "})).await, 422);
    let detail = problem(api.post("/experiments", json!({"name": 5})).await, 422);
    assert!(detail.contains("name"), "{detail}");
    problem(api.post("/experiments", json!({"name": "x", "colour": "red"})).await, 422);

    let patched = api
        .ok(
            api.patch(
                &format!("/experiments/{id}"),
                json!({"name": "vision-v2", "tags": {"team": null, "stage": "beta"}}),
            ),
            200,
        )
        .await;
    assert_eq!(patched["name"], "vision-v2");
    assert_eq!(patched["tags"], json!({"gpus": "8", "stage": "beta"}));
    problem(api.patch(&format!("/experiments/{id}"), json!({})).await, 400);
    problem(api.patch(&format!("/experiments/{id}"), json!({"name": 7})).await, 422);
    let other = api.experiment("other").await;
    problem(api.patch(&format!("/experiments/{other}"), json!({"name": "vision-v2"})).await, 409);

    let deleted = api.ok(api.delete(&format!("/experiments/{id}")), 200).await;
    assert_eq!(deleted["lifecycle"], "deleted");
    let active = api.ok(api.get("/experiments"), 200).await;
    let names: Vec<&str> =
        active["experiments"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["other", "Default"], "newest first, deleted ones hidden");
    let gone = api.ok(api.get("/experiments?lifecycle=deleted"), 200).await;
    assert_eq!(gone["experiments"][0]["name"], "vision-v2");
    problem(api.patch(&format!("/experiments/{id}"), json!({"name": "renamed-while-deleted"})).await, 422);
    let detail = problem(api.post("/runs", json!({"experiment_id": id})).await, 422);
    assert!(detail.contains("active"), "{detail}");
    let restored = api.ok(api.post(&format!("/experiments/{id}/restore"), json!({})), 200).await;
    assert_eq!(restored["lifecycle"], "active");
    problem(api.delete("/experiments/0").await, 422);

    for path in ["/experiments/999", "/experiments/abc", "/experiments/-1"] {
        problem(api.get(path).await, 404);
        problem(api.delete(path).await, 404);
        problem(api.patch(path, json!({"name": "x"})).await, 404);
        problem(api.post(&format!("{path}/restore"), json!({})).await, 404);
        problem(api.get(&format!("{path}/runs")).await, 404);
    }
    let actions = api.audit_actions().await;
    for action in ["experiment.create", "experiment.rename", "experiment.delete", "experiment.restore"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn the_experiment_list_pages_with_a_cursor_and_filters_by_name() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    for i in 0..7 {
        api.experiment(&format!("Exp-{i}")).await;
    }
    api.experiment("unrelated").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/experiments?name_like=exp-%25&limit=3&cursor={c}"),
            None => "/experiments?name_like=exp-%25&limit=3".to_owned(),
        };
        let page = api.ok(api.get(&path), 200).await;
        let names = page["experiments"].as_array().expect("list");
        assert!(names.len() <= 3);
        seen.extend(names.iter().map(|e| e["name"].as_str().expect("name").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("Exp-{i}")).collect();
    assert_eq!(seen, expected, "newest first, case-insensitive pattern, no repeats");

    problem(api.get("/experiments?limit=0").await, 400);
    problem(api.get("/experiments?limit=1001").await, 400);
    problem(api.get("/experiments?limit=ten").await, 400);
    problem(api.get("/experiments?cursor=garbage").await, 400);
    problem(api.get("/experiments?lifecycle=sometimes").await, 400);
    problem(api.get("/experiments?colour=red").await, 400);
}

#[tokio::test]
async fn runs_are_created_with_everything_and_read_back() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("runs").await;
    let parent = api.run(&exp, json!({"name": "sweep"})).await;
    let parent_id = parent["id"].as_str().expect("id");
    assert_eq!(parent_id.len(), 32, "MLflow's run id format");
    let environment = json!({
        "python_version": "3.12.4",
        "libraries": {"torch": "2.4.0", "numpy": "2.0.1"},
        "image": "ghcr.io/acme/train:1.2",
        "image_digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "cuda": {"version": "12.4", "gpus": ["H100"]},
    });
    let child = api
        .run(
            &exp,
            json!({
                "name": "trial-1",
                "start_time": "2026-01-02T03:04:05.678+01:00",
                "parent_run_id": parent_id,
                "params": {"lr": 0.01, "model": "cnn", "epochs": 10},
                "tags": {"mlflow.source.git.commit": "abc123", "owner": "ada"},
                "environment": environment,
            }),
        )
        .await;
    let id = child["id"].as_str().expect("id");
    let got = api.ok(api.get(&format!("/runs/{id}")), 200).await;
    assert_eq!(got, child, "create answers with the same detail as get");
    assert_eq!(got["name"], "trial-1");
    assert_eq!(got["experiment_id"], exp);
    assert_eq!(got["status"], "running");
    assert_eq!(got["lifecycle"], "active");
    assert_eq!(got["user"], "admin");
    assert_eq!(got["start_time"], "2026-01-02T02:04:05.678Z", "times come back in UTC");
    assert_eq!(got["end_time"], Value::Null);
    assert_eq!(got["params"], json!({"lr": "0.01", "model": "cnn", "epochs": "10"}));
    assert_eq!(got["tags"]["mlflow.source.git.commit"], "abc123");
    assert_eq!(got["tags"]["mlflow.runName"], "trial-1");
    assert_eq!(got["tags"]["mlflow.parentRunId"], parent_id);
    assert_eq!(got["parent_run_id"], parent_id);
    assert_eq!(got["environment"], environment, "the snapshot round-trips, unknown keys included");
    assert_eq!(got["metrics"], json!({}));
    assert_eq!(got["inputs"], json!([]));
    assert_eq!(got["artifact_uri"], format!("mlflow-artifacts:/{exp}/{id}/artifacts"));
    let parent = api.ok(api.get(&format!("/runs/{parent_id}")), 200).await;
    assert_eq!(parent["child_runs"], 1);
    assert_eq!(parent["parent_run_id"], Value::Null);
    assert_eq!(parent["environment"], Value::Null);
    assert!(parent["name"].as_str().is_some_and(|n| n == "sweep"));
    let unnamed = api.run(&exp, json!({})).await;
    assert!(unnamed["name"].as_str().is_some_and(|n| n.split('-').count() == 3), "a generated name: {unnamed}");

    problem(api.post("/runs", json!({"experiment_id": "999"})).await, 404);
    problem(
        api.post("/runs", json!({"experiment_id": exp, "parent_run_id": "0123456789abcdef0123456789abcdef"})).await,
        404,
    );
    problem(api.post("/runs", json!({"experiment_id": 1})).await, 422);
    problem(api.post("/runs", json!({"experiment_id": exp, "params": {"bad;key": "x"}})).await, 422);
    problem(api.post("/runs", json!({"experiment_id": exp, "params": {"k": [1]}})).await, 422);
    problem(api.post("/runs", json!({"experiment_id": exp, "start_time": 1700000000000_i64})).await, 422);
    problem(api.post("/runs", json!({"experiment_id": exp, "environment": {"python_version": 3.12}})).await, 422);
    problem(api.post("/runs", json!({"experiment_id": exp, "name": "x".repeat(251)})).await, 422);
    let runs = api.ok(api.get(&format!("/experiments/{exp}/runs")), 200).await;
    assert_eq!(runs["runs"].as_array().expect("runs").len(), 3, "failed creations leave nothing behind");
}

#[tokio::test]
async fn runs_are_updated_deleted_and_restored_with_audit() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("lifecycle").await;
    let run = api.run(&exp, json!({"name": "first"})).await;
    let path = format!("/runs/{}", run["id"].as_str().expect("id"));

    let finished =
        api.ok(api.patch(&path, json!({"status": "finished", "end_time": "2026-03-01T12:00:00Z"})), 200).await;
    assert_eq!(finished["status"], "finished");
    assert_eq!(finished["end_time"], "2026-03-01T12:00:00Z");
    let renamed = api.ok(api.patch(&path, json!({"name": "second"})), 200).await;
    assert_eq!(renamed["name"], "second");
    assert_eq!(renamed["tags"]["mlflow.runName"], "second");
    assert_eq!(renamed["status"], "finished", "fields not given stay");
    problem(api.patch(&path, json!({})).await, 400);
    problem(api.patch(&path, json!({"status": "done"})).await, 422);
    problem(api.patch(&path, json!({"status": "FINISHED"})).await, 422);
    problem(api.patch(&path, json!({"end_time": "yesterday"})).await, 422);

    api.log(run["id"].as_str().expect("id"), json!({"metrics": [{"key": "loss", "value": 1}]})).await;
    let deleted = api.ok(api.delete(&path), 200).await;
    assert_eq!(deleted["lifecycle"], "deleted");
    let detail = problem(api.post(&format!("{path}/log"), json!({"params": {"a": "1"}})).await, 422);
    assert!(detail.contains("active"), "{detail}");
    problem(api.patch(&path, json!({"name": "third"})).await, 422);
    let listed = api.ok(api.get(&format!("/experiments/{exp}/runs")), 200).await;
    assert_eq!(listed["runs"], json!([]));
    let listed = api.ok(api.get(&format!("/experiments/{exp}/runs?lifecycle=deleted")), 200).await;
    assert_eq!(listed["runs"][0]["name"], "second");
    let restored = api.ok(api.post(&format!("{path}/restore"), json!({})), 200).await;
    assert_eq!(restored["lifecycle"], "active");

    let actions = api.audit_actions().await;
    for action in ["run.create", "run.rename", "run.delete", "run.restore"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
    let logs = actions.iter().filter(|a| a.contains("/log")).count();
    assert_eq!(logs, 1, "successful logging is not audited request by request, refused logging is: {actions:?}");
}

#[tokio::test]
async fn unknown_and_malformed_run_ids_are_404_everywhere() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    for id in ["0123456789abcdef0123456789abcdef", "not-a-run"] {
        let path = format!("/runs/{id}");
        problem(api.get(&path).await, 404);
        problem(api.patch(&path, json!({"name": "x"})).await, 404);
        problem(api.delete(&path).await, 404);
        problem(api.post(&format!("{path}/restore"), json!({})).await, 404);
        problem(api.post(&format!("{path}/log"), json!({"params": {"a": "1"}})).await, 404);
        problem(api.put(&format!("{path}/environment"), json!({"python_version": "3.12"})).await, 404);
        problem(api.get(&format!("{path}/metrics/loss")).await, 404);
        problem(api.get(&format!("{path}/metrics/loss?max_points=100")).await, 404);
    }
}

#[tokio::test]
async fn batch_logging_follows_mlflow_rules_and_shows_non_finite_values() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("logging").await;
    let run = api.run(&exp, json!({})).await;
    let id = run["id"].as_str().expect("id");
    api.log(
        id,
        json!({
            "metrics": [
                {"key": "loss", "value": 0.9, "step": 0},
                {"key": "loss", "value": 0.5, "step": 1, "timestamp": "2026-01-01T00:00:00Z"},
                {"key": "weird", "value": "NaN", "step": 0},
                {"key": "up", "value": "Infinity"},
                {"key": "down", "value": "-Infinity"},
            ],
            "params": {"lr": "0.1", "batch": 32},
            "tags": {"note": "first try"},
        }),
    )
    .await;
    let got = api.ok(api.get(&format!("/runs/{id}")), 200).await;
    assert_eq!(got["metrics"]["loss"], json!({"value": 0.5, "step": 1, "timestamp": "2026-01-01T00:00:00Z"}));
    assert_eq!(got["metrics"]["weird"]["value"], Value::Null);
    assert_eq!(got["metrics"]["weird"]["non_finite"], "NaN");
    assert_eq!(got["metrics"]["up"]["non_finite"], "Infinity");
    assert_eq!(got["metrics"]["down"]["non_finite"], "-Infinity");
    assert!(is_rfc3339(&got["metrics"]["up"]["timestamp"]), "defaults to now: {got}");
    assert_eq!(got["params"], json!({"lr": "0.1", "batch": "32"}));
    assert_eq!(got["tags"]["note"], "first try");

    let log_path = format!("/runs/{id}/log");
    let log = |body: Value| api.post(&log_path, body);
    api.log(id, json!({"params": {"lr": "0.1"}})).await;
    let detail = problem(log(json!({"params": {"lr": "0.2"}})).await, 422);
    assert!(detail.contains("Changing param values is not allowed"), "{detail}");
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"key": "m", "value": i, "step": i})).collect();
    let detail = problem(log(json!({"metrics": too_many})).await, 422);
    assert!(detail.contains("at most 1000 metrics"), "{detail}");
    let params: serde_json::Map<String, Value> = (0..101).map(|i| (format!("p{i}"), json!("v"))).collect();
    let detail = problem(log(json!({"params": params})).await, 422);
    assert!(detail.contains("at most 100 params"), "{detail}");
    problem(log(json!({"metrics": [{"key": "a;b", "value": 1}]})).await, 422);
    problem(log(json!({"metrics": [{"key": "x", "value": "nan"}]})).await, 422);
    problem(log(json!({"metrics": [{"key": "x", "value": 1, "step": "one"}]})).await, 422);
    problem(log(json!({"metrics": [{"key": "x"}]})).await, 422);
    problem(log(json!({"tags": {"t": null}})).await, 422);
    let got = api.ok(api.get(&format!("/runs/{id}")), 200).await;
    assert!(got["metrics"].get("m").is_none() && got["params"].get("p0").is_none(), "refused batches log nothing");
}

#[tokio::test]
async fn environment_snapshots_round_trip_and_are_validated() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("env").await;
    let run = api.run(&exp, json!({"environment": {"python_version": "3.11.9"}})).await;
    let id = run["id"].as_str().expect("id");
    assert_eq!(run["environment"], json!({"python_version": "3.11.9"}));

    let snapshot = json!({
        "python_version": "3.12.4",
        "libraries": {"torch": "2.4.0", "transformers": "4.44.0"},
        "image_digest": "sha256:0123",
        "platform": "linux-x86_64",
        "driver": {"nvidia": "550.54.15"},
        "env_vars": ["CUDA_VISIBLE_DEVICES"],
    });
    let stored = api.ok(api.put(&format!("/runs/{id}/environment"), snapshot.clone()), 200).await;
    assert_eq!(stored, snapshot);
    let got = api.ok(api.get(&format!("/runs/{id}")), 200).await;
    assert_eq!(got["environment"], snapshot, "replaced, not merged");

    let path = format!("/runs/{id}/environment");
    problem(api.put(&path, json!(["torch"])).await, 422);
    problem(api.put(&path, json!({"libraries": {"torch": 2}})).await, 422);
    let detail = problem(api.put(&path, json!({"lock": "x".repeat(70_000)})).await, 422);
    assert!(detail.contains("bytes"), "{detail}");
    api.ok(api.delete(&format!("/runs/{id}")), 200).await;
    problem(api.put(&path, json!({"python_version": "3.13"})).await, 422);
}

#[tokio::test]
async fn run_search_uses_the_mlflow_grammar_and_explains_bad_filters() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("search").await;
    for (name, acc, model) in [("a", 0.7, "cnn"), ("b", 0.95, "cnn"), ("c", 0.91, "mlp"), ("d", 0.2, "cnn")] {
        let run = api.run(&exp, json!({"name": name, "params": {"model": model}})).await;
        api.log(run["id"].as_str().expect("id"), json!({"metrics": [{"key": "acc", "value": acc}]})).await;
    }
    api.run(&exp, json!({"name": "no-metric"})).await;
    let names = |page: &Value| -> Vec<String> {
        page["runs"].as_array().expect("runs").iter().map(|r| r["name"].as_str().expect("name").to_owned()).collect()
    };
    let q = |query: &str| format!("/experiments/{exp}/runs?{query}");

    let found = api
        .ok(
            api.get(&q(
                "filter=metrics.acc%20%3E%200.5%20AND%20params.model%20%3D%20'cnn'&order_by=metrics.acc%20DESC",
            )),
            200,
        )
        .await;
    assert_eq!(names(&found), ["b", "a"]);
    assert_eq!(found["next_cursor"], Value::Null);
    assert_eq!(found["runs"][0]["metrics"]["acc"]["value"], 0.95);
    assert_eq!(found["runs"][0]["params"]["model"], "cnn");

    let ordered = api.ok(api.get(&q("order_by=metrics.acc")), 200).await;
    assert_eq!(names(&ordered), ["d", "a", "c", "b", "no-metric"], "ascending, runs without the metric last");
    let ordered = api.ok(api.get(&q("order_by=params.model%20DESC&order_by=attributes.run_name")), 200).await;
    assert_eq!(names(&ordered), ["c", "a", "b", "d", "no-metric"], "repeated order_by parameters");

    for (filter, order_by) in [("metrics.acc %3E%3E 1", None), ("bogus.x = 1", None), ("", Some("nonsense.key"))] {
        let query = match order_by {
            Some(order) => format!("order_by={order}"),
            None => format!("filter={filter}"),
        };
        let raw_filter = filter.replace("%3E", ">");
        let expected = match order_by {
            Some(order) => {
                cairn_core::search::parse_run_order_by(order).expect_err("invalid order_by").message().to_owned()
            }
            None => cairn_core::search::parse_run_filter(&raw_filter).expect_err("invalid filter").message().to_owned(),
        };
        let detail = problem(api.get(&q(&query)).await, 400);
        assert_eq!(detail, expected, "the parser's own message");
    }
    problem(api.get(&q("limit=0")).await, 400);
    problem(api.get(&q("cursor=nope")).await, 400);
    problem(api.get(&q("lifecycle=maybe")).await, 400);
    problem(api.get(&q("max_results=5")).await, 400);
}

/// Pages through every run with `query`, returning the pages' run ids in order.
async fn all_pages(api: &Api<'_>, exp: &str, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/experiments/{exp}/runs?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.ok(api.get(&path), 200).await;
        let runs = page["runs"].as_array().expect("runs");
        assert!(runs.len() <= limit);
        ids.extend(runs.iter().map(|r| r["id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn keyset_paging_visits_250_runs_once_in_any_order() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("many").await;
    let other = api.experiment("other").await;
    api.run(&other, json!({"name": "elsewhere"})).await;
    let mut all = Vec::new();
    for chunk in (0..250).collect::<Vec<i64>>().chunks(25) {
        let created = futures::future::join_all(chunk.iter().map(|i| {
            // Start times repeat in tens, so ties must be broken for the order to be total.
            let start = chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + (i / 10) * 1000).expect("time");
            let body = json!({"name": format!("run-{i:03}"), "start_time": start.to_rfc3339(), "params": {"group": (i % 7).to_string()}});
            api.run(&exp, body)
        }))
        .await;
        for (i, run) in chunk.iter().zip(created) {
            let id = run["id"].as_str().expect("id").to_owned();
            // Every third run has no metric; the others repeat values, so ties and nulls both occur.
            if i % 3 != 0 {
                api.log(&id, json!({"metrics": [{"key": "score", "value": (i % 11) as f64 / 10.0}]})).await;
            }
            all.push(id);
        }
    }
    let everything: HashSet<String> = all.iter().cloned().collect();

    let ids = all_pages(&api, &exp, "", 37).await;
    assert_eq!(ids.len(), 250);
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), everything, "each run exactly once");
    let first_page = api.ok(api.get(&format!("/experiments/{exp}/runs?limit=250")), 200).await;
    let unpaged: Vec<&str> =
        first_page["runs"].as_array().expect("runs").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, unpaged, "pages concatenate to the one-page order");

    for order in [
        "order_by=metrics.score",
        "order_by=metrics.score%20DESC&order_by=params.group",
        "order_by=attributes.run_name%20DESC",
    ] {
        let ids = all_pages(&api, &exp, order, 23).await;
        assert_eq!(ids.len(), 250, "{order}");
        assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), everything, "{order}: each run exactly once");
    }
    let by_score = all_pages(&api, &exp, "order_by=metrics.score", 23).await;
    let mut scores = Vec::new();
    for id in &by_score {
        let run = api.ok(api.get(&format!("/runs/{id}")), 200).await;
        scores.push(run["metrics"]["score"]["value"].as_f64());
    }
    let present: Vec<f64> = scores.iter().map_while(|s| *s).collect();
    assert!(present.windows(2).all(|w| w[0] <= w[1]), "ascending across pages");
    assert!(scores[present.len()..].iter().all(Option::is_none), "runs without the metric come last");

    let filtered = all_pages(&api, &exp, "filter=params.group%20%3D%20'3'&order_by=metrics.score%20DESC", 4).await;
    assert_eq!(filtered.len(), (0..250).filter(|i| i % 7 == 3).count());
    assert_eq!(filtered.iter().collect::<BTreeSet<_>>().len(), filtered.len());
}

#[tokio::test]
async fn metric_history_is_paged_or_downsampled_keeping_extremes_and_ends() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("charts").await;
    let run = api.run(&exp, json!({})).await;
    let id = run["id"].as_str().expect("id");
    const N: i64 = 20_000;
    let value = |step: i64| match step {
        7_777 => 1_000.0,
        12_345 => -1_000.0,
        _ => ((step as f64) / 500.0).sin(),
    };
    let batches: Vec<Value> = (0..N / 1000)
        .map(|b| {
            let points: Vec<Value> = (b * 1000..(b + 1) * 1000)
                .map(|s| json!({"key": "train/loss", "value": value(s), "step": s}))
                .collect();
            json!({"metrics": points})
        })
        .collect();
    for chunk in batches.chunks(5) {
        futures::future::join_all(chunk.iter().map(|b| api.log(id, b.clone()))).await;
    }
    let path = format!("/runs/{id}/metrics/train%2Floss");

    let chart = api.ok(api.get(&format!("{path}?max_points=100")), 200).await;
    assert_eq!(chart["key"], "train/loss");
    assert_eq!(chart["downsampled"], true);
    assert_eq!(chart["total_points"], N);
    let points = chart["points"].as_array().expect("points");
    assert!(points.len() <= 100 && points.len() >= 25, "{} points", points.len());
    let steps: Vec<i64> = points.iter().map(|p| p["step"].as_i64().expect("step")).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "in step order");
    assert_eq!((steps.first(), steps.last()), (Some(&0), Some(&(N - 1))), "both ends kept");
    let values: Vec<f64> = points.iter().filter_map(|p| p["value"].as_f64()).collect();
    assert!(values.contains(&1_000.0) && values.contains(&-1_000.0), "global extremes kept");
    let spike = points.iter().find(|p| p["value"] == 1_000.0).expect("max point");
    assert_eq!(spike["step"], 7_777, "the extreme keeps its own step");
    assert!(is_rfc3339(&spike["timestamp"]));

    let whole = api.ok(api.get(&format!("{path}?max_points=50000")), 200).await;
    assert_eq!(whole["downsampled"], false, "a series that fits comes back whole");
    assert_eq!(whole["points"].as_array().expect("points").len(), N as usize);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}?limit=7000&cursor={c}"),
            None => format!("{path}?limit=7000"),
        };
        let page = api.ok(api.get(&page_path), 200).await;
        assert_eq!(page["downsampled"], false);
        seen.extend(page["points"].as_array().expect("points").iter().map(|p| p["step"].as_i64().expect("step")));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (0..N).collect::<Vec<_>>(), "pages cover the history once, in order");

    let empty = api.ok(api.get(&format!("/runs/{id}/metrics/never-logged?max_points=100")), 200).await;
    assert_eq!((empty["points"].clone(), empty["total_points"].clone()), (json!([]), json!(0)));
    problem(api.get(&format!("{path}?max_points=3")).await, 400);
    problem(api.get(&format!("{path}?max_points=100001")).await, 400);
    problem(api.get(&format!("{path}?max_points=-5")).await, 400);
    problem(api.get(&format!("{path}?max_points=100&cursor=abc")).await, 400);
    problem(api.get(&format!("{path}?limit=100001")).await, 400);
    problem(api.get(&format!("{path}?cursor=abc")).await, 400);
}

#[tokio::test]
async fn downsampling_shows_non_finite_values_but_ranks_only_numbers() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let exp = api.experiment("nan").await;
    let run = api.run(&exp, json!({})).await;
    let id = run["id"].as_str().expect("id");
    let points: Vec<Value> = (0..1000)
        .map(|s| {
            let value = match s {
                0 => json!("NaN"),
                500 => json!("-Infinity"),
                _ => json!(s % 10),
            };
            json!({"key": "m", "value": value, "step": s})
        })
        .collect();
    api.log(id, json!({"metrics": points})).await;
    let chart = api.ok(api.get(&format!("/runs/{id}/metrics/m?max_points=8")), 200).await;
    let points = chart["points"].as_array().expect("points");
    assert_eq!(points[0], json!({"step": 0, "timestamp": points[0]["timestamp"], "value": null, "non_finite": "NaN"}));
    assert!(points.iter().any(|p| p["non_finite"] == "-Infinity" && p["step"] == 500), "{points:?}");
    assert!(
        points.iter().any(|p| p["value"].as_f64() == Some(9.0)),
        "the bucket maximum is a number, not NaN: {points:?}"
    );
}

#[tokio::test]
async fn viewers_read_everything_but_change_nothing() {
    let app = spawn_app().await;
    let admin = Api::admin(&app).await;
    let exp = admin.experiment("shared").await;
    let run = admin.run(&exp, json!({"name": "r"})).await;
    let id = run["id"].as_str().expect("id");
    admin.log(id, json!({"metrics": [{"key": "loss", "value": 1.0}]})).await;

    let viewer = Api::as_user(&app, "vic", UserRole::Viewer).await;
    viewer.ok(viewer.get("/experiments"), 200).await;
    viewer.ok(viewer.get(&format!("/experiments/{exp}")), 200).await;
    viewer.ok(viewer.get(&format!("/experiments/{exp}/runs")), 200).await;
    viewer.ok(viewer.get(&format!("/runs/{id}")), 200).await;
    viewer.ok(viewer.get(&format!("/runs/{id}/metrics/loss?max_points=10")), 200).await;
    problem(viewer.post("/experiments", json!({"name": "mine"})).await, 403);
    problem(viewer.patch(&format!("/experiments/{exp}"), json!({"name": "x"})).await, 403);
    problem(viewer.delete(&format!("/experiments/{exp}")).await, 403);
    problem(viewer.post(&format!("/experiments/{exp}/restore"), json!({})).await, 403);
    problem(viewer.post("/runs", json!({"experiment_id": exp})).await, 403);
    problem(viewer.patch(&format!("/runs/{id}"), json!({"status": "killed"})).await, 403);
    problem(viewer.delete(&format!("/runs/{id}")).await, 403);
    problem(viewer.post(&format!("/runs/{id}/restore"), json!({})).await, 403);
    problem(viewer.post(&format!("/runs/{id}/log"), json!({"params": {"a": "1"}})).await, 403);
    problem(viewer.put(&format!("/runs/{id}/environment"), json!({})).await, 403);
    let unchanged = admin.ok(admin.get(&format!("/runs/{id}")), 200).await;
    assert_eq!((unchanged["status"].clone(), unchanged["params"].clone()), (json!("running"), json!({})));

    let anonymous = app.client.get(app.at("/api/v1/experiments")).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
}

/// Every route registered under `/api/v1`, as (method, OpenAPI path). Adding a route means
/// adding it here; the test below then checks the document and the router agree with it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/me"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("patch", "/api/v1/users/{username}"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit/export"),
    ("get", "/api/v1/experiments"),
    ("post", "/api/v1/experiments"),
    ("get", "/api/v1/experiments/{id}"),
    ("patch", "/api/v1/experiments/{id}"),
    ("delete", "/api/v1/experiments/{id}"),
    ("post", "/api/v1/experiments/{id}/restore"),
    ("get", "/api/v1/experiments/{id}/runs"),
    ("post", "/api/v1/runs"),
    ("get", "/api/v1/runs/{id}"),
    ("patch", "/api/v1/runs/{id}"),
    ("delete", "/api/v1/runs/{id}"),
    ("post", "/api/v1/runs/{id}/restore"),
    ("post", "/api/v1/runs/{id}/log"),
    ("put", "/api/v1/runs/{id}/environment"),
    ("get", "/api/v1/runs/{id}/metrics/{key}"),
    ("get", "/api/v1/models"),
    ("get", "/api/v1/models/{name}"),
    ("patch", "/api/v1/models/{name}"),
    ("get", "/api/v1/models/{name}/versions"),
    ("get", "/api/v1/models/{name}/versions/{version}"),
    ("patch", "/api/v1/models/{name}/versions/{version}"),
    ("put", "/api/v1/models/{name}/aliases/{alias}"),
    ("delete", "/api/v1/models/{name}/aliases/{alias}"),
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/jobs/{id}/cancel"),
    ("post", "/api/v1/jobs/{id}/retry"),
    ("get", "/api/v1/jobs/{id}/logs"),
    ("post", "/api/v1/job-templates"),
    ("get", "/api/v1/job-templates"),
    ("get", "/api/v1/job-templates/{name}"),
    ("post", "/api/v1/job-templates/{name}/jobs"),
    ("get", "/api/v1/usage"),
    ("post", "/api/v1/runs/{id}/retrain"),
    ("get", "/api/v1/datasets"),
    ("get", "/api/v1/datasets/{name}"),
    ("post", "/api/v1/datasets/{name}/versions"),
    ("get", "/api/v1/datasets/{name}/versions/{version}"),
    ("get", "/api/v1/datasets/{name}/diff"),
    ("post", "/api/v1/blobs/missing"),
    ("put", "/api/v1/blobs/{sha256}"),
    ("post", "/api/v1/runs/{id}/datasets"),
    ("get", "/api/v1/runs/{id}/datasets"),
    ("get", "/api/v1/lineage"),
    ("get", "/api/v1/models/{name}/versions/{version}/provenance"),
    ("get", "/api/v1/who-trained"),
    ("post", "/api/v1/deployments"),
    ("get", "/api/v1/deployments"),
    ("get", "/api/v1/deployments/{name}"),
    ("patch", "/api/v1/deployments/{name}"),
    ("delete", "/api/v1/deployments/{name}"),
    ("post", "/api/v1/deployments/{name}/rollback"),
    ("get", "/api/v1/deployments/{name}/revisions"),
    ("get", "/api/v1/deployments/{name}/logs"),
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/{project}"),
    ("patch", "/api/v1/projects/{project}"),
    ("get", "/api/v1/projects/{project}/members"),
    ("put", "/api/v1/projects/{project}/members/{username}"),
    ("delete", "/api/v1/projects/{project}/members/{username}"),
    ("get", "/api/v1/projects/{project}/service-accounts"),
    ("post", "/api/v1/projects/{project}/service-accounts"),
    ("post", "/api/v1/projects/{project}/service-accounts/{name}/tokens"),
    ("delete", "/api/v1/projects/{project}/service-accounts/{name}/tokens/{id}"),
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_routes() {
    let app = spawn_app().await;
    let response = app.client.get(app.at("/api/v1/openapi.json")).send().await.expect("request");
    assert_eq!(response.status(), 200, "public: the document holds no data");
    let doc: Value = response.json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().into_iter().flatten().map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(documented, expected, "the document and the route list differ");
    for (method, path) in &documented {
        let operation = &doc["paths"][path][method];
        assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Each documented operation is routed: with credentials it reaches a handler (not the
    // fallback's 404 nor a 405); without, the guard answers 401, except for the document.
    let api = Api::admin(&app).await;
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "0123456789abcdef0123456789abcdef")
            .replace("{username}", "nobody")
            .replace("{key}", "loss");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let body = (method != reqwest::Method::GET && method != reqwest::Method::DELETE).then(|| json!({}));
        let (status, answer) = api.send(method.clone(), concrete.trim_start_matches("/api/v1"), body).await;
        assert_ne!(status, 405, "{method} {path}: {answer}");
        assert!(!answer["detail"].as_str().unwrap_or("").contains("no API route"), "{method} {path} is not routed");
        let anonymous = app.client.request(method.clone(), app.at(&concrete)).send().await.expect("request");
        let expected = if path.ends_with("/openapi.json") { 200 } else { 401 };
        assert_eq!(anonymous.status().as_u16(), expected, "{method} {path} without credentials");
    }
}
