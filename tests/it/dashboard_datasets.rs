//! The dataset pages and a model version's provenance page over HTTP, as a viewer without
//! JavaScript sees them: the list, a dataset's versions, files, CSV schema and the runs
//! that used the chosen version, the diff between two versions, readable errors for unknown
//! names and versions, and the provenance page with its JSON download link.

use cairn_tests::spawn_app;
use reqwest::Method;
use serde_json::json;

use crate::dashboard_pages::viewer;
use crate::lineage::{Api, world};

async fn page(browser: &reqwest::Client, app: &cairn_tests::TestApp, path: &str) -> (u16, String) {
    let response = browser.get(app.at(path)).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("html"))
}

#[tokio::test]
async fn dataset_pages_show_versions_files_schema_runs_and_diffs() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let w = world(&api).await;
    api.push_with_message("train", b"x,y,label\n1,2,a\n", "<b>more</b> data").await;
    let browser = viewer(&app).await;

    let (status, list) = page(&browser, &app, "/datasets").await;
    assert_eq!(status, 200);
    assert!(list.contains(r#"<a href="/datasets">Datasets</a>"#), "header link");
    assert!(
        list.contains(r#"<a href="/datasets/train">train</a>"#)
            && list.contains(r#"<a href="/datasets/eval">eval</a>"#)
    );

    // The latest version is chosen by default; the message is escaped.
    let (status, latest) = page(&browser, &app, "/datasets/train").await;
    assert_eq!(status, 200);
    assert!(latest.contains("&#60;b&#62;more&#60;/b&#62; data") && !latest.contains("<b>more</b>"), "escaped");
    assert!(latest.contains(r#"<h2 id="version-h">Version 2</h2>"#));
    assert!(latest.contains("<th scope=\"row\">label</th><td>string</td>"), "schema of the CSV file");
    assert!(latest.contains("No run has used this version yet."));
    assert!(latest.contains(r#"href="/datasets/train/diff?from=1&#38;to=2""#), "compare with the previous version");
    assert!(latest.contains(r#"href="/api/v1/datasets/train/versions/2/files/data.csv""#), "file download");

    let (status, first) = page(&browser, &app, "/datasets/train?version=1").await;
    assert_eq!(status, 200);
    assert!(first.contains(r#"<h2 id="version-h">Version 1</h2>"#) && first.contains(&w.train_digest));
    assert!(first.contains(&format!(r#"href="/runs/{}""#, w.trainer)), "the training run is linked");
    assert!(first.contains(&format!(r#"href="/runs/{}""#, w.explorer)));
    assert!(first.contains("<td>exploration</td>") && first.contains("<td>training</td>"), "contexts");
    assert!(first.contains("<th scope=\"row\">x</th><td>integer</td>"));

    let (status, diff) = page(&browser, &app, "/datasets/train/diff?from=1&to=2").await;
    assert_eq!(status, 200);
    assert!(diff.contains(r#"<h2 id="changed-h">Changed (1)</h2>"#) && diff.contains("<li><code>data.csv</code></li>"));
    assert!(diff.contains(r#"<h2 id="added-h">Added (0)</h2>"#));
    assert!(diff.contains(r#"<option value="1" selected>1</option>"#), "the form holds the choice");
    let (status, defaulted) = page(&browser, &app, "/datasets/train/diff").await;
    assert_eq!(status, 200);
    assert!(
        defaulted.contains(
            "version <a href=\"/datasets/train?version=1\">1</a> → <a href=\"/datasets/train?version=2\">2</a>"
        )
    );

    for (path, status, says) in [
        ("/datasets/nope", 404, "no dataset named"),
        ("/datasets/train?version=9", 404, "has no version 9"),
        ("/datasets/train?version=x", 400, "versions are 1, 2, ..."),
        ("/datasets/train/diff?from=9&to=1", 404, "no such version"),
        ("/datasets/train/diff?from=0", 400, "versions are 1, 2, ..."),
    ] {
        let (got, html) = page(&browser, &app, path).await;
        assert_eq!(got, status, "{path}");
        assert!(html.contains(says) && html.contains("<h1>"), "{path}: a readable page saying {says:?}");
    }
}

#[tokio::test]
async fn the_provenance_page_shows_training_code_data_and_events() {
    let app = spawn_app().await;
    let api = Api::admin(&app).await;
    let w = world(&api).await;
    let tags = json!({"run_id": w.trainer, "params": [{"key": "lr", "value": "0.01"}], "tags": [
        {"key": "mlflow.source.git.commit", "value": "4f2a9c1e0b7d55"},
        {"key": "mlflow.source.git.repoURL", "value": "https://git.example.com/fraud.git"},
    ]});
    api.mlflow("runs/log-batch", tags).await;
    api.ok(Method::PUT, "/api/v1/models/fraud/aliases/champion", Some(json!({"version": 1}))).await;
    let browser = viewer(&app).await;

    let (status, version_page) = page(&browser, &app, "/models/fraud/versions/1").await;
    assert_eq!(status, 200);
    assert!(version_page.contains(r#"href="/models/fraud/versions/1/provenance""#), "linked from the version page");

    let (status, html) = page(&browser, &app, "/models/fraud/versions/1/provenance").await;
    assert_eq!(status, 200);
    assert!(html.contains("Provenance of fraud version 1"));
    assert!(html.contains(r#"href="/api/v1/models/fraud/versions/1/provenance?download""#), "JSON export");
    assert!(html.contains(&format!(r#"href="/runs/{}">trainer</a>"#, w.trainer)));
    assert!(html.contains("4f2a9c1e0b7d55") && html.contains("https://git.example.com/fraud.git"));
    assert!(html.contains(r#"<a href="/datasets/train?version=1">train@1</a>"#) && html.contains(&w.train_digest));
    assert!(html.contains("<th scope=\"row\">lr</th><td><code>0.01</code></td>"));
    assert!(html.contains("pointed alias @champion at version 1"), "the alias event, in words");
    assert!(html.contains("registered version 1 from runs:/"));

    for path in ["/models/fraud/versions/9/provenance", "/models/fraud/versions/x/provenance"] {
        let (status, html) = page(&browser, &app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("<h1>404"), "{path}");
    }
}
