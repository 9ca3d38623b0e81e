//! The comparison table and the targets of issue 9.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::{Latency, ServerResult, Throughput};

#[derive(Args)]
pub struct ReportArgs {
    #[arg(long)]
    cairn: Option<PathBuf>,
    #[arg(long)]
    mlflow: Option<PathBuf>,
    #[arg(long)]
    fml: Option<PathBuf>,
}

/// A figure, or why there is none.
#[derive(Clone, Copy)]
enum Cell {
    Value(f64),
    Failed,
    Missing,
}

impl Cell {
    fn value(self) -> Option<f64> {
        match self {
            Cell::Value(v) if v.is_finite() => Some(v),
            _ => None,
        }
    }
}

fn throughput(t: &Option<Throughput>, f: impl Fn(&Throughput) -> f64) -> Cell {
    match t {
        None => Cell::Missing,
        Some(t) if t.count == 0 => Cell::Failed,
        Some(t) => Cell::Value(f(t)),
    }
}

fn latency(l: &Option<Latency>, f: impl Fn(&Latency) -> f64) -> Cell {
    match l {
        None => Cell::Missing,
        Some(l) if l.samples_ms.is_empty() || l.error.is_some() => Cell::Failed,
        Some(l) => Cell::Value(f(l)),
    }
}

struct Row {
    label: String,
    cells: [Cell; 3],
    higher_is_better: bool,
    decimals: usize,
}

fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn fmt_cell(c: Cell, decimals: usize) -> String {
    match c {
        Cell::Value(v) if v.is_finite() => fmt_num(v, decimals),
        Cell::Value(_) => "n/a".into(),
        Cell::Failed => "FAILED".into(),
        Cell::Missing => "-".into(),
    }
}

/// How many times better Cairn is than `other` (above 1: Cairn ahead).
fn advantage(cairn: Cell, other: Cell, higher_is_better: bool) -> Option<f64> {
    let (c, o) = (cairn.value()?, other.value()?);
    let r = if higher_is_better { c / o } else { o / c };
    r.is_finite().then_some(r)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("n/a".into(), |r| if r >= 10.0 { format!("{r:.0}x") } else { format!("{r:.2}x") })
}

fn peak_rss(r: &ServerResult) -> Cell {
    r.rss_peak_mb
        .values()
        .cloned()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .map_or(Cell::Missing, Cell::Value)
}

fn cpu_per_million(r: &ServerResult) -> Cell {
    match (&r.ingest, r.cpu.get("ingest")) {
        (Some(t), Some(c)) if t.count > 0 && (c.server_s + c.postgres_s) > 0.0 => {
            Cell::Value((c.server_s + c.postgres_s) / t.count as f64 * 1e6)
        }
        (Some(t), _) if t.count == 0 => Cell::Failed,
        _ => Cell::Missing,
    }
}

pub fn run(args: ReportArgs) -> Result<()> {
    let load = |p: &Option<PathBuf>| p.as_ref().map(ServerResult::load).transpose();
    let servers: [Option<ServerResult>; 3] = [load(&args.cairn)?, load(&args.mlflow)?, load(&args.fml)?];
    let names = ["Cairn", "MLflow", "FastTrackML"];
    let any = servers.iter().flatten().next().cloned().unwrap_or_default();
    let cells = |f: &dyn Fn(&ServerResult) -> Cell| -> [Cell; 3] {
        std::array::from_fn(|i| servers[i].as_ref().map_or(Cell::Missing, f))
    };
    let clients = servers.iter().flatten().map(|s| s.ingest_clients).max().unwrap_or(4);
    let page = servers.iter().flatten().map(|s| s.history_page).max().unwrap_or(25_000);
    let runs = fmt_num(any.runs as f64, 0);
    let points = fmt_num(any.history_points as f64, 0);
    let rows = vec![
        Row {
            label: format!("(a) ingest, log-batch of 1000, {clients} clients [metrics/s]"),
            cells: cells(&|s| throughput(&s.ingest, |t| t.rate)),
            higher_is_better: true,
            decimals: 0,
        },
        Row {
            label: format!("(b) search-runs over {runs} runs, median [ms]"),
            cells: cells(&|s| latency(&s.search, |l| l.median_ms)),
            higher_is_better: false,
            decimals: 1,
        },
        Row {
            label: "(b) search-runs, p95 [ms]".into(),
            cells: cells(&|s| latency(&s.search, |l| l.p95_ms)),
            higher_is_better: false,
            decimals: 1,
        },
        Row {
            label: format!("(c) get-history of {points} points, median [ms]"),
            cells: cells(&|s| latency(&s.history, |l| l.median_ms)),
            higher_is_better: false,
            decimals: 0,
        },
        Row {
            label: "(c) get-history, p95 [ms]".into(),
            cells: cells(&|s| latency(&s.history, |l| l.p95_ms)),
            higher_is_better: false,
            decimals: 0,
        },
        Row {
            label: format!("seed {runs} runs (create + log-batch) [s]"),
            cells: cells(&|s| throughput(&s.seed_runs, |t| t.secs)),
            higher_is_better: false,
            decimals: 1,
        },
        Row {
            label: "seed runs, rate [runs/s]".into(),
            cells: cells(&|s| throughput(&s.seed_runs, |t| t.rate)),
            higher_is_better: true,
            decimals: 0,
        },
        Row {
            label: format!("seed history, {points} points [metrics/s]"),
            cells: cells(&|s| throughput(&s.seed_history, |t| t.rate)),
            higher_is_better: true,
            decimals: 0,
        },
        Row {
            label: "CPU per 1M ingested metrics, server+PG [s]".into(),
            cells: cells(&cpu_per_million),
            higher_is_better: false,
            decimals: 1,
        },
        Row {
            label: "peak server RSS, whole run [MB]".into(),
            cells: cells(&peak_rss),
            higher_is_better: false,
            decimals: 0,
        },
    ];

    let headers = ["workload", names[0], names[1], names[2], "vs MLflow", "vs FastTrackML"];
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.label.clone(),
                fmt_cell(r.cells[0], r.decimals),
                fmt_cell(r.cells[1], r.decimals),
                fmt_cell(r.cells[2], r.decimals),
                fmt_ratio(advantage(r.cells[0], r.cells[1], r.higher_is_better)),
                fmt_ratio(advantage(r.cells[0], r.cells[2], r.higher_is_better)),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &table {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 6]| {
        let mut s = format!("| {:<w$} ", cols[0], w = widths[0]);
        for (i, c) in cols.iter().enumerate().skip(1) {
            s.push_str(&format!("| {:>w$} ", c, w = widths[i]));
        }
        s.push('|');
        s
    };
    println!("{}", line(headers));
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| if i == 0 { format!(":{}", "-".repeat(w + 1)) } else { format!("{}:", "-".repeat(w + 1)) })
        .collect();
    println!("|{}|", rule.join("|"));
    for row in &table {
        println!("{}", line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]));
    }
    println!();
    println!(
        "vs X: how many times better Cairn is than X (throughput ratio, or X's time / Cairn's time); above 1x Cairn is ahead."
    );
    println!(
        "(c) is the whole history fetched as the mlflow client does: max_results={page} per request, following next_page_token;"
    );
    println!("    timed until the last byte of the last page (client-side JSON decoding not included).");

    // Targets (issue 9).
    println!();
    println!("Targets (issue 9):");
    let [ingest, search, _, hist, ..] = &rows[..] else { unreachable!() };
    let target = target_line;
    for (row, what) in
        [(ingest, "(a) ingest throughput"), (search, "(b) search median latency"), (hist, "(c) history median latency")]
    {
        let r = advantage(row.cells[0], row.cells[1], row.higher_is_better);
        target(r.map(|r| r >= 10.0), format!("{what}: Cairn >= 10x MLflow: {}", fmt_ratio(r)));
    }
    for (row, what) in [(ingest, "(a) ingest"), (search, "(b) search"), (hist, "(c) history")] {
        let r = advantage(row.cells[0], row.cells[2], row.higher_is_better);
        let aim = match r {
            Some(r) if r >= 2.0 => " (aim 2x: met)",
            Some(_) => " (aim 2x: not met)",
            None => "",
        };
        target(r.map(|r| r > 1.0), format!("{what}: Cairn ahead of FastTrackML: {}{aim}", fmt_ratio(r)));
    }
    let median = search.cells[0].value();
    target(
        median.map(|m| m < 50.0),
        format!("(b) search median < 50 ms: {}", median.map_or("n/a".into(), |m| format!("{m:.1} ms"))),
    );
    let rss = servers[0].as_ref().map(peak_rss).and_then(Cell::value);
    target(
        rss.map(|m| m < 300.0),
        format!("Cairn RSS < 300 MB throughout: peak {}", rss.map_or("n/a".into(), |m| format!("{m:.0} MB"))),
    );

    if let Some(cairn) = servers[0].as_ref().filter(|c| !c.dashboard.is_empty()) {
        dashboard(cairn, &target_line);
    }

    // Notes: failures, answer checks, where the time went.
    println!();
    println!("Notes:");
    for (name, s) in names.iter().zip(&servers) {
        let Some(s) = s else { continue };
        let mut notes = Vec::new();
        let mut err = |phase: &str, e: &Option<String>| {
            if let Some(e) = e {
                notes.push(format!("{phase}: {e}"));
            }
        };
        err("seed runs", &s.seed_runs.as_ref().and_then(|t| t.error.clone()));
        err("seed history", &s.seed_history.as_ref().and_then(|t| t.error.clone()));
        err("(a) ingest", &s.ingest.as_ref().and_then(|t| t.error.clone()));
        err("(b) search", &s.search.as_ref().and_then(|t| t.error.clone()));
        err("(c) history", &s.history.as_ref().and_then(|t| t.error.clone()));
        if let Some(c) = s.search.as_ref().and_then(|l| l.check.clone()) {
            notes.push(format!("(b) answers: {c}"));
        }
        if let Some(c) = s.history.as_ref().and_then(|l| l.check.clone()) {
            notes.push(format!("(c) answer: {c}"));
        }
        let cpu: Vec<String> = ["seed runs", "seed history", "ingest", "search", "history", "dashboard"]
            .iter()
            .filter_map(|p| {
                s.cpu.get(*p).map(|c| {
                    format!(
                        "{p} {:.0}s wall: server {:.0}s, PG {:.0}s, driver {:.0}s",
                        c.wall_s, c.server_s, c.postgres_s, c.driver_s
                    )
                })
            })
            .collect();
        if !cpu.is_empty() {
            notes.push(format!("CPU: {}", cpu.join("; ")));
        }
        let rss: Vec<String> = s.rss_peak_mb.iter().map(|(p, m)| format!("{p} {m:.0}")).collect();
        if !rss.is_empty() {
            notes.push(format!("peak RSS by phase [MB]: {}", rss.join(", ")));
        }
        if let Some(total) = s.rss_total_peak_mb {
            notes.push(format!("peak RSS of the whole process tree [MB]: {total:.0}"));
        }
        println!("  {name} ({}):", s.url);
        for n in notes.iter().chain(&s.notes) {
            println!("    - {n}");
        }
    }
    Ok(())
}

/// A target's verdict on one line.
fn target_line(ok: Option<bool>, text: String) {
    let verdict = match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "N/A ",
    };
    println!("  {verdict}  {text}");
}

/// Server time under this, per page (issue 4).
const PAGE_MS_TARGET: f64 = 100.0;
/// HTML + JS + CSS per page under this many bytes (issue 4).
const PAGE_BYTES_TARGET: f64 = 300_000.0;

/// (d) Cairn's dashboard pages: a table, then the targets of issue 4.
fn dashboard(cairn: &ServerResult, target: &dyn Fn(Option<bool>, String)) {
    println!();
    println!(
        "(d) Cairn dashboard, {} runs / {}-point run (median and p95 of the server's answer time):",
        fmt_num(cairn.runs as f64, 0),
        fmt_num(cairn.history_points as f64, 0)
    );
    println!("  {:<48} {:>10} {:>10} {:>12}", "page", "median ms", "p95 ms", "HTML+JS+CSS");
    for page in &cairn.dashboard {
        match &page.error {
            Some(e) => println!("  {:<48} FAILED: {e}", page.label),
            None => {
                let size = if page.html {
                    format!("{:.0} KB", (page.body_bytes + page.asset_bytes) as f64 / 1e3)
                } else {
                    format!("({:.0} KB data)", page.body_bytes as f64 / 1e3)
                };
                println!("  {:<48} {:>10.1} {:>10.1} {:>12}", page.label, page.median_ms, page.p95_ms, size);
            }
        }
    }
    println!("  HTML+JS+CSS: the page and every script and stylesheet it links, uncompressed, each counted once.");
    println!();
    println!("Targets (issue 4):");
    for page in &cairn.dashboard {
        let ok = page.error.is_none().then_some(page.median_ms < PAGE_MS_TARGET);
        target(ok, format!("(d) {}: median < {PAGE_MS_TARGET:.0} ms: {:.1} ms", page.label, page.median_ms));
        if page.html {
            let bytes = (page.body_bytes + page.asset_bytes) as f64;
            let ok = page.error.is_none().then_some(bytes < PAGE_BYTES_TARGET);
            target(ok, format!("(d) {}: HTML+JS+CSS < 300 KB: {:.0} KB", page.label, bytes / 1e3));
        }
    }
}
