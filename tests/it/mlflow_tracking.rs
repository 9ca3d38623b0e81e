//! The MLflow-compatible tracking API over HTTP: shapes, status codes and error codes.

use cairn_tests::{TestApp, UserRole, spawn_app};
use serde_json::{Value, json};

/// Calls the MLflow API as the official client does.
struct Mlflow<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Mlflow<'a> {
    async fn admin(app: &'a TestApp) -> Self {
        Mlflow { token: app.admin_token().await, app }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(self.app.at(&format!("/api/2.0/mlflow/{path}")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let response = self
            .app
            .client
            .get(self.app.at(&format!("/api/2.0/mlflow/{path_and_query}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.post(path, body).await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    async fn experiment(&self, name: &str) -> String {
        let created = self.ok("experiments/create", json!({"name": name})).await;
        created["experiment_id"].as_str().expect("experiment_id").to_owned()
    }

    async fn run(&self, experiment_id: &str, name: &str) -> String {
        let created =
            self.ok("runs/create", json!({"experiment_id": experiment_id, "run_name": name, "start_time": 1000})).await;
        created["run"]["info"]["run_id"].as_str().expect("run_id").to_owned()
    }
}

fn assert_error(result: (u16, Value), status: u16, code: &str) -> String {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error_code"], code, "{}", result.1);
    result.1["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn experiments_lifecycle_and_errors() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let id = api.experiment("vision").await;
    assert_error(api.post("experiments/create", json!({"name": "vision"})).await, 400, "RESOURCE_ALREADY_EXISTS");
    assert_error(api.post("experiments/create", json!({"name": ""})).await, 400, "INVALID_PARAMETER_VALUE");
    assert_error(api.post("experiments/create", json!({})).await, 400, "INVALID_PARAMETER_VALUE");

    let (status, got) = api.get(&format!("experiments/get?experiment_id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["experiment"]["name"], "vision");
    assert_eq!(got["experiment"]["artifact_location"], format!("mlflow-artifacts:/{id}"));
    assert!(got["experiment"]["creation_time"].is_i64(), "int64 as a JSON number");
    assert_error(api.get("experiments/get?experiment_id=999").await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(api.get("experiments/get?experiment_id=abc").await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(api.get("experiments/get-by-name?experiment_name=nope").await, 404, "RESOURCE_DOES_NOT_EXIST");

    api.ok("experiments/set-experiment-tag", json!({"experiment_id": id, "key": "team", "value": "cv"})).await;
    let (_, got) = api.get("experiments/get-by-name?experiment_name=vision").await;
    assert_eq!(got["experiment"]["tags"], json!([{"key": "team", "value": "cv"}]));
    api.ok("experiments/delete-experiment-tag", json!({"experiment_id": id, "key": "team"})).await;
    let missing = api.post("experiments/delete-experiment-tag", json!({"experiment_id": id, "key": "team"})).await;
    assert_error(missing, 404, "RESOURCE_DOES_NOT_EXIST");

    api.ok("experiments/update", json!({"experiment_id": id, "new_name": "vision-v2"})).await;
    let (_, got) = api.get(&format!("experiments/get?experiment_id={id}")).await;
    assert_eq!(got["experiment"]["name"], "vision-v2");

    api.ok("experiments/delete", json!({"experiment_id": id})).await;
    let (_, got) = api.get(&format!("experiments/get?experiment_id={id}")).await;
    assert_eq!(got["experiment"]["lifecycle_stage"], "deleted");
    let message =
        assert_error(api.post("runs/create", json!({"experiment_id": id})).await, 400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("active"), "{message}");
    api.ok("experiments/restore", json!({"experiment_id": id})).await;
    assert_error(api.post("experiments/delete", json!({"experiment_id": "0"})).await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn experiment_search_filters_orders_and_pages() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    for i in 0..5 {
        api.experiment(&format!("exp-{i}")).await;
    }
    let found = api
        .ok("experiments/search", json!({"filter": "name LIKE 'exp-%'", "order_by": ["name DESC"], "max_results": 2}))
        .await;
    let names: Vec<&str> =
        found["experiments"].as_array().expect("list").iter().map(|e| e["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["exp-4", "exp-3"]);
    let token = found["next_page_token"].as_str().expect("more pages");
    let next = api
        .ok(
            "experiments/search",
            json!({"filter": "name LIKE 'exp-%'", "order_by": ["name DESC"], "max_results": 2, "page_token": token}),
        )
        .await;
    assert_eq!(next["experiments"][0]["name"], "exp-2");
    let (status, all) = api.get("experiments/search?max_results=100").await;
    assert_eq!(status, 200);
    assert_eq!(all["experiments"].as_array().expect("list").len(), 6, "five plus Default");
    assert!(all.get("next_page_token").is_none());
    assert_error(api.post("experiments/search", json!({"filter": "name ~ 'x'"})).await, 400, "INVALID_PARAMETER_VALUE");
    assert_error(
        api.post("experiments/search", json!({"page_token": "garbage!"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}

#[tokio::test]
async fn runs_lifecycle_params_tags_and_metrics() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("runs").await;
    let run = api.run(&exp, "first").await;

    let (status, got) = api.get(&format!("runs/get?run_id={run}&run_uuid={run}")).await;
    assert_eq!(status, 200);
    let info = &got["run"]["info"];
    assert_eq!((info["run_id"].as_str(), info["run_uuid"].as_str()), (Some(run.as_str()), Some(run.as_str())));
    assert_eq!(info["status"], "RUNNING");
    assert_eq!(info["artifact_uri"], format!("mlflow-artifacts:/{exp}/{run}/artifacts"));
    assert_eq!(got["run"]["data"]["tags"], json!([{"key": "mlflow.runName", "value": "first"}]));

    let batch = json!({
        "run_id": run,
        "metrics": [
            {"key": "loss", "value": 0.5, "timestamp": 10, "step": 1},
            {"key": "loss", "value": 0.25, "timestamp": "20", "step": "2"},
            {"key": "loss", "value": 0.9, "timestamp": 5, "step": 0},
            {"key": "odd", "value": "NaN", "timestamp": 1, "step": 0},
            {"key": "big", "value": "-Infinity", "timestamp": 1, "step": 0},
            {"key": "huge", "value": 1099511627776i64, "timestamp": 1099511627776i64, "step": 1099511627776i64}
        ],
        "params": [{"key": "lr", "value": "0.01"}, {"key": "lr", "value": "0.01"}],
        "tags": [{"key": "team", "value": "a"}, {"key": "team", "value": "b"}]
    });
    api.ok("runs/log-batch", batch).await;
    api.ok("runs/log-metric", json!({"run_id": run, "key": "acc", "value": 0.7, "timestamp": 1, "step": 3})).await;
    api.ok("runs/log-parameter", json!({"run_id": run, "key": "lr", "value": "0.01"})).await;
    let message = assert_error(
        api.post("runs/log-parameter", json!({"run_id": run, "key": "lr", "value": "0.02"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert!(message.contains("Changing param values is not allowed"), "{message}");

    let (_, got) = api.get(&format!("runs/get?run_id={run}")).await;
    let metrics = got["run"]["data"]["metrics"].as_array().expect("metrics").clone();
    let metric = |key: &str| metrics.iter().find(|m| m["key"] == key).unwrap_or_else(|| panic!("{key}")).clone();
    assert_eq!(metric("loss")["value"], 0.25, "latest = greatest step");
    assert_eq!(metric("loss")["step"], 2);
    assert_eq!(metric("odd")["value"], "NaN");
    assert_eq!(metric("big")["value"], "-Infinity");
    assert_eq!(metric("huge")["step"], 1099511627776i64, "2^40 round-trips as a number");
    let tags = &got["run"]["data"]["tags"];
    assert!(tags.as_array().expect("tags").contains(&json!({"key": "team", "value": "b"})), "last tag wins: {tags}");

    let history = api.get(&format!("metrics/get-history?run_id={run}&metric_key=loss")).await.1;
    let steps: Vec<i64> =
        history["metrics"].as_array().expect("history").iter().map(|m| m["step"].as_i64().expect("step")).collect();
    assert_eq!(steps, [0, 1, 2]);

    let updated = api
        .ok("runs/update", json!({"run_id": run, "status": "FINISHED", "end_time": 5000, "run_name": "renamed"}))
        .await;
    assert_eq!(updated["run_info"]["status"], "FINISHED");
    assert_eq!(updated["run_info"]["run_name"], "renamed");
    assert_error(
        api.post("runs/update", json!({"run_id": run, "status": "DONE"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );

    api.ok("runs/delete-tag", json!({"run_id": run, "key": "team"})).await;
    assert_error(
        api.post("runs/delete-tag", json!({"run_id": run, "key": "team"})).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );

    api.ok("runs/delete", json!({"run_id": run})).await;
    let message = assert_error(
        api.post("runs/log-metric", json!({"run_id": run, "key": "x", "value": 1, "timestamp": 1})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert!(message.contains("must be in the 'active' state"), "{message}");
    api.ok("runs/restore", json!({"run_id": run})).await;
    api.ok("runs/log-metric", json!({"run_id": run, "key": "x", "value": 1, "timestamp": 1})).await;

    assert_error(api.get("runs/get?run_id=0123456789abcdef0123456789abcdef").await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(api.get("runs/get").await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn log_batch_enforces_mlflow_limits_and_is_all_or_nothing() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let run = api.run("0", "limits").await;
    let metrics: Vec<Value> = (0..1001).map(|i| json!({"key": "m", "value": i, "timestamp": 1, "step": i})).collect();
    let message = assert_error(
        api.post("runs/log-batch", json!({"run_id": run, "metrics": metrics})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert!(message.contains("at most 1000 metrics"), "{message}");
    let params: Vec<Value> = (0..101).map(|i| json!({"key": format!("p{i}"), "value": "v"})).collect();
    assert_error(
        api.post("runs/log-batch", json!({"run_id": run, "params": params})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let bad_key = json!({"run_id": run, "metrics": [{"key": "ok", "value": 1, "timestamp": 1}], "params": [{"key": "bad;key", "value": "1"}]});
    assert_error(api.post("runs/log-batch", bad_key).await, 400, "INVALID_PARAMETER_VALUE");
    api.ok("runs/log-batch", json!({"run_id": run, "params": [{"key": "p", "value": "1"}]})).await;
    let conflict = json!({"run_id": run, "metrics": [{"key": "after", "value": 1, "timestamp": 1}], "params": [{"key": "p", "value": "2"}]});
    assert_error(api.post("runs/log-batch", conflict).await, 400, "INVALID_PARAMETER_VALUE");
    let (_, got) = api.get(&format!("runs/get?run_id={run}")).await;
    assert!(got["run"]["data"].get("metrics").is_none(), "the refused batch wrote nothing: {got}");
    let missing_timestamp = json!({"run_id": run, "metrics": [{"key": "m", "value": 1}]});
    assert_error(api.post("runs/log-batch", missing_timestamp).await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn search_runs_with_the_mlflow_grammar() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("search").await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let run = api.run(&exp, &format!("run-{i:02}")).await;
        let batch = json!({
            "run_id": run,
            "metrics": [{"key": "acc", "value": f64::from(i) / 10.0, "timestamp": 1, "step": 0}],
            "params": [{"key": "model", "value": if i % 2 == 0 { "cnn" } else { "mlp" }}],
            "tags": [{"key": "stage", "value": if i < 6 { "dev" } else { "prod" }}]
        });
        api.ok("runs/log-batch", batch).await;
        ids.push(run);
    }
    let search = |filter: &str, order: Vec<&str>| json!({"experiment_ids": [exp], "filter": filter, "order_by": order, "max_results": 100});
    let names = |v: &Value| -> Vec<String> {
        v["runs"].as_array().map_or_else(Vec::new, |runs| {
            runs.iter().map(|r| r["info"]["run_name"].as_str().expect("name").to_owned()).collect()
        })
    };

    let found =
        api.ok("runs/search", search("metrics.acc > 0.75 and params.model = 'cnn'", vec!["metrics.acc DESC"])).await;
    assert_eq!(names(&found), ["run-10", "run-08"]);
    let found = api
        .ok(
            "runs/search",
            search("tags.stage = 'prod' AND attributes.run_name LIKE 'run-1%'", vec!["attributes.run_name ASC"]),
        )
        .await;
    assert_eq!(names(&found), ["run-10", "run-11"]);
    let found = api
        .ok("runs/search", search("tags.`mlflow.runName` ILIKE 'RUN-0_'", vec!["params.model ASC", "metrics.acc ASC"]))
        .await;
    assert_eq!(names(&found).len(), 10);
    assert_eq!(names(&found)[0], "run-00");
    let in_list = format!("attributes.run_id IN ('{}', '{}')", ids[3], ids[5]);
    let found = api.ok("runs/search", search(&in_list, vec!["metrics.acc ASC"])).await;
    assert_eq!(names(&found), ["run-03", "run-05"]);
    let found = api.ok("runs/search", search("attributes.status = 'RUNNING' and metrics.acc <= 0.1", vec![])).await;
    assert_eq!(names(&found).len(), 2);
    let none = api.ok("runs/search", search("metrics.missing > 0", vec![])).await;
    assert!(none.get("runs").is_none(), "empty result omits `runs`: {none}");

    // Default order: newest start first; then pages of 5 with tokens.
    let mut seen = search_all_pages(&api, &exp, &[], 5).await;
    assert_eq!(seen.len(), 12);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12, "pages neither repeat nor skip runs");

    // Ordered by a metric that some runs lack: those come last, and pages that cross from the
    // runs with the metric to the runs without it (or start past them) neither repeat nor skip.
    for i in 0..4 {
        api.run(&exp, &format!("bare-{i}")).await;
    }
    let unpaged = names(&api.ok("runs/search", search("", vec!["metrics.acc DESC"])).await);
    assert_eq!(unpaged.len(), 16);
    assert_eq!(unpaged[..2], ["run-11", "run-10"]);
    assert!(unpaged[12..].iter().all(|n| n.starts_with("bare-")), "runs without the metric last: {unpaged:?}");
    for page_size in [5, 6, 12, 13] {
        assert_eq!(
            search_all_pages(&api, &exp, &["metrics.acc DESC"], page_size).await,
            unpaged,
            "pages of {page_size}"
        );
    }

    assert_error(api.post("runs/search", search("metrics.acc >> 1", vec![])).await, 400, "INVALID_PARAMETER_VALUE");
    assert_error(
        api.post("runs/search", search("params.model IN ('cnn')", vec![])).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        api.post("runs/search", search("", vec!["metrics.acc SIDEWAYS"])).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let too_many = json!({"experiment_ids": [exp], "max_results": 100000});
    assert_error(api.post("runs/search", too_many).await, 400, "INVALID_PARAMETER_VALUE");

    api.ok("runs/delete", json!({"run_id": ids[0]})).await;
    let deleted = api.ok("runs/search", json!({"experiment_ids": [exp], "run_view_type": "DELETED_ONLY"})).await;
    assert_eq!(names(&deleted), ["run-00"]);
}

#[tokio::test]
async fn metric_history_pages_follow_tokens() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let run = api.run("0", "history").await;
    for chunk in 0..3 {
        let metrics: Vec<Value> =
            (0..1000).map(|i| json!({"key": "loss", "value": i, "timestamp": 7, "step": chunk * 1000 + i})).collect();
        api.ok("runs/log-batch", json!({"run_id": run, "metrics": metrics})).await;
    }
    let mut steps = Vec::new();
    let mut query = format!("metrics/get-history?run_id={run}&metric_key=loss&max_results=700");
    loop {
        let (status, page) = api.get(&query).await;
        assert_eq!(status, 200, "{page}");
        steps.extend(page["metrics"].as_array().expect("metrics").iter().map(|m| m["step"].as_i64().expect("step")));
        match page["next_page_token"].as_str() {
            Some(token) => {
                query = format!("metrics/get-history?run_id={run}&metric_key=loss&max_results=700&page_token={token}")
            }
            None => break,
        }
    }
    assert_eq!(steps, (0..3000).collect::<Vec<i64>>());
    let bad = api.get(&format!("metrics/get-history?run_id={run}&metric_key=loss&page_token=zzz")).await;
    assert_error(bad, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn inputs_outputs_and_logged_models() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("models").await;
    let run = api.run(&exp, "train").await;
    let dataset = json!({"name": "iris", "digest": "abc123", "source_type": "local", "source": "{\"uri\": \"/data\"}", "schema": "{}"});
    let inputs = json!({"run_id": run, "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": dataset}]});
    api.ok("runs/log-inputs", inputs.clone()).await;
    api.ok("runs/log-inputs", inputs).await;
    let (_, got) = api.get(&format!("runs/get?run_id={run}")).await;
    let inputs = got["run"]["inputs"]["dataset_inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 1, "logging the same dataset twice keeps one input");
    assert_eq!(inputs[0]["dataset"]["digest"], "abc123");
    let found = api.ok("runs/search", json!({"experiment_ids": [exp], "filter": "datasets.context = 'train'"})).await;
    assert_eq!(found["runs"].as_array().expect("runs").len(), 1);

    let created = api.ok("logged-models", json!({"experiment_id": exp, "name": "model", "source_run_id": run, "params": [{"key": "k", "value": "v"}]})).await;
    let info = &created["model"]["info"];
    let model_id = info["model_id"].as_str().expect("model_id").to_owned();
    assert!(model_id.starts_with("m-") && model_id.len() == 34, "{model_id}");
    assert_eq!(info["status"], "LOGGED_MODEL_PENDING");
    assert_eq!(info["artifact_uri"], format!("mlflow-artifacts:/{exp}/models/{model_id}/artifacts"));
    assert_eq!(created["model"]["data"]["params"], json!([{"key": "k", "value": "v"}]));

    let response = app
        .client
        .patch(app.at(&format!("/api/2.0/mlflow/logged-models/{model_id}")))
        .bearer_auth(&api.token)
        .json(&json!({"model_id": model_id, "status": "LOGGED_MODEL_READY"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let (_, got) = api.get(&format!("logged-models/{model_id}")).await;
    assert_eq!(got["model"]["info"]["status"], "LOGGED_MODEL_READY");
    api.ok("runs/outputs", json!({"run_id": run, "models": [{"model_id": model_id, "step": 0}]})).await;
    let (_, got) = api.get(&format!("runs/get?run_id={run}")).await;
    assert_eq!(got["run"]["outputs"]["model_outputs"][0]["model_id"], model_id);

    let found = api.ok("logged-models/search", json!({"experiment_ids": [exp], "filter": "name = 'model'"})).await;
    assert_eq!(found["models"].as_array().expect("models").len(), 1);
    let none = api.ok("logged-models/search", json!({"experiment_ids": [exp], "filter": "name = 'other'"})).await;
    assert_eq!(none["models"], json!([]));
    assert_error(api.get("logged-models/m-unknown").await, 404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn bad_bodies_get_mlflow_errors_never_5xx() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let url = app.at("/api/2.0/mlflow/experiments/create");
    let send = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&api.token).header("content-type", content_type).body(body).send()
    };
    for (body, content_type) in [
        ("{\"name\": ", "application/json"),
        ("{\"name\": 5}", "application/json"),
        ("{\"name\": \"x\"}", "text/plain"),
    ] {
        let response = send(body, content_type).await.expect("request");
        assert_eq!(response.status(), 400, "{body} {content_type}");
        let value: Value = response.json().await.expect("json");
        assert_eq!(value["error_code"], "INVALID_PARAMETER_VALUE", "{value}");
    }
    let unknown =
        app.client.get(app.at("/api/2.0/mlflow/no/such")).bearer_auth(&api.token).send().await.expect("request");
    assert_eq!(unknown.status(), 404);
    let metric =
        json!({"run_id": "00000000000000000000000000000000", "key": "k", "value": "not-a-number", "timestamp": 1});
    assert_error(api.post("runs/log-metric", metric).await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn auth_roles_and_audit_on_the_mlflow_surface() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("audited").await;
    let run = api.run(&exp, "r").await;
    api.ok("runs/log-batch", json!({"run_id": run, "metrics": [{"key": "m", "value": 1, "timestamp": 1}]})).await;
    api.ok("experiments/update", json!({"experiment_id": exp, "new_name": "audited-2"})).await;
    api.ok("runs/update", json!({"run_id": run, "run_name": "r-renamed"})).await;
    api.ok("runs/delete", json!({"run_id": run})).await;

    let anonymous = app
        .client
        .post(app.at("/api/2.0/mlflow/experiments/create"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["error_code"], "UNAUTHENTICATED");

    app.add_user("viv", "viewer-password", UserRole::Viewer).await;
    let viewer = Mlflow { token: app.token_for("viv", "viewer-password").await, app: &app };
    let searched = viewer.ok("runs/search", json!({"experiment_ids": [exp], "run_view_type": "ALL"})).await;
    assert_eq!(searched["runs"].as_array().expect("runs").len(), 1, "viewers can search (a POST that reads)");
    assert_error(viewer.post("experiments/create", json!({"name": "nope"})).await, 403, "PERMISSION_DENIED");

    let ajax = app
        .client
        .get(app.at(&format!("/ajax-api/2.0/mlflow/experiments/get?experiment_id={exp}")))
        .basic_auth("admin", Some(cairn_tests::ADMIN_PASSWORD))
        .send()
        .await
        .expect("request");
    assert_eq!(ajax.status(), 200, "the ajax-api prefix serves the same handlers");

    let events = cairn_db::audit::recent(&app.db.pool, 100).await.expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for expected in ["experiment.create", "run.create", "experiment.rename", "run.rename", "run.delete"] {
        let event = events.iter().find(|e| e.action == expected).unwrap_or_else(|| panic!("{expected} in {actions:?}"));
        assert_eq!(event.actor_name, "admin");
    }
    assert!(!actions.iter().any(|a| a.contains("log-batch")), "metric logging is not audited row by row: {actions:?}");
    assert!(!actions.iter().any(|a| a.contains("search")), "searches are reads: {actions:?}");
    assert!(
        actions.contains(&"http.post /api/2.0/mlflow/experiments/create"),
        "refused writes are recorded: {actions:?}"
    );
}

/// The names of an experiment's runs in the given order, read in pages following the tokens.
async fn search_all_pages(api: &Mlflow<'_>, exp: &str, order_by: &[&str], page_size: i64) -> Vec<String> {
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let mut body = json!({"experiment_ids": [exp], "order_by": order_by, "max_results": page_size});
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = api.ok("runs/search", body).await;
        let runs = page["runs"].as_array().map_or(&[][..], |r| r.as_slice());
        seen.extend(runs.iter().map(|r| r["info"]["run_name"].as_str().expect("name").to_owned()));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return seen,
        }
    }
}

/// `n` characters that do not compress (hex of a counter's hashes), as a base64 blob or a
/// list of digests would be.
fn incompressible(seed: u64, n: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from_digit((state % 16) as u32, 16).expect("hex digit")
        })
        .collect()
}

#[tokio::test]
async fn long_values_are_logged_searched_and_sorted() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("long-values").await;
    // Three params of MLflow's maximum length that share their first 500 characters (more
    // than the search index holds) and differ after; tags of the maximum tag length.
    let shared = incompressible(1, 500);
    let values: Vec<String> = [3, 1, 2].iter().map(|&s| format!("{shared}{}", incompressible(s, 5500))).collect();
    let mut runs = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let run = api.run(&exp, &format!("long-{i}")).await;
        let batch = json!({"run_id": run, "params": [{"key": "blob", "value": value}],
            "tags": [{"key": "notes", "value": incompressible(10 + i as u64, 8000)}]});
        api.ok("runs/log-batch", batch).await;
        runs.push(run);
    }
    let search = |filter: String, order: &str| json!({"experiment_ids": [exp], "filter": filter, "order_by": [order], "max_results": 10});
    let names = |v: &Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r["info"]["run_name"].as_str().expect("name").to_owned())
            .collect()
    };
    let found = api.ok("runs/search", search(format!("params.blob = '{}'", values[2]), "attributes.run_name")).await;
    assert_eq!(names(&found), ["long-2"]);
    let found = api.ok("runs/search", search(String::new(), "params.blob ASC")).await;
    let mut expected: Vec<(&String, String)> =
        values.iter().enumerate().map(|(i, v)| (v, format!("long-{i}"))).collect();
    expected.sort();
    assert_eq!(names(&found), expected.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(), "whole values decide ties");
    let found = api.ok("runs/search", search(format!("params.blob != '{}'", values[0]), "params.blob DESC")).await;
    assert_eq!(names(&found).len(), 2);
    let (status, run) = api.get(&format!("runs/get?run_id={}", runs[1])).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["run"]["data"]["params"][0]["value"], json!(values[1]), "stored whole");
}

/// Values shorter than the indexed prefix are matched on the prefix alone; those of its
/// length or longer on the whole value as well. Values around the boundary (399, 400 and
/// 401 characters, each a prefix of the next, multi-byte characters counted as one) must
/// each find only their own run.
#[tokio::test]
async fn equality_filters_around_the_value_prefix_length_find_exact_values() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("prefix-boundary").await;
    let base = "é".repeat(399);
    let values = [base.clone(), format!("{base}x"), format!("{base}xy"), String::new()];
    for (i, value) in values.iter().enumerate() {
        let run = api.run(&exp, &format!("run-{i}")).await;
        let batch =
            json!({"run_id": run, "params": [{"key": "p", "value": value}], "tags": [{"key": "t", "value": value}]});
        api.ok("runs/log-batch", batch).await;
    }
    for (i, value) in values.iter().enumerate() {
        for kind in ["params", "tags"] {
            let body = json!({"experiment_ids": [exp], "filter": format!("{kind}.{} = '{value}'", &kind[..1]),
                "order_by": [format!("{kind}.{} DESC", &kind[..1])], "max_results": 10});
            let found = api.ok("runs/search", body).await;
            let names: Vec<&str> = found["runs"]
                .as_array()
                .map(|runs| runs.iter().map(|r| r["info"]["run_name"].as_str().expect("name")).collect())
                .unwrap_or_default();
            assert_eq!(names, [format!("run-{i}")], "{kind} of {} characters", value.chars().count());
        }
    }
}

/// Equality filters that match between a thousand and fifty thousand runs are checked against
/// a hash of their runs while the search walks the sort key's index; rarer ones keep the form
/// that lets PostgreSQL start from their few runs. Both must give MLflow's answer, across
/// pages and into the runs that lack the sort key (sorted last). The runs are written in SQL:
/// the planner's estimates need a few thousand of them.
#[tokio::test]
async fn filters_checked_by_hash_give_the_same_pages_as_probing() {
    let app = spawn_app().await;
    let api = Mlflow::admin(&app).await;
    let exp = api.experiment("hashed-filters").await;
    let exp_id: i64 = exp.parse().expect("experiment id");
    const RUNS: i64 = 3000;
    // Run i: p = a (even) or b, q = rare (every 300th) or common, tag t = y (every 4th) or x,
    // metric n = i % 10, metric m distinct in [0, 1) except every 50th run, which lacks it.
    let m = |i: i64| (i % 50 != 49).then(|| ((i * 7919) % 3001) as f64 / 3001.0);
    sqlx::query(
        "INSERT INTO runs (run_uuid, experiment_id, name, status, user_id, start_time, lifecycle_stage, artifact_uri) \
         SELECT gen_random_uuid(), $1, 'h-' || i, 'FINISHED', 'test', 1000000 + i, 'active', 'mlflow-artifacts:/x' \
         FROM generate_series(0, $2 - 1) i",
    )
    .bind(exp_id)
    .bind(RUNS)
    .execute(&app.db.pool)
    .await
    .expect("runs");
    // Their params, tags and metrics: each statement takes the experiment's id.
    for statement in [
        "INSERT INTO run_params (run_id, experiment_id, key, value) \
         SELECT r.id, r.experiment_id, kv.k, kv.v FROM runs r CROSS JOIN LATERAL (SELECT split_part(r.name, '-', 2)::int AS i) n \
         CROSS JOIN LATERAL (VALUES ('p', CASE WHEN n.i % 2 = 0 THEN 'a' ELSE 'b' END), \
           ('q', CASE WHEN n.i % 300 = 0 THEN 'rare' ELSE 'common' END)) kv(k, v) \
         WHERE r.experiment_id = $1",
        "INSERT INTO run_tags (run_id, experiment_id, key, value) \
         SELECT r.id, r.experiment_id, 't', CASE WHEN split_part(r.name, '-', 2)::int % 4 = 0 THEN 'y' ELSE 'x' END \
         FROM runs r WHERE r.experiment_id = $1",
        "INSERT INTO latest_metrics (run_id, experiment_id, key, step, timestamp, value) \
         SELECT r.id, r.experiment_id, 'n', 0, 0, (n.i % 10)::float8 FROM runs r \
         CROSS JOIN LATERAL (SELECT split_part(r.name, '-', 2)::int AS i) n WHERE r.experiment_id = $1 \
         UNION ALL SELECT r.id, r.experiment_id, 'm', 0, 0, ((n.i * 7919) % 3001)::float8 / 3001 FROM runs r \
         CROSS JOIN LATERAL (SELECT split_part(r.name, '-', 2)::int AS i) n \
         WHERE r.experiment_id = $1 AND n.i % 50 <> 49",
    ] {
        sqlx::query(statement).bind(exp_id).execute(&app.db.pool).await.expect(statement);
    }
    sqlx::query("ANALYZE runs, run_params, run_tags, latest_metrics").execute(&app.db.pool).await.expect("analyze");

    /// A filter, its order, the clauses expected to be checked by hash, and which runs match.
    type Case = (&'static str, &'static str, &'static [usize], fn(i64) -> bool);
    let cases: [Case; 4] = [
        ("params.p = 'a' AND metrics.n > 4", "metrics.m DESC", &[0], |i| i % 2 == 0 && i % 10 > 4),
        ("tags.t = 'x'", "metrics.m ASC", &[0], |i| i % 4 != 0),
        ("params.q = 'rare'", "metrics.m DESC", &[], |i| i % 300 == 0),
        ("params.q = 'common' AND tags.t = 'y'", "metrics.m DESC", &[0], |i| i % 300 != 0 && i % 4 == 0),
    ];
    for (filter, order, hashed, matches) in cases {
        let parsed = cairn_core::search::parse_run_filter(filter).expect("filter");
        let order_by = [cairn_core::search::parse_run_order_by(order).expect("order")];
        let chosen = cairn_db::tracking::search::hashed_filters(&app.db.pool, &[exp_id], &parsed, &order_by)
            .await
            .expect("estimate");
        assert_eq!(chosen, hashed, "clauses checked by hash for {filter:?}");

        // MLflow's order: the sort key (runs without it last), then start time and id, newest first.
        let descending = order.ends_with("DESC");
        let mut expected: Vec<i64> = (0..RUNS).filter(|&i| matches(i)).collect();
        expected.sort_by(|&a, &b| match (m(a), m(b)) {
            (Some(x), Some(y)) if descending => y.total_cmp(&x).then(b.cmp(&a)),
            (Some(x), Some(y)) => x.total_cmp(&y).then(b.cmp(&a)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => b.cmp(&a),
        });
        let expected: Vec<String> = expected.iter().map(|i| format!("h-{i}")).collect();

        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"experiment_ids": [exp], "filter": filter, "order_by": [order], "max_results": 400});
            if let Some(token) = &token {
                body["page_token"] = json!(token);
            }
            let page = api.ok("runs/search", body).await;
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            found.extend(runs.iter().map(|r| r["info"]["run_name"].as_str().expect("name").to_owned()));
            match page["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(found.len(), expected.len(), "{filter:?} ordered by {order}");
        assert!(found == expected, "{filter:?} ordered by {order}: pages differ from MLflow's order");

        // The native API pages by cursor (the run to continue after), through the same forms.
        let mut native = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter), ("order_by", order), ("limit", "400")];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            let url = app.at(&format!("/api/v1/experiments/{exp}/runs"));
            let response = app.client.get(url).query(&query).bearer_auth(&api.token).send().await.expect("runs");
            assert_eq!(response.status(), 200);
            let page: Value = response.json().await.expect("json");
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            native.extend(runs.iter().map(|r| r["name"].as_str().expect("name").to_owned()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert!(native == expected, "{filter:?} ordered by {order}: cursor pages differ from MLflow's order");
    }
}
