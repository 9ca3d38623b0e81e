//! View models of the runs table: header cells with their sort links, and one line per run
//! built from the loaded [`RunRecord`]s.

use cairn_core::search::{OrderBy, RunAttr, RunOrderKey};
use cairn_db::tracking::runs::RunRecord;

use super::state::{Change, Column, TableState, default_order, order_text};
use super::{LoadedPage, children_url};
use crate::tracking::PARENT_RUN_TAG;
use crate::ui::display::{self, When};
use crate::ui::links;

pub const COMMIT_TAG: &str = "mlflow.source.git.commit";

pub struct HeadCell {
    pub label: String,
    /// The full column name (`metrics.acc`), for a title.
    pub title: String,
    pub sort_url: Option<String>,
    /// `ascending`, `descending` or empty, for `aria-sort`.
    pub aria_sort: &'static str,
    pub numeric: bool,
}

pub struct Cell {
    pub text: String,
    pub title: String,
    pub numeric: bool,
}

pub struct ParentLink {
    pub label: String,
    pub url: String,
}

pub struct MoreChildren {
    pub total: i64,
    pub url: String,
}

pub struct RunLine {
    pub uuid: String,
    pub url: String,
    pub name: String,
    pub status_label: String,
    pub status_class: &'static str,
    pub user: String,
    pub start: Option<When>,
    pub duration: String,
    pub commit: String,
    pub commit_full: String,
    pub cells: Vec<Cell>,
    pub deleted: bool,
    /// In a flat (filtered) table, the parent of a child run.
    pub parent: Option<ParentLink>,
    pub children: Vec<RunLine>,
    pub more_children: Option<MoreChildren>,
}

/// The header: fixed columns, then the chosen ones; each links to the table sorted by it
/// (the other way round when it is already sorted by it).
pub fn head(
    experiment_id: i64,
    state: &TableState,
    current: Option<&OrderBy<RunOrderKey>>,
    columns: &[Column],
) -> Vec<HeadCell> {
    let default = default_order();
    let current = current.unwrap_or(&default);
    let cell = |label: &str, title: String, key: Option<RunOrderKey>, descending_first: bool, numeric: bool| {
        let Some(key) = key else {
            return HeadCell { label: label.to_owned(), title, sort_url: None, aria_sort: "", numeric };
        };
        let sorted = current.key == key;
        let aria_sort = match (sorted, current.ascending) {
            (false, _) => "",
            (true, true) => "ascending",
            (true, false) => "descending",
        };
        let ascending = if sorted { !current.ascending } else { !descending_first };
        let next = OrderBy { key, ascending };
        let order_by = if next == default_order() { String::new() } else { order_text(&next) };
        let sort_url = state.url(experiment_id, Change { order_by: Some(&order_by), ..Change::default() });
        HeadCell { label: label.to_owned(), title, sort_url: Some(sort_url), aria_sort, numeric }
    };
    let attr = |a: RunAttr| Some(RunOrderKey::Attribute(a));
    let mut head = vec![
        cell("Run", "run_name".into(), attr(RunAttr::RunName), false, false),
        cell("Status", "status".into(), attr(RunAttr::Status), false, false),
        cell("User", "user_id".into(), attr(RunAttr::UserId), false, false),
        cell("Started", "start_time".into(), attr(RunAttr::StartTime), true, false),
        cell("Duration", "end_time − start_time".into(), None, false, true),
        cell("Commit", format!("tags.{COMMIT_TAG}"), Some(RunOrderKey::Tag(COMMIT_TAG.into())), false, false),
    ];
    for column in columns {
        let numeric = matches!(column, Column::Metric(_));
        head.push(cell(column.key(), column.param(), Some(column.order_key()), numeric, numeric));
    }
    head
}

fn tag<'a>(record: &'a RunRecord, key: &str) -> Option<&'a str> {
    record.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

fn cell(record: &RunRecord, column: &Column) -> Cell {
    let text_cell = |value: Option<&str>| Cell {
        text: value.unwrap_or_default().to_owned(),
        title: value.unwrap_or_default().to_owned(),
        numeric: false,
    };
    match column {
        Column::Metric(key) => match record.metrics.iter().find(|m| &m.key == key) {
            Some(m) => Cell {
                text: display::metric(m.value),
                title: format!("{} at step {}", display::metric_exact(m.value), m.step),
                numeric: true,
            },
            None => Cell { text: String::new(), title: String::new(), numeric: true },
        },
        Column::Param(key) => text_cell(record.params.iter().find(|p| &p.key == key).map(|p| p.value.as_str())),
        Column::Tag(key) => text_cell(tag(record, key)),
    }
}

pub fn line(record: &RunRecord, columns: &[Column], flat: bool) -> RunLine {
    let run = &record.run;
    let commit = tag(record, COMMIT_TAG).unwrap_or_default();
    let parent = if flat {
        tag(record, PARENT_RUN_TAG)
            .and_then(|p| uuid::Uuid::try_parse(p).ok())
            .map(|p| ParentLink { label: p.simple().to_string().chars().take(8).collect(), url: links::run(&p) })
    } else {
        None
    };
    RunLine {
        uuid: run.run_uuid.simple().to_string(),
        url: links::run(&run.run_uuid),
        name: if run.name.is_empty() { run.run_uuid.simple().to_string() } else { run.name.clone() },
        status_label: display::status_label(&run.status),
        status_class: display::status_class(&run.status),
        user: run.user_id.clone(),
        start: run.start_time.and_then(When::from_millis),
        duration: display::duration(run.start_time, run.end_time).unwrap_or_default(),
        commit: display::short_commit(commit),
        commit_full: commit.to_owned(),
        cells: columns.iter().map(|c| cell(record, c)).collect(),
        deleted: run.lifecycle_stage == "deleted",
        parent,
        children: Vec::new(),
        more_children: None,
    }
}

/// The lines of a page: each top-level run followed by its children.
pub fn lines(page: LoadedPage, columns: &[Column]) -> Vec<RunLine> {
    let LoadedPage { roots, mut children, nested, .. } = page;
    roots
        .iter()
        .map(|record| {
            let mut line = line(record, columns, !nested);
            if let Some(i) = children.iter().position(|(parent, _, _)| *parent == record.run.id) {
                let (_, kids, total) = children.swap_remove(i);
                line.children = kids.iter().map(|k| self::line(k, columns, false)).collect();
                if total > kids.len() as i64 {
                    line.more_children =
                        Some(MoreChildren { total, url: children_url(record.run.experiment_id, &record.run.run_uuid) });
                }
            }
            line
        })
        .collect()
}
