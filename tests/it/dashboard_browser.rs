//! The dashboard in a real headless Chromium (Debian `chromium` and `chromium-driver`),
//! driven over WebDriver with fantoccini: log in, open an experiment, sort and filter the
//! runs table, open a run and see its chart drawn, select three runs and compare them.
//! Screenshots of the main pages, light and dark at 1280 px wide, go to
//! `$CAIRN_TEST_ARTIFACTS/dashboard/` (default `target/test-artifacts/dashboard/`).
//!
//! Missing browser binaries fail the test with the command that installs them: a skipped
//! browser test would pass in CI without testing anything.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::dashboard_pages::{kv, log, new_experiment, new_run};
use cairn_tests::{ADMIN_PASSWORD, TestApp, spawn_app};

const INSTALL_HINT: &str = "install them with `apt-get install -y chromium chromium-driver` (scripts/test does)";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// `$NAME`, else the first candidate that exists.
fn binary(env: &str, candidates: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .flat_map(|dir| candidates.iter().map(move |c| dir.join(c)));
    let fixed = candidates.iter().map(|c| Path::new("/usr/bin").join(c));
    fixed.chain(on_path).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("no {} found (set {env} to its path, or {INSTALL_HINT})", candidates.join(" or "));
    })
}

/// A chromedriver on a free local port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let path = binary("CHROMEDRIVER", &["chromedriver"]);
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} ({INSTALL_HINT})", path.display()));
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let status = format!("{}/status", driver.url);
        for _ in 0..200 {
            if reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not answer on {status} within 10 s");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (reqwest::Method::POST, Some(json!({"cmd": self.cmd, "params": self.params}).to_string()))
    }
}

async fn open_browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = binary("CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display()),
                format!("--window-size={WIDTH},{HEIGHT}"), "--hide-scrollbars",
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver: {e} ({INSTALL_HINT})"))
}

fn artifacts_dir() -> PathBuf {
    let root = std::env::var_os("CAIRN_TEST_ARTIFACTS").map(PathBuf::from).unwrap_or_else(|| {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
        tests.parent().unwrap_or(tests).join("target/test-artifacts")
    });
    root.join("dashboard")
}

/// A full-page PNG at the laptop width.
async fn screenshot(client: &Client, name: &str) -> Result<()> {
    let height = client.execute("return document.documentElement.scrollHeight", vec![]).await?;
    let height = height.as_u64().unwrap_or(u64::from(HEIGHT)).clamp(u64::from(HEIGHT), 4000);
    client.set_window_size(WIDTH, u32::try_from(height).unwrap_or(HEIGHT)).await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let png = client.screenshot().await?;
    client.set_window_size(WIDTH, HEIGHT).await?;
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

async fn texts(client: &Client, css: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for element in client.find_all(Locator::Css(css)).await? {
        out.push(element.text().await?.trim().to_owned());
    }
    Ok(out)
}

/// Polls `check` until it holds (10 s at most).
async fn eventually(client: &Client, what: &str, script: &str) -> Result<Value> {
    for _ in 0..100 {
        let value = client.execute(script, vec![]).await?;
        if !value.is_null() && value != json!(false) && value != json!(0) {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("timed out waiting for {what}"))
}

/// An experiment that looks like real work: a learning-rate sweep with loss curves.
async fn seed(app: &TestApp) -> i64 {
    let experiment = new_experiment(app, "image-classifier").await;
    cairn_server::tracking::set_experiment_tag(&app.db, experiment, "team", "vision").await.expect("tag");
    let other = new_experiment(app, "text-sentiment").await;
    new_run(app, other, "bert-base", 1_700_000_000_000, vec![]).await;
    let runs = [
        ("resnet50-lr0.1", "0.1", "sgd", 0.912),
        ("resnet50-lr0.01", "0.01", "sgd", 0.934),
        ("resnet50-lr0.001", "0.001", "adam", 0.887),
        ("resnet18-lr0.01", "0.01", "adam", 0.901),
        ("vit-small-lr0.003", "0.003", "adam", 0.941),
    ];
    for (i, (name, lr, optimizer, acc)) in runs.iter().enumerate() {
        let tags = vec![kv("mlflow.source.git.commit", "9f2c1e7ab34d5e6f"), kv("mlflow.source.name", "train.py")];
        let start = 1_731_000_000_000 + i as i64 * 3_600_000;
        let id = new_run(app, experiment, name, start, tags).await;
        let mut metrics: Vec<(&str, f64, i64)> = (0..300)
            .map(|step| {
                let s = step as f64;
                let noise = ((s * 12.9898 + i as f64).sin() * 43_758.545).fract() * 0.08;
                ("loss", 2.3 * (-s / (40.0 + 15.0 * i as f64)).exp() + 0.1 + noise, step)
            })
            .collect();
        metrics.push(("accuracy", *acc, 299));
        log(app, id, &[("lr", lr), ("optimizer", optimizer), ("batch_size", "64")], &metrics).await;
    }
    experiment
}

async fn scenario(client: &Client, app: &TestApp, experiment: i64) -> Result<()> {
    // Log in.
    client.goto(&app.at("/login")).await?;
    client.find(Locator::Id("username")).await?.send_keys("admin").await?;
    client.find(Locator::Id("password")).await?.send_keys(ADMIN_PASSWORD).await?;
    client.find(Locator::Css("form button[type=submit]")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table.data")).await?;
    ensure!(client.current_url().await?.path() == "/", "after login: the experiments list");
    ensure!(texts(client, "table.data tbody th a").await?.contains(&"image-classifier".to_owned()));
    screenshot(client, "experiments-light").await?;

    // Open the experiment.
    client.find(Locator::LinkText("image-classifier")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table.runs")).await?;
    ensure!(client.current_url().await?.path() == format!("/experiments/{experiment}"));
    let names = texts(client, "table.runs tbody th.name a").await?;
    ensure!(names.first().map(String::as_str) == Some("vit-small-lr0.003"), "newest first: {names:?}");
    let start = client.find(Locator::Css("table.runs tbody time")).await?;
    ensure!(start.attr("data-local").await?.as_deref() == Some("1"), "start times shown in local time");
    ensure!(start.attr("title").await?.is_some_and(|t| t.ends_with("UTC")), "UTC on hover");
    screenshot(client, "runs-light").await?;

    // Sort by a metric column (descending first), then the other way.
    client.find(Locator::Css("th[title=\"metrics.accuracy\"] a")).await?.click().await?;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("th[aria-sort=descending][title=\"metrics.accuracy\"]"))
        .await?;
    let sorted = texts(client, "table.runs tbody th.name a").await?;
    ensure!(
        sorted == ["vit-small-lr0.003", "resnet50-lr0.01", "resnet50-lr0.1", "resnet18-lr0.01", "resnet50-lr0.001"],
        "sorted by accuracy: {sorted:?}"
    );
    ensure!(client.current_url().await?.query().unwrap_or_default().contains("order_by=metrics.accuracy+DESC"));

    // Filter, keeping the sort.
    let filter = client.find(Locator::Id("filter")).await?;
    filter.clear().await?;
    filter.send_keys("params.optimizer = 'sgd'").await?;
    client.find(Locator::Css("form.filter button[type=submit]")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("a.clear")).await?;
    let filtered = texts(client, "table.runs tbody th.name a").await?;
    ensure!(filtered == ["resnet50-lr0.01", "resnet50-lr0.1"], "filtered and still sorted: {filtered:?}");

    // A bad filter explains itself on the same page.
    let filter = client.find(Locator::Id("filter")).await?;
    filter.clear().await?;
    filter.send_keys("metrics.accuracy > 'high'").await?;
    client.find(Locator::Css("form.filter button[type=submit]")).await?.click().await?;
    let error = client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("filter-error")).await?;
    ensure!(error.text().await?.contains("cannot be used"));
    screenshot(client, "runs-filter-error-light").await?;

    // Open a run: its loss chart is drawn from the downsampling endpoint.
    client.goto(&app.at(&format!("/experiments/{experiment}"))).await?;
    client.find(Locator::LinkText("resnet50-lr0.01")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("figure.chart[data-drawn] canvas")).await?;
    let drawn = eventually(
        client,
        "a drawn loss chart",
        "const f = document.querySelector('figure.chart[data-key=loss][data-drawn]'); if (!f) return null; \
         const c = f.querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let ink = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++; \
         return ink > 500 ? Number(f.dataset.drawn) : null;",
    )
    .await?;
    ensure!(drawn == json!(300), "all 300 points drawn: {drawn}");
    screenshot(client, "run-light").await?;
    client.find(Locator::Id("chart-log")).await?.click().await?;
    ensure!(client.current_url().await?.query().unwrap_or_default().contains("log=1"), "chart settings in the URL");

    // Select three runs and compare them.
    client.goto(&app.at(&format!("/experiments/{experiment}"))).await?;
    let boxes = client.find_all(Locator::Css("input[name=runs]")).await?;
    ensure!(boxes.len() == 5);
    for b in &boxes[..3] {
        b.click().await?;
    }
    ensure!(client.find(Locator::Id("selection-note")).await?.text().await? == "3 selected");
    client.find(Locator::Id("compare-button")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table.compare")).await?;
    let url = client.current_url().await?;
    ensure!(url.path() == "/compare", "{url}");
    let runs_param = url.query_pairs().find(|(k, _)| k == "runs").map(|(_, v)| v.into_owned()).unwrap_or_default();
    ensure!(runs_param.split(',').count() == 3, "one stable URL with the three runs: {url}");
    let differing = texts(client, "table.compare tr.differs > th").await?;
    ensure!(differing.iter().any(|t| t.starts_with("lr")), "the differing param is highlighted: {differing:?}");
    ensure!(!differing.iter().any(|t| t.starts_with("batch_size")), "equal params are not: {differing:?}");
    let background =
        client.find(Locator::Css("table.compare tr.differs > td")).await?.css_value("background-color").await?;
    ensure!(background != "rgba(0, 0, 0, 0)", "highlighted visibly: {background}");
    eventually(client, "overlaid charts", "return document.querySelectorAll('figure.chart[data-drawn]').length >= 2")
        .await?;
    screenshot(client, "compare-light").await?;

    // Dark: the same pages with prefers-color-scheme: dark.
    let dark = Cdp {
        cmd: "Emulation.setEmulatedMedia",
        params: json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    };
    client.issue_cmd(dark).await?;
    let is_dark = client.execute("return matchMedia('(prefers-color-scheme: dark)').matches", vec![]).await?;
    ensure!(is_dark == json!(true), "dark mode emulated");
    let compare_url = url.to_string();
    for (name, path, ready) in [
        ("experiments-dark", app.at("/"), "table.data"),
        ("runs-dark", app.at(&format!("/experiments/{experiment}")), "table.runs"),
        ("run-dark", client_run_url(client, app, experiment).await?, "figure.chart[data-drawn] canvas"),
        ("compare-dark", compare_url, "figure.chart[data-drawn] canvas"),
    ] {
        client.goto(&path).await?;
        client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(ready)).await?;
        screenshot(client, name).await?;
    }
    Ok(())
}

/// The page of the run named resnet50-lr0.01, found through the runs table.
async fn client_run_url(client: &Client, app: &TestApp, experiment: i64) -> Result<String> {
    client.goto(&app.at(&format!("/experiments/{experiment}"))).await?;
    let link = client.find(Locator::LinkText("resnet50-lr0.01")).await?;
    let href = link.attr("href").await?.context("run link")?;
    Ok(app.at(&href))
}

#[tokio::test]
async fn in_chromium_log_in_sort_filter_open_a_chart_and_compare_three_runs() {
    let app = spawn_app().await;
    let experiment = seed(&app).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = open_browser(&driver, profile.path()).await;
    let outcome = scenario(&client, &app, experiment).await;
    if outcome.is_err() {
        let _ = screenshot(&client, "failure").await;
    }
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        panic!("{e:#} (screenshot of the failure in {})", artifacts_dir().display());
    }
    eprintln!("dashboard screenshots in {}", artifacts_dir().display());
}
