use cairn_tests::spawn_app_with;

async fn problem(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    (status, response.json().await.expect("problem json"))
}

#[tokio::test]
async fn bad_input_gets_precise_problem_details() {
    let app = spawn_app_with(|c| c.max_body_bytes = 4096).await;
    let token = app.admin_token().await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client.post(app.at("/api/v1/tokens")).bearer_auth(&token).header("content-type", content_type).body(body)
    };

    let (status, body) = problem(post("{\"name\": ", "application/json").send().await.expect("request")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().expect("detail").contains("EOF"), "{body}");

    let (status, body) = problem(post("{\"name\": 5}", "application/json").send().await.expect("request")).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().expect("detail").contains("name"), "{body}");

    let (status, body) =
        problem(post("{\"name\": \"x\", \"nope\": 1}", "application/json").send().await.expect("request")).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().expect("detail").contains("nope"), "{body}");

    let (status, _) = problem(post("{\"name\": \"x\"}", "text/plain").send().await.expect("request")).await;
    assert_eq!(status, 415);

    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(10_000));
    let response = app
        .client
        .post(app.at("/api/v1/tokens"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("request");
    let (status, body) = problem(response).await;
    assert_eq!(status, 413, "{body}");

    let (status, body) = problem(post("{\"name\": \"   \"}", "application/json").send().await.expect("request")).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().expect("detail").contains("1 to 100"), "{body}");
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_surface_asked() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.admin_token().await;
    let api = app.client.get(app.at("/api/v1/nothing-here")).bearer_auth(&token).send().await.expect("request");
    let (status, body) = problem(api).await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().expect("detail").contains("/api/v1/nothing-here"));

    let page = app.client.get(app.at("/no/such/page")).send().await.expect("request");
    assert_eq!(page.status(), 404);
    assert!(page.text().await.expect("html").contains("There is no page at /no/such/page"));
}

#[tokio::test]
async fn bad_path_parameters_are_rejected_cleanly() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.admin_token().await;
    let response =
        app.client.delete(app.at("/api/v1/tokens/not-a-uuid")).bearer_auth(&token).send().await.expect("request");
    let (status, body) = problem(response).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().expect("detail").contains("not a token id"));
    let unknown = app
        .client
        .delete(app.at(&format!("/api/v1/tokens/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 404);
}
