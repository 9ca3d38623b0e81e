//! `cairn deploy create|show|update|rollback|list|logs|delete` against a real `cairn serve`
//! whose local deployments run a stand-in for MLflow's scoring server
//! ([`cairn_tests::fake_serving`]): deploy, predict through the gateway, roll out, roll
//! back, and the refusals a user can cause.

use std::process::Output;

use serde_json::{Value, json};

use crate::{Server, stderr, stdout};

const PASSWORD: &str = "deploy-test-admin-pw";

fn deploy(server: &Server, token: &str, args: &[&str]) -> Output {
    crate::client(server, token, "deploy", args)
}

/// A model with versions whose files (an `MLmodel` and the `answer` the fake server gives)
/// are in the server's local store.
async fn register(http: &reqwest::Client, server: &Server, token: &str, answers: &[&str]) {
    let api = |path: &str| format!("{}/api/2.0/mlflow/{path}", server.url);
    let created = http.post(api("registered-models/create")).bearer_auth(token).json(&json!({"name": "echo"}));
    assert_eq!(created.send().await.expect("request").status(), 200);
    for (i, answer) in answers.iter().enumerate() {
        let dir = server.data_dir.join(format!("artifacts/mlflow-artifacts/0/echo-{i}/artifacts/model"));
        std::fs::create_dir_all(&dir).expect("model dir");
        std::fs::write(dir.join("MLmodel"), "flavors: {}\n").expect("MLmodel");
        std::fs::write(dir.join("answer"), answer).expect("answer");
        let body = json!({"name": "echo", "source": format!("mlflow-artifacts:/0/echo-{i}/artifacts/model")});
        let version = http.post(api("model-versions/create")).bearer_auth(token).json(&body);
        assert_eq!(version.send().await.expect("request").status(), 200);
    }
}

#[tokio::test]
async fn deploy_predict_roll_out_and_roll_back_from_the_cli() {
    let home = tempfile::tempdir().expect("tempdir");
    let scripts = tempfile::tempdir().expect("tempdir");
    let python = cairn_tests::fake_serving::fake_python(scripts.path());
    let python = python.to_str().expect("utf-8 path");
    let server = Server::start(home.path(), &[("CAIRN_ADMIN_PASSWORD", PASSWORD), ("CAIRN_SERVING_PYTHON", python)]);
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/api/v1/tokens", server.url))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({"name": "cli"}))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    register(&http, &server, &token, &["one", "two"]).await;

    let refused = deploy(&server, &token, &["create", "echo", "--model", "echo"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--version V") && stderr(&refused).contains("--alias A"), "{}", stderr(&refused));

    let output = deploy(&server, &token, &["create", "echo", "--model", "echo", "--version", "1", "--wait", "60"]);
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("status     ready") && printed.contains("/serve/echo/invocations"), "{printed}");
    let predict = || async {
        let response = http
            .post(format!("{}/serve/echo/invocations", server.url))
            .bearer_auth(&token)
            .json(&json!({"inputs": [1]}))
            .send()
            .await
            .expect("predict");
        let body: Value = response.json().await.expect("json");
        body["predictions"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(predict().await, "one");

    let output = deploy(&server, &token, &["update", "echo", "--version", "2", "--wait", "60"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(predict().await, "two");
    let output = deploy(&server, &token, &["rollback", "echo", "--wait", "60"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(predict().await, "one");

    let shown: Value =
        serde_json::from_slice(&deploy(&server, &token, &["show", "echo", "--json"]).stdout).expect("json");
    assert_eq!(
        (shown["revision"].as_i64(), shown["version"].as_i64(), shown["status"].as_str()),
        (Some(3), Some(1), Some("ready"))
    );
    let reasons: Vec<&str> =
        shown["revisions"].as_array().expect("revisions").iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["rollback", "update", "create"]);
    let text = stdout(&deploy(&server, &token, &["show", "echo"]));
    assert!(text.contains("revision   3") && text.contains("echo version 1"), "{text}");
    let listed = stdout(&deploy(&server, &token, &["list"]));
    assert!(listed.lines().any(|l| l.starts_with("echo") && l.contains("ready")), "{listed}");
    let logs = stdout(&deploy(&server, &token, &["logs", "echo"]));
    assert!(logs.contains("fake scoring server for"), "{logs}");

    let bad = deploy(&server, &token, &["rollback", "echo", "--revision", "9"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("earlier revision") && stderr(&bad).contains("HTTP 422"), "{}", stderr(&bad));

    let output = deploy(&server, &token, &["delete", "echo"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let missing = deploy(&server, &token, &["show", "echo"]);
    assert!(!missing.status.success() && stderr(&missing).contains("no deployment named"), "{}", stderr(&missing));
    server.stop();
}
