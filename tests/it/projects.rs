//! Projects end to end: creating them, members and the last-owner rule, quotas, service
//! accounts and their project-scoped tokens, project-scoped personal and job tokens, the
//! audit rows of every change, and the dashboard's project and user pages.

use std::time::Duration;

use cairn_tests::{TestApp, UserRole, hidden_input, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};

use crate::dashboard_pages::{admin, log_in_as};

const PASSWORD: &str = "project-test-password-1";

async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.client.request(method, app.at(&format!("/api/v1{path}"))).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// An app with admin, `olga` (a member who will own `vision`) and `bob` (a member).
async fn app_with_people() -> (TestApp, String, String, String) {
    let app = spawn_app().await;
    app.add_user("olga", PASSWORD, UserRole::Member).await;
    app.add_user("bob", PASSWORD, UserRole::Member).await;
    let admin = app.admin_token().await;
    let olga = app.token_for("olga", PASSWORD).await;
    let bob = app.token_for("bob", PASSWORD).await;
    (app, admin, olga, bob)
}

async fn create_vision(app: &TestApp, admin: &str) {
    let body = json!({"name": "vision", "description": "Image models", "owner": "olga"});
    let (status, created) = call(app, admin, Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "vision");
    assert_eq!(created["role"], "owner", "admins own every project");
    assert!(created["everyone_role"].is_null());
}

fn names(list: &Value) -> Vec<(String, String)> {
    list["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or("").to_owned(), p["role"].as_str().unwrap_or("").to_owned()))
        .collect()
}

fn pair(name: &str, role: &str) -> (String, String) {
    (name.to_owned(), role.to_owned())
}

#[tokio::test]
async fn admins_create_projects_and_owners_manage_their_members() {
    let (app, admin, olga, bob) = app_with_people().await;
    let (status, _) = call(&app, &olga, Method::POST, "/projects", Some(json!({"name": "mine"}))).await;
    assert_eq!(status, 403, "only server admins create projects");
    create_vision(&app, &admin).await;
    let (status, taken) = call(&app, &admin, Method::POST, "/projects", Some(json!({"name": "vision"}))).await;
    assert_eq!(status, 409, "{taken}");
    let (status, bad) = call(&app, &admin, Method::POST, "/projects", Some(json!({"name": "Bad Name"}))).await;
    assert_eq!(status, 422, "{bad}");

    let (_, list) = call(&app, &olga, Method::GET, "/projects", None).await;
    assert_eq!(names(&list), [pair("default", "member"), pair("vision", "owner")]);
    let (_, list) = call(&app, &bob, Method::GET, "/projects", None).await;
    assert_eq!(names(&list), [pair("default", "member")], "bob is in no project but the default one");
    let (status, hidden) = call(&app, &bob, Method::GET, "/projects/vision", None).await;
    assert_eq!(status, 404, "a project one cannot read is not found: {hidden}");

    let set = |role: &str| Some(json!({"role": role}));
    let (status, added) = call(&app, &olga, Method::PUT, "/projects/vision/members/bob", set("viewer")).await;
    assert_eq!((status, &added["previous_role"]), (201, &Value::Null), "{added}");
    let (status, changed) = call(&app, &olga, Method::PUT, "/projects/vision/members/bob", set("member")).await;
    assert_eq!((status, changed["previous_role"].as_str()), (200, Some("viewer")), "{changed}");
    let (status, _) = call(&app, &olga, Method::PUT, "/projects/vision/members/nobody", set("member")).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, &olga, Method::PUT, "/projects/vision/members/bob", set("boss")).await;
    assert_eq!(status, 422);

    let (status, shown) = call(&app, &bob, Method::GET, "/projects/vision", None).await;
    assert_eq!((status, shown["role"].as_str()), (200, Some("member")), "{shown}");
    let (_, members) = call(&app, &bob, Method::GET, "/projects/vision/members", None).await;
    let listed: Vec<(&str, &str)> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["username"].as_str().unwrap_or(""), m["role"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(listed, [("bob", "member"), ("olga", "owner")]);
    let (status, _) = call(&app, &bob, Method::PUT, "/projects/vision/members/bob", set("owner")).await;
    assert_eq!(status, 403, "members do not manage members");
    let (status, _) = call(&app, &bob, Method::PATCH, "/projects/vision", Some(json!({"description": "x"}))).await;
    assert_eq!(status, 403, "members do not change settings");

    let (status, removed) = call(&app, &olga, Method::DELETE, "/projects/vision/members/bob", None).await;
    assert_eq!((status, removed["previous_role"].as_str()), (200, Some("member")), "{removed}");
    let (status, _) = call(&app, &olga, Method::DELETE, "/projects/vision/members/bob", None).await;
    assert_eq!(status, 404, "no longer a member");
    let (status, _) = call(&app, &bob, Method::GET, "/projects/vision", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_project_keeps_an_owner_unless_everyone_has_a_role_or_an_admin_decides() {
    let (app, admin, olga, _bob) = app_with_people().await;
    create_vision(&app, &admin).await;
    let (status, refused) =
        call(&app, &olga, Method::PUT, "/projects/vision/members/olga", Some(json!({"role": "member"}))).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["detail"].as_str().unwrap_or("").contains("without an owner"), "{refused}");
    let (status, _) = call(&app, &olga, Method::DELETE, "/projects/vision/members/olga", None).await;
    assert_eq!(status, 409);

    // With a second owner, the first may step down.
    let owner = Some(json!({"role": "owner"}));
    let (status, _) = call(&app, &olga, Method::PUT, "/projects/vision/members/bob", owner).await;
    assert_eq!(status, 201);
    let (status, _) =
        call(&app, &olga, Method::PUT, "/projects/vision/members/olga", Some(json!({"role": "viewer"}))).await;
    assert_eq!(status, 200);

    // A server admin may leave a project without owners (admins manage every project).
    let (status, _) = call(&app, &admin, Method::DELETE, "/projects/vision/members/bob", None).await;
    assert_eq!(status, 200);
    let (_, members) = call(&app, &admin, Method::GET, "/projects/vision/members", None).await;
    assert!(members["members"].as_array().expect("members").iter().all(|m| m["role"] != "owner"), "{members}");

    // In a project open to every account, the last owner may leave.
    let body = json!({"name": "open", "everyone_role": "viewer", "owner": "olga"});
    let (status, _) = call(&app, &admin, Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201);
    let (status, _) = call(&app, &olga, Method::DELETE, "/projects/open/members/olga", None).await;
    assert_eq!(status, 200);
    let (status, owner_everyone) =
        call(&app, &admin, Method::PATCH, "/projects/open", Some(json!({"everyone_role": "owner"}))).await;
    assert_eq!(status, 422, "{owner_everyone}");
}

#[tokio::test]
async fn owners_change_settings_and_only_server_admins_set_quotas() {
    let (app, admin, olga, _bob) = app_with_people().await;
    create_vision(&app, &admin).await;
    let change = json!({"description": "Vision models", "everyone_role": "viewer"});
    let (status, changed) = call(&app, &olga, Method::PATCH, "/projects/vision", Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (changed["description"].as_str(), changed["everyone_role"].as_str()),
        (Some("Vision models"), Some("viewer"))
    );

    let (status, refused) =
        call(&app, &olga, Method::PATCH, "/projects/vision", Some(json!({"max_concurrent_gpus": 8}))).await;
    assert_eq!(status, 403, "{refused}");
    let quotas = json!({"max_concurrent_gpus": 4, "monthly_gpu_hours": 100.5});
    let (status, set) = call(&app, &admin, Method::PATCH, "/projects/vision", Some(quotas)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!((set["max_concurrent_gpus"].as_i64(), set["monthly_gpu_hours"].as_f64()), (Some(4), Some(100.5)));
    let (_, cleared) = call(
        &app,
        &admin,
        Method::PATCH,
        "/projects/vision",
        Some(json!({"everyone_role": null, "max_concurrent_gpus": null})),
    )
    .await;
    assert!(cleared["everyone_role"].is_null() && cleared["max_concurrent_gpus"].is_null(), "{cleared}");
    assert_eq!(cleared["monthly_gpu_hours"].as_f64(), Some(100.5), "absent fields stay as they are");
    let (status, _) = call(&app, &admin, Method::PATCH, "/projects/vision", Some(json!({}))).await;
    assert_eq!(status, 422, "nothing to change");
}

/// Creates service account `ci` of vision and a token for it; returns the token and its id.
async fn service_token(app: &TestApp, owner: &str, scope: &str) -> (String, String) {
    let (status, account) =
        call(app, owner, Method::POST, "/projects/vision/service-accounts", Some(json!({"name": "ci"}))).await;
    assert!(status == 201 || status == 409, "{account}");
    let body = json!({"name": "pipeline", "scope": scope});
    let (status, token) =
        call(app, owner, Method::POST, "/projects/vision/service-accounts/ci/tokens", Some(body)).await;
    assert_eq!(status, 201, "{token}");
    assert_eq!(token["project"], "vision");
    (token["token"].as_str().expect("token").to_owned(), token["id"].as_str().expect("id").to_owned())
}

#[tokio::test]
async fn a_service_account_token_reaches_its_project_only() {
    let (app, admin, olga, bob) = app_with_people().await;
    create_vision(&app, &admin).await;
    let (status, _) =
        call(&app, &bob, Method::POST, "/projects/vision/service-accounts", Some(json!({"name": "ci"}))).await;
    assert_eq!(status, 404, "bob cannot see vision");
    let (status, account) =
        call(&app, &olga, Method::POST, "/projects/vision/service-accounts", Some(json!({"name": "ci"}))).await;
    assert_eq!(status, 201, "{account}");
    assert_eq!((account["username"].as_str(), account["role"].as_str()), (Some("ci@vision"), Some("member")));
    let (status, _) = call(
        &app,
        &olga,
        Method::POST,
        "/projects/vision/service-accounts",
        Some(json!({"name": "boss", "role": "owner"})),
    )
    .await;
    assert_eq!(status, 422, "service accounts are never owners");

    let (token, id) = service_token(&app, &olga, "write").await;
    let (status, me) = call(&app, &token, Method::GET, "/me", None).await;
    assert_eq!((status, me["kind"].as_str(), me["project"].as_str()), (200, Some("service"), Some("vision")), "{me}");
    let (_, list) = call(&app, &token, Method::GET, "/projects", None).await;
    assert_eq!(names(&list), [pair("vision", "member")], "the default project is out of a scoped token's reach");
    let (status, _) = call(&app, &token, Method::GET, "/projects/default", None).await;
    assert_eq!(status, 404);

    // A token it mints is limited to its project too, whatever it asks for.
    let (status, minted) = call(&app, &token, Method::POST, "/tokens", Some(json!({"name": "more"}))).await;
    assert_eq!((status, minted["project"].as_str()), (201, Some("vision")), "{minted}");
    let (status, _) =
        call(&app, &token, Method::POST, "/tokens", Some(json!({"name": "wider", "project": "default"}))).await;
    assert_eq!(status, 404);

    let (_, accounts) = call(&app, &olga, Method::GET, "/projects/vision/service-accounts", None).await;
    let tokens = accounts["service_accounts"][0]["tokens"].as_array().expect("tokens").clone();
    assert!(tokens.iter().any(|t| t["id"] == id.as_str() && t.get("token").is_none()), "{accounts}");
    let path = format!("/projects/vision/service-accounts/ci/tokens/{id}");
    let (status, revoked) = call(&app, &olga, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{revoked}");
    let (status, _) = call(&app, &token, Method::GET, "/me", None).await;
    assert_eq!(status, 401, "a revoked token stops working");
    let (_, other) = call(&app, &olga, Method::GET, "/tokens", None).await;
    let olgas = other["tokens"][0]["id"].as_str().expect("olga's token").to_owned();
    let path = format!("/projects/vision/service-accounts/ci/tokens/{olgas}");
    let (status, _) = call(&app, &olga, Method::DELETE, &path, None).await;
    assert_eq!(status, 404, "only the service account's own tokens are revoked here");
}

#[tokio::test]
async fn service_accounts_never_log_in_with_a_password() {
    let (app, admin, olga, _bob) = app_with_people().await;
    create_vision(&app, &admin).await;
    service_token(&app, &olga, "read").await;
    // Even with a password set by an admin, password authentication refuses the account.
    let (status, _) =
        call(&app, &admin, Method::PATCH, "/users/ci@vision", Some(json!({"password": "a-good-password-1"}))).await;
    assert_eq!(status, 200);
    let basic = app
        .client
        .get(app.at("/api/v1/me"))
        .basic_auth("ci@vision", Some("a-good-password-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), 401);
    let browser = app.browser();
    let form = browser.get(app.at("/login")).send().await.expect("request").text().await.expect("html");
    let csrf = hidden_input(&form, "csrf_token").expect("csrf");
    let login = browser
        .post(app.at("/login"))
        .form(&[("username", "ci@vision"), ("password", "a-good-password-1"), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("request");
    assert_ne!(login.status(), 303, "no session for a service account");

    let (_, users) = call(&app, &admin, Method::GET, "/users", None).await;
    let kinds: Vec<(&str, &str, Option<&str>)> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| (u["username"].as_str().unwrap_or(""), u["kind"].as_str().unwrap_or(""), u["project"].as_str()))
        .collect();
    assert!(kinds.contains(&("ci@vision", "service", Some("vision"))), "{kinds:?}");
    assert!(kinds.contains(&("olga", "person", None)), "{kinds:?}");
}

#[tokio::test]
async fn personal_tokens_can_be_limited_to_a_readable_project() {
    let (app, admin, olga, bob) = app_with_people().await;
    create_vision(&app, &admin).await;
    let scoped = Some(json!({"name": "vision only", "project": "vision"}));
    let (status, _) = call(&app, &bob, Method::POST, "/tokens", scoped.clone()).await;
    assert_eq!(status, 404, "bob cannot read vision, so he cannot have a token for it");
    let (status, created) = call(&app, &olga, Method::POST, "/tokens", scoped).await;
    assert_eq!((status, created["project"].as_str()), (201, Some("vision")), "{created}");
    let token = created["token"].as_str().expect("token");
    let (_, list) = call(&app, token, Method::GET, "/projects", None).await;
    assert_eq!(names(&list), [pair("vision", "owner")]);
    let (_, mine) = call(&app, &olga, Method::GET, "/tokens", None).await;
    let projects: Vec<Option<&str>> =
        mine["tokens"].as_array().expect("tokens").iter().map(|t| t["project"].as_str()).collect();
    assert!(projects.contains(&Some("vision")) && projects.contains(&None), "{mine}");
}

#[tokio::test]
async fn every_project_change_is_audited() {
    let (app, admin, olga, _bob) = app_with_people().await;
    create_vision(&app, &admin).await;
    call(&app, &olga, Method::PATCH, "/projects/vision", Some(json!({"description": "d"}))).await;
    call(&app, &olga, Method::PUT, "/projects/vision/members/bob", Some(json!({"role": "viewer"}))).await;
    call(&app, &olga, Method::DELETE, "/projects/vision/members/bob", None).await;
    let (_, id) = service_token(&app, &olga, "write").await;
    call(&app, &olga, Method::DELETE, &format!("/projects/vision/service-accounts/ci/tokens/{id}"), None).await;

    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT action, actor_name, target FROM audit_events WHERE action LIKE 'project.%' OR action LIKE 'service_account.%' OR (action LIKE 'token.%' AND target = $1) ORDER BY id")
            .bind(format!("token:{id}"))
            .fetch_all(&app.db.pool)
            .await
            .expect("audit rows");
    let seen: Vec<(&str, &str, &str)> = rows.iter().map(|(a, n, t)| (a.as_str(), n.as_str(), t.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("project.create", "admin", "project:vision"),
            ("project.member.set", "admin", "project:vision"),
            ("project.update", "olga", "project:vision"),
            ("project.member.set", "olga", "project:vision"),
            ("project.member.remove", "olga", "project:vision"),
            ("service_account.create", "olga", "user:ci@vision"),
            ("token.create", "olga", &format!("token:{id}")),
            ("token.revoke", "olga", &format!("token:{id}")),
        ]
    );
    let (details,): (String,) = sqlx::query_as("SELECT details FROM audit_events WHERE action = 'project.update'")
        .fetch_one(&app.db.pool)
        .await
        .expect("row");
    let details: Value = serde_json::from_str(&details).expect("json details");
    assert_eq!(details["description"]["to"], "d", "{details}");
}

#[tokio::test]
async fn a_job_runs_with_a_token_limited_to_its_project() {
    let dir = tempfile::tempdir().expect("jobs dir");
    let jobs_dir = dir.path().to_owned();
    let app = spawn_app_with(move |config| config.jobs_dir = Some(jobs_dir)).await;
    let admin = app.admin_token().await;
    let (status, job) = call(&app, &admin, Method::POST, "/jobs", Some(json!({"command": ["true"]}))).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("job id").replace('-', "");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let project = loop {
        let found: Option<Option<i64>> = sqlx::query_scalar("SELECT project_id FROM api_tokens WHERE name = $1")
            .bind(format!("job {id}"))
            .fetch_optional(&app.db.pool)
            .await
            .expect("query");
        if let Some(project) = found {
            break project;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job got no token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(project, Some(1), "the job's experiment is in the default project");
}

#[tokio::test]
async fn project_pages_manage_members_and_show_a_service_token_once() {
    let app = spawn_app().await;
    app.add_user("olga", PASSWORD, UserRole::Member).await;
    app.add_user("bob", PASSWORD, UserRole::Member).await;
    let (browser, csrf) = admin(&app).await;
    let created = browser
        .post(app.at("/projects"))
        .form(&[("csrf_token", csrf.as_str()), ("name", "vision"), ("description", "Images"), ("owner", "olga")])
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 303);
    let bad = browser
        .post(app.at("/projects"))
        .form(&[("csrf_token", csrf.as_str()), ("name", "Not Valid")])
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.expect("html").contains("invalid project name"));
    let list = browser.get(app.at("/projects")).send().await.expect("request").text().await.expect("html");
    assert!(list.contains("href=\"/projects/vision\"") && list.contains("Create a project"), "{list}");
    let users = browser.get(app.at("/admin/users")).send().await.expect("request");
    assert_eq!(users.status(), 200);
    assert!(users.text().await.expect("html").contains("olga"));

    let olga = app.browser();
    let olga_csrf = log_in_as(&app, &olga, "olga", PASSWORD).await;
    let page = olga.get(app.at("/projects/vision")).send().await.expect("request").text().await.expect("html");
    assert!(page.contains("Add member") && page.contains("Create service account"), "owners see the forms");
    let post = |path: &str, form: Vec<(&str, &str)>| {
        let mut form = form;
        form.push(("csrf_token", olga_csrf.as_str()));
        olga.post(app.at(path)).form(&form).send()
    };
    let added = post("/projects/vision/members", vec![("username", "bob"), ("role", "viewer")]).await.expect("request");
    assert_eq!(added.status(), 303);
    let refused =
        post("/projects/vision/members", vec![("username", "olga"), ("role", "viewer")]).await.expect("request");
    assert_eq!(refused.status(), 409, "the last owner cannot step down");
    let forged = olga
        .post(app.at("/projects/vision/members"))
        .form(&[("username", "bob"), ("role", "owner"), ("csrf_token", "forged")])
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 403);
    let account = post("/projects/vision/service-accounts", vec![("name", "ci")]).await.expect("request");
    assert_eq!(account.status(), 303);
    let issued = post("/projects/vision/service-accounts/ci/tokens", vec![("scope", "read")]).await.expect("request");
    assert_eq!(issued.status(), 200);
    let shown = issued.text().await.expect("html");
    assert!(shown.contains("MLFLOW_TRACKING_TOKEN=ey"), "the new token is shown once");
    let again = olga.get(app.at("/projects/vision")).send().await.expect("request").text().await.expect("html");
    assert!(!again.contains("MLFLOW_TRACKING_TOKEN=") && again.contains("ci@vision"), "and never again");
    let users_status = olga.get(app.at("/admin/users")).send().await.expect("request").status();
    assert!(users_status == 403 || users_status == 404, "the users page is for server admins: {users_status}");

    let limited =
        post("/settings/tokens", vec![("name", "vision only"), ("project", "vision")]).await.expect("request");
    assert_eq!(limited.status(), 200);
    let tokens_page = limited.text().await.expect("html");
    assert!(tokens_page.contains("<td>vision</td>") && tokens_page.contains("only vision"), "{tokens_page}");
    let hidden = post("/settings/tokens", vec![("name", "x"), ("project", "nope")]).await.expect("request");
    assert_eq!(hidden.status(), 422);

    let bob = app.browser();
    log_in_as(&app, &bob, "bob", PASSWORD).await;
    let viewer_page = bob.get(app.at("/projects/vision")).send().await.expect("request").text().await.expect("html");
    assert!(viewer_page.contains("olga") && !viewer_page.contains("Add member"), "viewers see no forms");
    let remove = post("/projects/vision/members/bob/remove", vec![]).await.expect("request");
    assert_eq!(remove.status(), 303);
    let gone = bob.get(app.at("/projects/vision")).send().await.expect("request");
    assert_eq!(gone.status(), 404);
}
