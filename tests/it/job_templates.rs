//! Job templates and GPU-hour accounting through the native API, with the local executor
//! running the jobs for real: versions, submissions with overrides that record the template,
//! role checks, and usage totals per user, template and model version over a time range.

use std::time::Duration;

use cairn_tests::{TestApp, UserRole, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

pub struct Api {
    pub app: TestApp,
    pub token: String,
    _dir: tempfile::TempDir,
}

impl Api {
    /// The app with the local executor on a temporary jobs directory.
    pub async fn start() -> Api {
        let dir = tempfile::tempdir().expect("jobs dir");
        let jobs_dir = dir.path().to_owned();
        let app = spawn_app_with(move |config| config.jobs_dir = Some(jobs_dir)).await;
        let token = app.admin_token().await;
        Api { app, token, _dir: dir }
    }

    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request = self.app.client.request(method, self.app.at(&format!("/api/v1{path}"))).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    pub async fn json(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, text) = self.call_as(&self.token, method, path, body).await;
        assert_eq!(got, status, "{path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The job's log once it has some (an ended job's log reaches storage just after it ends).
    pub async fn log(&self, id: &str) -> String {
        for _ in 0..100 {
            let (status, log) = self.call_as(&self.token, Method::GET, &format!("/jobs/{id}/logs"), None).await;
            assert_eq!(status, 200, "{log}");
            if !log.is_empty() {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} has no log");
    }

    /// Polls until the job has ended.
    pub async fn wait_for_end(&self, id: &str) -> Value {
        for _ in 0..300 {
            let job = self.json(Method::GET, &format!("/jobs/{id}"), None, 200).await;
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} never ended");
    }
}

fn template(name: &str, script: &str, params: Value) -> Value {
    json!({"name": name, "description": "trains it", "command": ["sh", "-c", script], "params": params})
}

#[tokio::test]
async fn templates_are_versioned_and_jobs_from_them_record_the_version() {
    let api = Api::start().await;
    let v1 = api
        .json(
            Method::POST,
            "/job-templates",
            Some(template("train-resnet", "echo v1 lr={{lr}}", json!({"lr": "0.1", "epochs": "2"}))),
            201,
        )
        .await;
    assert_eq!((v1["name"].as_str(), v1["version"].as_i64()), (Some("train-resnet"), Some(1)));
    let v2 = api
        .json(
            Method::POST,
            "/job-templates",
            Some(template("train-resnet", "echo v2 lr={{lr}} epochs={{epochs}}", json!({"lr": "0.1", "epochs": "2"}))),
            201,
        )
        .await;
    assert_eq!(v2["version"], 2);
    api.json(Method::POST, "/job-templates", Some(template("other", "true", json!({}))), 201).await;

    let listed = api.json(Method::GET, "/job-templates", None, 200).await;
    let names: Vec<(&str, i64)> = listed["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or(""), t["version"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(names, [("other", 1), ("train-resnet", 2)], "the latest version of each, by name");
    let shown = api.json(Method::GET, "/job-templates/train-resnet?version=1", None, 200).await;
    assert_eq!(shown["spec"]["command"][2], "echo v1 lr={{lr}}");
    assert_eq!(shown["versions"], json!([2, 1]));

    // The latest version with a changed param; the job names the template version.
    let job =
        api.json(Method::POST, "/job-templates/train-resnet/jobs", Some(json!({"params": {"lr": "0.01"}})), 201).await;
    assert_eq!(job["spec"]["params"], json!({"lr": "0.01", "epochs": "2"}));
    let id = job["id"].as_str().expect("id");
    let done = api.wait_for_end(id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let log = api.log(id).await;
    assert!(log.contains("stdout v2 lr=0.01 epochs=2"), "{log}");
    let recorded: (String, i32) = sqlx::query_as(
        "SELECT t.name, t.version FROM jobs j JOIN job_templates t ON t.id = j.template_id WHERE j.id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&api.app.db.pool)
    .await
    .expect("template of the job");
    assert_eq!(recorded, ("train-resnet".to_owned(), 2));
    // An older version on request; a retry keeps the template for accounting.
    let old = api.json(Method::POST, "/job-templates/train-resnet/jobs", Some(json!({"version": 1})), 201).await;
    api.wait_for_end(old["id"].as_str().expect("id")).await;
    let retry = api.json(Method::POST, &format!("/jobs/{id}/retry"), None, 201).await;
    api.wait_for_end(retry["id"].as_str().expect("id")).await;
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE template_id IS NOT NULL")
        .fetch_one(&api.app.db.pool)
        .await
        .expect("count");
    assert_eq!(counted, 3);

    for (method, path, body, status, says) in [
        (Method::POST, "/job-templates", template("bad name", "x", json!({})), 422, "not a template name"),
        (Method::POST, "/job-templates", json!({"name": "x", "command": []}), 422, "needs a command"),
        (Method::POST, "/job-templates/nope/jobs", json!({}), 404, "no job template named nope"),
        (Method::POST, "/job-templates/other/jobs", json!({"version": 7}), 404, "other@7"),
        (Method::POST, "/job-templates/other/jobs", json!({"params": {"1x": "y"}}), 422, "letters, digits"),
        (Method::GET, "/job-templates/nope", Value::Null, 404, "no job template"),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (got, text) = api.call_as(&api.token, method, path, body).await;
        assert_eq!(got, status, "{path}: {text}");
        assert!(text.contains(says), "{path}: {text} should say {says:?}");
    }

    // Viewers read templates but cannot save or submit.
    api.app.add_user("vera", "viewer-password-1", UserRole::Viewer).await;
    let viewer = api.app.token_for("vera", "viewer-password-1").await;
    let (status, _) = api.call_as(&viewer, Method::GET, "/job-templates/train-resnet", None).await;
    assert_eq!(status, 200);
    for (path, body) in [("/job-templates", template("v", "true", json!({}))), ("/job-templates/other/jobs", json!({}))]
    {
        let (status, text) = api.call_as(&viewer, Method::POST, path, Some(body)).await;
        assert_eq!(status, 403, "{path}: {text}");
    }

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'job%' ORDER BY id")
            .fetch_all(&api.app.db.pool)
            .await
            .expect("audit");
    assert_eq!(actions.iter().filter(|a| *a == "job_template.save").count(), 3, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "job.submit").count(), 2, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "job.retry").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "job_template.use").count(), 2, "{actions:?}");
}

#[tokio::test]
async fn usage_sums_gpu_cpu_and_wall_time_per_user_template_and_model() {
    let api = Api::start().await;
    api.json(Method::POST, "/job-templates", Some(template("sleepy", "sleep 1", json!({}))), 201).await;
    let from_template = api.json(Method::POST, "/job-templates/sleepy/jobs", Some(json!({})), 201).await;
    let plain =
        api.json(Method::POST, "/jobs", Some(json!({"command": ["sh", "-c", "sleep 1"], "cpu": "2"})), 201).await;
    let first = api.wait_for_end(from_template["id"].as_str().expect("id")).await;
    api.wait_for_end(plain["id"].as_str().expect("id")).await;

    // The local host has no GPU here: pretend the template's job held two, as the
    // accounting would record for a job that ran on two (GPU-seconds = wall × GPUs).
    sqlx::query("UPDATE jobs SET gpus = 2, finished_at = NULL, wall_seconds = NULL, gpu_seconds = NULL, cpu_seconds = NULL WHERE id = $1::uuid")
        .bind(first["id"].as_str())
        .execute(&api.app.db.pool)
        .await
        .expect("gpus");
    sqlx::query("UPDATE jobs SET finished_at = started_at + interval '90 minutes' WHERE id = $1::uuid")
        .bind(first["id"].as_str())
        .execute(&api.app.db.pool)
        .await
        .expect("end");

    // Register a model version from the template job's run.
    let run_id = first["run_id"].as_str().expect("run");
    let mlflow = |path: &str| api.app.at(&format!("/api/2.0/mlflow/{path}"));
    for (path, body) in [
        ("registered-models/create", json!({"name": "resnet"})),
        (
            "model-versions/create",
            json!({"name": "resnet", "source": format!("runs:/{run_id}/model"), "run_id": run_id}),
        ),
    ] {
        let response =
            api.app.client.post(mlflow(path)).bearer_auth(&api.token).json(&body).send().await.expect("request");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    }

    let to = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let range = |by: &str| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("from", "2020-01-01T00:00:00Z")
            .append_pair("to", &to)
            .append_pair("by", by)
            .finish();
        format!("/usage?{q}")
    };
    let by_user = api.json(Method::GET, &range("user"), None, 200).await;
    assert_eq!(by_user["by"], "user");
    let rows = by_user["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{by_user}");
    assert_eq!((rows[0]["key"].as_str(), rows[0]["jobs"].as_i64()), (Some("admin"), Some(2)));
    let gpu_hours = rows[0]["gpu_hours"].as_f64().expect("gpu hours");
    assert!((gpu_hours - 3.0).abs() < 1e-6, "90 minutes on 2 GPUs: {by_user}");
    let wall = rows[0]["wall_seconds"].as_f64().expect("wall");
    assert!((5400.0 + 0.5..5400.0 + 10.0).contains(&wall), "90 min plus the plain job's second or so: {wall}");
    let cpu = rows[0]["cpu_seconds"].as_f64().expect("cpu");
    assert!(cpu > wall && cpu < wall * 1.01, "the template's job is charged 1 core, the plain one 2: {by_user}");

    let by_template = api.json(Method::GET, &range("template"), None, 200).await;
    let keys: Vec<(Value, i64)> = by_template["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["key"].clone(), r["jobs"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(keys, [(json!("sleepy"), 1), (Value::Null, 1)], "{by_template}");
    let plain_row = &by_template["rows"][1];
    assert_eq!(
        plain_row["cpu_seconds"].as_f64().map(|c| c / 2.0),
        plain_row["wall_seconds"].as_f64(),
        "CPU-seconds are wall time × the 2 cores asked for: {by_template}"
    );

    let by_model = api.json(Method::GET, &range("model"), None, 200).await;
    let model_row = &by_model["rows"][0];
    assert_eq!(model_row["key"], "resnet/1", "{by_model}");
    assert!((model_row["gpu_seconds"].as_f64().unwrap_or(0.0) - 10800.0).abs() < 1e-6);
    assert_eq!(by_model["total"]["jobs"], 2);

    // A range that ends before the jobs did holds none of them.
    let empty = api.json(Method::GET, "/usage?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z", None, 200).await;
    assert_eq!((empty["rows"].as_array().map(Vec::len), empty["total"]["jobs"].as_i64()), (Some(0), Some(0)));
    for (query, status) in
        [("by=project", 422), ("from=2021-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", 422), ("from=yesterday", 400)]
    {
        let (got, text) = api.call_as(&api.token, Method::GET, &format!("/usage?{query}"), None).await;
        assert_eq!(got, status, "{query}: {text}");
    }
}
