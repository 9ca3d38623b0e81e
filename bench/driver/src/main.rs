//! Load driver for `scripts/bench`: seeds and measures one MLflow-compatible tracking server
//! over its REST API, writing figures to a JSON file, and renders the comparison table.
//!
//! `seed`    creates the search experiment (N runs: runs/create + one log-batch each) and the
//!           history run (P points of one metric, 1000 per log-batch).
//! `measure` (b) runs/search latency, (c) metrics/get-history of the whole history, paged
//!           as the client pages, (d) the dashboard's pages (Cairn only, when given the
//!           admin password), then (a) log-batch ingestion from concurrent clients.
//! `report`  prints one table for up to three result files, ratios and the targets.

mod api;
mod dashboard;
mod data;
mod procfs;
mod report;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use api::Api;
use procfs::RssSampler;

#[derive(Parser)]
#[command(about = "Load driver for scripts/bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Seed(SeedArgs),
    Measure(MeasureArgs),
    Report(report::ReportArgs),
}

#[derive(Args)]
struct Target {
    /// Result file (written by seed, read and completed by measure).
    #[arg(long)]
    state: PathBuf,
    /// Bearer token, when the server wants one.
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's process: RSS and CPU are summed over it and its descendants.
    #[arg(long)]
    pid: Option<u32>,
    /// Leave the root process out of the sums (a launcher that only waits for its children).
    #[arg(long)]
    exclude_root: bool,
    /// A wider process tree whose peak RSS is reported as well (mlflow server: the launcher
    /// with its job runner, besides the uvicorn master and workers given as --pid).
    #[arg(long)]
    total_pid: Option<u32>,
    /// The PostgreSQL postmaster: its tree's CPU time is reported per phase.
    #[arg(long)]
    pg_pid: Option<u32>,
}

#[derive(Args)]
struct SeedArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long)]
    name: String,
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 100_000)]
    runs: usize,
    #[arg(long, default_value_t = 1_000_000)]
    history_points: usize,
    /// Concurrent requests while seeding runs.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(Args)]
struct MeasureArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 4)]
    ingest_clients: usize,
    #[arg(long, default_value_t = 30.0)]
    ingest_secs: f64,
    #[arg(long, default_value_t = 50)]
    search_queries: usize,
    #[arg(long, default_value_t = 5)]
    history_reps: usize,
    /// Page size of get-history requests (the mlflow client asks for 25000).
    #[arg(long, default_value_t = 25_000)]
    history_page: usize,
    /// The admin password of a Cairn server: measures (d) its dashboard pages.
    #[arg(long, env = "BENCH_DASHBOARD_PASSWORD", hide_env_values = true)]
    dashboard_password: Option<String>,
    /// Timed requests per dashboard page.
    #[arg(long, default_value_t = 20)]
    dashboard_reps: usize,
}

/// A throughput figure: `count` items in `secs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    pub error: Option<String>,
    pub count: u64,
    pub secs: f64,
    pub rate: f64,
    pub failed_requests: u64,
}

/// A latency figure over `samples_ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub error: Option<String>,
    pub samples_ms: Vec<f64>,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// get-history: pages and points per full fetch.
    pub pages: u64,
    pub points: u64,
    /// Whether the answers were right, when the driver can tell.
    pub check: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub wall_s: f64,
    pub driver_s: f64,
    pub server_s: f64,
    pub postgres_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerResult {
    pub name: String,
    pub url: String,
    pub runs: usize,
    pub history_points: usize,
    pub search_experiment_id: Option<String>,
    pub history_run_id: Option<String>,
    pub seed_runs: Option<Throughput>,
    pub seed_history: Option<Throughput>,
    pub ingest: Option<Throughput>,
    pub ingest_clients: usize,
    pub search: Option<Latency>,
    pub history: Option<Latency>,
    pub history_page: usize,
    /// (d) Cairn's dashboard pages; empty for servers without one measured.
    pub dashboard: Vec<dashboard::PageFigure>,
    pub rss_peak_mb: BTreeMap<String, f64>,
    /// Peak RSS of the --total-pid tree, when given.
    pub rss_total_peak_mb: Option<f64>,
    pub cpu: BTreeMap<String, Cpu>,
    pub loadavg: Vec<String>,
    pub notes: Vec<String>,
}

impl ServerResult {
    fn load(path: &PathBuf) -> Result<ServerResult> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn save(&self, path: &PathBuf) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }
}

/// Progress lines on stderr.
fn say(name: &str, msg: impl std::fmt::Display) {
    eprintln!("  [{name}] {msg}");
}

struct Meter<'a> {
    target: &'a Target,
    sampler: &'a RssSampler,
    name: String,
}

impl Meter<'_> {
    /// Runs one phase, recording its CPU time (driver, server tree, PostgreSQL tree).
    async fn phase<T>(&self, result: &mut ServerResult, phase: &str, work: impl Future<Output = T>) -> T {
        self.sampler.set_phase(phase);
        let cpu = |t: &Target| {
            (
                procfs::self_cpu_secs(),
                t.pid.map_or(0.0, |p| procfs::tree_cpu_secs(p, t.exclude_root)),
                t.pg_pid.map_or(0.0, |p| procfs::tree_cpu_secs(p, false)),
            )
        };
        let before = cpu(self.target);
        let start = Instant::now();
        let out = work.await;
        let wall_s = start.elapsed().as_secs_f64();
        let after = cpu(self.target);
        let c =
            Cpu { wall_s, driver_s: after.0 - before.0, server_s: after.1 - before.1, postgres_s: after.2 - before.2 };
        say(
            &self.name,
            format!(
                "{phase}: {wall_s:.1} s wall; CPU: server {:.1} s, postgres {:.1} s, driver {:.1} s",
                c.server_s, c.postgres_s, c.driver_s
            ),
        );
        result.cpu.insert(phase.to_owned(), c);
        out
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Seed(args) => seed(args).await,
        Command::Measure(args) => measure(args).await,
        Command::Report(args) => report::run(args),
    }
}

async fn seed(args: SeedArgs) -> Result<()> {
    let api = Api::new(&args.url, args.target.token.as_deref())?;
    let sampler = RssSampler::start(args.target.pid, args.target.exclude_root, args.target.total_pid);
    let mut result = ServerResult {
        name: args.name.clone(),
        url: args.url.clone(),
        runs: args.runs,
        history_points: args.history_points,
        loadavg: vec![procfs::loadavg()],
        ..ServerResult::default()
    };
    let meter = Meter { target: &args.target, sampler: &sampler, name: args.name.clone() };

    match api.experiment("bench-search").await {
        Ok(exp) => {
            result.search_experiment_id = Some(exp.clone());
            let seeded = meter
                .phase(&mut result, "seed runs", seed_runs(&api, &args.name, &exp, args.runs, args.concurrency))
                .await;
            result.seed_runs = Some(seeded);
        }
        Err(e) => result.seed_runs = Some(Throughput { error: Some(format!("{e:#}")), ..Throughput::default() }),
    }

    let history = async {
        let exp = api.experiment("bench-history").await?;
        let body = data::create_run_body(&exp, "history", data::BASE_TS);
        api.create_run(body).await
    };
    match history.await {
        Ok(run_id) => {
            result.history_run_id = Some(run_id.clone());
            let seeded = meter
                .phase(&mut result, "seed history", seed_history(&api, &args.name, &run_id, args.history_points))
                .await;
            result.seed_history = Some(seeded);
        }
        Err(e) => result.seed_history = Some(Throughput { error: Some(format!("{e:#}")), ..Throughput::default() }),
    }
    let (peaks, total) = sampler.finish();
    result.rss_peak_mb = peaks;
    if args.target.total_pid.is_some() {
        result.rss_total_peak_mb = Some(total);
    }
    result.save(&args.target.state)
}

async fn measure(args: MeasureArgs) -> Result<()> {
    let mut result = ServerResult::load(&args.target.state)?;
    let api = Api::new(&result.url, args.target.token.as_deref())?;
    let sampler = RssSampler::start(args.target.pid, args.target.exclude_root, args.target.total_pid);
    let meter = Meter { target: &args.target, sampler: &sampler, name: result.name.clone() };
    let name = result.name.clone();

    let searched = match (&result.search_experiment_id, &result.seed_runs) {
        (Some(exp), Some(seeded)) if seeded.count > 0 => {
            let (exp, runs, complete) =
                (exp.clone(), result.runs, seeded.failed_requests == 0 && seeded.error.is_none());
            meter.phase(&mut result, "search", search(&api, &name, &exp, runs, complete, args.search_queries)).await
        }
        _ => Latency { error: Some("not seeded".into()), ..Latency::default() },
    };
    result.search = Some(searched);

    result.history_page = args.history_page;
    let fetched = match (&result.history_run_id, &result.seed_history) {
        (Some(run_id), Some(seeded)) if seeded.count > 0 => {
            let run_id = run_id.clone();
            let expected = if seeded.failed_requests == 0 { Some(seeded.count) } else { None };
            meter
                .phase(
                    &mut result,
                    "history",
                    history(&api, &name, &run_id, expected, args.history_page, args.history_reps),
                )
                .await
        }
        _ => Latency { error: Some("not seeded".into()), ..Latency::default() },
    };
    result.history = Some(fetched);

    if let (Some(password), Some(exp)) =
        (args.dashboard_password.as_deref().filter(|p| !p.is_empty()), result.search_experiment_id.clone())
    {
        let (url, run, points) = (result.url.clone(), result.history_run_id.clone(), result.history_points);
        let plan = dashboard::Plan {
            base: &url,
            name: &name,
            password,
            experiment: &exp,
            history_run: run.as_deref().map(|r| (r, points)),
            reps: args.dashboard_reps,
        };
        let work = dashboard::measure(plan);
        result.dashboard = meter.phase(&mut result, "dashboard", work).await;
    }

    // Last: its millions of rows set autovacuum going, which would disturb (b), (c) and (d).
    result.ingest_clients = args.ingest_clients;
    let ingested = meter.phase(&mut result, "ingest", ingest(&api, &name, args.ingest_clients, args.ingest_secs)).await;
    result.ingest = Some(ingested);

    let (peaks, total) = sampler.finish();
    for (phase, peak) in peaks {
        let entry = result.rss_peak_mb.entry(phase).or_insert(0.0);
        *entry = entry.max(peak);
    }
    if args.target.total_pid.is_some() {
        result.rss_total_peak_mb = Some(result.rss_total_peak_mb.unwrap_or(0.0).max(total));
    }
    result.loadavg.push(procfs::loadavg());
    result.save(&args.target.state)
}

/// Runs `work(i)` for `i` in `0..total` with `concurrency` tasks; `work` returns how many
/// items it did. Stops early when the first 50 attempts all fail.
async fn pool<F, Fut>(name: &str, what: &str, total: usize, concurrency: usize, work: F) -> Throughput
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let items = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let abort = Arc::new(AtomicBool::new(false));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (work, next, done, items, failed, abort, first_error) = (
            work.clone(),
            next.clone(),
            done.clone(),
            items.clone(),
            failed.clone(),
            abort.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || abort.load(Ordering::Relaxed) {
                    break;
                }
                match work(i).await {
                    Ok(n) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        items.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let f = failed.fetch_add(1, Ordering::Relaxed) + 1;
                        first_error.lock().unwrap().get_or_insert_with(|| format!("{e:#}"));
                        if f >= 50 && done.load(Ordering::Relaxed) == 0 {
                            abort.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    let ticker = {
        let (done, failed, name, what) = (done.clone(), failed.clone(), name.to_owned(), what.to_owned());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (d, f) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
                let rate = d as f64 / start.elapsed().as_secs_f64();
                say(&name, format!("{what}: {d}/{total} ({rate:.0}/s, {f} failed)"));
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    ticker.abort();
    let secs = start.elapsed().as_secs_f64();
    let count = items.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let mut error = first_error.lock().unwrap().take();
    if abort.load(Ordering::Relaxed) {
        error = error.map(|e| format!("gave up after 50 failures in a row: {e}"));
    } else if let Some(e) = &error {
        error = Some(format!("{failed} of {total} failed, first: {e}"));
    }
    Throughput { error, count, secs, rate: count as f64 / secs, failed_requests: failed }
}

async fn seed_runs(api: &Api, name: &str, exp: &str, runs: usize, concurrency: usize) -> Throughput {
    say(name, format!("seeding {runs} runs (runs/create + log-batch each, {concurrency} concurrent)"));
    let (api, exp) = (api.clone(), exp.to_owned());
    let out = pool(name, "seed runs", runs, concurrency, move |i| {
        let (api, exp) = (api.clone(), exp.clone());
        async move {
            let create = data::create_run_body(&exp, &data::run_name(i), data::BASE_TS + i as i64);
            let run_id = api.create_run(create).await?;
            api.post("/api/2.0/mlflow/runs/log-batch", data::seed_batch_body(&run_id, i))
                .await?
                .ok("runs/log-batch")?;
            Ok(1)
        }
    })
    .await;
    say(name, format!("seeded {} runs in {:.1} s ({:.0} runs/s)", out.count, out.secs, out.rate));
    out
}

const HISTORY_BATCH: usize = 1000;

async fn seed_history(api: &Api, name: &str, run_id: &str, points: usize) -> Throughput {
    say(name, format!("seeding a history of {points} points (log-batch of {HISTORY_BATCH}, 4 concurrent)"));
    let (api, run_id) = (api.clone(), run_id.to_owned());
    let batches = points.div_ceil(HISTORY_BATCH);
    let out = pool(name, "seed history batches", batches, 4, move |b| {
        let (api, run_id) = (api.clone(), run_id.clone());
        async move {
            let (from, to) = (b * HISTORY_BATCH, ((b + 1) * HISTORY_BATCH).min(points));
            api.post("/api/2.0/mlflow/runs/log-batch", data::history_body(&run_id, from, to))
                .await?
                .ok("runs/log-batch")?;
            Ok((to - from) as u64)
        }
    })
    .await;
    say(name, format!("seeded {} points in {:.1} s ({:.0} metrics/s)", out.count, out.secs, out.rate));
    out
}

/// (a) Each client logs to its own run, 1000 metrics (10 keys x 100 steps) per request,
/// back to back, for `secs` seconds after one untimed warm-up request.
async fn ingest(api: &Api, name: &str, clients: usize, secs: f64) -> Throughput {
    say(name, format!("(a) ingest: {clients} clients x log-batch of 1000 metrics for {secs} s"));
    let setup = async {
        let exp = api.experiment("bench-ingest").await?;
        let mut out = Vec::new();
        for c in 0..clients {
            let client = api.fork()?;
            let run_id = client.create_run(data::create_run_body(&exp, &format!("ingest-{c}"), data::BASE_TS)).await?;
            let template = data::IngestTemplate::new(&run_id, 10, 100);
            client.post("/api/2.0/mlflow/runs/log-batch", template.request(0)).await?.ok("runs/log-batch")?;
            out.push((client, template));
        }
        anyhow::Ok(out)
    };
    let clients = match setup.await {
        Ok(c) => c,
        Err(e) => return Throughput { error: Some(format!("{e:#}")), ..Throughput::default() },
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (client, template) in clients {
        tasks.push(tokio::spawn(async move {
            let (mut metrics, mut failed, mut error) = (0u64, 0u64, None);
            let mut n = 1;
            while Instant::now() < deadline {
                let body = template.request(n);
                n += 1;
                match client.post("/api/2.0/mlflow/runs/log-batch", body).await.and_then(|r| r.ok("runs/log-batch")) {
                    Ok(_) => metrics += 1000,
                    Err(e) => {
                        failed += 1;
                        error.get_or_insert_with(|| format!("{e:#}"));
                        if metrics == 0 && failed >= 20 {
                            break;
                        }
                    }
                }
            }
            (metrics, failed, error)
        }));
    }
    let (mut metrics, mut failed, mut error) = (0, 0, None);
    for t in tasks {
        match t.await {
            Ok((m, f, e)) => {
                metrics += m;
                failed += f;
                if error.is_none() {
                    error = e;
                }
            }
            Err(e) => error = Some(format!("client task failed: {e}")),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = metrics as f64 / secs;
    say(name, format!("(a) {metrics} metrics in {secs:.1} s: {rate:.0} metrics/s ({failed} failed requests)"));
    let error = error.map(|e| format!("{failed} requests failed, first: {e}"));
    Throughput {
        error: if metrics == 0 { error.or(Some("nothing ingested".into())) } else { error },
        count: metrics,
        secs,
        rate,
        failed_requests: failed,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn latency(mut samples_ms: Vec<f64>) -> Latency {
    let mut sorted = samples_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let (median_ms, p95_ms) = (median(&sorted), percentile(&sorted, 0.95));
    samples_ms.shrink_to_fit();
    Latency { samples_ms, median_ms, p95_ms, ..Latency::default() }
}

fn run_names(body: &[u8]) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).context("runs/search reply is not JSON")?;
    let runs = v.get("runs").and_then(|r| r.as_array()).cloned().unwrap_or_default();
    Ok(runs
        .iter()
        .map(|r| {
            r.pointer("/info/run_name").and_then(|n| n.as_str()).map(str::to_owned).unwrap_or_else(|| {
                let tags = r.pointer("/data/tags").and_then(|t| t.as_array()).cloned().unwrap_or_default();
                tags.iter()
                    .find(|t| t["key"] == "mlflow.runName")
                    .and_then(|t| t["value"].as_str())
                    .unwrap_or("?")
                    .to_owned()
            })
        })
        .collect())
}

/// (b) `queries` searches one after the other (after 3 untimed ones), each checked against
/// the answer the driver computes from the seeded data.
async fn search(api: &Api, name: &str, exp: &str, runs: usize, complete: bool, queries: usize) -> Latency {
    say(
        name,
        format!(
            "(b) search: {queries} x runs/search over {runs} runs: {} ORDER BY {}",
            data::search_filter(0),
            data::SEARCH_ORDER
        ),
    );
    let bodies: Vec<bytes::Bytes> =
        (0..data::PARAM_VALUES as usize).map(|q| data::search_body(exp, q).into()).collect();
    let expected: Vec<Vec<String>> = (0..data::PARAM_VALUES as usize).map(|q| data::expected_search(runs, q)).collect();
    let mut samples = Vec::with_capacity(queries);
    let mut mismatches = Vec::new();
    for q in 0..queries + 3 {
        let body = bodies[q % bodies.len()].clone();
        let start = Instant::now();
        let reply = api.post("/api/2.0/mlflow/runs/search", body).await.and_then(|r| r.ok("runs/search"));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let body = match reply {
            Ok(b) => b,
            Err(e) => return Latency { error: Some(format!("{e:#}")), ..latency(samples) },
        };
        if q >= 3 {
            samples.push(ms);
        }
        match run_names(&body) {
            Ok(names) if names == expected[q % expected.len()] => {}
            Ok(names) => {
                let want = &expected[q % expected.len()];
                let same = names.iter().zip(want).take_while(|(a, b)| a == b).count();
                mismatches.push(format!(
                    "query {q}: {} runs, first {same} in the expected order (got {:?}, expected {:?})",
                    names.len(),
                    names.iter().take(3).collect::<Vec<_>>(),
                    want.iter().take(3).collect::<Vec<_>>()
                ));
            }
            Err(e) => mismatches.push(format!("query {q}: {e:#}")),
        }
    }
    let mut out = latency(samples);
    out.check = Some(if mismatches.is_empty() {
        format!("all {} answers match the expected 100 runs in order", queries + 3)
    } else if !complete {
        format!("{} answers differ (seeding was incomplete): {}", mismatches.len(), mismatches[0])
    } else {
        format!("WRONG: {} of {} answers differ; {}", mismatches.len(), queries + 3, mismatches[0])
    });
    say(
        name,
        format!("(b) median {:.1} ms, p95 {:.1} ms; {}", out.median_ms, out.p95_ms, out.check.as_deref().unwrap_or("")),
    );
    out
}

/// One full fetch of the history as the client does it: pages of `page` points, following
/// `next_page_token`. With `count`, every page is parsed and its points counted.
async fn fetch_history(api: &Api, run_id: &str, page: usize, count: bool) -> Result<(u64, u64, u64)> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        metrics: Vec<serde::de::IgnoredAny>,
    }
    let (mut pages, mut points, mut bytes) = (0u64, 0u64, 0u64);
    let mut token: Option<String> = None;
    loop {
        let mut q = format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run_id}&run_uuid={run_id}&metric_key=loss&max_results={page}"
        );
        if let Some(t) = &token {
            q.push_str("&page_token=");
            q.push_str(&api::urlencode(t));
        }
        let body = api.get(&q).await?.ok("metrics/get-history")?;
        pages += 1;
        bytes += body.len() as u64;
        if count {
            let parsed: Page = serde_json::from_slice(&body).context("get-history reply is not the expected JSON")?;
            points += parsed.metrics.len() as u64;
        }
        match api::next_page_token(&body) {
            Some(t) if Some(&t) != token.as_ref() => token = Some(t),
            Some(_) => bail!("the server returned the same page token twice"),
            None => break,
        }
        if pages > 100_000 {
            bail!("more than 100000 pages");
        }
    }
    Ok((pages, points, bytes))
}

/// (c) One untimed fetch that checks the point count, then `reps` timed fetches.
async fn history(api: &Api, name: &str, run_id: &str, expected: Option<u64>, page: usize, reps: usize) -> Latency {
    say(name, format!("(c) history: {reps} full fetches of metric `loss`, max_results={page} per page"));
    let (pages, points, bytes) = match fetch_history(api, run_id, page, true).await {
        Ok(x) => x,
        Err(e) => return Latency { error: Some(format!("{e:#}")), ..Latency::default() },
    };
    let check = match expected {
        Some(n) if n == points => format!("{points} points in {pages} pages ({:.1} MB of JSON)", bytes as f64 / 1e6),
        Some(n) => format!("WRONG: {points} points returned, {n} logged ({pages} pages)"),
        None => format!("{points} points in {pages} pages (seeding was incomplete)"),
    };
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        if let Err(e) = fetch_history(api, run_id, page, false).await {
            return Latency { error: Some(format!("{e:#}")), ..latency(samples) };
        }
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mut out = latency(samples);
    out.pages = pages;
    out.points = points;
    out.check = Some(check);
    say(
        name,
        format!("(c) median {:.0} ms, p95 {:.0} ms; {}", out.median_ms, out.p95_ms, out.check.as_deref().unwrap_or("")),
    );
    out
}
