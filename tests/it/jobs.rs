//! Jobs through the native API with the local executor for real: child processes that
//! succeed, fail, are cancelled or time out, their logs, their runs and the audit trail.

use std::time::Duration;

use cairn_tests::{TestApp, spawn_app_with};
use serde_json::{Value, json};

/// Calls the jobs API as the admin; shared with the Kubernetes executor's tests.
pub(crate) struct Jobs {
    pub(crate) app: TestApp,
    pub(crate) token: String,
    pub(crate) _dir: tempfile::TempDir,
}

impl Jobs {
    async fn start() -> Jobs {
        let dir = tempfile::tempdir().expect("jobs dir");
        let jobs_dir = dir.path().to_owned();
        let app = spawn_app_with(move |config| config.jobs_dir = Some(jobs_dir)).await;
        let token = app.admin_token().await;
        Jobs { app, token, _dir: dir }
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request =
            self.app.client.request(method, self.app.at(&format!("/api/v1{path}"))).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    pub(crate) async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, text) = self.call(method, path, body).await;
        assert_eq!(got, status, "{text}");
        serde_json::from_str(&text).expect("JSON")
    }

    pub(crate) async fn submit(&self, body: Value) -> String {
        let job = self.json(reqwest::Method::POST, "/jobs", Some(body), 201).await;
        job["id"].as_str().expect("id").to_owned()
    }

    pub(crate) async fn job(&self, id: &str) -> Value {
        self.json(reqwest::Method::GET, &format!("/jobs/{id}"), None, 200).await
    }

    /// Polls until the job is in `state` (or any final state when `state` is None).
    pub(crate) async fn wait_for(&self, id: &str, state: Option<&str>) -> Value {
        for _ in 0..300 {
            let job = self.job(id).await;
            let now = job["state"].as_str().unwrap_or("").to_owned();
            let done = match state {
                Some(s) => now == s,
                None => ["succeeded", "failed", "cancelled"].contains(&now.as_str()),
            };
            if done {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} never reached {state:?}: {}", self.job(id).await);
    }

    pub(crate) async fn run_status(&self, job: &Value) -> String {
        let run = self
            .json(reqwest::Method::GET, &format!("/runs/{}", job["run_id"].as_str().expect("run")), None, 200)
            .await;
        run["status"].as_str().unwrap_or("").to_owned()
    }
}

fn sh(script: &str) -> Value {
    json!(["sh", "-c", script])
}

#[tokio::test]
async fn a_job_runs_in_its_run_with_params_env_and_logs() {
    let jobs = Jobs::start().await;
    let script = "echo \"lr=$CAIRN_PARAM_lr arg={{lr}} run=$MLFLOW_RUN_ID\"; echo oops >&2; env | cut -d= -f1 | sort | tr '\\n' ' '";
    let body = json!({"command": ["sh", "-c", script], "params": {"lr": "0.1"}, "env": {"EXTRA": "1"}});
    let id = jobs.submit(body).await;
    let job = jobs.wait_for(&id, None).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["exit_code"], 0);
    let run_id = job["run_id"].as_str().expect("run id");
    let transitions: Vec<&str> =
        job["events"].as_array().expect("events").iter().filter_map(|e| e["to"].as_str()).collect();
    assert_eq!(transitions, ["queued", "scheduled", "running", "succeeded"]);

    let (status, log) = jobs.call(reqwest::Method::GET, &format!("/jobs/{id}/logs"), None).await;
    assert_eq!(status, 200);
    assert!(log.contains(&format!("stdout lr=0.1 arg=0.1 run={run_id}")), "{log}");
    assert!(log.contains("stderr oops"), "{log}");
    let env_line = log.lines().find(|l| l.contains("MLFLOW_TRACKING_TOKEN")).expect("env listing");
    for name in env_line.split_whitespace().skip(2) {
        let allowed = [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "TZ",
            "TMPDIR",
            "USER",
            "EXTRA",
            "PWD",
            "SHLVL",
            "_",
            "CUDA_VISIBLE_DEVICES",
        ]
        .contains(&name)
            || name.starts_with("MLFLOW_")
            || name.starts_with("CAIRN_");
        assert!(allowed, "the server's environment leaked into the job: {name}");
    }

    assert_eq!(jobs.run_status(&job).await, "finished");
    let run = jobs.json(reqwest::Method::GET, &format!("/runs/{run_id}"), None, 200).await;
    assert_eq!(run["params"]["lr"], "0.1", "{run}");
    assert_eq!(run["tags"]["cairn.job_id"], id.as_str());

    // The job's token was revoked when it ended.
    let tokens: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE name LIKE 'job %' AND revoked_at IS NULL")
            .fetch_one(&jobs.app.db.pool)
            .await
            .expect("count");
    assert_eq!(tokens, 0);

    // Retry: same spec, new job, new run.
    let retried = jobs.json(reqwest::Method::POST, &format!("/jobs/{id}/retry"), None, 201).await;
    assert_eq!(retried["origin_job_id"], id.as_str());
    assert_ne!(retried["run_id"], job["run_id"]);
    assert_eq!(retried["spec"], job["spec"]);
    jobs.wait_for(retried["id"].as_str().expect("id"), None).await;

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'job.%' ORDER BY id")
            .fetch_all(&jobs.app.db.pool)
            .await
            .expect("audit");
    assert_eq!(actions, ["job.submit", "job.retry"]);
}

#[tokio::test]
async fn failures_cancels_and_timeouts_end_the_job_and_its_run() {
    let jobs = Jobs::start().await;
    let failing = jobs.submit(json!({"command": sh("echo bye; exit 3")})).await;
    let sleeper = jobs.submit(json!({"command": ["sleep", "60"]})).await;
    let slow = jobs.submit(json!({"command": ["sleep", "60"], "timeout_secs": 1})).await;

    let failed = jobs.wait_for(&failing, None).await;
    assert_eq!((failed["state"].as_str(), failed["exit_code"].as_i64()), (Some("failed"), Some(3)));
    assert!(failed["reason"].as_str().unwrap_or("").contains("code 3"));
    assert_eq!(jobs.run_status(&failed).await, "failed");

    jobs.wait_for(&sleeper, Some("running")).await;
    let cancelled = jobs.json(reqwest::Method::POST, &format!("/jobs/{sleeper}/cancel"), None, 200).await;
    assert_eq!(cancelled["state"], "running", "a running job is stopped by its executor");
    let cancelled = jobs.wait_for(&sleeper, None).await;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(jobs.run_status(&cancelled).await, "killed");
    let (status, _) = jobs.call(reqwest::Method::POST, &format!("/jobs/{sleeper}/cancel"), None).await;
    assert_eq!(status, 422, "an ended job cannot be cancelled");

    let timed_out = jobs.wait_for(&slow, None).await;
    assert_eq!(timed_out["state"], "failed");
    assert!(timed_out["reason"].as_str().unwrap_or("").contains("timed out"), "{timed_out}");

    for (body, why) in [
        (json!({"command": []}), "command"),
        (json!({"command": ["x"], "env": {"MLFLOW_RUN_ID": "x"}}), "set by Cairn"),
        (json!({"command": ["x"], "datasets": ["missing@1"]}), "dataset"),
        (json!({"command": ["x"], "timeout_secs": 0}), "timeout"),
        (json!({"command": ["x"], "gpus": 64}), "GPUs"),
    ] {
        let (status, text) = jobs.call(reqwest::Method::POST, "/jobs", Some(body)).await;
        assert!(status == 422 || status == 404, "{status} {text}");
        assert!(text.contains(why), "{text} should mention {why}");
    }
    let listed = jobs.json(reqwest::Method::GET, "/jobs?state=failed", None, 200).await;
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn retrain_repeats_the_job_of_a_run_with_changed_params() {
    let jobs = Jobs::start().await;
    let id = jobs
        .submit(json!({"command": sh("echo lr={{lr}} epochs={{epochs}}"), "params": {"lr": "0.1", "epochs": "3"}}))
        .await;
    let first = jobs.wait_for(&id, None).await;
    let run_id = first["run_id"].as_str().expect("run id");

    let body = json!({"params": {"lr": "0.01"}});
    let retrained = jobs.json(reqwest::Method::POST, &format!("/runs/{run_id}/retrain"), Some(body), 201).await;
    assert_eq!(retrained["origin_job_id"], id.as_str());
    assert_eq!(retrained["spec"]["params"], json!({"lr": "0.01", "epochs": "3"}));
    let done = jobs.wait_for(retrained["id"].as_str().expect("id"), None).await;
    let (_, log) =
        jobs.call(reqwest::Method::GET, &format!("/jobs/{}/logs", done["id"].as_str().expect("id")), None).await;
    assert!(log.contains("stdout lr=0.01 epochs=3"), "{log}");
    let new_run =
        jobs.json(reqwest::Method::GET, &format!("/runs/{}", done["run_id"].as_str().expect("run")), None, 200).await;
    assert_eq!(new_run["tags"]["cairn.origin_run_id"], run_id, "the new run names the run it retrains");
    assert_eq!(new_run["params"]["lr"], "0.01");
    let audited = jobs.json(reqwest::Method::GET, "/audit?action=job.re*", None, 200).await;
    let retrain = &audited["events"][0];
    assert_eq!(retrain["action"], "job.retrain", "{audited}");
    let target = retrain["target"].as_str().unwrap_or("").replace('-', "");
    assert_eq!(target, format!("job:{}", retrained["id"].as_str().expect("id")));
    assert_eq!(retrain["actor"], "admin");
    assert_eq!(retrain["details"]["origin"].as_str().map(|o| o.replace('-', "")).as_deref(), Some(id.as_str()));

    // A run logged by hand has no job to repeat.
    let experiment = jobs.json(reqwest::Method::POST, "/experiments", Some(json!({"name": "by-hand"})), 201).await;
    let manual = jobs.json(reqwest::Method::POST, "/runs", Some(json!({"experiment_id": experiment["id"]})), 201).await;
    let (status, text) = jobs
        .call(reqwest::Method::POST, &format!("/runs/{}/retrain", manual["id"].as_str().expect("id")), Some(json!({})))
        .await;
    assert_eq!(status, 404);
    assert!(text.contains("not produced by a job"), "{text}");
}

#[tokio::test]
async fn one_process_at_a_time_runs_an_executor() {
    let jobs_dir = tempfile::tempdir().expect("jobs dir");
    let dir = jobs_dir.path().to_owned();
    let app = spawn_app_with(move |c| c.jobs_dir = Some(dir)).await;
    let pool = &app.db.pool;

    // The server leads its local executor once it has started: a second replica on the same
    // database would stand by.
    let mut held = false;
    for _ in 0..200 {
        if cairn_db::jobs::try_lead(pool, "local").await.expect("try").is_none() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held, "the server holds the local executor's leadership");

    // Leadership passes on when its holder lets it go.
    let first = cairn_db::jobs::try_lead(pool, "test-executor").await.expect("try").expect("free");
    assert!(cairn_db::jobs::try_lead(pool, "test-executor").await.expect("try").is_none());
    first.release().await;
    let second = cairn_db::jobs::try_lead(pool, "test-executor").await.expect("try");
    assert!(second.is_some(), "released leadership is free at once for a standby");
}
