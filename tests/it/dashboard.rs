use cairn_tests::{ADMIN_PASSWORD, TestApp, hidden_input, spawn_app};

/// Logs in through the form like a browser; returns the home page's CSRF token.
async fn log_in(app: &TestApp, browser: &reqwest::Client) -> String {
    let form = browser.get(app.at("/login")).send().await.expect("request").text().await.expect("html");
    let csrf = hidden_input(&form, "csrf_token").expect("login form has a CSRF field");
    let response = browser
        .post(app.at("/login"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", &csrf),
            ("next", "/settings/tokens"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/settings/tokens");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .find(|c| c.starts_with("cairn_session="))
        .expect("session cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let home = browser.get(app.at("/")).send().await.expect("request").text().await.expect("html");
    hidden_input(&home, "csrf_token").expect("logout form carries the session CSRF token")
}

#[tokio::test]
async fn pages_need_a_login_and_remember_where_to_return() {
    let app = spawn_app().await;
    let response = app.client.get(app.at("/settings/tokens")).send().await.expect("request");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=%2Fsettings%2Ftokens");
}

#[tokio::test]
async fn login_shows_the_user_and_logout_ends_the_session() {
    let app = spawn_app().await;
    let browser = app.browser();
    let csrf = log_in(&app, &browser).await;
    let home = browser.get(app.at("/")).send().await.expect("request").text().await.expect("html");
    assert!(home.contains("admin") && home.contains("No experiments yet"));

    let logout = browser.post(app.at("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await.expect("request");
    assert_eq!(logout.status(), 303);
    let after = browser.get(app.at("/")).send().await.expect("request");
    assert_eq!(after.status(), 303, "the session is gone");
}

#[tokio::test]
async fn wrong_password_on_the_form_shows_an_error_and_sets_no_session() {
    let app = spawn_app().await;
    let browser = app.browser();
    let form = browser.get(app.at("/login")).send().await.expect("request").text().await.expect("html");
    let csrf = hidden_input(&form, "csrf_token").expect("csrf");
    let response = browser
        .post(app.at("/login"))
        .form(&[("username", "admin"), ("password", "nope"), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap_or("").starts_with("cairn_session="))
    );
    assert!(response.text().await.expect("html").contains("invalid user name or password"));
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let app = spawn_app().await;
    let browser = app.browser();
    // Login form: the double-submit cookie must match the field.
    browser.get(app.at("/login")).send().await.expect("request");
    let forged = browser
        .post(app.at("/login"))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD), ("csrf_token", "forged-value")])
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 403);

    let _ = log_in(&app, &browser).await;
    let create = browser
        .post(app.at("/settings/tokens"))
        .form(&[("name", "x"), ("csrf_token", "wrong")])
        .send()
        .await
        .expect("request");
    assert_eq!(create.status(), 403);
    assert!(create.text().await.expect("html").contains("CSRF"));

    // The API accepts the session cookie, but a state change needs the CSRF header.
    let api =
        browser.post(app.at("/api/v1/tokens")).json(&serde_json::json!({"name": "x"})).send().await.expect("request");
    assert_eq!(api.status(), 403);
}

#[tokio::test]
async fn tokens_page_creates_a_token_shown_once_with_client_settings_and_revokes_it() {
    let app = spawn_app().await;
    let browser = app.browser();
    let csrf = log_in(&app, &browser).await;
    let page = browser
        .post(app.at("/settings/tokens"))
        .form(&[("name", "laptop"), ("expires_in_days", ""), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    let line = page.lines().find(|l| l.contains("MLFLOW_TRACKING_TOKEN=")).expect("token line");
    let token = line.split("MLFLOW_TRACKING_TOKEN=").nth(1).expect("value").split('<').next().expect("value").trim();
    assert!(page.contains(&format!("MLFLOW_TRACKING_URI={}", app.url)));
    let me = app.client.get(app.at("/api/v1/me")).bearer_auth(token).send().await.expect("request");
    assert_eq!(me.status(), 200, "the token shown works");

    let listed = browser.get(app.at("/settings/tokens")).send().await.expect("request").text().await.expect("html");
    assert!(!listed.contains(token), "the secret is shown only once");
    let action =
        listed.split("action=\"/settings/tokens/").nth(1).expect("revoke form").split('"').next().expect("path");
    let revoke = browser
        .post(app.at(&format!("/settings/tokens/{action}")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(revoke.status(), 303);
    let me = app.client.get(app.at("/api/v1/me")).bearer_auth(token).send().await.expect("request");
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn login_never_redirects_off_site() {
    let app = spawn_app().await;
    let browser = app.browser();
    let form =
        browser.get(app.at("/login?next=//evil.example")).send().await.expect("request").text().await.expect("html");
    assert_eq!(hidden_input(&form, "next").as_deref(), Some("/"));
}
