use cairn_db::audit::{self, ChainBreak};
use cairn_tests::{ADMIN_PASSWORD, spawn_app};
use serde_json::json;

async fn events(app: &cairn_tests::TestApp, token: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = app
        .client
        .get(app.at("/api/v1/audit?limit=100"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    body["events"].as_array().expect("events").clone()
}

#[tokio::test]
async fn mutations_are_audited_with_actor_request_id_client_and_outcome() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let response = app
        .client
        .post(app.at("/api/v1/users"))
        .bearer_auth(&token)
        .header("x-request-id", "req-42")
        .json(&json!({"username": "ann", "password": "ann-password", "role": "member"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    // A refused write is recorded too.
    let refused = app.client.post(app.at("/api/v1/users")).json(&json!({})).send().await.expect("request");
    assert_eq!(refused.status(), 401);

    let events = events(&app, &token).await;
    let created =
        events.iter().find(|e| e["action"] == "user.create" && e["target"] == "user:ann").expect("user.create event");
    assert_eq!(created["actor"], "admin");
    assert_eq!(created["request_id"], "req-42");
    assert_eq!(created["client_addr"], "127.0.0.1");
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["details"]["role"], "member");
    let token_event = events.iter().find(|e| e["action"] == "token.create").expect("token.create event");
    assert_eq!(token_event["actor"], "admin");
    let denied = events.iter().find(|e| e["outcome"] == "denied").expect("denied event");
    assert_eq!(denied["actor"], "anonymous");
    assert_eq!(denied["action"], "http.post /api/v1/users");
}

#[tokio::test]
async fn secrets_never_reach_the_audit_log() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.client
        .post(app.at("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "sam", "password": "sams-secret-password"}))
        .send()
        .await
        .expect("request");
    let all = audit::recent(&app.db.pool, 1000).await.expect("rows");
    let text = format!("{all:?}");
    assert!(!text.contains("sams-secret-password"));
    assert!(!text.contains(ADMIN_PASSWORD));
    assert!(!text.contains(&token));
}

#[tokio::test]
async fn failed_logins_are_audited() {
    let app = spawn_app().await;
    let browser = app.browser();
    let form = browser.get(app.at("/login")).send().await.expect("request").text().await.expect("html");
    let csrf = cairn_tests::hidden_input(&form, "csrf_token").expect("csrf");
    browser
        .post(app.at("/login"))
        .form(&[("username", "admin"), ("password", "guess"), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("request");
    let rows = audit::recent(&app.db.pool, 10).await.expect("rows");
    let login = rows.iter().find(|r| r.action == "session.login").expect("login event");
    assert_eq!(login.outcome, "denied");
    assert_eq!(login.actor_name, "admin");
}

#[tokio::test]
async fn the_chain_verifies_and_detects_altered_and_deleted_rows() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.token_for("admin", ADMIN_PASSWORD).await;
        let _ = i;
    }
    let ok = audit::verify(&app.db.pool).await.expect("verify");
    assert_eq!(ok.first_break, None);
    assert!(ok.rows_checked >= 4, "bootstrap + 3 tokens");

    // The table refuses changes; an attacker with database access would first disable that.
    let refused =
        sqlx::query("UPDATE audit_events SET actor_name = 'mallory' WHERE id = 2").execute(&app.db.pool).await;
    assert!(refused.is_err(), "audit_events is append-only");
    sqlx::raw_sql("ALTER TABLE audit_events DISABLE TRIGGER USER").execute(&app.db.pool).await.expect("disable");
    sqlx::query("UPDATE audit_events SET actor_name = 'mallory' WHERE id = 2")
        .execute(&app.db.pool)
        .await
        .expect("tamper");
    let broken = audit::verify(&app.db.pool).await.expect("verify");
    assert_eq!(broken.first_break, Some(ChainBreak::HashMismatch { id: 2 }));
    assert_eq!(broken.rows_checked, 1);

    sqlx::query("DELETE FROM audit_events WHERE id = 2").execute(&app.db.pool).await.expect("delete");
    let gap = audit::verify(&app.db.pool).await.expect("verify");
    assert_eq!(gap.first_break, Some(ChainBreak::Gap { expected_id: 2, found_id: 3 }));
}
