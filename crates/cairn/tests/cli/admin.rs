use cairn_db::embedded::EmbeddedPostgres;
use sqlx::Connection;

use crate::{Server, cairn, stderr, stdout};

#[tokio::test]
async fn admin_commands_work_with_the_server_stopped_and_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Server stopped: the command starts the cluster for its own length.
    let added = cairn(dir.path(), &["user", "add", "bob", "--password", "bobs-password", "--role", "viewer"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let listed = stdout(&cairn(dir.path(), &["user", "list"]));
    assert!(listed.contains("bob") && listed.contains("viewer"), "{listed}");
    let weak = cairn(dir.path(), &["user", "add", "weak", "--password", "123"]);
    assert!(!weak.status.success());
    assert!(stderr(&weak).contains("at least 8"), "{}", stderr(&weak));

    let server = Server::start(dir.path(), &[("CAIRN_ADMIN_PASSWORD", "admin-password")]);
    // Server running: the command attaches to its cluster.
    let role = cairn(dir.path(), &["user", "set-role", "bob", "member"]);
    assert!(role.status.success(), "{}", stderr(&role));
    let issued = cairn(dir.path(), &["token", "create", "--user", "bob", "--name", "ci"]);
    assert!(issued.status.success(), "{}", stderr(&issued));
    let token = stdout(&issued).trim().to_owned();

    let client = reqwest::Client::new();
    let me: serde_json::Value = client
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "member", "the role change made while running is live");

    let tokens: serde_json::Value =
        serde_json::from_str(&stdout(&cairn(dir.path(), &["token", "list", "--json"]))).expect("json");
    let id = tokens[0]["id"].as_str().expect("id");
    assert!(cairn(dir.path(), &["token", "revoke", id]).status.success());
    let after = client.get(format!("{}/api/v1/me", server.url)).bearer_auth(&token).send().await.expect("request");
    assert_eq!(after.status(), 401);

    assert!(cairn(dir.path(), &["user", "disable", "bob"]).status.success());
    let disabled = client
        .get(format!("{}/api/v1/me", server.url))
        .basic_auth("bob", Some("bobs-password"))
        .send()
        .await
        .expect("request");
    assert_eq!(disabled.status(), 401);
    let unknown = cairn(dir.path(), &["user", "set-role", "nobody", "admin"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no user named"), "{}", stderr(&unknown));
    server.stop();

    let migrate = cairn(dir.path(), &["migrate"]);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    assert!(stdout(&migrate).starts_with("ok"));
}

#[tokio::test]
async fn audit_verify_passes_then_names_the_first_tampered_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["ann", "ben", "cat"] {
        assert!(cairn(dir.path(), &["user", "add", name, "--password", "long-password"]).status.success());
    }
    let ok = cairn(dir.path(), &["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ok: 3 rows checked"), "{}", stdout(&ok));

    let server = Server::start(dir.path(), &[("CAIRN_ADMIN_PASSWORD", "admin-password")]);
    let cluster = EmbeddedPostgres::attach(&dir.path().join("pg")).await.expect("attach").expect("running");
    let mut conn = sqlx::PgConnection::connect_with(&cluster.connect_options("cairn")).await.expect("connect");
    sqlx::raw_sql(
        "ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET target = 'user:eve' WHERE id = 2",
    )
    .execute(&mut conn)
    .await
    .expect("tamper");
    let broken = cairn(dir.path(), &["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(2));
    let report = stdout(&broken);
    assert!(report.contains("row 2") && report.contains("altered"), "{report}");
    drop(conn);
    server.stop();
}
