use cairn_tests::{ADMIN_PASSWORD, UserRole, spawn_app};
use serde_json::json;

#[tokio::test]
async fn requests_without_credentials_are_401_with_a_challenge() {
    let app = spawn_app().await;
    let response = app.client.get(app.at("/api/v1/me")).send().await.expect("request");
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().expect("ascii");
    assert!(challenge.contains("Bearer") && challenge.contains("Basic"));
    let garbage = app.client.get(app.at("/api/v1/me")).bearer_auth("not.a.jwt").send().await.expect("request");
    assert_eq!(garbage.status(), 401);
    let scheme =
        app.client.get(app.at("/api/v1/me")).header("authorization", "Digest x").send().await.expect("request");
    assert_eq!(scheme.status(), 400, "unsupported scheme is a malformed header");
}

#[tokio::test]
async fn token_created_with_basic_auth_authenticates_and_stops_when_revoked() {
    let app = spawn_app().await;
    let created: serde_json::Value = app
        .client
        .post(app.at("/api/v1/tokens"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"name": "ci", "expires_in_days": 30}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token");
    let id = created["id"].as_str().expect("id");
    assert!(created["expires_at"].is_string());

    let me = app.get_json("/api/v1/me", token).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");

    let list = app.get_json("/api/v1/tokens", token).await;
    let tokens = list["tokens"].as_array().expect("array");
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].get("token").is_none(), "a listing never shows the secret");
    assert_eq!(tokens[0]["name"], "ci");

    let revoked =
        app.client.delete(app.at(&format!("/api/v1/tokens/{id}"))).bearer_auth(token).send().await.expect("request");
    assert_eq!(revoked.status(), 200);
    let after = app.client.get(app.at("/api/v1/me")).bearer_auth(token).send().await.expect("request");
    assert_eq!(after.status(), 401);
    let body: serde_json::Value = after.json().await.expect("json");
    assert!(body["detail"].as_str().expect("detail").contains("revoked"));
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_rejected() {
    let app = spawn_app().await;
    let other = cairn_server::auth::TokenKeys::new(b"some other secret that is 32+ bytes");
    let forged = other.encode(1, uuid::Uuid::new_v4(), chrono_now(), None).expect("encode");
    let response = app.client.get(app.at("/api/v1/me")).bearer_auth(forged).send().await.expect("request");
    assert_eq!(response.status(), 401);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

#[tokio::test]
async fn wrong_passwords_are_401_and_repeated_failures_are_rate_limited() {
    let app = spawn_app().await;
    for attempt in 0..5 {
        let response =
            app.client.get(app.at("/api/v1/me")).basic_auth("admin", Some("wrong")).send().await.expect("request");
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let limited =
        app.client.get(app.at("/api/v1/me")).basic_auth("admin", Some("wrong")).send().await.expect("request");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Even the right password waits out the block: the limiter runs before the check.
    let right =
        app.client.get(app.at("/api/v1/me")).basic_auth("admin", Some(ADMIN_PASSWORD)).send().await.expect("request");
    assert_eq!(right.status(), 429);
    let unknown = app.client.get(app.at("/api/v1/me")).basic_auth("nobody", Some("x")).send().await.expect("request");
    assert_eq!(unknown.status(), 401, "other accounts are not blocked by one account's failures");
}

#[tokio::test]
async fn viewers_read_and_manage_their_own_tokens_but_change_nothing_else() {
    let app = spawn_app().await;
    app.add_user("vera", "vera-password", UserRole::Viewer).await;
    let token = app.token_for("vera", "vera-password").await;
    let list = app.get_json("/api/v1/tokens", &token).await;
    assert_eq!(list["tokens"][0]["scope"], "read", "a viewer's token cannot write");

    let create_user = app
        .client
        .post(app.at("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "x", "password": "password-x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(create_user.status(), 403);
    let audit = app.client.get(app.at("/api/v1/audit")).bearer_auth(&token).send().await.expect("request");
    assert_eq!(audit.status(), 403);
}

#[tokio::test]
async fn only_admins_manage_users() {
    let app = spawn_app().await;
    app.add_user("mia", "mia-password", UserRole::Member).await;
    let member = app.token_for("mia", "mia-password").await;
    let admin = app.admin_token().await;
    let body = json!({"username": "newbie", "password": "newbie-password", "role": "viewer"});
    let denied =
        app.client.post(app.at("/api/v1/users")).bearer_auth(&member).json(&body).send().await.expect("request");
    assert_eq!(denied.status(), 403);
    let created =
        app.client.post(app.at("/api/v1/users")).bearer_auth(&admin).json(&body).send().await.expect("request");
    assert_eq!(created.status(), 201);
    let duplicate =
        app.client.post(app.at("/api/v1/users")).bearer_auth(&admin).json(&body).send().await.expect("request");
    assert_eq!(duplicate.status(), 409);
    let weak = json!({"username": "weak", "password": "short"});
    let weak = app.client.post(app.at("/api/v1/users")).bearer_auth(&admin).json(&weak).send().await.expect("request");
    assert_eq!(weak.status(), 422);

    let promote = app
        .client
        .patch(app.at("/api/v1/users/newbie"))
        .bearer_auth(&admin)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .expect("request");
    assert_eq!(promote.status(), 200);
    let view: serde_json::Value = promote.json().await.expect("json");
    assert_eq!(view["role"], "member");
}

#[tokio::test]
async fn read_scoped_tokens_cannot_write_even_for_admins() {
    let app = spawn_app().await;
    let created: serde_json::Value = app
        .client
        .post(app.at("/api/v1/tokens"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"name": "dashboards", "scope": "read"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token");
    let body = json!({"username": "x", "password": "password-x"});
    let denied = app.client.post(app.at("/api/v1/users")).bearer_auth(token).json(&body).send().await.expect("request");
    assert_eq!(denied.status(), 403);
    let read = app.client.get(app.at("/api/v1/users")).bearer_auth(token).send().await.expect("request");
    assert_eq!(read.status(), 200);
}

#[tokio::test]
async fn disabling_a_user_stops_their_tokens() {
    let app = spawn_app().await;
    app.add_user("dan", "dan-password", UserRole::Member).await;
    let token = app.token_for("dan", "dan-password").await;
    let admin = app.admin_token().await;
    let disable = app
        .client
        .patch(app.at("/api/v1/users/dan"))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(disable.status(), 200);
    let after = app.client.get(app.at("/api/v1/me")).bearer_auth(&token).send().await.expect("request");
    assert_eq!(after.status(), 401);
    let basic =
        app.client.get(app.at("/api/v1/me")).basic_auth("dan", Some("dan-password")).send().await.expect("request");
    assert_eq!(basic.status(), 401);
}
