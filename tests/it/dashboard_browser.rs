//! The dashboard in a real headless Chromium (Debian `chromium` and `chromium-driver`),
//! driven over WebDriver with fantoccini: log in, open an experiment, sort and filter the
//! runs table, open a run and see its chart drawn, browse its artifacts (a CSV preview, an
//! image, a real download), select three runs and compare them (the differing param
//! highlighted, parallel coordinates and a scatter plot drawn); filter the audit log;
//! deploy a model version and roll it back.
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
        if *name == "resnet50-lr0.01" {
            upload_artifacts(app, experiment, id).await;
        }
    }
    experiment
}

/// What the artifact browser shows of resnet50-lr0.01.
const CONFUSION_CSV: &str = "label,cat,dog,bird\ncat,41,3,1\ndog,2,54,0\nbird,1,0,37\n";

/// A 2x2 PNG (red, green / blue, white).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x16, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0xf0, 0x1f, 0x08, 0x19, 0x18, 0xfe, 0xff, 0x07, 0x00,
    0x3f, 0xe0, 0x07, 0xf9, 0x16, 0x5d, 0x3c, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

async fn upload_artifacts(app: &TestApp, experiment: i64, run: uuid::Uuid) {
    let token = app.admin_token().await;
    let files: [(&str, &[u8]); 4] = [
        ("eval/confusion.csv", CONFUSION_CSV.as_bytes()),
        ("plots/samples.png", PNG),
        ("metrics.json", br#"{"accuracy": 0.934, "epochs": 300}"#),
        ("model/MLmodel", b"flavors:\n  python_function:\n    loader_module: mlflow.pytorch\n"),
    ];
    for (path, body) in files {
        let url =
            app.at(&format!("/api/2.0/mlflow-artifacts/artifacts/{experiment}/{}/artifacts/{path}", run.simple()));
        let response = app.client.put(url).bearer_auth(&token).body(body.to_vec()).send().await.expect("upload");
        assert_eq!(response.status(), 200, "upload of {path}");
    }
}

async fn scenario(client: &Client, app: &TestApp, experiment: i64, download_dir: &Path) -> Result<()> {
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

    browse_artifacts(client, download_dir).await?;

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
    // Charts draw when scrolled into view; the plots come first.
    client.execute("document.getElementById('charts').scrollIntoView()", vec![]).await?;
    eventually(client, "overlaid charts", "return document.querySelectorAll('figure.chart[data-drawn]').length >= 2")
        .await?;
    // Parallel coordinates (one line per run across every axis) and the scatter plot.
    let drawn = client
        .execute(
            "const pc = document.querySelector('svg.parallel'); const sc = document.querySelector('svg.scatter'); \
             if (!pc || !sc) return null; \
             const lines = [...pc.querySelectorAll('path.run-line')]; const dots = [...sc.querySelectorAll('circle.run-point')]; \
             return { lines: lines.length, drawn: lines.filter(l => l.getTotalLength() > 100).length, \
                      axes: pc.querySelectorAll('g.axis').length, dots: dots.length, \
                      width: pc.getBoundingClientRect().width, stroke: getComputedStyle(lines[0]).stroke, \
                      fill: getComputedStyle(dots[0]).fill };",
            vec![],
        )
        .await?;
    ensure!(drawn["lines"] == json!(3) && drawn["drawn"] == json!(3), "three runs drawn across the axes: {drawn}");
    ensure!(drawn["axes"].as_u64().is_some_and(|a| a >= 2), "params and a metric as axes: {drawn}");
    ensure!(drawn["dots"] == json!(3), "three points on the scatter plot: {drawn}");
    ensure!(drawn["width"].as_f64().is_some_and(|w| w > 300.0), "the plot has room: {drawn}");
    ensure!(drawn["stroke"] != drawn["fill"] || drawn["stroke"] != json!("none"), "coloured: {drawn}");
    ensure!(drawn["stroke"] != json!("none"), "lines are stroked: {drawn}");
    // A scatter of two other columns, chosen in the page and kept in the URL.
    let x = client.find(Locator::Css("select[name=sx]")).await?;
    x.select_by_value("params.optimizer").await?;
    client.find(Locator::Css("form.plot-form button[type=submit]")).await?.click().await?;
    // The old page has a scatter plot too: wait for the navigation before looking at it.
    for _ in 0..100 {
        if client.current_url().await?.query().unwrap_or_default().contains("sx=params.optimizer") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("svg.scatter")).await?;
    let chosen = client.current_url().await?;
    ensure!(chosen.query().unwrap_or_default().contains("sx=params.optimizer"), "the choice in the URL: {chosen}");
    let title = client.find(Locator::Css("svg.scatter > title")).await?.text().await?;
    ensure!(title.contains("against params.optimizer"), "scatter redrawn: {title}");
    ensure!(!texts(client, "table.compare tr.differs > th").await?.is_empty(), "the differing rows stay highlighted");
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
    let run_url = client_run_url(client, app, experiment).await?;
    for (name, path, ready) in [
        ("experiments-dark", app.at("/"), "table.data"),
        ("runs-dark", app.at(&format!("/experiments/{experiment}")), "table.runs"),
        ("run-dark", run_url.clone(), "figure.chart[data-drawn] canvas"),
        ("artifacts-dark", format!("{run_url}/artifacts/eval/confusion.csv"), "table.csv"),
        ("compare-dark", compare_url, "svg.scatter"),
    ] {
        client.goto(&path).await?;
        client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(ready)).await?;
        screenshot(client, name).await?;
    }
    Ok(())
}

/// From the run page (resnet50-lr0.01): the artifact tree, a CSV preview as a table, an
/// image preview, and a download that lands on disk with the file's bytes.
async fn browse_artifacts(client: &Client, download_dir: &Path) -> Result<()> {
    let top = texts(client, "#artifacts table.artifacts tbody th a").await?;
    let top: Vec<&str> = top.iter().map(|t| t.trim_start_matches("▸ ")).collect();
    ensure!(top == ["eval/", "model/", "plots/", "metrics.json"], "folders first on the run page: {top:?}");
    client.find(Locator::LinkText("Browse all artifacts")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("nav.artifact-tree")).await?;
    client.find(Locator::Css("table.artifacts a.dir[href$='/eval']")).await?.click().await?;
    client.find(Locator::LinkText("confusion.csv")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table.csv")).await?;
    ensure!(client.current_url().await?.path().ends_with("/artifacts/eval/confusion.csv"));
    let header = texts(client, "table.csv thead th").await?;
    ensure!(header == ["label", "cat", "dog", "bird"], "CSV header: {header:?}");
    ensure!(texts(client, "table.csv tbody tr").await?.len() == 3, "three CSV rows");
    let open = texts(client, "ul.tree a[aria-expanded=true]").await?;
    ensure!(open.iter().any(|t| t.ends_with("eval")), "the tree is open along the path: {open:?}");
    screenshot(client, "artifacts-light").await?;

    // A real download: Chromium saves the file where we tell it.
    let allow = Cdp {
        cmd: "Browser.setDownloadBehavior",
        params: json!({"behavior": "allow", "downloadPath": download_dir.display().to_string()}),
    };
    client.issue_cmd(allow).await?;
    client.find(Locator::Css("section.artifact-file a.button[download]")).await?.click().await?;
    let saved = download_dir.join("confusion.csv");
    for _ in 0..100 {
        if std::fs::read_to_string(&saved).is_ok_and(|t| t == CONFUSION_CSV) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let content = std::fs::read_to_string(&saved).with_context(|| format!("no download at {}", saved.display()))?;
    ensure!(content == CONFUSION_CSV, "the downloaded file has the artifact's bytes: {content:?}");

    // An image previewed inline from its same-origin URL.
    client.find(Locator::Css("ul.tree a[href$='/plots']")).await?.click().await?;
    client.find(Locator::LinkText("samples.png")).await?.click().await?;
    let width = eventually(
        client,
        "the image preview",
        "const i = document.querySelector('img.artifact-image'); return i && i.complete && i.naturalWidth;",
    )
    .await?;
    ensure!(width == json!(2), "the PNG decoded: {width}");
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
async fn in_chromium_log_in_sort_filter_open_a_chart_browse_artifacts_and_compare_three_runs() {
    let app = spawn_app().await;
    let experiment = seed(&app).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = open_browser(&driver, profile.path()).await;
    let downloads = tempfile::tempdir().expect("download dir");
    let outcome = scenario(&client, &app, experiment, downloads.path()).await;
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

/// Logs in as admin through the form and waits for a page with the header.
async fn log_in_as_admin(client: &Client, app: &TestApp) -> Result<()> {
    client.goto(&app.at("/login")).await?;
    client.find(Locator::Id("username")).await?.send_keys("admin").await?;
    client.find(Locator::Id("password")).await?.send_keys(ADMIN_PASSWORD).await?;
    client.find(Locator::Css("form button[type=submit]")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("header.top")).await?;
    Ok(())
}

/// A registered model with one version from a run that logged `accuracy`.
async fn seed_model(app: &TestApp) -> Result<()> {
    let experiment = new_experiment(app, "churn").await;
    let run = new_run(app, experiment, "xgb-depth6", 1_700_000_000_000, Vec::new()).await;
    log(app, run, &[("depth", "6")], &[("accuracy", 0.91, 0)]).await;
    let actor = cairn_server::audit::Actor::system("test");
    cairn_server::registry::create_model(&app.db, &actor, "churn-model", Some("Predicts churn."), &[], 1).await?;
    let source = format!("runs:/{}/model", run.simple());
    let request = cairn_server::registry::NewVersionRequest {
        name: "churn-model",
        source: &source,
        run_id: None,
        model_id: None,
        tags: &[],
        description: None,
        run_link: None,
    };
    cairn_server::registry::create_version(&app.db, &actor, request).await?;
    Ok(())
}

/// Log in, open the model from the header's Models link, check the versions table shows the
/// source run and its metric, set an alias with the form and see it on the page.
async fn model_scenario(client: &Client, app: &TestApp) -> Result<()> {
    log_in_as_admin(client, app).await?;
    client.find(Locator::Css("header.top nav a[href=\"/models\"]")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::LinkText("churn-model")).await?;
    client.find(Locator::LinkText("churn-model")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("versions")).await?;
    ensure!(client.current_url().await?.path() == "/models/churn-model");
    let cells = texts(client, "#versions tbody td").await?;
    ensure!(cells.iter().any(|c| c.contains("accuracy") && c.contains("0.91")), "source run metric: {cells:?}");
    let run_link = client.find(Locator::Css("#versions tbody a[href^=\"/runs/\"]")).await?;
    ensure!(run_link.attr("href").await?.is_some(), "the source run is linked");

    client.find(Locator::Id("alias-name")).await?.send_keys("champion").await?;
    client.find(Locator::Css("#aliases form.row button[type=submit]")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#aliases .chip")).await?;
    let chips = texts(client, "#aliases .chip").await?;
    ensure!(chips.iter().any(|c| c.contains("@champion") && c.contains("version 1")), "alias shown: {chips:?}");
    let versions = texts(client, "#versions tbody td").await?;
    ensure!(versions.iter().any(|c| c.contains("@champion")), "the version row shows the alias: {versions:?}");
    screenshot(client, "model-light").await?;
    Ok(())
}

/// Runs `scenario` in a fresh Chromium; a failure leaves a screenshot `NAME-failure.png`
/// and fails the test with the error.
async fn in_chromium(app: &TestApp, name: &str, scenario: impl AsyncFnOnce(&Client, &TestApp) -> Result<()>) {
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = open_browser(&driver, profile.path()).await;
    let outcome = scenario(&client, app).await;
    if outcome.is_err() {
        let _ = screenshot(&client, &format!("{name}-failure")).await;
    }
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        panic!("{e:#} (screenshot of the failure in {})", artifacts_dir().display());
    }
}

#[tokio::test]
async fn in_chromium_open_a_model_and_set_an_alias() {
    let app = spawn_app().await;
    seed_model(&app).await.expect("seed the registry");
    in_chromium(&app, "model", model_scenario).await;
}

/// Log in, open a dataset from the header's Datasets link (its schema and the runs that
/// used it), compare two versions, then open a model version's provenance page from the
/// version page and follow its dataset link back.
async fn lineage_scenario(client: &Client, app: &TestApp, trainer: &str) -> Result<()> {
    let run_link = format!("a[href=\"/runs/{trainer}\"]");
    let wait = |locator| client.wait().at_most(Duration::from_secs(10)).for_element(locator);
    client.goto(&app.at("/login")).await?;
    client.find(Locator::Id("username")).await?.send_keys("admin").await?;
    client.find(Locator::Id("password")).await?.send_keys(ADMIN_PASSWORD).await?;
    client.find(Locator::Css("form button[type=submit]")).await?.click().await?;
    wait(Locator::Css("header.top")).await?;
    client.find(Locator::Css("header.top nav a[href=\"/datasets\"]")).await?.click().await?;
    wait(Locator::LinkText("train")).await?;
    client.find(Locator::LinkText("train")).await?.click().await?;
    wait(Locator::Id("schema-h")).await?;
    ensure!(client.current_url().await?.path() == "/datasets/train");
    let heading = client.find(Locator::Id("version-h")).await?.text().await?;
    ensure!(heading == "Version 2", "the latest version is chosen: {heading}");
    let columns = texts(client, "#schema-h ~ table tbody th").await?;
    ensure!(columns == ["x", "y", "label"], "schema of the CSV file: {columns:?}");
    screenshot(client, "dataset-light").await?;

    client.find(Locator::LinkText("Compare versions")).await?.click().await?;
    wait(Locator::Id("changed-h")).await?;
    ensure!(texts(client, "#changed-h ~ ul li").await? == ["data.csv"], "the changed file");
    client.find(Locator::LinkText("1")).await?.click().await?;
    wait(Locator::Css(&run_link)).await?;
    let contexts = texts(client, "#runs-h ~ table tbody td:last-child").await?;
    ensure!(contexts.contains(&"training".to_owned()), "the runs that used version 1: {contexts:?}");

    client.goto(&app.at("/models/fraud/versions/1")).await?;
    wait(Locator::LinkText("Provenance")).await?;
    client.find(Locator::LinkText("Provenance")).await?.click().await?;
    wait(Locator::Id("events-h")).await?;
    let title = client.find(Locator::Css("h1")).await?.text().await?;
    ensure!(title == "Provenance of fraud version 1", "{title}");
    let download = client.find(Locator::LinkText("Download as JSON")).await?.attr("href").await?;
    ensure!(download.as_deref() == Some("/api/v1/models/fraud/versions/1/provenance?download"), "{download:?}");
    let events = texts(client, "#events-h ~ table tbody td:nth-child(3)").await?;
    ensure!(events.iter().any(|e| e.starts_with("registered version 1")), "registry events: {events:?}");
    screenshot(client, "provenance-light").await?;
    client.find(Locator::LinkText("train@1")).await?.click().await?;
    wait(Locator::Id("version-h")).await?;
    ensure!(client.current_url().await?.query() == Some("version=1"), "the dataset version the model used");
    Ok(())
}

#[tokio::test]
async fn in_chromium_open_a_dataset_and_a_provenance_page() {
    let app = spawn_app().await;
    let api = crate::lineage::Api::admin(&app).await;
    let w = crate::lineage::world(&api).await;
    api.push_with_message("train", b"x,y,label\n1,2,a\n", "add labels").await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = open_browser(&driver, profile.path()).await;
    let outcome = lineage_scenario(&client, &app, &w.trainer).await;
    if outcome.is_err() {
        let _ = screenshot(&client, "lineage-failure").await;
    }
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        panic!("{e:#} (screenshot of the failure in {})", artifacts_dir().display());
    }
}

/// Log in, open the run of a finished job, click Retrain, change a param and submit; the
/// new job's page follows its log live (joblog.js) until the job ends and the page shows
/// its final state; its run names the run it retrains.
async fn retrain_scenario(client: &Client, app: &TestApp, run: &str) -> Result<()> {
    let wait = |locator| client.wait().at_most(Duration::from_secs(20)).for_element(locator);
    client.goto(&app.at("/login")).await?;
    client.find(Locator::Id("username")).await?.send_keys("admin").await?;
    client.find(Locator::Id("password")).await?.send_keys(ADMIN_PASSWORD).await?;
    client.find(Locator::Css("form button[type=submit]")).await?.click().await?;
    wait(Locator::Css("header.top")).await?;
    client.goto(&app.at(&format!("/runs/{run}"))).await?;
    wait(Locator::LinkText("Retrain…")).await?.click().await?;
    wait(Locator::Id("param.lr")).await?;
    ensure!(client.current_url().await?.path() == format!("/runs/{run}/retrain"));
    let lr = client.find(Locator::Id("param.lr")).await?;
    ensure!(lr.prop("value").await?.as_deref() == Some("0.1"), "the old value is prefilled");
    lr.clear().await?;
    lr.send_keys("0.5").await?;
    screenshot(client, "retrain-form-light").await?;
    client.find(Locator::Css("form.stack button[type=submit]")).await?.click().await?;

    wait(Locator::Id("job-log")).await?;
    let path = client.current_url().await?.path().to_owned();
    ensure!(path.starts_with("/jobs/") && !path.ends_with(run), "the new job's page: {path}");
    eventually(
        client,
        "the live log",
        "return document.getElementById('job-log').textContent.includes('epoch 1 lr=0.5')",
    )
    .await?;
    let note = client.find(Locator::Id("log-note")).await?.text().await?;
    ensure!(note == "Following the log live.", "followed by joblog.js, not a reload: {note:?}");
    screenshot(client, "job-running-light").await?;
    // When the job ends the script reloads the page: the final state, no more following.
    eventually(client, "the job's end", "return document.querySelector('#job-state .status.finished') !== null")
        .await?;
    let log = client.find(Locator::Id("job-log")).await?.text().await?;
    ensure!(log.contains("stdout epoch 1 lr=0.5") && log.contains("stdout done"), "the whole log: {log}");
    ensure!(client.find_all(Locator::Css("#job-log[data-follow]")).await?.is_empty());
    screenshot(client, "job-light").await?;

    client.find(Locator::Css(".page-head a[href^=\"/runs/\"]")).await?.click().await?;
    wait(Locator::Css("dl.facts")).await?;
    let facts = texts(client, "dl.facts > div").await?;
    ensure!(
        facts.iter().any(|f| f.to_lowercase().starts_with("retrains run") && f.contains(run)),
        "linked to the old run: {facts:?}"
    );
    let params = texts(client, "#params tbody tr").await?;
    ensure!(params.iter().any(|p| p.contains("lr") && p.contains("0.5")), "the changed param: {params:?}");
    client.find(Locator::Css(&format!("dl.facts a[href=\"/runs/{run}\"]"))).await?.click().await?;
    wait(Locator::LinkText("Retrain…")).await?;

    // The jobs list from the header: both jobs, the usage section; light and dark.
    client.find(Locator::Css("header.top nav a[href=\"/jobs\"]")).await?.click().await?;
    wait(Locator::Id("usage-h")).await?;
    let states = texts(client, "#jobs-h ~ div table tbody td .status").await?;
    ensure!(states == ["Succeeded", "Succeeded"], "both jobs listed: {states:?}");
    screenshot(client, "jobs-light").await?;
    let dark = Cdp {
        cmd: "Emulation.setEmulatedMedia",
        params: json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    };
    client.issue_cmd(dark).await?;
    screenshot(client, "jobs-dark").await?;
    client.goto(&app.at(&path)).await?;
    wait(Locator::Id("job-log")).await?;
    screenshot(client, "job-dark").await?;
    Ok(())
}

#[tokio::test]
async fn in_chromium_retrain_a_finished_job_with_a_changed_param_and_follow_its_log() {
    let api = crate::job_templates::Api::start().await;
    let body = json!({"command": ["sh", "-c", "echo epoch 1 lr={{lr}}; sleep 2; echo done"], "params": {"lr": "0.1"}});
    let job = api.json(reqwest::Method::POST, "/jobs", Some(body), 201).await;
    let ended = api.wait_for_end(job["id"].as_str().expect("id")).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
    let run = ended["run_id"].as_str().expect("run").to_owned();
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = open_browser(&driver, profile.path()).await;
    let outcome = retrain_scenario(&client, &api.app, &run).await;
    if outcome.is_err() {
        let _ = screenshot(&client, "retrain-failure").await;
    }
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        panic!("{e:#} (screenshot of the failure in {})", artifacts_dir().display());
    }
}

/// Log in, open the audit log from the header, filter by action with a wildcard and by
/// actor, see only matching rows and the export links keep the filters, narrow to nothing,
/// see a bad time explained, and follow an event's object link.
async fn audit_scenario(client: &Client, app: &TestApp) -> Result<()> {
    let wait = |locator| client.wait().at_most(Duration::from_secs(10)).for_element(locator);
    log_in_as_admin(client, app).await?;
    client.find(Locator::Css("header.top nav a[href=\"/audit\"]")).await?.click().await?;
    wait(Locator::Id("audit-filters")).await?;
    ensure!(client.current_url().await?.path() == "/audit");

    let submit = async |field: &str, value: &str| -> Result<()> {
        let input = client.find(Locator::Id(field)).await?;
        input.clear().await?;
        input.send_keys(value).await?;
        client.find(Locator::Css("#audit-filters button[type=submit]")).await?.click().await?;
        let check = format!("return new URLSearchParams(location.search).get('{}') === {value:?}", &field[2..]);
        eventually(client, "the filtered page", &check).await?;
        wait(Locator::Id("audit-filters")).await?;
        Ok(())
    };
    submit("f-action", "registered_model.*").await?;
    let actions = texts(client, "#audit-events tbody td:nth-child(4)").await?;
    ensure!(!actions.is_empty(), "matching events are listed");
    ensure!(actions.iter().all(|a| a.starts_with("registered_model.")), "only registered_model.*: {actions:?}");
    let export = client.find(Locator::Id("export-jsonl")).await?.attr("href").await?.unwrap_or_default();
    ensure!(export.contains("action=registered_model.*") && export.contains("format=jsonl"), "{export}");

    submit("f-actor", "system:*").await?;
    let actors = texts(client, "#audit-events tbody td:nth-child(3)").await?;
    ensure!(!actors.is_empty() && actors.iter().all(|a| a.starts_with("system:")), "{actors:?}");
    ensure!(client.current_url().await?.query().is_some_and(|q| q.contains("action=")), "both filters apply");
    screenshot(client, "audit-light").await?;

    submit("f-actor", "nobody").await?;
    let empty = client.find(Locator::Css(".empty-line")).await?.text().await?;
    ensure!(empty.contains("No events match"), "{empty}");

    submit("f-since", "yesterday").await?;
    let error = client.find(Locator::Css("p.error")).await?.text().await?;
    ensure!(error.contains("since") && error.contains("is not a time"), "{error}");

    client.goto(&app.at("/audit?action=registered_model.create")).await?;
    wait(Locator::LinkText("model:churn-model")).await?;
    client.find(Locator::LinkText("model:churn-model")).await?.click().await?;
    eventually(client, "the model page", "return location.pathname === '/models/churn-model'").await?;
    Ok(())
}

/// Deploy version 1 from its page, roll out version 2 (API), then roll back to revision 1
/// with its button: revision 3 serves version 1 again.
async fn deploy_scenario(client: &Client, app: &TestApp) -> Result<()> {
    log_in_as_admin(client, app).await?;
    client.goto(&app.at("/models/churn-model/versions/1")).await?;
    let name =
        client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#deploy input[name=name]")).await?;
    name.clear().await?;
    name.send_keys("churn-prod").await?;
    client.find(Locator::Id("deploy-button")).await?.click().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Id("current-revision")).await?;
    ensure!(client.current_url().await?.path() == "/deployments/churn-prod");
    ensure!(client.find(Locator::Id("current-revision")).await?.text().await?.trim() == "1");
    let endpoint = client.find(Locator::Id("endpoint-url")).await?.text().await?;
    ensure!(endpoint.ends_with("/serve/churn-prod/invocations"), "endpoint: {endpoint}");
    ensure!(client.find(Locator::Id("curl-example")).await?.text().await?.contains("curl -X POST"));

    let token = app.admin_token().await;
    let update = app.client.patch(app.at("/api/v1/deployments/churn-prod")).bearer_auth(&token);
    let response = update.json(&json!({"version": 2})).send().await?;
    ensure!(response.status() == 200, "update: {}", response.text().await?);
    client.refresh().await?;
    client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("button[data-rollback=\"1\"]")).await?;
    ensure!(client.find(Locator::Id("current-revision")).await?.text().await?.trim() == "2");
    screenshot(client, "deployment-light").await?;
    client.find(Locator::Css("button[data-rollback=\"1\"]")).await?.click().await?;
    eventually(client, "revision 3", "return document.getElementById('current-revision')?.textContent.trim() === '3'")
        .await?;
    let rows = texts(client, "#revisions tbody tr").await?;
    ensure!(rows.first().is_some_and(|r| r.contains("rollback") && r.contains("v1")), "revisions: {rows:?}");
    Ok(())
}

#[tokio::test]
async fn in_chromium_filter_the_audit_log_and_follow_an_event_to_its_object() {
    let app = spawn_app().await;
    seed_model(&app).await.expect("seed the registry");
    in_chromium(&app, "audit", audit_scenario).await;
}

#[tokio::test]
async fn in_chromium_deploy_a_model_version_and_roll_back() {
    let app = spawn_app().await;
    seed_model(&app).await.expect("seed the registry");
    let actor = cairn_server::audit::Actor::system("test");
    let request = cairn_server::registry::NewVersionRequest {
        name: "churn-model",
        source: "mlflow-artifacts:/0/second/artifacts/model",
        run_id: None,
        model_id: None,
        tags: &[],
        description: None,
        run_link: None,
    };
    cairn_server::registry::create_version(&app.db, &actor, request).await.expect("version 2");
    in_chromium(&app, "deploy", deploy_scenario).await;
}
