//! The compare view for 2 to 100 runs: `/compare?runs=a,b,c[&only_diff=1]`. A table of
//! attributes, params, latest metrics and tags with one column per run, where rows whose
//! values differ are marked (`class="differs"`) and, with `only_diff=1`, the others are
//! left out; then a parallel-coordinates plot and a scatter plot ([`super::compare_plots`],
//! chosen with `axes`, `metric`, `x` and `y`), and one chart per metric key with the runs
//! overlaid. Every link out of the page keeps the plots' choice.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_db::tracking::dashboard;
use cairn_db::tracking::runs::{self as run_repo, RunRecord};
use uuid::Uuid;

use super::compare_plots::{self, PlotChoice, Plots};
use super::display::{self, When};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::state::AppState;

pub const MIN_RUNS: usize = 2;
pub const MAX_RUNS: usize = 100;
/// The overlaid charts' settings in the query string (x axis, log scale, smoothing).
const CHART_SETTINGS: [&str; 3] = ["x", "log", "smooth"];

/// The runs named by `runs=a,b,c` (32-hex or dashed ids), in order, each once.
pub fn parse_run_list(raw: &str) -> Result<Vec<Uuid>, HtmlError> {
    let mut ids: Vec<Uuid> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = Uuid::try_parse(part)
            .map_err(|_| HtmlError::page(StatusCode::BAD_REQUEST, format!("“{part}” is not a run id.")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > MAX_RUNS {
        return Err(HtmlError::page(
            StatusCode::BAD_REQUEST,
            format!("Compare at most {MAX_RUNS} runs at once; {} were selected.", ids.len()),
        ));
    }
    Ok(ids)
}

fn run_list_text(ids: &[Uuid]) -> String {
    ids.iter().map(|id| id.simple().to_string()).collect::<Vec<_>>().join(",")
}

pub struct RunHead {
    pub name: String,
    pub url: String,
    pub uuid: String,
    pub status_label: String,
    pub status_class: &'static str,
    /// This comparison without the run.
    pub without_url: Option<String>,
}

pub struct DiffRow {
    pub key: String,
    pub cells: Vec<String>,
    pub titles: Vec<String>,
    pub differs: bool,
    pub numeric: bool,
}

pub struct DiffSection {
    pub title: &'static str,
    pub rows: Vec<DiffRow>,
    /// Rows left out because every run has the same value.
    pub hidden: usize,
}

pub struct ChartKey {
    pub key: String,
    pub url: String,
    pub chart_id: String,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    header: Header,
    runs: Vec<RunHead>,
    sections: Vec<DiffSection>,
    only_diff: bool,
    toggle_url: String,
    differing: usize,
    plots: Plots,
    /// The overlaid charts' settings (`charts.js` keeps them in the URL), kept by the plot form.
    chart_settings: Vec<(&'static str, String)>,
    charts: Vec<ChartKey>,
    run_ids: String,
    run_names_json: String,
    back: Option<Back>,
}

/// Where "back to the runs" goes: the experiment of the first run.
pub struct Back {
    pub label: String,
    pub url: String,
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, HtmlError> {
    let pairs = links::pairs(raw.as_deref());
    let listed: Vec<&str> = pairs.iter().filter(|(k, _)| k == "runs").map(|(_, v)| v.as_str()).collect();
    let ids = parse_run_list(&listed.join(","))?;
    let only_diff = links::last(&pairs, "only_diff") == Some("1");
    let choice = PlotChoice::from_pairs(&pairs);
    let diff_param = if only_diff { "1" } else { "" };
    let canonical = links::url("/compare", &[("runs", &run_list_text(&ids)), ("only_diff", diff_param)]);
    // Checkboxes send runs=a&runs=b: answer with the one stable URL.
    if listed.len() > 1 {
        return Ok(Redirect::to(&canonical).into_response());
    }
    if ids.len() < MIN_RUNS {
        return Err(HtmlError::page(
            StatusCode::BAD_REQUEST,
            "Select at least two runs to compare: tick them in an experiment's runs table, then press Compare.",
        ));
    }
    let records = load_runs(&state, &ids).await?;
    let experiment_names = experiment_names(&state, &records).await?;
    let mut sections = vec![
        attributes(&records, &experiment_names),
        section(
            "Params",
            &records,
            |r| r.params.iter().map(|p| (p.key.clone(), p.value.clone(), p.value.clone())).collect(),
            false,
        ),
        section(
            "Metrics",
            &records,
            |r| {
                r.metrics
                    .iter()
                    .map(|m| (m.key.clone(), display::metric(m.value), display::metric_exact(m.value)))
                    .collect()
            },
            true,
        ),
        section(
            "Tags",
            &records,
            |r| {
                r.tags
                    .iter()
                    .filter(|t| !t.key.starts_with("mlflow."))
                    .map(|t| (t.key.clone(), t.value.clone(), t.value.clone()))
                    .collect()
            },
            false,
        ),
    ];
    let differing = sections.iter().flat_map(|s| &s.rows).filter(|r| r.differs).count();
    if only_diff {
        for section in &mut sections {
            let before = section.rows.len();
            section.rows.retain(|r| r.differs);
            section.hidden = before - section.rows.len();
        }
    }
    let metric_keys: BTreeSet<&str> = records.iter().flat_map(|r| r.metrics.iter().map(|m| m.key.as_str())).collect();
    let run_ids = run_list_text(&ids);
    let names: Vec<String> = records.iter().map(display_name).collect();
    let plots = compare_plots::plots(&records, &names, &choice);
    let chart_settings: Vec<(&'static str, String)> = CHART_SETTINGS
        .iter()
        .filter_map(|k| links::last(&pairs, k).filter(|v| !v.is_empty()).map(|v| (*k, v.to_owned())))
        .collect();
    let mut kept = plots.choice.pairs();
    kept.extend(chart_settings.iter().cloned());
    let page_url = |runs: &str, only_diff: bool| {
        let mut pairs: Vec<(&str, &str)> = vec![("runs", runs), ("only_diff", if only_diff { "1" } else { "" })];
        pairs.extend(kept.iter().map(|(k, v)| (*k, v.as_str())));
        links::url("/compare", &pairs)
    };
    let page = ComparePage {
        header: Header::from(&user),
        runs: records.iter().map(|r| run_head(r, &ids, |rest| page_url(rest, only_diff))).collect(),
        sections,
        only_diff,
        toggle_url: page_url(&run_ids, !only_diff),
        differing,
        charts: metric_keys
            .iter()
            .enumerate()
            .map(|(i, key)| ChartKey {
                key: (*key).to_owned(),
                url: format!(
                    "{}?{}",
                    compare_series_path(key),
                    links::url("", &[("runs", &run_ids)]).trim_start_matches('?')
                ),
                chart_id: format!("chart-{i}"),
            })
            .collect(),
        run_names_json: serde_json::to_string(&names).map_err(HtmlError::internal)?,
        plots,
        chart_settings,
        run_ids,
        back: records.first().map(|r| Back {
            label: experiment_names.get(&r.run.experiment_id).cloned().unwrap_or_default(),
            url: links::experiment(r.run.experiment_id),
        }),
    };
    Ok(render(&page)?.into_response())
}

fn compare_series_path(key: &str) -> String {
    format!("/compare/metrics/{}.json", links::encoded_path(key))
}

/// The runs in the order asked for; an unknown id is a 404 that names it.
async fn load_runs(state: &AppState, ids: &[Uuid]) -> Result<Vec<RunRecord>, HtmlError> {
    let known: HashMap<Uuid, i64> = dashboard::run_ids_by_uuid(&state.db.pool, ids).await?.into_iter().collect();
    if let Some(missing) = ids.iter().find(|id| !known.contains_key(id)) {
        return Err(HtmlError::page(StatusCode::NOT_FOUND, format!("Run with id={} not found", missing.simple())));
    }
    let internal: Vec<i64> = ids.iter().filter_map(|id| known.get(id).copied()).collect();
    Ok(run_repo::load(&state.db.pool, &internal).await?)
}

async fn experiment_names(state: &AppState, records: &[RunRecord]) -> Result<HashMap<i64, String>, HtmlError> {
    let ids: BTreeSet<i64> = records.iter().map(|r| r.run.experiment_id).collect();
    let mut names = HashMap::new();
    for id in ids {
        let (experiment, _) = crate::tracking::get_experiment(&state.db, id).await?;
        names.insert(id, experiment.name);
    }
    Ok(names)
}

fn display_name(record: &RunRecord) -> String {
    if record.run.name.is_empty() { record.run.run_uuid.simple().to_string() } else { record.run.name.clone() }
}

/// The run's column head; `url_for(runs)` is this page's URL for another list of runs.
fn run_head(record: &RunRecord, all: &[Uuid], url_for: impl Fn(&str) -> String) -> RunHead {
    let rest: Vec<Uuid> = all.iter().copied().filter(|id| *id != record.run.run_uuid).collect();
    RunHead {
        name: display_name(record),
        url: links::run(&record.run.run_uuid),
        uuid: record.run.run_uuid.simple().to_string(),
        status_label: display::status_label(&record.run.status),
        status_class: display::status_class(&record.run.status),
        without_url: (rest.len() >= MIN_RUNS).then(|| url_for(&run_list_text(&rest))),
    }
}

/// A row of (shown text, exact value) per run; it differs when the exact values do.
fn row(key: &str, values: Vec<(String, String)>, numeric: bool) -> DiffRow {
    let differs = values.windows(2).any(|w| w[0].1 != w[1].1);
    let (cells, titles) = values.into_iter().unzip();
    DiffRow { key: key.to_owned(), cells, titles, differs, numeric }
}

fn attributes(records: &[RunRecord], experiments: &HashMap<i64, String>) -> DiffSection {
    let column =
        |f: &dyn Fn(&RunRecord) -> String| -> Vec<(String, String)> { records.iter().map(|r| (f(r), f(r))).collect() };
    let start = |r: &RunRecord| r.run.start_time.and_then(When::from_millis).map(|w| w.text).unwrap_or_default();
    let mut rows = vec![
        row("Status", column(&|r| display::status_label(&r.run.status)), false),
        row("User", column(&|r| r.run.user_id.clone()), false),
        row("Started", column(&start), false),
        row("Duration", column(&|r| display::duration(r.run.start_time, r.run.end_time).unwrap_or_default()), false),
        row("Commit", column(&|r| commit(r)), false),
    ];
    if experiments.len() > 1 {
        rows.insert(
            0,
            row("Experiment", column(&|r| experiments.get(&r.run.experiment_id).cloned().unwrap_or_default()), false),
        );
    }
    // Start times differ between any two runs: not worth a highlight.
    if let Some(started) = rows.iter_mut().find(|r| r.key == "Started") {
        started.differs = false;
    }
    DiffSection { title: "Run", rows, hidden: 0 }
}

fn commit(record: &RunRecord) -> String {
    record
        .tags
        .iter()
        .find(|t| t.key == "mlflow.source.git.commit")
        .map(|t| display::short_commit(&t.value))
        .unwrap_or_default()
}

/// One row per key any run has, in key order; a run without the key has an empty cell.
fn section(
    title: &'static str,
    records: &[RunRecord],
    entries: impl Fn(&RunRecord) -> Vec<(String, String, String)>,
    numeric: bool,
) -> DiffSection {
    let per_run: Vec<HashMap<String, (String, String)>> =
        records.iter().map(|r| entries(r).into_iter().map(|(k, text, title)| (k, (text, title))).collect()).collect();
    let keys: BTreeSet<&String> = per_run.iter().flat_map(|m| m.keys()).collect();
    let rows = keys
        .into_iter()
        .map(|key| {
            let values = per_run.iter().map(|m| m.get(key).cloned().unwrap_or_default()).collect();
            row(key, values, numeric)
        })
        .collect();
    DiffSection { title, rows, hidden: 0 }
}
