//! `cairn project ...` against a real `cairn serve`: create a project, manage a member,
//! create a service account and its token, and use that token, which sees its project only.

use std::process::Output;

use serde_json::{Value, json};

use crate::{Server, cairn, stderr, stdout};

const PASSWORD: &str = "project-cli-admin-pw";

fn project(server: &Server, token: &str, args: &[&str]) -> Output {
    let output = crate::client(server, token, "project", args);
    assert!(output.status.success(), "cairn project {args:?}: {}", stderr(&output));
    output
}

#[tokio::test]
async fn projects_members_and_service_account_tokens_from_the_cli() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = Server::start(home.path(), &[("CAIRN_ADMIN_PASSWORD", PASSWORD)]);
    let added = cairn(home.path(), &["user", "add", "olga", "--password", "olgas-password", "--role", "member"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/tokens", server.url))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({"name": "cli"}))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let admin = created["token"].as_str().expect("token").to_owned();

    let out = project(&server, &admin, &["create", "vision", "--description", "Image models"]);
    assert!(stdout(&out).contains("created project vision"), "{}", stdout(&out));
    let out = project(&server, &admin, &["member", "set", "olga", "owner", "--project", "vision"]);
    assert!(stdout(&out).contains("olga is now owner in vision"), "{}", stdout(&out));
    let out = project(&server, &admin, &["service-account", "create", "ci", "--project", "vision", "--role", "viewer"]);
    assert!(stdout(&out).contains("ci@vision"), "{}", stdout(&out));
    let out = project(
        &server,
        &admin,
        &["token", "create", "--project", "vision", "--service-account", "ci", "--scope", "read"],
    );
    let token = stdout(&out).trim().to_owned();
    assert!(stderr(&out).contains("shown once"), "{}", stderr(&out));

    let shown: Value =
        serde_json::from_str(&stdout(&project(&server, &admin, &["show", "vision", "--json"]))).expect("json");
    assert_eq!(shown["description"], "Image models");
    let members: Vec<&str> =
        shown["members"].as_array().expect("members").iter().filter_map(|m| m["username"].as_str()).collect();
    assert_eq!(members, ["ci@vision", "olga"]);
    assert_eq!(shown["service_accounts"][0]["tokens"][0]["scope"], "read");

    let listed = stdout(&project(&server, &token, &["list"]));
    assert!(
        listed.contains("vision") && !listed.contains("default"),
        "a service account token sees its project only: {listed}"
    );
    let refused =
        crate::client(&server, &token, "project", &["member", "set", "olga", "viewer", "--project", "vision"]);
    assert!(!refused.status.success(), "a read token of a viewer manages nothing");

    let out = project(&server, &admin, &["member", "remove", "ci@vision", "--project", "vision"]);
    assert!(stdout(&out).contains("removed ci@vision from vision"), "{}", stdout(&out));
}
