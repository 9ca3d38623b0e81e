use cairn_tests::spawn_app;

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let app = spawn_app().await;
    let health = app.client.get(app.at("/healthz")).send().await.expect("request");
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.at("/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["storage"]["status"], "ok");
}

#[tokio::test]
async fn readiness_reports_an_unreachable_database() {
    let app = spawn_app().await;
    app.db.pool.close().await;
    let ready = app.client.get(app.at("/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["database"]["status"], "error");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_report_the_pool() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.client.get(app.at("/healthz")).send().await.expect("request");
    }
    let text = app.client.get(app.at("/metrics")).send().await.expect("request").text().await.expect("text");
    let line = text
        .lines()
        .find(|l| l.starts_with("cairn_http_requests_total") && l.contains("route=\"/healthz\""))
        .unwrap_or_else(|| panic!("no healthz counter in:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("cairn_http_request_duration_seconds_bucket"));
    assert!(text.contains("cairn_db_pool_connections"));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get(app.at("/healthz")).send().await.expect("request");
    let id = response.headers().get("x-request-id").expect("x-request-id header");
    assert_eq!(id.len(), 36, "a UUID");
    let given = app.client.get(app.at("/healthz")).header("x-request-id", "abc-123").send().await.expect("request");
    assert_eq!(given.headers()["x-request-id"], "abc-123", "a caller's id is kept");
}
