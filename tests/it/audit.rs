use cairn_db::audit::{self, ChainBreak};
use cairn_tests::{ADMIN_PASSWORD, spawn_app};
use serde_json::json;

async fn events(app: &cairn_tests::TestApp, token: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = app.get_json("/api/v1/audit?limit=100", token).await;
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
    let login = rows.iter().find(|r| r.action == "auth.failed").expect("failed login event");
    assert_eq!(login.outcome, "denied");
    assert_eq!(login.target, "user:admin");
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

/// `GET /api/v1/audit` with a query string; the status and the body.
async fn audit_query(app: &cairn_tests::TestApp, token: &str, query: &str) -> (u16, serde_json::Value) {
    let response =
        app.client.get(app.at(&format!("/api/v1/audit?{query}"))).bearer_auth(token).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn actions(events: &[serde_json::Value]) -> Vec<String> {
    events.iter().map(|e| e["action"].as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn every_kind_of_change_is_audited_with_its_actor() {
    use reqwest::Method;
    let app = spawn_app().await;
    let api = crate::lineage::Api::admin(&app).await;
    let w = crate::lineage::world(&api).await;
    // Users and tokens.
    api.ok(
        Method::POST,
        "/api/v1/users",
        Some(json!({"username": "ann", "password": "ann-password", "role": "member"})),
    )
    .await;
    api.ok(Method::PATCH, "/api/v1/users/ann", Some(json!({"role": "viewer"}))).await;
    let token = api.ok(Method::POST, "/api/v1/tokens", Some(json!({"name": "ci"}))).await;
    let token_id = token["id"].as_str().expect("token id").to_owned();
    api.ok(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None).await;
    // Registry alias moves: set on version 1, then moved to version 2.
    api.ok(Method::PUT, "/api/v1/models/fraud/aliases/champion", Some(json!({"version": 1}))).await;
    api.ok(Method::PUT, "/api/v1/models/fraud/aliases/champion", Some(json!({"version": 2}))).await;
    // Failed authentication, on reads too, without the secret.
    let bad = app.client.get(app.at("/api/v1/experiments")).bearer_auth("not-a-token").send().await.expect("request");
    assert_eq!(bad.status(), 401);
    let guess =
        app.client.get(app.at("/api/v1/me")).basic_auth("ann", Some("wrong-guess")).send().await.expect("request");
    assert_eq!(guess.status(), 401);
    let revoked = app
        .client
        .get(app.at("/api/2.0/mlflow/experiments/search?max_results=1"))
        .bearer_auth(token["token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(revoked.status(), 401);

    let (_, body) = audit_query(&app, &api.token, "limit=1000").await;
    let events = body["events"].as_array().expect("events").clone();
    let by = |action: &str, target: &str| {
        events
            .iter()
            .find(|e| e["action"] == action && e["target"].as_str().is_some_and(|t| t.starts_with(target)))
            .unwrap_or_else(|| panic!("{action} on {target} in {:?}", actions(&events)))
            .clone()
    };
    for (action, target) in [
        ("user.create", "user:ann"),
        ("user.set_role", "user:ann"),
        ("token.create", "token:"),
        ("token.revoke", "token:"),
        ("experiment.create", "experiment:"),
        ("run.create", &format!("run:{}", w.trainer)),
        ("dataset.version.create", "dataset:train@1"),
        ("run.dataset.link", &format!("run:{}", w.explorer)),
        ("registered_model.create", "model:fraud"),
        ("model_version.create", "model:fraud/2"),
        ("model_alias.set", "model:fraud/1"),
    ] {
        let event = by(action, target);
        assert_eq!(event["actor"], "admin", "{event}");
        assert!(event["actor_id"].is_i64(), "{event}");
        assert_eq!(event["outcome"], "success", "{event}");
    }
    let moved = by("model_alias.set", "model:fraud/2");
    assert_eq!(moved["details"]["previous_version"], 1, "the move names where the alias was: {moved}");

    let failures: Vec<&serde_json::Value> = events.iter().filter(|e| e["action"] == "auth.failed").collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures.iter().all(|e| e["outcome"] == "denied"));
    assert!(failures.iter().any(|e| e["actor"] == "ann" && e["target"] == "user:ann"), "a password tried for ann");
    assert!(failures.iter().any(|e| e["target"] == "token:(unknown)"), "a token that is not ours");
    assert!(failures.iter().any(|e| e["target"] == format!("token:{token_id}")), "the revoked token by id");
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains("wrong-guess") && !text.contains("not-a-token"), "no secret in the log");
    assert!(!text.contains(token["token"].as_str().expect("token")), "no token in the log");
}

#[tokio::test]
async fn the_audit_api_filters_with_wildcards_and_time_and_pages_with_next_before() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        let body = json!({"username": name, "password": "long-password", "role": "member"});
        let response = app.client.post(app.at("/api/v1/users")).bearer_auth(&token).json(&body).send().await;
        assert_eq!(response.expect("request").status(), 201);
    }
    let refused = app.client.post(app.at("/api/v1/users")).json(&json!({})).send().await.expect("request");
    assert_eq!(refused.status(), 401);

    let (status, body) = audit_query(&app, &token, "action=user.create&actor=admin").await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().expect("events");
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["target"], "user:u5", "newest first");
    assert_eq!(body["next_before"], serde_json::Value::Null);

    let (_, prefixed) = audit_query(&app, &token, "action=user.*&target=user:u*").await;
    assert_eq!(prefixed["events"].as_array().expect("events").len(), 5, "{prefixed}");
    let (_, by_object) = audit_query(&app, &token, "object=user:u3").await;
    assert_eq!(actions(by_object["events"].as_array().expect("events")), ["user.create"]);
    let (_, denied) = audit_query(&app, &token, "outcome=denied").await;
    let denied = denied["events"].as_array().expect("events");
    assert!(denied.iter().all(|e| e["outcome"] == "denied") && !denied.is_empty());
    let (_, none) = audit_query(&app, &token, "actor=nobody").await;
    assert_eq!(none["events"], json!([]));

    // Time: nothing in the future, everything since a minute ago.
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let earlier = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let encode = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    let (_, future) = audit_query(&app, &token, &format!("since={}", encode(&soon))).await;
    assert_eq!(future["events"], json!([]));
    let (_, window) =
        audit_query(&app, &token, &format!("since={}&until={}&actor=adm*", encode(&earlier), encode(&soon))).await;
    let window = actions(window["events"].as_array().expect("events"));
    assert_eq!(window.iter().filter(|a| *a == "user.create").count(), 5, "{window:?}");

    // Keyset pages of two, newest first, visiting each event once.
    let mut seen = Vec::new();
    let mut query = "action=user.create&actor=admin&limit=2".to_owned();
    loop {
        let (status, page) = audit_query(&app, &token, &query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["events"].as_array().expect("events").iter().map(|e| e["target"].clone()));
        match page["next_before"].as_i64() {
            Some(before) => query = format!("action=user.create&actor=admin&limit=2&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen, ["user:u5", "user:u4", "user:u3", "user:u2", "user:u1"]);

    // Bad filters are problem details that say what is wrong.
    for (query, says) in [
        ("action=j*b", "action"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("before=x", "before"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "before until"),
    ] {
        let response = app
            .client
            .get(app.at(&format!("/api/v1/audit?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = response.json().await.expect("json");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains(says)), "{query}: {problem}");
    }
}

#[tokio::test]
async fn only_admins_read_and_export_the_audit_log() {
    let app = spawn_app().await;
    app.add_user("mia", "member-password", cairn_tests::UserRole::Member).await;
    let member = app.token_for("mia", "member-password").await;
    for path in ["/api/v1/audit", "/api/v1/audit/export?format=csv"] {
        let response = app.client.get(app.at(path)).bearer_auth(&member).send().await.expect("request");
        assert_eq!(response.status(), 403, "{path}");
    }
    let browser = app.browser();
    crate::dashboard_pages::log_in_as(&app, &browser, "mia", "member-password").await;
    let page = browser.get(app.at("/audit")).send().await.expect("request");
    assert_eq!(page.status(), 403);
    assert!(page.text().await.expect("html").contains("This page is for server admins"));
    let home = browser.get(app.at("/")).send().await.expect("request").text().await.expect("html");
    assert!(!home.contains("href=\"/audit\""), "no Audit link for members");
    assert!(home.contains("href=\"/who-trained\""));
}

#[tokio::test]
async fn exports_stream_every_matching_row_with_its_chain_hashes() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    // More rows than one export batch (1000), appended directly.
    let actor = cairn_server::audit::Actor::system("test");
    for i in 0..1100 {
        audit::append(&app.db.pool, actor.event("test.event", format!("thing:{i}"), json!({"i": i})))
            .await
            .expect("append");
    }
    let response = app
        .client
        .get(app.at("/api/v1/audit/export?format=jsonl&action=test.*"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers()["content-disposition"].to_str().expect("ascii").contains(".jsonl"));
    let text = response.text().await.expect("body");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1100);
    let first = audit::export::Decoded::parse(lines[0]).expect("a row");
    assert_eq!(first.record.target, "thing:0", "oldest first");
    let mut walk = audit::chain::Walk::partial();
    for line in &lines {
        let row = audit::export::Decoded::parse(line).expect("row");
        walk.check(&row.fields(), &row.hash).expect("every exported row verifies");
    }
    assert_eq!(walk.links_checked, 1099, "consecutive rows are linked");

    let csv = app
        .client
        .get(app.at("/api/v1/audit/export?format=csv&target=thing:1*"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("body");
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("id,occurred_at,actor_id,actor_name,action,target,request_id,client_addr,outcome,details,prev_hash,hash")
    );
    // thing:1, thing:10..19, thing:100..199, thing:1000..1099.
    assert_eq!(rows.count(), 1 + 10 + 100 + 100);
    let bad = app.client.get(app.at("/api/v1/audit/export?format=xml")).bearer_auth(&token).send().await;
    assert_eq!(bad.expect("request").status(), 400);
}

#[tokio::test]
async fn anchors_catch_a_rewritten_or_cut_tail_that_the_chain_alone_does_not() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.admin_token().await;
    }
    let mut tx = app.db.pool.begin().await.expect("tx");
    let anchor = audit::anchors::take_in(&mut tx, "test").await.expect("anchor").expect("a head");
    tx.commit().await.expect("commit");
    app.admin_token().await;
    let checks = audit::anchors::check_all(&app.db.pool).await.expect("check");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].1, audit::chain::AnchorCheck::Present);

    // Cutting the newest rows leaves a chain that verifies: only the anchor notices.
    sqlx::raw_sql("ALTER TABLE audit_events DISABLE TRIGGER USER").execute(&app.db.pool).await.expect("disable");
    sqlx::query("DELETE FROM audit_events WHERE id >= $1")
        .bind(anchor.event_id)
        .execute(&app.db.pool)
        .await
        .expect("cut");
    assert_eq!(audit::verify(&app.db.pool).await.expect("verify").first_break, None);
    let checks = audit::anchors::check_all(&app.db.pool).await.expect("check");
    assert_eq!(checks[0].1, audit::chain::AnchorCheck::Absent);

    // Rewriting it with recomputed hashes: the chain verifies, the anchor is altered.
    app.admin_token().await;
    app.admin_token().await;
    let rows: Vec<audit::EventRow> =
        sqlx::query_as("SELECT * FROM audit_events ORDER BY id").fetch_all(&app.db.pool).await.expect("rows");
    assert!(rows.last().expect("rows").id >= anchor.event_id);
    let given = anchor.anchor();
    assert!(matches!(
        audit::anchors::check(&app.db.pool, &given).await.expect("check"),
        audit::chain::AnchorCheck::Altered { .. }
    ));
    assert_eq!(audit::verify(&app.db.pool).await.expect("verify").first_break, None);
}

#[tokio::test]
async fn who_trained_lists_trainer_datasets_commit_and_registrar_of_each_version() {
    use reqwest::Method;
    let app = spawn_app().await;
    let api = crate::lineage::Api::admin(&app).await;
    let w = crate::lineage::world(&api).await;
    let tag = json!({"run_id": w.trainer, "key": "mlflow.source.git.commit", "value": "9f2c1e7ab34d"});
    api.mlflow("runs/set-tag", tag).await;
    // fraud v2 was deployed as `fraud-live` (the revision records who deployed it).
    sqlx::query(
        "WITH dep AS (INSERT INTO deployments (name, model_id, status, project_id) \
           SELECT 'fraud-live', id, 'stopped', project_id FROM registered_models WHERE name = 'fraud' RETURNING id, model_id) \
         INSERT INTO deployment_revisions (deployment_id, revision, model_version_id, version, reason, actor_name) \
         SELECT dep.id, 1, mv.id, 2, 'create', 'dora' FROM dep JOIN model_versions mv ON mv.model_id = dep.model_id \
         WHERE mv.version = 2",
    )
    .execute(&app.db.pool)
    .await
    .expect("deployment");

    app.add_user("vera", "viewer-password-1", cairn_tests::UserRole::Viewer).await;
    let viewer = app.token_for("vera", "viewer-password-1").await;
    let response = app.client.get(app.at("/api/v1/who-trained")).bearer_auth(&viewer).send().await.expect("request");
    assert_eq!(response.status(), 200, "readers see who trained what");
    let body: serde_json::Value = response.json().await.expect("json");
    let versions = body["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    let newest = &versions[0];
    assert_eq!((newest["model"].as_str(), newest["version"].as_i64()), (Some("fraud"), Some(2)));
    assert_eq!(newest["trained_by"], "admin");
    assert_eq!(newest["registered_by"], "admin");
    assert_eq!(newest["source_commit"], "9f2c1e7ab34d");
    assert_eq!(newest["run_id"], w.trainer.as_str());
    let datasets: Vec<(String, i64)> = newest["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .map(|d| (d["name"].as_str().unwrap_or("").to_owned(), d["version"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(datasets, [("eval".to_owned(), 1), ("train".to_owned(), 1)]);
    assert_eq!(newest["provenance_url"], "/models/fraud/versions/2/provenance");
    assert_eq!(newest["deployed_by"], json!([{"deployment": "fraud-live", "by": "dora"}]));
    assert_eq!(versions[1]["deployed_by"], json!([]));
    let paged = api.ok(Method::GET, "/api/v1/who-trained?limit=1", None).await;
    let before = paged["next_before"].as_i64().expect("a second page");
    let second = api.ok(Method::GET, &format!("/api/v1/who-trained?limit=1&before={before}"), None).await;
    assert_eq!(second["versions"][0]["version"], 1);
    assert_eq!(second["next_before"], serde_json::Value::Null);

    let (browser, _) = crate::dashboard_pages::admin(&app).await;
    let (status, html) = crate::dashboard_pages::get(&browser, &app, "/who-trained").await;
    assert_eq!(status, 200);
    for expected in [
        "fraud v2",
        "/models/fraud/versions/2/provenance",
        "/datasets/train?version=1",
        "9f2c1e7ab34d",
        "dora (fraud-live)",
    ] {
        assert!(html.contains(expected), "{expected} in the page");
    }
}

#[tokio::test]
async fn the_audit_page_filters_links_objects_pages_and_offers_exports() {
    let app = spawn_app().await;
    let api = crate::lineage::Api::admin(&app).await;
    crate::lineage::world(&api).await;
    let actor = cairn_server::audit::Actor::system("test");
    for i in 0..60 {
        audit::append(&app.db.pool, actor.event("test.event", format!("thing:{i}"), json!({}))).await.expect("append");
    }
    let (browser, _) = crate::dashboard_pages::admin(&app).await;
    let (status, home) = crate::dashboard_pages::get(&browser, &app, "/").await;
    assert_eq!(status, 200);
    assert!(home.contains("href=\"/audit\""), "admins have the Audit log link");

    let (status, html) = crate::dashboard_pages::get(&browser, &app, "/audit?action=registered_model.*").await;
    assert_eq!(status, 200);
    assert!(html.contains("registered_model.create") && !html.contains("model_version.create"), "filtered");
    assert!(html.contains("<a href=\"/models/fraud\">model:fraud</a>"), "the object is linked");
    assert!(html.contains("value=\"registered_model.*\""), "the form keeps the filter");
    let export = html.split("id=\"export-jsonl\"").next().and_then(|h| h.rsplit("href=\"").next()).unwrap_or("");
    assert!(export.starts_with("/api/v1/audit/export?action=registered_model.*&"), "export keeps it too: {export}");
    assert!(export.contains("format=jsonl"), "{export}");

    let (_, html) = crate::dashboard_pages::get(&browser, &app, "/audit?object=model:fraud/*").await;
    assert!(html.contains("<a href=\"/models/fraud/versions/2\">model:fraud/2</a>"), "versions link to their page");

    let (status, first) = crate::dashboard_pages::get(&browser, &app, "/audit?action=test.*").await;
    assert_eq!(status, 200);
    assert_eq!(first.matches("<code>test.event</code>").count(), 50);
    let marker = "rel=\"next\" id=\"older\"";
    let link_end = first.find(marker).expect("a next-page link");
    let href_start = first[..link_end].rfind("href=\"").expect("href") + "href=\"".len();
    let next = first[href_start..link_end].trim_end().trim_end_matches('"').replace("&#38;", "&");
    assert!(next.starts_with("/audit?action=test.*&before="), "{next}");
    let (_, second) = crate::dashboard_pages::get(&browser, &app, &next).await;
    assert_eq!(second.matches("<code>test.event</code>").count(), 10);
    assert!(!second.contains(marker), "the last page");

    let (status, bad) = crate::dashboard_pages::get(&browser, &app, "/audit?since=yesterday").await;
    assert_eq!(status, 400);
    assert!(bad.contains("since: &#34;yesterday&#34; is not a time") || bad.contains("is not a time"), "{bad}");
}

#[tokio::test]
async fn the_audit_log_filters_by_the_project_of_each_events_object() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let post = |path: &'static str, body: serde_json::Value| {
        let request = app.client.post(app.at(path)).bearer_auth(&token).json(&body);
        async move {
            let response = request.send().await.expect("request");
            assert!(response.status().is_success(), "{path}: {}", response.status());
            response.json::<serde_json::Value>().await.expect("json")
        }
    };
    post("/api/v1/projects", json!({"name": "vision"})).await;
    let in_vision = post("/api/v1/experiments", json!({"name": "cats", "project": "vision"})).await;
    let elsewhere = post("/api/v1/experiments", json!({"name": "elsewhere"})).await;
    let id_of = |v: &serde_json::Value| v["id"].as_str().map_or_else(|| v["id"].to_string(), str::to_owned);
    let run = post("/api/2.0/mlflow/runs/create", json!({"experiment_id": in_vision["id"]})).await;
    let run_id = run["run"]["info"]["run_id"].as_str().expect("run id").to_owned();

    let (status, body) = audit_query(&app, &token, "project=vision&limit=50").await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().expect("events");
    let targets: Vec<&str> = events.iter().map(|e| e["target"].as_str().unwrap_or("")).collect();
    assert!(targets.contains(&format!("experiment:{}", id_of(&in_vision)).as_str()), "{targets:?}");
    assert!(targets.contains(&format!("run:{run_id}").as_str()), "{targets:?}");
    assert!(targets.contains(&"project:vision"), "{targets:?}");
    assert!(!targets.contains(&format!("experiment:{}", id_of(&elsewhere)).as_str()), "{targets:?}");
    let (_, none) = audit_query(&app, &token, "project=no-such-project").await;
    assert_eq!(none["events"].as_array().map(Vec::len), Some(0));
    // The chain is unchanged by the project column.
    audit::verify(&app.db.pool).await.expect("verify");
}
