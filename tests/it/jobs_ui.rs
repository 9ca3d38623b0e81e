//! The jobs pages over HTTP, as a browser without JavaScript sees them, with the local
//! executor running the jobs for real: the list (states, queue positions, filter, keyset
//! pages, usage), a job's page (spec, timeline, log, run link), Cancel and Retry, the
//! Retrain form from a run and from a model version, and the template pages; each checked
//! for members and viewers, and every form's CSRF check.

use cairn_tests::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

use crate::dashboard_pages::{admin, get, viewer};
use crate::job_templates::Api;

fn sh(script: &str) -> Value {
    json!(["sh", "-c", script])
}

async fn submit(api: &Api, body: Value) -> String {
    api.json(Method::POST, "/jobs", Some(body), 201).await["id"].as_str().expect("id").to_owned()
}

async fn post_form(
    browser: &reqwest::Client,
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let response = browser.post(app.at(path)).form(form).send().await.expect("request");
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    (status, location, response.text().await.expect("body"))
}

/// The job id at the end of a `/jobs/ID` location.
fn job_of(location: &str) -> String {
    location.strip_prefix("/jobs/").unwrap_or_else(|| panic!("not a job page: {location:?}")).to_owned()
}

#[tokio::test]
async fn job_pages_show_state_spec_timeline_log_and_run_with_cancel_and_retry_for_members() {
    let api = Api::start().await;
    let app = &api.app;
    let done = submit(&api, json!({"command": sh("echo 'hello <b>{{lr}}</b>'"), "params": {"lr": "0.1"}})).await;
    let failing = submit(&api, json!({"command": sh("echo bye >&2; exit 3")})).await;
    let done_job = api.wait_for_end(&done).await;
    api.wait_for_end(&failing).await;
    let sleeper = submit(&api, json!({"command": sh("echo started; sleep 60")})).await;
    let (browser, csrf) = admin(app).await;

    let (status, list) = get(&browser, app, "/jobs").await;
    assert_eq!(status, 200);
    assert!(list.contains(r#"<a href="/jobs">Jobs</a>"#), "header link");
    for id in [&done, &failing, &sleeper] {
        assert!(list.contains(&format!(r#"<a href="/jobs/{id}"><code>{}</code></a>"#, &id[..8])), "{id} listed");
    }
    assert!(list.contains(r#"<span class="status failed">Failed</span>"#));
    assert!(list.contains("<code>sh -c echo bye &#62;&#38;2; exit 3</code>"), "the command, escaped");
    assert!(list.contains(&format!(r#"href="/runs/{}""#, done_job["run_id"].as_str().expect("run"))));
    let (_, failed_only) = get(&browser, app, "/jobs?state=failed").await;
    assert!(failed_only.contains(&failing[..8]) && !failed_only.contains(&done[..8]));
    assert!(
        failed_only
            .contains(r#"<a href="/jobs?state=failed" aria-current="page">Failed <span class="muted">1</span></a>"#)
    );
    let (status, bad) = get(&browser, app, "/jobs?state=done").await;
    assert_eq!(status, 400);
    assert!(bad.contains("Unknown state"));

    // A finished job: its log (escaped), timeline, spec, run, and Retry / Retrain for members.
    let (status, page) = get(&browser, app, &format!("/jobs/{done}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("stdout hello &#60;b&#62;0.1&#60;/b&#62;"), "the stored log, escaped: {page}");
    assert!(!page.contains("data-follow") && !page.contains("joblog.js"), "nothing to follow");
    assert!(page.contains(r#"<span class="status finished">Succeeded</span>"#));
    let timeline = &page[page.find(r#"<ol class="timeline">"#).expect("timeline")..];
    let timeline = &timeline[..timeline.find("</ol>").expect("end of timeline")];
    let states: Vec<&str> = timeline
        .split("<span class=\"status ")
        .skip(1)
        .filter_map(|s| s.split('>').nth(1)?.split('<').next())
        .collect();
    assert_eq!(states, ["Queued", "Scheduled", "Running", "Succeeded"], "{timeline}");
    assert!(timeline.contains("exited with code 0"), "reasons in the timeline");
    assert!(page.contains("<code>sh -c echo &#39;hello &#60;b&#62;0.1&#60;/b&#62;&#39;</code>"), "resolved command");
    assert!(page.contains(r#"<th scope="row">lr</th><td class="wrap">0.1</td>"#), "params");
    let run_id = done_job["run_id"].as_str().expect("run");
    assert!(page.contains(&format!(r#"<a href="/runs/{run_id}"><code>{run_id}</code></a>"#)), "run linked");
    assert!(
        page.contains(&format!(r#"action="/jobs/{done}/retry""#))
            && page.contains(&format!(r#"href="/runs/{run_id}/retrain""#))
    );
    assert!(!page.contains("/cancel\""), "a finished job has no Cancel button");

    // A running job: the page follows its log; Cancel needs the CSRF token.
    api.json(Method::GET, &format!("/jobs/{sleeper}"), None, 200).await;
    for _ in 0..100 {
        let (_, log) = api.call_as(&api.token, Method::GET, &format!("/jobs/{sleeper}/logs"), None).await;
        if log.contains("started") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, running) = get(&browser, app, &format!("/jobs/{sleeper}")).await;
    assert!(running.contains(&format!(r#"data-follow="/api/v1/jobs/{sleeper}/logs?follow=true""#)), "{running}");
    assert!(running.contains(r#"<script type="module" src="/static/joblog.js"></script>"#));
    assert!(running.contains("stdout started"), "the log so far is on the page");
    assert!(running.contains("reload the page to see new output"));
    let (status, _, _) = post_form(&browser, app, &format!("/jobs/{sleeper}/cancel"), &[("csrf_token", "wrong")]).await;
    assert_eq!(status, 403);
    let (status, location, _) =
        post_form(&browser, app, &format!("/jobs/{sleeper}/cancel"), &[("csrf_token", &csrf)]).await;
    assert_eq!((status, location.as_str()), (303, format!("/jobs/{sleeper}").as_str()));
    assert_eq!(api.wait_for_end(&sleeper).await["state"], "cancelled");
    let (status, _, again) =
        post_form(&browser, app, &format!("/jobs/{sleeper}/cancel"), &[("csrf_token", &csrf)]).await;
    assert_eq!(status, 422);
    assert!(again.contains("has already ended"), "{again}");

    let (status, location, _) =
        post_form(&browser, app, &format!("/jobs/{failing}/retry"), &[("csrf_token", &csrf)]).await;
    assert_eq!(status, 303);
    let retried = api.json(Method::GET, &format!("/jobs/{}", job_of(&location)), None, 200).await;
    assert_eq!(retried["origin_job_id"], failing.as_str());
    let (_, retried_page) = get(&browser, app, &location).await;
    assert!(
        retried_page.contains(&format!(r#"<a href="/jobs/{failing}"><code>{}</code></a>"#, &failing[..8])),
        "names the job it repeats"
    );

    // Save the finished job's spec as a template; the same name again is its next version.
    let form = [("csrf_token", csrf.as_str()), ("name", "hello-job"), ("description", "says hello")];
    let (status, location, _) = post_form(&browser, app, &format!("/jobs/{done}/template"), &form).await;
    assert_eq!((status, location.as_str()), (303, "/job-templates/hello-job?version=1"));
    let (_, again_location, _) = post_form(&browser, app, &format!("/jobs/{done}/template"), &form).await;
    assert_eq!(again_location, "/job-templates/hello-job?version=2");
    let saved = api.json(Method::GET, "/job-templates/hello-job?version=1", None, 200).await;
    assert_eq!(saved["spec"], done_job["spec"]);
    assert_eq!(saved["description"], "says hello");
    let bad = [("csrf_token", csrf.as_str()), ("name", "no spaces")];
    let (status, _, refused) = post_form(&browser, app, &format!("/jobs/{done}/template"), &bad).await;
    assert_eq!(status, 400);
    assert!(refused.contains("is not a template name"), "{refused}");

    // Viewers read the pages but get no forms, and their posts are refused.
    let reader = viewer(app).await;
    let (status, seen) = get(&reader, app, &format!("/jobs/{done}")).await;
    assert_eq!(status, 200);
    assert!(!seen.contains("/retry\"") && !seen.contains("/retrain\""), "no buttons for viewers");
    let (status, _) = get(&reader, app, &format!("/runs/{run_id}/retrain")).await;
    assert_eq!(status, 403);
    let viewer_csrf = cairn_tests::hidden_input(&seen, "csrf_token").expect("csrf");
    for action in ["retry", "template"] {
        let form = [("csrf_token", viewer_csrf.as_str()), ("name", "viewer-template")];
        let (status, _, _) = post_form(&reader, app, &format!("/jobs/{done}/{action}"), &form).await;
        assert_eq!(status, 403, "{action}");
    }
    assert!(!seen.contains("Save as a job template"));

    let (status, missing) = get(&browser, app, "/jobs/not-a-job").await;
    assert_eq!(status, 404);
    assert!(missing.contains("There is no job not-a-job"));
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'job.%' ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .expect("audit");
    assert_eq!(actions, ["job.submit", "job.submit", "job.submit", "job.cancel", "job.retry"]);
    let saves: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'job_template.save'")
        .fetch_one(&app.db.pool)
        .await
        .expect("audit");
    assert_eq!(saves, 2);
}

#[tokio::test]
async fn queued_jobs_show_their_place_and_pages_follow_a_keyset() {
    // No executor: jobs stay queued.
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let mut ids = Vec::new();
    for (i, priority) in (0..52).map(|i| (i, if i == 3 { 5 } else { 0 })) {
        let body = json!({"command": ["echo", i.to_string()], "priority": priority});
        let response =
            app.client.post(app.at("/api/v1/jobs")).bearer_auth(&token).json(&body).send().await.expect("submit");
        assert_eq!(response.status(), 201);
        let job: Value = response.json().await.expect("json");
        ids.push(job["id"].as_str().expect("id").to_owned());
    }
    let (browser, csrf) = admin(&app).await;
    let (_, first) = get(&browser, &app, "/jobs?state=queued").await;
    let row = |html: &str, id: &str| -> Option<String> {
        let start = html.find(&format!(r#"<a href="/jobs/{id}">"#))?;
        Some(html[start..start + html[start..].find("</tr>")?].to_owned())
    };
    let newest = row(&first, &ids[51]).expect("newest job on the first page");
    assert!(newest.contains("<td class=\"num\">#52</td>"), "last in the queue: {newest}");
    let urgent = row(&first, &ids[3]).expect("the urgent job");
    assert!(urgent.contains("<td class=\"num\">#1</td>"), "higher priority goes first: {urgent}");
    assert!(row(&first, &ids[1]).is_none(), "the two oldest are on the next page");
    let next = first.split("rel=\"next\"").next().and_then(|h| h.rsplit("href=\"").next()).expect("next link");
    let next = next.trim_end_matches("\" ").trim_end_matches('"').replace("&#38;", "&");
    let (status, second) = get(&browser, &app, &next).await;
    assert_eq!(status, 200, "{next}");
    assert!(row(&second, &ids[0]).is_some_and(|r| r.contains("#2")) && row(&second, &ids[1]).is_some());
    assert!(row(&second, &ids[2]).is_none() && !second.contains("rel=\"next\""));
    let (status, _) = get(&browser, &app, "/jobs?before=yesterday&before_id=x").await;
    assert_eq!(status, 400);

    // Cancelling a queued job ends it at once.
    let (status, location, _) =
        post_form(&browser, &app, &format!("/jobs/{}/cancel", ids[0]), &[("csrf_token", &csrf)]).await;
    assert_eq!(status, 303);
    let (_, page) = get(&browser, &app, &location).await;
    assert!(page.contains(r#"<span class="status killed">Cancelled</span>"#), "{page}");
    assert!(page.contains("cancelled by admin"));
}

#[tokio::test]
async fn retrain_from_a_run_or_a_model_version_changes_params_and_dataset_versions() {
    let api = Api::start().await;
    let app = &api.app;
    let lineage = crate::lineage::Api::admin(app).await;
    lineage.push_with_message("corpus", b"a\n1\n", "first").await;
    let script = "echo lr={{lr}} epochs={{epochs}}; ls datasets/corpus";
    let id =
        submit(&api, json!({"command": sh(script), "params": {"lr": "0.1", "epochs": "3"}, "datasets": ["corpus"]}))
            .await;
    let first = api.wait_for_end(&id).await;
    assert_eq!(first["state"], "succeeded", "{first}");
    lineage.push_with_message("corpus", b"a\n1\n2\n", "more rows").await;
    let run_id = first["run_id"].as_str().expect("run").to_owned();
    let (browser, csrf) = admin(app).await;

    let (_, run_page) = get(&browser, app, &format!("/runs/{run_id}")).await;
    assert!(run_page.contains(&format!(r#"<a class="button secondary" href="/runs/{run_id}/retrain">Retrain…</a>"#)));
    assert!(run_page.contains(&format!(r#"<a href="/jobs/{id}">Job <code>{}</code></a>"#, &id[..8])));

    let (status, form) = get(&browser, app, &format!("/runs/{run_id}/retrain")).await;
    assert_eq!(status, 200);
    assert!(form.contains(r#"<input id="param.lr" name="param.lr" value="0.1" autocomplete="off">"#), "{form}");
    assert!(form.contains(r#"<option value="corpus@1" selected>version 1 (used before): first</option>"#), "{form}");
    assert!(form.contains(r#"<option value="corpus@2">version 2 (newest): more rows</option>"#));

    // A refusal keeps what was typed.
    let bad = [
        ("csrf_token", csrf.as_str()),
        ("param.lr", "0.5"),
        ("param.epochs", "3"),
        ("new_key", "1x"),
        ("new_value", "y"),
        ("dataset.corpus", "corpus@2"),
    ];
    let (status, _, refused) = post_form(&browser, app, &format!("/runs/{run_id}/retrain"), &bad).await;
    assert_eq!(status, 422);
    assert!(
        refused.contains("letters, digits and")
            && refused.contains(r#"value="0.5""#)
            && refused.contains(r#"value="1x""#),
        "{refused}"
    );

    let good = [
        ("csrf_token", csrf.as_str()),
        ("param.lr", "0.5"),
        ("param.epochs", "3"),
        ("new_key", "seed"),
        ("new_value", "7"),
        ("dataset.corpus", "corpus@2"),
    ];
    let (status, location, _) = post_form(&browser, app, &format!("/runs/{run_id}/retrain"), &good).await;
    assert_eq!(status, 303);
    let new_id = job_of(&location);
    let retrained = api.wait_for_end(&new_id).await;
    assert_eq!(retrained["spec"]["params"], json!({"lr": "0.5", "epochs": "3", "seed": "7"}));
    assert_eq!(retrained["spec"]["datasets"], json!(["corpus@2"]));
    assert_eq!(retrained["origin_job_id"], id.as_str());
    let (_, new_page) = get(&browser, app, &location).await;
    assert!(new_page.contains("stdout lr=0.5 epochs=3"), "{new_page}");
    let new_run = retrained["run_id"].as_str().expect("run");
    let (_, new_run_page) = get(&browser, app, &format!("/runs/{new_run}")).await;
    assert!(
        new_run_page
            .contains(&format!(r#"<dt>Retrains run</dt><dd><a href="/runs/{run_id}"><code>{run_id}</code></a>"#))
    );

    // From a model version registered from the job's run.
    for (path, body) in [
        ("registered-models/create", json!({"name": "clf"})),
        ("model-versions/create", json!({"name": "clf", "source": format!("runs:/{run_id}/model"), "run_id": run_id})),
    ] {
        let response = app
            .client
            .post(app.at(&format!("/api/2.0/mlflow/{path}")))
            .bearer_auth(&api.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }
    let (_, version_page) = get(&browser, app, "/models/clf/versions/1").await;
    assert!(
        version_page.contains(&format!(r#"<a class="button secondary" href="/runs/{run_id}/retrain">Retrain…</a>"#))
    );
    let reader = viewer(app).await;
    let (_, viewer_version) = get(&reader, app, "/models/clf/versions/1").await;
    assert!(!viewer_version.contains("Retrain"), "no Retrain for viewers");

    // A run logged by hand has nothing to retrain.
    let manual = api.json(Method::POST, "/experiments", Some(json!({"name": "by-hand"})), 201).await;
    let manual_run = api.json(Method::POST, "/runs", Some(json!({"experiment_id": manual["id"]})), 201).await;
    let (status, page) = get(&browser, app, &format!("/runs/{}/retrain", manual_run["id"].as_str().expect("id"))).await;
    assert_eq!(status, 404);
    assert!(page.contains("was not produced by a job"));
}

#[tokio::test]
async fn template_pages_submit_jobs_with_overrides_and_usage_shows_on_the_jobs_page() {
    let api = Api::start().await;
    let app = &api.app;
    let body = json!({"name": "train-resnet", "description": "ResNet <50>", "command": ["sh", "-c", "echo depth={{depth}}"], "params": {"depth": "50"}});
    api.json(Method::POST, "/job-templates", Some(body.clone()), 201).await;
    api.json(Method::POST, "/job-templates", Some(body), 201).await;
    let (browser, csrf) = admin(app).await;

    let (_, list) = get(&browser, app, "/job-templates").await;
    assert!(
        list.contains(r#"<a href="/job-templates/train-resnet">train-resnet</a>"#)
            && list.contains("ResNet &#60;50&#62;")
    );
    let (status, page) = get(&browser, app, "/job-templates/train-resnet").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("version 2 (latest)")
            && page.contains(r#"<a href="/job-templates/train-resnet?version=1">1</a>"#)
    );
    assert!(page.contains(r#"<input id="param.depth" name="param.depth" value="50" autocomplete="off">"#));

    let (status, _, refused) = post_form(
        &browser,
        app,
        "/job-templates/train-resnet?version=2",
        &[("csrf_token", &csrf), ("gpus", "many"), ("param.depth", "101")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(refused.contains("is not a whole number") && refused.contains(r#"value="101""#));
    let (status, location, _) = post_form(
        &browser,
        app,
        "/job-templates/train-resnet?version=1",
        &[("csrf_token", &csrf), ("gpus", "0"), ("param.depth", "101")],
    )
    .await;
    assert_eq!(status, 303);
    let id = job_of(&location);
    api.wait_for_end(&id).await;
    let (_, job_page) = get(&browser, app, &location).await;
    assert!(job_page.contains("stdout depth=101"));
    assert!(job_page.contains(r#"<a href="/job-templates/train-resnet">train-resnet v1</a>"#), "the template version");
    let (_, jobs) = get(&browser, app, "/jobs").await;
    assert!(jobs.contains(r#"<a href="/job-templates/train-resnet">train-resnet v1</a>"#));

    let (_, usage) = get(&browser, app, "/jobs?by=template").await;
    let section = &usage[usage.find(r#"id="usage""#).expect("usage section")..];
    assert!(section.contains(r#"<option value="template" selected>"#));
    assert!(section.contains(r#"<tr><th scope="row">train-resnet</th><td class="num">1</td>"#), "{section}");
    let (status, bad) = get(&browser, app, "/jobs?from=soon").await;
    assert_eq!(status, 200, "a bad date is said in the section");
    assert!(bad.contains("From &#34;soon&#34; is not a date (YYYY-MM-DD)."));
    let (_, old) = get(&browser, app, "/jobs?by=user&from=2020-01-01&to=2020-12-31").await;
    assert!(old.contains(r#"<tfoot><tr><th scope="row">All jobs</th><td class="num">0</td>"#));

    let reader = viewer(app).await;
    let (_, seen) = get(&reader, app, "/job-templates/train-resnet").await;
    assert!(!seen.contains("Submit a job"), "viewers see the template without the form");
    assert!(seen.contains("<dt>Parameters</dt><dd><code>depth=50</code></dd>"), "and its defaults");
    let (status, missing) = get(&browser, app, "/job-templates/nope").await;
    assert_eq!(status, 404);
    assert!(missing.contains("no job template named nope"));
}
