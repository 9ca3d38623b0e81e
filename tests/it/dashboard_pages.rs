//! The dashboard's pages over HTTP, as a browser without JavaScript sees them: experiments
//! list, runs table (columns, sorting, filter errors, keyset pages, nested runs), run page,
//! metric series, compare view; each as a member and as a viewer, and every form's CSRF check.

use cairn_db::tracking::KeyValue;
use cairn_db::tracking::metrics::{self, MetricPoint};
use cairn_server::audit::Actor;
use cairn_server::tracking::{self, Batch, NewRunRequest, RunChange};
use cairn_tests::{ADMIN_PASSWORD, TestApp, UserRole, hidden_input, spawn_app};
use uuid::Uuid;

pub const VIEWER_PASSWORD: &str = "viewer-password-1";

/// Logs `user` in through the form; returns the session's CSRF token.
pub async fn log_in_as(app: &TestApp, browser: &reqwest::Client, user: &str, password: &str) -> String {
    let form = browser.get(app.at("/login")).send().await.expect("request").text().await.expect("html");
    let csrf = hidden_input(&form, "csrf_token").expect("login form has a CSRF field");
    let response = browser
        .post(app.at("/login"))
        .form(&[("username", user), ("password", password), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 303, "login of {user}");
    let home = browser.get(app.at("/")).send().await.expect("request").text().await.expect("html");
    hidden_input(&home, "csrf_token").expect("pages carry the session CSRF token")
}

pub async fn admin(app: &TestApp) -> (reqwest::Client, String) {
    let browser = app.browser();
    let csrf = log_in_as(app, &browser, "admin", ADMIN_PASSWORD).await;
    (browser, csrf)
}

pub async fn viewer(app: &TestApp) -> reqwest::Client {
    app.add_user("vera", VIEWER_PASSWORD, UserRole::Viewer).await;
    let browser = app.browser();
    log_in_as(app, &browser, "vera", VIEWER_PASSWORD).await;
    browser
}

fn actor() -> Actor {
    Actor::system("test")
}

pub async fn new_experiment(app: &TestApp, name: &str) -> i64 {
    tracking::create_experiment(&app.db, &actor(), name, None, &[], 1).await.expect("create experiment").id
}

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: value.into() }
}

/// A finished run that started at `start` (ms) and ran for a minute.
pub async fn new_run(app: &TestApp, experiment_id: i64, name: &str, start: i64, tags: Vec<KeyValue>) -> Uuid {
    let request =
        NewRunRequest { experiment_id, user_id: Some("alice"), run_name: Some(name), start_time: Some(start), tags };
    let id = tracking::create_run(&app.db, &actor(), request).await.expect("create run").run.run_uuid;
    let change = RunChange { status: Some("FINISHED"), end_time: Some(start + 60_000), run_name: None };
    tracking::update_run(&app.db, id, change).await.expect("finish run");
    id
}

pub async fn log(app: &TestApp, id: Uuid, params: &[(&str, &str)], metrics: &[(&str, f64, i64)]) {
    let batch = Batch {
        params: params.iter().map(|(k, v)| kv(k, v)).collect(),
        metrics: metrics
            .iter()
            .map(|(key, value, step)| MetricPoint {
                key: (*key).into(),
                value: *value,
                timestamp: 1_700_000_000_000 + step * 1000,
                step: *step,
            })
            .collect(),
        tags: vec![],
    };
    tracking::log_batch(&app.db, id, batch).await.expect("log batch");
}

pub async fn get(browser: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let response = browser.get(app.at(path)).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The run names in table order (the links in the row headers).
fn run_names(html: &str) -> Vec<String> {
    html.split("<th scope=\"row\" class=\"name\">")
        .skip(1)
        .filter_map(|cell| {
            let link = cell.split("</th>").next()?.split("<a href=\"/runs/").nth(1)?;
            link.split("\">").nth(1)?.split("</a>").next().map(str::to_owned)
        })
        .collect()
}

/// The `href` of the link with rel="next".
fn next_link(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\"")?;
    let before = &html[..at];
    let start = before.rfind("href=\"")? + 6;
    Some(before[start..].split('"').next()?.replace("&#38;", "&"))
}

fn post_forms(html: &str) -> Vec<String> {
    html.split("<form method=\"post\" action=\"")
        .skip(1)
        .filter_map(|f| f.split('"').next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn experiments_list_shows_run_counts_tags_and_last_activity_and_searches_by_name() {
    let app = spawn_app().await;
    let vision = new_experiment(&app, "vision-resnet").await;
    let _nlp = new_experiment(&app, "nlp_50%_subset").await;
    tracking::set_experiment_tag(&app.db, vision, "team", "perception").await.expect("tag");
    for i in 0..3 {
        new_run(&app, vision, &format!("r{i}"), 1_700_000_000_000 + i, vec![]).await;
    }
    let (browser, _) = admin(&app).await;
    let (status, page) = get(&browser, &app, "/").await;
    assert_eq!(status, 200);
    assert!(!page.contains("No experiments yet"), "experiments exist: no first-steps card");
    let row = page
        .split("<tr>")
        .find(|row| row.contains(&format!("href=\"/experiments/{vision}\"")))
        .and_then(|row| row.split("</tr>").next())
        .expect("a row for the experiment");
    assert!(row.contains("<td class=\"num\">3</td>"), "run count: {row}");
    assert!(row.contains("<time datetime=\""), "last activity as a <time>");
    assert!(row.contains("perception"), "tags");

    let (_, found) = get(&browser, &app, "/?q=RESNET").await;
    assert!(found.contains("vision-resnet") && !found.contains("nlp_50%_subset"), "case-insensitive search");
    let (_, literal) = get(&browser, &app, "/?q=50%25_").await;
    assert!(literal.contains("nlp_50%_subset") && !literal.contains("vision-resnet"), "% and _ match literally");
    let (_, none) = get(&browser, &app, "/?q=zzz").await;
    assert!(none.contains("No experiment has “zzz” in its name."));
}

#[tokio::test]
async fn a_new_installation_shows_how_to_log_a_first_run() {
    let app = spawn_app().await;
    let (browser, _) = admin(&app).await;
    let (_, page) = get(&browser, &app, "/").await;
    assert!(page.contains("No experiments yet") && page.contains("MLFLOW_TRACKING_URI="));
}

#[tokio::test]
async fn members_create_rename_delete_and_restore_experiments_and_each_is_audited() {
    let app = spawn_app().await;
    let (browser, csrf) = admin(&app).await;
    let created = browser
        .post(app.at("/experiments"))
        .form(&[("csrf_token", csrf.as_str()), ("name", "churn")])
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().expect("ascii").to_owned();
    let id: i64 = location.strip_prefix("/experiments/").expect("goes to the runs table").parse().expect("id");

    let duplicate = browser
        .post(app.at("/experiments"))
        .form(&[("csrf_token", csrf.as_str()), ("name", "churn")])
        .send()
        .await
        .expect("request");
    assert_eq!(duplicate.status(), 409);
    assert!(duplicate.text().await.expect("html").contains("already exists"), "the refusal shows on the list");

    for (path, name) in [(format!("/experiments/{id}/rename"), "churn-v2")] {
        let r = browser.post(app.at(&path)).form(&[("csrf_token", csrf.as_str()), ("name", name)]).send().await;
        assert_eq!(r.expect("request").status(), 303);
    }
    let (_, list) = get(&browser, &app, "/").await;
    assert!(list.contains("churn-v2"));
    let delete = browser
        .post(app.at(&format!("/experiments/{id}/delete")))
        .form(&[("csrf_token", csrf.as_str()), ("next", "/")])
        .send()
        .await
        .expect("request");
    assert_eq!(delete.status(), 303);
    let (_, list) = get(&browser, &app, "/").await;
    assert!(!list.contains("churn-v2"));
    let (_, deleted) = get(&browser, &app, "/?view=deleted").await;
    assert!(deleted.contains("churn-v2") && deleted.contains(&format!("/experiments/{id}/restore")));
    let restore = browser
        .post(app.at(&format!("/experiments/{id}/restore")))
        .form(&[("csrf_token", csrf.as_str()), ("next", "https://evil.example/")])
        .send()
        .await
        .expect("request");
    assert_eq!(restore.headers()["location"], "/", "never redirects off site");

    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events WHERE target = $1 ORDER BY id")
        .bind(format!("experiment:{id}"))
        .fetch_all(&app.db.pool)
        .await
        .expect("audit");
    assert_eq!(actions, ["experiment.create", "experiment.rename", "experiment.delete", "experiment.restore"]);
}

/// An experiment with two runs, one with a child, params, metrics and tags.
async fn sample(app: &TestApp) -> (i64, Uuid, Uuid) {
    let experiment = new_experiment(app, "sample").await;
    let a =
        new_run(app, experiment, "alpha", 1_700_000_000_000, vec![kv("mlflow.source.git.commit", "0123456789abcdef")])
            .await;
    let b = new_run(app, experiment, "beta", 1_700_000_100_000, vec![]).await;
    log(app, a, &[("lr", "0.1")], &[("acc", 0.5, 1)]).await;
    log(app, b, &[("lr", "0.01")], &[("acc", 0.9, 1)]).await;
    new_run(app, experiment, "beta-child", 1_700_000_200_000, vec![kv("mlflow.parentRunId", &b.simple().to_string())])
        .await;
    (experiment, a, b)
}

#[tokio::test]
async fn viewers_read_every_page_but_see_no_forms_that_change_data_and_cannot_post() {
    let app = spawn_app().await;
    let (experiment, a, b) = sample(&app).await;
    let browser = viewer(&app).await;
    let pages = [
        "/".to_owned(),
        "/?view=deleted".to_owned(),
        format!("/experiments/{experiment}"),
        format!("/runs/{}", a.simple()),
        format!("/compare?runs={},{}", a.simple(), b.simple()),
    ];
    for path in &pages {
        let (status, html) = get(&browser, &app, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(post_forms(&html), ["/logout"], "{path}: only the logout form");
    }
    let csrf = hidden_input(&get(&browser, &app, "/").await.1, "csrf_token").expect("csrf");
    let denied = browser
        .post(app.at(&format!("/runs/{}/delete", a.simple())))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status(), 403);
    assert!(denied.text().await.expect("html").contains("can read but not change"));
    let run = tracking::get_run(&app.db, a).await.expect("run");
    assert_eq!(run.run.lifecycle_stage, "active");

    // Members see the forms.
    let (admin, _) = admin(&app).await;
    let (_, table) = get(&admin, &app, &format!("/experiments/{experiment}")).await;
    assert!(post_forms(&table).contains(&format!("/runs/{}/delete", a.simple())));
}

#[tokio::test]
async fn every_dashboard_form_refuses_a_wrong_csrf_token() {
    let app = spawn_app().await;
    let (experiment, a, _) = sample(&app).await;
    let (browser, _) = admin(&app).await;
    let run = a.simple();
    let forms = [
        "/experiments".to_owned(),
        format!("/experiments/{experiment}/rename"),
        format!("/experiments/{experiment}/delete"),
        format!("/experiments/{experiment}/restore"),
        format!("/runs/{run}/delete"),
        format!("/runs/{run}/restore"),
        format!("/runs/{run}/tags"),
        format!("/runs/{run}/tags/delete"),
        format!("/runs/{run}/description"),
    ];
    for path in &forms {
        let fields = [("csrf_token", "forged"), ("name", "x"), ("key", "k"), ("value", "v"), ("description", "d")];
        let response = browser.post(app.at(path)).form(&fields).send().await.expect("request");
        assert_eq!(response.status(), 403, "{path}");
        assert!(response.text().await.expect("html").contains("CSRF"), "{path}");
    }
    let (_, table) = get(&browser, &app, &format!("/experiments/{experiment}")).await;
    assert!(table.contains("alpha"), "nothing changed");
    assert_eq!(tracking::get_experiment(&app.db, experiment).await.expect("experiment").0.name, "sample");
}

#[tokio::test]
async fn runs_table_shows_fixed_and_chosen_columns_and_sorts_by_any_of_them() {
    let app = spawn_app().await;
    let (experiment, _, _) = sample(&app).await;
    let (browser, _) = admin(&app).await;
    let base = format!("/experiments/{experiment}");

    let (status, page) = get(&browser, &app, &base).await;
    assert_eq!(status, 200);
    assert_eq!(run_names(&page), ["beta", "beta-child", "alpha"], "top-level runs newest first, children under them");
    assert!(page.contains("<code title=\"0123456789abcdef\">01234567</code>"), "short source commit");
    assert!(page.contains("<time datetime=\"2023-11-14T22:13:20.000Z\">2023-11-14 22:13:20 UTC</time>"), "UTC start");
    assert!(page.contains(">1m 00s<"), "duration");
    assert!(page.contains("title=\"metrics.acc\"") && page.contains("title=\"params.lr\""), "default columns");
    assert!(page.contains("aria-sort=\"descending\""), "the default order is marked");

    let (_, chosen) = get(&browser, &app, &format!("{base}?cols=params.lr")).await;
    assert!(chosen.contains("title=\"params.lr\"") && !chosen.contains("title=\"metrics.acc\""));
    let picked = browser.get(app.at(&format!("{base}?cols_form=1&col=metrics.acc"))).send().await.expect("request");
    assert_eq!(picked.status(), 303, "the picker's form lands on the canonical URL");
    assert_eq!(picked.headers()["location"], format!("{base}?cols=metrics.acc"));

    let (_, by_acc) = get(&browser, &app, &format!("{base}?order_by=metrics.acc+ASC")).await;
    assert_eq!(run_names(&by_acc), ["alpha", "beta", "beta-child"]);
    let (_, by_acc_desc) = get(&browser, &app, &format!("{base}?order_by=metrics.acc+DESC")).await;
    assert_eq!(run_names(&by_acc_desc), ["beta", "beta-child", "alpha"]);
    assert!(by_acc_desc.contains("aria-sort=\"descending\" class=\"num\" title=\"metrics.acc\""));
    let (_, by_name) = get(&browser, &app, &format!("{base}?order_by=run_name")).await;
    assert_eq!(run_names(&by_name), ["alpha", "beta", "beta-child"]);
}

#[tokio::test]
async fn a_bad_filter_shows_the_parsers_message_inline_with_the_filter_kept() {
    let app = spawn_app().await;
    let (experiment, _, _) = sample(&app).await;
    let (browser, _) = admin(&app).await;
    let (status, page) =
        get(&browser, &app, &format!("/experiments/{experiment}?filter=metrics.acc+%3E+%27high%27")).await;
    assert_eq!(status, 400);
    assert!(page.contains("id=\"filter-error\""), "inline, on the runs page");
    assert!(
        page.contains(&format!("id=\"filter\" name=\"filter\" value=\"{}\"", askama_escape("metrics.acc > 'high'"))),
        "kept for editing"
    );
    let message = cairn_core::search::parse_run_filter("metrics.acc > 'high'").expect_err("invalid").to_string();
    assert!(page.contains(&askama_escape(&message)), "the parser's message: {message}");

    let (status, bad_order) = get(&browser, &app, &format!("/experiments/{experiment}?order_by=nonsense.x")).await;
    assert_eq!(status, 400);
    assert!(bad_order.contains("Invalid entity type"));

    let (status, good) =
        get(&browser, &app, &format!("/experiments/{experiment}?filter=params.lr+%3D+%270.1%27")).await;
    assert_eq!(status, 200);
    assert_eq!(run_names(&good), ["alpha"]);
}

/// Text as askama's HTML escaping writes it.
fn askama_escape(text: &str) -> String {
    text.replace('&', "&#38;").replace('<', "&#60;").replace('>', "&#62;").replace('"', "&#34;").replace('\'', "&#39;")
}

/// Follows the "Next page" links from `path`; the run names of every page, and the pages' URLs.
async fn walk(browser: &reqwest::Client, app: &TestApp, path: &str) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut urls = vec![path.to_owned()];
    loop {
        let path = urls.last().expect("a page").clone();
        let (status, page) = get(browser, app, &path).await;
        assert_eq!(status, 200, "{path}");
        names.extend(run_names(&page));
        match next_link(&page) {
            Some(next) => urls.push(next),
            None => return (names, urls),
        }
    }
}

#[tokio::test]
async fn keyset_pages_walk_250_runs_in_order_without_repeats_or_gaps() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "many").await;
    let mut by_start = Vec::new();
    let mut scored: Vec<(i64, usize, String)> = Vec::new();
    let mut unscored = Vec::new();
    for i in 0..250_usize {
        // Groups of three runs share a start time, and scores repeat: the id breaks ties.
        let start = 1_700_000_000_000 + (i as i64 / 3) * 1000;
        let name = format!("run-{i:03}");
        let id = new_run(&app, experiment, &name, start, vec![]).await;
        if i % 4 == 0 {
            unscored.push(name.clone());
        } else {
            let score = (i % 17) as i64;
            log(&app, id, &[], &[("score", score as f64, 0)]).await;
            scored.push((score, i, name.clone()));
        }
        by_start.push(name);
    }
    by_start.reverse();
    let (browser, _) = admin(&app).await;
    let base = format!("/experiments/{experiment}");

    let (seen, urls) = walk(&browser, &app, &base).await;
    assert_eq!(urls.len(), 5);
    assert!(urls[1..].iter().all(|u| u.contains("after=")), "keyset cursors, not offsets: {urls:?}");
    assert_eq!(seen, by_start);

    // By a metric: greatest score first, ties newest first, then the runs without it.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    unscored.reverse();
    let expected: Vec<String> = scored.into_iter().map(|(_, _, n)| n).chain(unscored).collect();
    let (seen, urls) = walk(&browser, &app, &format!("{base}?order_by=metrics.score+DESC")).await;
    assert!(urls[1].contains("after=v"), "{urls:?}");
    assert_eq!(seen, expected);
    let (seen, _) = walk(&browser, &app, &format!("{base}?order_by=start_time+ASC")).await;
    assert_eq!(seen, by_start.iter().rev().cloned().collect::<Vec<_>>());

    // Sorted by an unindexed column, pages count instead.
    let (_, sorted) = get(&browser, &app, &format!("{base}?order_by=run_name")).await;
    assert_eq!(run_names(&sorted).first().map(String::as_str), Some("run-000"));
    let next = next_link(&sorted).expect("a second page");
    assert!(next.contains("page=2"), "{next}");
    let (_, second) = get(&browser, &app, &next).await;
    assert_eq!(run_names(&second).first().map(String::as_str), Some("run-050"));
    let (status, deep) = get(&browser, &app, &format!("{base}?order_by=run_name&page=1000")).await;
    assert_eq!(status, 400);
    assert!(deep.contains("reach the first 10000 runs"));
}

#[tokio::test]
async fn child_runs_are_grouped_under_their_parent_and_listed_flat_when_filtering() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "sweep").await;
    let parent = new_run(&app, experiment, "sweep-parent", 1_700_000_000_000, vec![]).await;
    for i in 0..7 {
        let tag = kv("mlflow.parentRunId", &parent.simple().to_string());
        let child = new_run(&app, experiment, &format!("trial-{i}"), 1_700_000_001_000 + i * 1000, vec![tag]).await;
        log(&app, child, &[("lr", &format!("0.{i}"))], &[]).await;
    }
    new_run(&app, experiment, "solo", 1_700_000_100_000, vec![]).await;
    let (browser, _) = admin(&app).await;
    let (_, page) = get(&browser, &app, &format!("/experiments/{experiment}")).await;
    let names = run_names(&page);
    assert_eq!(names, ["solo", "sweep-parent", "trial-6", "trial-5", "trial-4", "trial-3", "trial-2"]);
    assert_eq!(page.matches("<tr class=\"child\">").count(), 5);
    assert!(page.contains("All 7 child runs of sweep-parent"));

    let (_, filtered) = get(&browser, &app, &format!("/experiments/{experiment}?filter=params.lr+%3D+%270.3%27")).await;
    assert_eq!(run_names(&filtered), ["trial-3"]);
    assert!(filtered.contains(&format!("href=\"/runs/{}\"", parent.simple())), "names its parent");
}

#[tokio::test]
async fn run_page_shows_the_run_and_members_edit_tags_and_description() {
    let app = spawn_app().await;
    let (_, a, _) = sample(&app).await;
    let (browser, csrf) = admin(&app).await;
    let path = format!("/runs/{}", a.simple());
    let (status, page) = get(&browser, &app, &path).await;
    assert_eq!(status, 200);
    for expected in ["alpha", "Finished", "0123456789abcdef", "lr", "0.1", "acc", "No description."] {
        assert!(page.contains(expected), "{expected}");
    }
    assert!(page.contains(&format!("data-series=\"/runs/{}/metrics/acc.json\"", a.simple())), "a chart per metric");
    assert!(page.contains("/static/vendor/uPlot.iife.min.js"));

    let set = browser
        .post(app.at(&format!("{path}/tags")))
        .form(&[("csrf_token", csrf.as_str()), ("key", "team"), ("value", "vision")])
        .send()
        .await
        .expect("request");
    assert_eq!(set.status(), 303);
    let note = browser
        .post(app.at(&format!("{path}/description")))
        .form(&[("csrf_token", csrf.as_str()), ("description", "Baseline <b>run</b>\r\nsecond line")])
        .send()
        .await
        .expect("request");
    assert_eq!(note.status(), 303);
    let (_, page) = get(&browser, &app, &path).await;
    assert!(page.contains("<th scope=\"row\">team</th><td class=\"wrap\">vision</td>"));
    assert!(page.contains(&askama_escape("Baseline <b>run</b>\nsecond line")), "escaped, line breaks kept");

    let bad = browser
        .post(app.at(&format!("{path}/tags")))
        .form(&[("csrf_token", csrf.as_str()), ("key", "no good!"), ("value", "x")])
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.expect("html").contains("Invalid tag name"));

    let removed = browser
        .post(app.at(&format!("{path}/tags/delete")))
        .form(&[("csrf_token", csrf.as_str()), ("key", "team")])
        .send()
        .await
        .expect("request");
    assert_eq!(removed.status(), 303);
    let (_, page) = get(&browser, &app, &path).await;
    assert!(!page.contains("<th scope=\"row\">team</th>"));

    let (status, _) = get(&browser, &app, "/runs/0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn members_delete_and_restore_runs_from_the_table_and_it_is_audited() {
    let app = spawn_app().await;
    let (experiment, a, _) = sample(&app).await;
    let (browser, csrf) = admin(&app).await;
    let table = format!("/experiments/{experiment}");
    let deleted = browser
        .post(app.at(&format!("/runs/{}/delete", a.simple())))
        .form(&[("csrf_token", csrf.as_str()), ("next", table.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(deleted.status(), 303);
    assert_eq!(deleted.headers()["location"], table.as_str());
    let (_, active) = get(&browser, &app, &table).await;
    assert!(!run_names(&active).contains(&"alpha".to_owned()));
    let (_, bin) = get(&browser, &app, &format!("{table}?view=deleted")).await;
    assert_eq!(run_names(&bin), ["alpha"]);
    let restored = browser
        .post(app.at(&format!("/runs/{}/restore", a.simple())))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(restored.headers()["location"], format!("/runs/{}", a.simple()));
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events WHERE target = $1 ORDER BY id")
        .bind(format!("run:{}", a.simple()))
        .fetch_all(&app.db.pool)
        .await
        .expect("audit");
    assert_eq!(actions, ["run.create", "run.delete", "run.restore"]);
}

#[tokio::test]
async fn a_long_metric_series_is_downsampled_keeping_its_global_min_and_max() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "long").await;
    let id = new_run(&app, experiment, "long", 1_700_000_000_000, vec![]).await;
    let run = tracking::get_run(&app.db, id).await.expect("run").run;
    let n = 200_000_i64;
    let points: Vec<MetricPoint> = (0..n)
        .map(|step| {
            let value = match step {
                123_457 => -50.0,
                77_777 => 99.0,
                _ => ((step as f64) / 500.0).sin(),
            };
            MetricPoint { key: "loss".into(), value, timestamp: 1_700_000_000_000 + step, step }
        })
        .collect();
    let mut tx = app.db.pool.begin().await.expect("tx");
    metrics::log(&mut tx, run.id, run.experiment_id, &points).await.expect("log");
    tx.commit().await.expect("commit");

    let (browser, _) = admin(&app).await;
    let started = std::time::Instant::now();
    let response =
        browser.get(app.at(&format!("/runs/{}/metrics/loss.json?max_points=1000", id.simple()))).send().await;
    let body: serde_json::Value = response.expect("request").json().await.expect("json");
    let elapsed = started.elapsed();
    let values: Vec<f64> = body["value"].as_array().expect("values").iter().filter_map(|v| v.as_f64()).collect();
    assert_eq!(body["total_points"], n);
    assert_eq!(body["downsampled"], true);
    assert!(values.len() <= 4 * 1000 && values.len() >= 500, "{} points", values.len());
    assert!(values.contains(&-50.0) && values.contains(&99.0), "global min and max kept");
    let steps: Vec<i64> = body["step"].as_array().expect("steps").iter().filter_map(|v| v.as_i64()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "in step order");
    assert_eq!((steps.first(), steps.last()), (Some(&0), Some(&(n - 1))), "both ends kept");
    eprintln!("downsampled {n} points to {} in {elapsed:?}", values.len());

    let short = new_run(&app, experiment, "short", 1_700_000_000_000, vec![]).await;
    log(&app, short, &[], &[("acc", 0.1, 0), ("acc", 0.2, 1), ("acc", f64::NAN, 2)]).await;
    let body: serde_json::Value = browser
        .get(app.at(&format!("/runs/{}/metrics/acc.json", short.simple())))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["downsampled"], false);
    assert_eq!(body["value"], serde_json::json!([0.1, 0.2, null]), "a short series whole; NaN as null");

    let anonymous = app.client.get(app.at(&format!("/runs/{}/metrics/acc.json", short.simple()))).send().await;
    assert_eq!(anonymous.expect("request").status(), 303, "needs a session");
}

/// Every bucket of a downsampled series against a brute-force pass over the same points:
/// uneven steps (negative, repeated, with gaps), NaN here and there and a bucket of NaN only.
#[tokio::test]
async fn downsampled_buckets_hold_each_buckets_first_last_min_and_max_point() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "buckets").await;
    let id = new_run(&app, experiment, "uneven", 1_700_000_000_000, vec![]).await;
    let run = tracking::get_run(&app.db, id).await.expect("run").run;
    let mut points: Vec<MetricPoint> = Vec::new();
    for i in 0..30_000_i64 {
        let step = if i % 7 == 0 { i / 2 } else { i - 5_000 }; // repeats, negatives, a denser middle
        let value = match i {
            _ if (20_000..20_400).contains(&i) => f64::NAN, // steps 15,000..15,400: NaN only
            _ if i % 997 == 0 => f64::NAN,
            _ => ((i * 7919) % 10_007) as f64 / 100.0 - 50.0,
        };
        points.push(MetricPoint { key: "m".into(), value, timestamp: 1_700_000_000_000 + (i % 13), step });
    }
    let mut tx = app.db.pool.begin().await.expect("tx");
    metrics::log(&mut tx, run.id, run.experiment_id, &points).await.expect("log");
    tx.commit().await.expect("commit");

    let series = tracking::metric_series(&app.db, id, "m", 400).await.expect("series");
    let serial = tracking::metric_series_serial(&app.db, id, "m", 400).await.expect("series");
    let key = |s: &tracking::Series| -> Vec<(i64, i64, u64)> {
        s.points.iter().map(|p| (p.step, p.timestamp, p.value.to_bits())).collect()
    };
    assert_eq!(key(&series), key(&serial), "computed in parts or on one connection, the same buckets");
    assert!(series.downsampled);
    assert_eq!(series.total_points, points.len() as i64);
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for p in &series.points {
        assert!(
            points.iter().any(|q| q.step == p.step && q.timestamp == p.timestamp && same(q.value, p.value)),
            "{p:?} is one of the logged points"
        );
    }
    let (lo, hi) = (points.iter().map(|p| p.step).min().unwrap(), points.iter().map(|p| p.step).max().unwrap());
    let buckets = 100_i64;
    for b in 0..buckets {
        let start = lo + (hi - lo + 1) * b / buckets;
        let end = lo + (hi - lo + 1) * (b + 1) / buckets;
        let inside = |step: i64| step >= start && step < end;
        // Logged order breaks ties in (step, timestamp), as the id does in the database.
        let mut expected: Vec<&MetricPoint> = points.iter().filter(|p| inside(p.step)).collect();
        expected.sort_by_key(|p| (p.step, p.timestamp));
        let got: Vec<_> = series.points.iter().filter(|p| inside(p.step)).collect();
        let (Some(first), Some(last)) = (expected.first(), expected.last()) else {
            assert!(got.is_empty(), "bucket {b} is empty");
            continue;
        };
        let has = |q: &MetricPoint| {
            got.iter().any(|p| p.step == q.step && p.timestamp == q.timestamp && same(p.value, q.value))
        };
        assert!(has(first) && has(last), "bucket {b} keeps its ends");
        let numbers: Vec<f64> = expected.iter().map(|p| p.value).filter(|v| !v.is_nan()).collect();
        if let (Some(min), Some(max)) =
            (numbers.iter().copied().reduce(f64::min), numbers.iter().copied().reduce(f64::max))
        {
            assert!(got.iter().any(|p| p.value == min), "bucket {b} keeps its min {min}");
            assert!(got.iter().any(|p| p.value == max), "bucket {b} keeps its max {max}");
        } else {
            assert!(got.iter().all(|p| p.value.is_nan()), "bucket {b} of NaN only");
        }
        assert!(got.len() <= 4, "bucket {b}: at most 4 points");
    }
}

#[tokio::test]
async fn compare_view_highlights_differing_values_and_can_show_only_differences() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "cmp").await;
    let mut ids = Vec::new();
    for (i, lr) in ["0.1", "0.01", "0.1"].iter().enumerate() {
        let id = new_run(&app, experiment, &format!("c{i}"), 1_700_000_000_000 + i as i64, vec![]).await;
        log(&app, id, &[("lr", lr), ("batch", "32")], &[("acc", 0.5 + i as f64 / 10.0, 1)]).await;
        ids.push(id.simple().to_string());
    }
    let (browser, _) = admin(&app).await;

    // Checkboxes send runs=a&runs=b&runs=c: redirected to the one stable URL.
    let boxes = browser
        .get(app.at(&format!("/compare?runs={}&runs={}&runs={}", ids[0], ids[1], ids[2])))
        .send()
        .await
        .expect("request");
    assert_eq!(boxes.status(), 303);
    let canonical = format!("/compare?runs={}%2C{}%2C{}", ids[0], ids[1], ids[2]);
    assert_eq!(boxes.headers()["location"], canonical.as_str());

    let (status, page) = get(&browser, &app, &canonical).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<tr class=\"differs\">\n        <th scope=\"row\">lr<span class=\"sr-only\"> (differs)</span>")
    );
    assert!(page.contains("<tr>\n        <th scope=\"row\">batch</th>"), "equal values are not marked");
    assert!(page.contains("data-compare=\"/compare/metrics/acc.json?runs="), "an overlaid chart per key");

    let (_, only) = get(&browser, &app, &format!("{canonical}&only_diff=1")).await;
    assert!(only.contains(">lr<") && !only.contains(">batch<"), "identical rows hidden");
    assert!(only.contains("identical hidden"));

    let series: serde_json::Value = browser
        .get(app.at(&format!("/compare/metrics/acc.json?runs={}", ids.join(","))))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(series["series"].as_array().expect("series").len(), 3);
    assert_eq!(series["series"][2]["value"], serde_json::json!([0.7]));

    let (status, one) = get(&browser, &app, &format!("/compare?runs={}", ids[0])).await;
    assert_eq!(status, 400);
    assert!(one.contains("at least two runs"));
    let (status, _) = get(&browser, &app, &format!("/compare?runs={},{}", ids[0], Uuid::new_v4().simple())).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn compare_view_draws_parallel_coordinates_and_a_scatter_of_chosen_columns() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "plots").await;
    let mut ids = Vec::new();
    for (i, (lr, optimizer)) in [("0.1", "sgd"), ("0.01", "adam"), ("0.001", "sgd")].iter().enumerate() {
        let id = new_run(&app, experiment, &format!("p{i}"), 1_700_000_000_000 + i as i64, vec![]).await;
        let params = [("lr", *lr), ("optimizer", *optimizer), ("batch", "32")];
        log(&app, id, &params, &[("acc", 0.5 + i as f64 / 10.0, 1), ("loss", 1.0 - i as f64 / 10.0, 1)]).await;
        ids.push(id.simple().to_string());
    }
    let (browser, _) = admin(&app).await;
    let base = format!("/compare?runs={}", ids.join(","));

    // By default: the params that differ and the first metric; the first differing param
    // against that metric.
    let (status, page) = get(&browser, &app, &base).await;
    assert_eq!(status, 200);
    let parallel = page.split("<svg class=\"parallel\"").nth(1).expect("a parallel-coordinates plot");
    let parallel = parallel.split("</svg>").next().expect("svg");
    assert!(parallel.contains("data-lines=\"3\""));
    let names: Vec<&str> =
        parallel.split("class=\"axis-name\"").skip(1).filter_map(|t| t.split(['>', '<']).nth(1)).collect();
    assert_eq!(names, ["lr", "optimizer", "acc"], "differing params, then the metric");
    let lines: Vec<&str> = parallel.split("<path class=\"run-line").skip(1).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.matches(" L").count() == 2), "each line crosses all three axes");
    let scatter =
        page.split("<svg class=\"scatter\"").nth(1).expect("a scatter plot").split("</svg>").next().expect("svg");
    assert_eq!(scatter.matches("<circle class=\"run-point").count(), 3);
    assert!(scatter.contains(">metrics.acc against params.lr</title>"));
    assert!(page.contains("<option value=\"params.lr\" selected>"));

    // A choice in the query string, kept by the page's links.
    let chosen = format!("{base}&axes=batch,lr&metric=loss&sx=params.optimizer&sy=metrics.loss&log=1");
    let (_, page) = get(&browser, &app, &chosen).await;
    let parallel = page.split("<svg class=\"parallel\"").nth(1).expect("plot").split("</svg>").next().expect("svg");
    let names: Vec<&str> =
        parallel.split("class=\"axis-name\"").skip(1).filter_map(|t| t.split(['>', '<']).nth(1)).collect();
    assert_eq!(names, ["batch", "lr", "loss"]);
    assert!(page.contains("name=\"axes\" value=\"batch\" checked"));
    assert!(page.contains("<input type=\"hidden\" name=\"log\" value=\"1\">"), "the charts' settings survive a redraw");
    assert!(page.contains("name=\"axes\" value=\"optimizer\">"), "unchosen params unticked");
    assert!(page.contains(">metrics.loss against params.optimizer</title>"));
    assert!(page.contains(">adam</text>") && page.contains(">sgd</text>"), "categories label their axis");
    assert!(
        page.contains(
            "&#38;axes=batch%2Clr&#38;metric=loss&#38;sx=params.optimizer&#38;sy=metrics.loss&#38;log=1\" aria-pressed"
        ),
        "the only-differences toggle keeps the choice"
    );

    // Unknown columns fall back to the defaults rather than failing.
    let (status, page) = get(&browser, &app, &format!("{base}&sx=params.nope&sy=tags.x&metric=zzz")).await;
    assert_eq!(status, 200);
    assert!(page.contains(">metrics.acc against params.lr</title>"));
}

/// Server time of the runs table and a million-point series at scale. Not part of the
/// suite (it loads 100,000 runs); run with
/// `cargo test -p cairn-tests --test it dashboard_pages::scale -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "loads 100,000 runs; run by hand for timings"]
async fn scale_runs_table_at_100k_runs_and_a_million_point_series() {
    let app = spawn_app().await;
    let experiment = new_experiment(&app, "scale").await;
    let started = std::time::Instant::now();
    for statement in [
        "INSERT INTO runs (run_uuid, experiment_id, name, status, user_id, start_time, end_time, artifact_uri) \
         SELECT gen_random_uuid(), $1, 'run-' || g, 'FINISHED', 'alice', 1700000000000 + g * 1000, \
         1700000000000 + g * 1000 + 60000, 'x' FROM generate_series(1, 100000) g",
        "INSERT INTO run_params (run_id, experiment_id, key, value) SELECT id, $1, 'lr', (id % 10)::text FROM runs WHERE experiment_id = $1",
        "INSERT INTO run_params (run_id, experiment_id, key, value) SELECT id, $1, 'model', 'cnn-' || (id % 7) FROM runs WHERE experiment_id = $1",
        "INSERT INTO latest_metrics (run_id, experiment_id, key, step, timestamp, value) SELECT id, $1, 'acc', 10, 0, random() FROM runs WHERE experiment_id = $1",
        "INSERT INTO latest_metrics (run_id, experiment_id, key, step, timestamp, value) SELECT id, $1, 'loss', 10, 0, random() FROM runs WHERE experiment_id = $1",
        "INSERT INTO run_tags (run_id, experiment_id, key, value) SELECT id, $1, 'mlflow.source.git.commit', md5(id::text) FROM runs WHERE experiment_id = $1",
        "INSERT INTO metrics (run_id, key, step, timestamp, value) SELECT (SELECT min(id) FROM runs WHERE experiment_id = $1), 'loss', g, 1700000000000 + g, sin(g / 1000.0) FROM generate_series(0, 999999) g",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).bind(experiment).execute(&app.db.pool).await.expect("seed");
    }
    sqlx::query("VACUUM ANALYZE").execute(&app.db.pool).await.expect("analyze");
    eprintln!("seeded in {:?}", started.elapsed());
    let (browser, _) = admin(&app).await;
    let base = format!("/experiments/{experiment}");
    let (_, first) = get(&browser, &app, &base).await;
    let mut deep = base.clone();
    let mut next = next_link(&first).expect("next");
    for _ in 0..3 {
        deep = next.clone();
        next = next_link(&get(&browser, &app, &next).await.1).expect("next");
    }
    let first_run: Uuid = sqlx::query_scalar("SELECT run_uuid FROM runs WHERE experiment_id = $1 ORDER BY id LIMIT 1")
        .bind(experiment)
        .fetch_one(&app.db.pool)
        .await
        .expect("run");
    let deep_cursor = format!("{base}?after=1700050000000:50000");
    let cases = [
        ("first page", base.clone()),
        ("4th page (keyset)", deep),
        ("page at run 50,000 (keyset)", deep_cursor),
        ("filter", format!("{base}?filter=params.lr+%3D+%273%27+AND+metrics.acc+%3E+0.5")),
        ("filter + sort by metric", format!("{base}?filter=params.lr+%3D+%273%27&order_by=metrics.acc+DESC")),
        ("sort by metric", format!("{base}?order_by=metrics.acc+DESC")),
        ("sort by metric, deep (keyset)", format!("{base}?order_by=metrics.acc+DESC&after=v50000%3A0.5")),
        ("sort by param, deep (keyset)", format!("{base}?order_by=params.lr&after=v50000%3A5")),
        ("sort by name, page 100", format!("{base}?order_by=run_name&page=100")),
        ("experiments list", "/".to_owned()),
        ("run page", format!("/runs/{}", first_run.simple())),
        ("1M-point series", format!("/runs/{}/metrics/loss.json?max_points=1000", first_run.simple())),
    ];
    for (label, path) in cases {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let (status, body) = get(&browser, &app, &path).await;
            times.push(started.elapsed());
            assert_eq!(status, 200, "{label}");
            size = body.len();
        }
        times.sort();
        eprintln!("{label:32} median {:>8.1?}  min {:>8.1?}  {size} bytes", times[2], times[0]);
    }
}
