//! The artifact browser of the run page, as a browser without JavaScript sees it: the tree
//! opened along a path, listings with sizes, previews (text, JSON, CSV, images; the first
//! 64 KiB only, escaped), downloads with the right headers, and refusals: traversals,
//! missing paths, runs whose artifacts are elsewhere, requests without a session.

use cairn_server::audit::Actor;
use cairn_server::tracking;
use cairn_tests::{TestApp, spawn_app};
use uuid::Uuid;

use crate::dashboard_pages::{admin, get, new_experiment, new_run, viewer};

/// A tiny valid PNG (1x1, transparent).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Uploads `body` as the run's artifact `path` through the MLflow artifact proxy.
async fn upload(app: &TestApp, token: &str, experiment: i64, run: Uuid, path: &str, body: Vec<u8>) {
    let url = app.at(&format!("/api/2.0/mlflow-artifacts/artifacts/{experiment}/{}/artifacts/{path}", run.simple()));
    let response = app.client.put(url).bearer_auth(token).body(body).send().await.expect("request");
    assert_eq!(response.status(), 200, "upload of {path}");
}

/// A run with a small tree of artifacts: `(experiment, run, the big text file's length)`.
async fn run_with_artifacts(app: &TestApp) -> (i64, Uuid, usize) {
    let experiment = new_experiment(app, "artifacts").await;
    let run = new_run(app, experiment, "trained", 1_700_000_000_000, vec![]).await;
    let token = app.admin_token().await;
    let big: String = (0..20_000).map(|i| format!("line {i:05}\n")).collect::<String>() + "THE-END";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("model/MLmodel", b"flavors:\n  python_function: {}\n".to_vec()),
        ("model/data/weights.bin", vec![0, 1, 2, 3, 255, 0, 7]),
        ("metrics.json", br#"{"acc":0.93,"classes":["cat","dog"]}"#.to_vec()),
        ("eval/confusion.csv", b"label,cat,dog\ncat,41,\"3\"\n\"d,og\",2,54\n".to_vec()),
        ("train.log", big.clone().into_bytes()),
        ("plots/loss.png", PNG.to_vec()),
        ("plots/arch.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec()),
        ("report.html", b"<h1>hi</h1><script>alert(document.cookie)</script>".to_vec()),
    ];
    for (path, body) in files {
        upload(app, &token, experiment, run, path, body).await;
    }
    (experiment, run, big.len())
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn the_run_page_lists_top_level_artifacts_and_the_browser_opens_the_tree_along_the_path() {
    let app = spawn_app().await;
    let (_, run, _) = run_with_artifacts(&app).await;
    let (browser, _) = admin(&app).await;
    let id = run.simple();

    let (status, page) = get(&browser, &app, &format!("/runs/{id}")).await;
    assert_eq!(status, 200);
    let section = page.split("id=\"artifacts\"").nth(1).expect("an artifacts section");
    for entry in ["eval/", "model/", "plots/", "metrics.json", "train.log"] {
        assert!(section.contains(&format!(">{entry}</a>")), "{entry} listed on the run page");
    }
    assert!(section.contains(&format!("href=\"/runs/{id}/artifacts/model\"")));
    assert!(section.contains(&format!("href=\"/runs/{id}/files/metrics.json?download=1\" download")));
    assert!(section.contains("title=\"36 bytes\">36 B<"), "sizes, exact on hover");
    assert!(section.contains(&format!("href=\"/runs/{id}/artifacts\" class=\"push-right\">Browse all artifacts")));

    let (status, dir) = get(&browser, &app, &format!("/runs/{id}/artifacts/model/data")).await;
    assert_eq!(status, 200);
    let tree = dir.split("aria-label=\"Artifact tree\"").nth(1).expect("a tree").split("</nav>").next().expect("nav");
    assert!(tree.contains(&format!("href=\"/runs/{id}/artifacts/model\" aria-expanded=\"true\"")), "model open");
    assert!(tree.contains(&format!("href=\"/runs/{id}/artifacts/plots\" aria-expanded=\"false\"")), "plots closed");
    assert!(tree.contains(&format!("href=\"/runs/{id}/artifacts/model/data\" aria-current=\"page\"")));
    assert!(tree.contains(">MLmodel</a>") && tree.contains(">weights.bin</a>"), "children of open folders");
    assert!(!tree.contains(">loss.png</a>"), "closed folders keep their children to themselves");
    assert!(dir.contains(&format!("<a href=\"/runs/{id}/artifacts/model\">model</a>")), "breadcrumb");
    assert!(dir.contains("title=\"7 bytes\">7 B<"));

    let (status, binary) = get(&browser, &app, &format!("/runs/{id}/artifacts/model/data/weights.bin")).await;
    assert_eq!(status, 200);
    assert!(binary.contains("No preview: this is not a text file"));
}

#[tokio::test]
async fn previews_show_text_json_and_csv_escaped_and_only_the_first_64_kib() {
    let app = spawn_app().await;
    let (_, run, big_len) = run_with_artifacts(&app).await;
    let (browser, _) = admin(&app).await;
    let id = run.simple();
    let page = |path: &'static str| {
        let browser = browser.clone();
        let app = &app;
        async move {
            let (status, html) = get(&browser, app, &format!("/runs/{id}/artifacts/{path}")).await;
            assert_eq!(status, 200, "{path}");
            html
        }
    };

    let json = page("metrics.json").await;
    assert!(json.contains("{\n  &#34;acc&#34;: 0.93,"), "pretty-printed and escaped");

    let csv = page("eval/confusion.csv").await;
    assert!(csv.contains("<th scope=\"col\">label</th><th scope=\"col\">cat</th><th scope=\"col\">dog</th>"));
    assert!(csv.contains("<tr><td>d,og</td><td>2</td><td>54</td></tr>"), "quoted fields unquoted");

    let log = page("train.log").await;
    assert!(big_len > 64 * 1024);
    assert!(log.contains("Preview of the first 64 KiB of"), "says it is cut");
    assert!(log.contains("line 00000") && log.contains("line 05000"));
    assert!(!log.contains("THE-END") && !log.contains("line 19999"), "nothing past 64 KiB");

    let html = page("report.html").await;
    assert!(html.contains("&#60;script&#62;alert(document.cookie)&#60;/script&#62;"), "shown as text");
    assert!(!html.contains("<script>alert"), "never as markup");

    let image = page("plots/loss.png").await;
    assert!(image.contains(&format!("<img class=\"artifact-image\" src=\"/runs/{id}/files/plots/loss.png\"")));
}

#[tokio::test]
async fn files_download_streamed_with_type_and_name_and_only_raster_images_are_inline() {
    let app = spawn_app().await;
    let (_, run, big_len) = run_with_artifacts(&app).await;
    let (browser, _) = admin(&app).await;
    let id = run.simple();
    let fetch = |path: String| {
        let request = browser.get(app.at(&path));
        async move { request.send().await.expect("request") }
    };

    let log = fetch(format!("/runs/{id}/files/train.log?download=1")).await;
    assert_eq!(log.status(), 200);
    assert_eq!(header(&log, "content-type"), "text/plain");
    assert_eq!(header(&log, "content-disposition"), "attachment; filename=\"train.log\"; filename*=UTF-8''train%2Elog");
    assert_eq!(header(&log, "content-length"), big_len.to_string());
    assert!(log.text().await.expect("body").ends_with("THE-END"), "the whole file");

    let png = fetch(format!("/runs/{id}/files/plots/loss.png")).await;
    assert_eq!((header(&png, "content-type"), header(&png, "content-disposition")), ("image/png", "inline"));
    assert_eq!(header(&png, "x-content-type-options"), "nosniff");
    assert_eq!(png.bytes().await.expect("body").as_ref(), PNG);
    let forced = fetch(format!("/runs/{id}/files/plots/loss.png?download=1")).await;
    assert!(header(&forced, "content-disposition").starts_with("attachment;"));

    for active in ["report.html", "plots/arch.svg"] {
        let response = fetch(format!("/runs/{id}/files/{active}")).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "content-disposition").starts_with("attachment;"), "{active} never inline");
        let csp = header(&response, "content-security-policy");
        assert!(csp.contains("sandbox") && csp.contains("default-src 'none'"), "{active}: {csp}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    }
}

#[tokio::test]
async fn traversals_and_missing_paths_get_readable_error_pages() {
    let app = spawn_app().await;
    let (experiment, run, _) = run_with_artifacts(&app).await;
    // Another run's secret, one traversal away from this run's root.
    let other = new_run(&app, experiment, "other", 1_700_000_000_000, vec![]).await;
    upload(&app, &app.admin_token().await, experiment, other, "secret.txt", b"top secret".to_vec()).await;
    let (browser, _) = admin(&app).await;
    let id = run.simple();
    let escape = format!("..%2F..%2F{}%2Fartifacts%2Fsecret.txt", other.simple());
    for path in [
        format!("/runs/{id}/artifacts/{escape}"),
        format!("/runs/{id}/files/{escape}"),
        format!("/runs/{id}/files/model%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/runs/{id}/artifacts/model%5C..%5Csecret"),
        format!("/runs/{id}/files/%2Fetc%2Fpasswd"),
    ] {
        let (status, page) = get(&browser, &app, &path).await;
        assert_eq!(status, 400, "{path}");
        assert!(page.contains("is not a valid artifact path"), "{path}: {page}");
        assert!(page.contains("<h1>400 · Bad Request</h1>"), "the error page");
        assert!(!page.contains("top secret"));
    }
    for path in [
        format!("/runs/{id}/artifacts/nothing/here"),
        format!("/runs/{id}/artifacts/metrics.json/below-a-file"),
        format!("/runs/{id}/files/nothing.txt"),
        format!("/runs/{id}/files/model"),
    ] {
        let (status, page) = get(&browser, &app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(page.contains("This run has no artifact at"), "{path}: {page}");
    }
    let (status, _) = get(&browser, &app, &format!("/runs/{}/artifacts", Uuid::new_v4().simple())).await;
    assert_eq!(status, 404, "an unknown run");
}

#[tokio::test]
async fn viewers_read_artifacts_and_anonymous_requests_go_to_the_login_page() {
    let app = spawn_app().await;
    let (_, run, _) = run_with_artifacts(&app).await;
    let browser = viewer(&app).await;
    let id = run.simple();
    for path in
        [format!("/runs/{id}"), format!("/runs/{id}/artifacts/eval"), format!("/runs/{id}/artifacts/metrics.json")]
    {
        assert_eq!(get(&browser, &app, &path).await.0, 200, "{path}");
    }
    let file = browser.get(app.at(&format!("/runs/{id}/files/metrics.json"))).send().await.expect("request");
    assert_eq!(file.status(), 200);
    for path in [format!("/runs/{id}/artifacts"), format!("/runs/{id}/files/metrics.json")] {
        let anonymous = app.client.get(app.at(&path)).send().await.expect("request");
        assert_eq!(anonymous.status(), 303, "{path}");
        assert!(header(&anonymous, "location").starts_with("/login?next="));
    }
}

#[tokio::test]
async fn a_run_whose_artifacts_are_outside_the_store_says_so() {
    let app = spawn_app().await;
    let actor = Actor::system("test");
    let experiment = tracking::create_experiment(&app.db, &actor, "external", Some("s3://their-bucket/ml"), &[], 1)
        .await
        .expect("experiment")
        .id;
    let run = new_run(&app, experiment, "external", 1_700_000_000_000, vec![]).await;
    let (browser, _) = admin(&app).await;
    let id = run.simple();
    let (status, page) = get(&browser, &app, &format!("/runs/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("stored at <code>s3://their-bucket/ml/{id}/artifacts</code>, outside Cairn")));
    let (status, browse) = get(&browser, &app, &format!("/runs/{id}/artifacts")).await;
    assert_eq!(status, 200);
    assert!(browse.contains("outside Cairn&#39;s store") || browse.contains("outside Cairn's store"));
    let (status, file) = get(&browser, &app, &format!("/runs/{id}/files/x.txt")).await;
    assert_eq!(status, 404);
    assert!(file.contains("outside Cairn"));
}

#[tokio::test]
async fn an_unreachable_store_costs_the_run_page_its_artifact_list_only() {
    let storage = cairn_storage::Storage::s3(&cairn_tests::s3::unreachable_s3_config()).expect("storage");
    let app = cairn_tests::spawn_app_with_storage(storage, |_| {}).await;
    let experiment = new_experiment(&app, "offline").await;
    let run = new_run(&app, experiment, "offline", 1_700_000_000_000, vec![]).await;
    let (browser, _) = admin(&app).await;
    let (status, page) = get(&browser, &app, &format!("/runs/{}", run.simple())).await;
    assert_eq!(status, 200, "the run page still renders");
    assert!(page.contains("The artifact store did not answer"));
    let (status, browse) = get(&browser, &app, &format!("/runs/{}/artifacts", run.simple())).await;
    assert_eq!(status, 500);
    assert!(browse.contains("Something went wrong on the server"), "a readable error page");
}
