//! Listings show only what the caller may read. Objects moved into a project "secret"
//! (an experiment with a run and a job, a dataset, a registered model, a job template, a
//! deployment) are absent from every listing of a user who is not a member, through the
//! MLflow API, the native API and the dashboard, and a direct read of one answers 404;
//! a member of "secret" sees them all. Objects in the open default project that point
//! into "secret" (a model version whose source run is there, a run that used its dataset)
//! show that something is there without naming it.

use std::time::Duration;

use cairn_tests::{TestApp, UserRole, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

use crate::dashboard_pages::{get, log_in_as};
use crate::lineage::Api;

const OUTSIDER: (&str, &str) = ("olive", "olive-password-1");
const MEMBER: (&str, &str) = ("mia", "mia-password-1");

/// Names that only the secret project's objects carry.
const SECRET_NAMES: [&str; 6] =
    ["secret-exp", "secret-run", "secret-model", "secret-data", "secret-template", "secret-web"];

struct World {
    secret_experiment: String,
    job_id: String,
}

async fn user_id(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(name)
        .fetch_one(&app.db.pool)
        .await
        .expect("user id")
}

async fn wait_for_job(api: &Api<'_>, id: &str) {
    for _ in 0..300 {
        let job = api.ok(Method::GET, &format!("/api/v1/jobs/{id}"), None).await;
        if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} never ended");
}

/// Builds everything as the admin in the default project, then moves the secret objects
/// into the project "secret", where only `mia` is a member.
async fn world(app: &TestApp, admin: &Api<'_>) -> World {
    admin.push("secret-data", b"x,y\n1,2\n").await;
    let exp = admin.mlflow("experiments/create", json!({"name": "secret-exp"})).await;
    let secret_experiment = exp["experiment_id"].as_str().expect("experiment_id").to_owned();
    let secret_run = admin.run(&secret_experiment, "secret-run").await;
    let link = json!({"dataset": "secret-data@1", "context": "training"});
    admin.ok(Method::POST, &format!("/api/v1/runs/{secret_run}/datasets"), Some(link)).await;
    admin.mlflow("registered-models/create", json!({"name": "secret-model"})).await;
    admin.register("secret-model", &secret_run).await;
    let template = json!({"name": "secret-template", "command": ["true"], "experiment_id": secret_experiment});
    admin.ok(Method::POST, "/api/v1/job-templates", Some(template)).await;
    let job = admin.ok(Method::POST, "/api/v1/job-templates/secret-template/jobs", Some(json!({}))).await;
    let job_id = job["id"].as_str().expect("job id").replace('-', "");
    wait_for_job(admin, &job_id).await;
    let deployment = json!({"name": "secret-web", "model": "secret-model", "version": 1});
    admin.ok(Method::POST, "/api/v1/deployments", Some(deployment)).await;

    // In the open default project: a model registered from the secret run, and a run that
    // used the secret dataset.
    let open = admin.mlflow("experiments/create", json!({"name": "open-exp"})).await;
    let open = open["experiment_id"].as_str().expect("experiment_id").to_owned();
    let open_run = admin.run(&open, "open-run").await;
    let link = json!({"dataset": "secret-data@1", "context": "evaluation"});
    admin.ok(Method::POST, &format!("/api/v1/runs/{open_run}/datasets"), Some(link)).await;
    admin.mlflow("registered-models/create", json!({"name": "open-model"})).await;
    admin.register("open-model", &secret_run).await;

    app.add_user(OUTSIDER.0, OUTSIDER.1, UserRole::Member).await;
    app.add_user(MEMBER.0, MEMBER.1, UserRole::Member).await;
    let pool = &app.db.pool;
    let secret: i64 = sqlx::query_scalar("INSERT INTO projects (name) VALUES ('secret') RETURNING id")
        .fetch_one(pool)
        .await
        .expect("project");
    sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'member')")
        .bind(secret)
        .bind(user_id(app, MEMBER.0).await)
        .execute(pool)
        .await
        .expect("membership");
    for (table, name) in [
        ("experiments", "secret-exp"),
        ("registered_models", "secret-model"),
        ("datasets", "secret-data"),
        ("job_templates", "secret-template"),
        ("deployments", "secret-web"),
    ] {
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET project_id = $1 WHERE name = $2")))
            .bind(secret)
            .bind(name)
            .execute(pool)
            .await
            .expect("move");
        assert!(moved.rows_affected() >= 1, "{table} {name}");
    }
    World { secret_experiment, job_id }
}

/// What `path` answers `api`'s caller, as text.
async fn read(api: &Api<'_>, path: &str) -> String {
    api.ok(Method::GET, path, None).await.to_string()
}

async fn post(api: &Api<'_>, path: &str, body: Value) -> String {
    api.ok(Method::POST, path, Some(body)).await.to_string()
}

/// Every listing, through the MLflow and native APIs, as (what was asked, the answer).
async fn api_listings(api: &Api<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("mlflow experiments/search GET", read(api, "/api/2.0/mlflow/experiments/search?max_results=100").await),
        ("mlflow experiments/search POST", post(api, "/api/2.0/mlflow/experiments/search", json!({})).await),
        ("mlflow registered-models/search", read(api, "/api/2.0/mlflow/registered-models/search").await),
        ("mlflow model-versions/search", read(api, "/api/2.0/mlflow/model-versions/search").await),
        ("experiments", read(api, "/api/v1/experiments").await),
        ("jobs", read(api, "/api/v1/jobs").await),
        ("job-templates", read(api, "/api/v1/job-templates").await),
        ("datasets", read(api, "/api/v1/datasets").await),
        ("models", read(api, "/api/v1/models").await),
        ("deployments", read(api, "/api/v1/deployments").await),
        ("usage by template", read(api, "/api/v1/usage?by=template").await),
        ("usage by model", read(api, "/api/v1/usage?by=model").await),
        ("who-trained", read(api, "/api/v1/who-trained").await),
        ("lineage of the open model", read(api, "/api/v1/lineage?node=model:open-model/1").await),
        ("provenance of the open model", read(api, "/api/v1/models/open-model/versions/1/provenance").await),
    ]
}

async fn dashboard_pages(app: &TestApp, (user, password): (&str, &str)) -> Vec<(&'static str, String)> {
    let browser = app.browser();
    log_in_as(app, &browser, user, password).await;
    let mut pages = Vec::new();
    for path in [
        "/",
        "/models",
        "/datasets",
        "/deployments",
        "/jobs",
        "/job-templates",
        "/who-trained",
        "/models/open-model",
        "/models/open-model/versions/1",
        "/models/open-model/versions/1/provenance",
    ] {
        let (status, html) = get(&browser, app, path).await;
        assert_eq!(status, 200, "{user} {path}");
        pages.push((path, html));
    }
    pages
}

#[tokio::test]
async fn listings_show_only_the_projects_the_caller_can_read() {
    let dir = tempfile::tempdir().expect("jobs dir");
    let jobs_dir = dir.path().to_owned();
    let app = spawn_app_with(move |config| config.jobs_dir = Some(jobs_dir)).await;
    let admin = Api::admin(&app).await;
    let world = world(&app, &admin).await;
    let outsider = Api::with_token(&app, app.token_for(OUTSIDER.0, OUTSIDER.1).await);
    let member = Api::with_token(&app, app.token_for(MEMBER.0, MEMBER.1).await);

    for (what, body) in api_listings(&outsider).await {
        for name in SECRET_NAMES {
            assert!(!body.contains(name), "{what} shows {name} to a non-member: {body}");
        }
        assert!(!body.contains(&world.job_id), "{what} shows the secret job: {body}");
    }
    for (what, html) in dashboard_pages(&app, OUTSIDER).await {
        for name in SECRET_NAMES {
            assert!(!html.contains(name), "page {what} shows {name} to a non-member");
        }
        assert!(!html.contains(&world.job_id[..8]), "page {what} shows the secret job");
    }

    // The open objects are still there, and say where they point into a hidden project.
    let experiments = outsider.ok(Method::GET, "/api/v1/experiments", None).await;
    let names: Vec<&str> =
        experiments["experiments"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&"open-exp"), "{names:?}");
    assert!(experiments["experiments"][0]["project"] == "default", "{experiments}");
    let who = outsider.ok(Method::GET, "/api/v1/who-trained", None).await;
    assert_eq!(who["versions"][0]["model"], "open-model", "{who}");
    assert_eq!(who["versions"][0]["source_run_hidden"], true, "{who}");
    let lineage = outsider.ok(Method::GET, "/api/v1/lineage?node=model:open-model/1", None).await;
    assert_eq!(lineage["upstream"]["hidden"], 1, "the source run is left out: {lineage}");
    assert_eq!(lineage["upstream"]["nodes"], json!([]), "{lineage}");
    let usage = outsider.ok(Method::GET, "/api/v1/usage", None).await;
    assert_eq!(usage["total"]["jobs"], 0, "{usage}");
    let (_, model_page) = {
        let browser = app.browser();
        log_in_as(&app, &browser, OUTSIDER.0, OUTSIDER.1).await;
        get(&browser, &app, "/models/open-model").await
    };
    assert!(model_page.contains("(in a project you cannot read)"), "{model_page}");

    // Direct reads of the secret objects are not found.
    let exp = &world.secret_experiment;
    for path in [
        format!("/api/v1/experiments/{exp}"),
        format!("/api/2.0/mlflow/experiments/get?experiment_id={exp}"),
        "/api/v1/models/secret-model".to_owned(),
        "/api/v1/datasets/secret-data".to_owned(),
        "/api/v1/job-templates/secret-template".to_owned(),
        "/api/v1/deployments/secret-web".to_owned(),
        format!("/api/v1/jobs/{}", world.job_id),
    ] {
        let (status, body) = outsider.call(Method::GET, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let browser = app.browser();
    log_in_as(&app, &browser, OUTSIDER.0, OUTSIDER.1).await;
    let (status, _) = get(&browser, &app, &format!("/experiments/{exp}")).await;
    assert_eq!(status, 404);

    // A member of the project sees every one of them.
    let listed: String = api_listings(&member).await.into_iter().map(|(_, body)| body).collect();
    for name in SECRET_NAMES {
        assert!(listed.contains(name), "a member misses {name} in the API listings");
    }
    let pages: String = dashboard_pages(&app, MEMBER).await.into_iter().map(|(_, html)| html).collect();
    for name in SECRET_NAMES {
        assert!(pages.contains(name), "a member misses {name} on the dashboard");
    }
    assert!(pages.contains(&world.job_id[..8]), "a member sees the job");
    assert!(pages.contains("<td>secret</td>"), "lists name the project of what they show");
    let usage = member.ok(Method::GET, "/api/v1/usage", None).await;
    assert_eq!(usage["total"]["jobs"], 1, "{usage}");
    let lineage = member.ok(Method::GET, "/api/v1/lineage?node=model:open-model/1", None).await;
    assert!(lineage["upstream"].get("hidden").is_none(), "{lineage}");
    let names: Vec<&str> =
        lineage["upstream"]["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["secret-run", "secret-data@1"], "{lineage}");

    // Server admins see everything.
    let all: String = api_listings(&admin).await.into_iter().map(|(_, body)| body).collect();
    for name in SECRET_NAMES {
        assert!(all.contains(name), "the admin misses {name}");
    }
}

#[tokio::test]
async fn a_closed_default_project_leaves_a_non_member_with_empty_lists() {
    let app = cairn_tests::spawn_app().await;
    let admin = Api::admin(&app).await;
    admin.mlflow("experiments/create", json!({"name": "closed-exp"})).await;
    admin.mlflow("registered-models/create", json!({"name": "closed-model"})).await;
    sqlx::query("UPDATE projects SET everyone_role = NULL WHERE id = 1").execute(&app.db.pool).await.expect("close");
    app.add_user(OUTSIDER.0, OUTSIDER.1, UserRole::Member).await;
    let outsider = Api::with_token(&app, app.token_for(OUTSIDER.0, OUTSIDER.1).await);
    let experiments = outsider.ok(Method::GET, "/api/v1/experiments", None).await;
    assert_eq!(experiments["experiments"], json!([]), "{experiments}");
    let searched = outsider.mlflow("experiments/search", json!({})).await;
    assert_eq!(searched, json!({}), "not even the Default experiment: {searched}");
    let models = outsider.ok(Method::GET, "/api/2.0/mlflow/registered-models/search", None).await;
    assert!(!models.to_string().contains("closed-model"), "{models}");
    let browser = app.browser();
    log_in_as(&app, &browser, OUTSIDER.0, OUTSIDER.1).await;
    let (status, html) = get(&browser, &app, "/models").await;
    assert_eq!(status, 200);
    assert!(!html.contains("closed-model"));
}
