//! An experiment's runs table: fixed columns (name, status, user, start, duration, source
//! commit) plus chosen metric, param and tag columns; sorting by any column; a filter in
//! the API's grammar whose errors show inline; keyset pages; child runs under their parent;
//! checkboxes for the compare view; delete and restore for members.
//!
//! Without a filter the table lists top-level runs, each followed by its newest children
//! (indented) and a link to all of them; a filtered table lists matching runs flat, a child
//! naming its parent. A page is one index-ordered query for the run ids, one for their
//! children and one batched load of all of them ([`cairn_db::tracking::runs::load`]).

mod rows;
mod state;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cairn_core::search::{FilterError, OrderBy, RunAttr, RunFilter, RunOrderKey, parse_run_filter, parse_run_order_by};
use cairn_db::tracking::dashboard::{self, ExperimentKeys, KeyKind, RunCursor, RunSort, RunTableQuery};
use cairn_db::tracking::runs::{self as run_repo, RunRecord};

use super::{Header, HtmlError, SessionUser, links, render};
use crate::state::AppState;
use crate::tracking;
use rows::{HeadCell, RunLine};
use state::{Change, Column, MAX_SORTED_OFFSET, PAGE_SIZE, TableState, View};

/// Children shown under a parent; the rest are a link away.
const CHILDREN_SHOWN: i64 = 5;
/// Keys offered per kind in the column picker.
const PICKER_KEYS: i64 = 200;
/// Metric and param columns shown when none were chosen.
const DEFAULT_COLUMNS_PER_KIND: usize = 3;

pub struct TagChip {
    pub key: String,
    pub value: String,
}

pub struct ExperimentHead {
    pub id: i64,
    pub name: String,
    pub deleted: bool,
    pub tags: Vec<TagChip>,
}

pub struct PickerOption {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

pub struct PickerGroup {
    pub legend: &'static str,
    pub options: Vec<PickerOption>,
}

pub struct Hidden {
    pub name: &'static str,
    pub value: String,
}

/// The part of the page that the query string changes: toolbar, table and pager.
#[derive(Template)]
#[template(path = "_runs_table.html")]
pub struct RunsTable {
    pub csrf_token: String,
    pub can_write: bool,
    pub filter: String,
    pub error: Option<String>,
    pub head: Vec<HeadCell>,
    pub runs: Vec<RunLine>,
    pub nested: bool,
    pub picker: Vec<PickerGroup>,
    pub columns_chosen: usize,
    pub filter_hidden: Vec<Hidden>,
    pub picker_hidden: Vec<Hidden>,
    pub showing_deleted: bool,
    pub active_url: String,
    pub deleted_url: String,
    pub clear_filter_url: Option<String>,
    pub next_url: Option<String>,
    pub previous_url: Option<String>,
    pub first_url: Option<String>,
    pub here: String,
    pub page_note: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    header: Header,
    experiment: ExperimentHead,
    table: RunsTable,
}

/// The parsed filter and order, or the grammar's complaint.
fn parse_query(state: &TableState) -> Result<(RunFilter, Vec<OrderBy<RunOrderKey>>), FilterError> {
    let filter = parse_run_filter(&state.filter)?;
    let order = if state.order_by.is_empty() { vec![] } else { vec![parse_run_order_by(&state.order_by)?] };
    Ok((filter, order))
}

pub async fn page(
    State(app): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HtmlError> {
    let experiment_id = tracking::parse_experiment_id(&id)?;
    let state = TableState::from_query(raw.as_deref());
    if state.from_picker {
        return Ok(Redirect::to(&state.url(experiment_id, Change::default())).into_response());
    }
    let (experiment, tags) = tracking::get_experiment(&app.db, experiment_id).await?;
    let keys = dashboard::experiment_keys(&app.db.pool, experiment_id, PICKER_KEYS).await?;
    let columns = state.columns.clone().unwrap_or_else(|| default_columns(&keys));
    let (status, table) = match parse_query(&state) {
        Ok((filter, order)) => {
            let loaded = load_page(&app, experiment_id, &state, &filter, &order).await?;
            match loaded {
                Ok(page) => (StatusCode::OK, build_table(&user, experiment_id, &state, &order, &columns, &keys, page)),
                Err(message) => {
                    (StatusCode::BAD_REQUEST, error_table(&user, experiment_id, &state, &columns, &keys, message))
                }
            }
        }
        Err(e) => (StatusCode::BAD_REQUEST, error_table(&user, experiment_id, &state, &columns, &keys, e.to_string())),
    };
    // htmx-style partial updates get the table alone.
    if headers.get("hx-request").is_some() {
        return Ok((status, render(&table)?).into_response());
    }
    let experiment = ExperimentHead {
        id: experiment.id,
        name: experiment.name,
        deleted: experiment.lifecycle_stage == "deleted",
        tags: tags
            .into_iter()
            .filter(|t| !t.key.starts_with("mlflow."))
            .map(|t| TagChip { key: t.key, value: t.value })
            .collect(),
    };
    let page = RunsPage { header: Header::from(&user), experiment, table };
    Ok((status, render(&page)?).into_response())
}

fn default_columns(keys: &ExperimentKeys) -> Vec<Column> {
    let metrics = keys.metrics.iter().take(DEFAULT_COLUMNS_PER_KIND).map(|k| Column::Metric(k.clone()));
    let params = keys.params.iter().take(DEFAULT_COLUMNS_PER_KIND).map(|k| Column::Param(k.clone()));
    metrics.chain(params).collect()
}

/// One page of runs: the top-level (or matching) runs and the children shown with them.
pub struct LoadedPage {
    pub roots: Vec<RunRecord>,
    /// (parent id, its newest children, how many children it has in all).
    pub children: Vec<(i64, Vec<RunRecord>, i64)>,
    pub more: bool,
    /// Where the next page starts, in keyset orders.
    pub next: Option<RunCursor>,
    pub nested: bool,
}

/// How the repository sorts for an order_by clause.
fn sort_of(order: Option<&OrderBy<RunOrderKey>>) -> RunSort<'_> {
    let Some(order) = order else {
        return RunSort::Start { ascending: false };
    };
    let ascending = order.ascending;
    match &order.key {
        RunOrderKey::Attribute(RunAttr::StartTime) => RunSort::Start { ascending },
        RunOrderKey::Attribute(attr) => RunSort::Attribute { attr: *attr, ascending },
        RunOrderKey::Metric(key) => RunSort::Value { kind: KeyKind::Metric, key, ascending },
        RunOrderKey::Param(key) => RunSort::Value { kind: KeyKind::Param, key, ascending },
        RunOrderKey::Tag(key) => RunSort::Value { kind: KeyKind::Tag, key, ascending },
    }
}

async fn load_page(
    app: &AppState,
    experiment_id: i64,
    state: &TableState,
    filter: &RunFilter,
    order: &[OrderBy<RunOrderKey>],
) -> Result<Result<LoadedPage, String>, HtmlError> {
    let sort = sort_of(order.first());
    let offset = (state.page - 1).saturating_mul(PAGE_SIZE);
    if matches!(sort, RunSort::Attribute { .. }) && offset > MAX_SORTED_OFFSET {
        return Ok(Err(format!(
            "Pages sorted by this column reach the first {MAX_SORTED_OFFSET} runs. Narrow the list with a filter, \
             or sort by start time or by a metric, param or tag, which page through every run."
        )));
    }
    let nested = filter.0.is_empty() && state.view == View::Active;
    let view = state.view.view_type();
    let query = RunTableQuery {
        experiment_id,
        filter,
        view,
        roots_only: nested,
        sort,
        after: state.after.clone(),
        offset,
        limit: PAGE_SIZE,
    };
    let page = dashboard::run_table_page(&app.db.pool, &query).await?;
    let ids = page.ids;
    let child_rows = if nested && !ids.is_empty() {
        dashboard::child_runs(&app.db.pool, &ids, view, CHILDREN_SHOWN).await?
    } else {
        Vec::new()
    };
    let all: Vec<i64> = ids.iter().copied().chain(child_rows.iter().map(|c| c.id)).collect();
    let mut by_id: HashMap<i64, RunRecord> =
        run_repo::load(&app.db.pool, &all).await?.into_iter().map(|r| (r.run.id, r)).collect();
    let roots: Vec<RunRecord> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
    let mut children: Vec<(i64, Vec<RunRecord>, i64)> = Vec::new();
    for child in &child_rows {
        let Some(record) = by_id.remove(&child.id) else { continue };
        match children.last_mut() {
            Some((parent, list, _)) if *parent == child.parent_id => list.push(record),
            _ => children.push((child.parent_id, vec![record], child.siblings)),
        }
    }
    Ok(Ok(LoadedPage { roots, children, more: page.more, next: page.next, nested }))
}

fn picker(keys: &ExperimentKeys, columns: &[Column]) -> Vec<PickerGroup> {
    let group = |legend: &'static str, keys: &[String], make: fn(String) -> Column| PickerGroup {
        legend,
        options: keys
            .iter()
            .map(|k| {
                let column = make(k.clone());
                PickerOption { checked: columns.contains(&column), value: column.param(), label: k.clone() }
            })
            .collect(),
    };
    vec![
        group("Metrics", &keys.metrics, Column::Metric),
        group("Params", &keys.params, Column::Param),
        group("Tags", &keys.tags, Column::Tag),
    ]
}

fn hidden(fields: Vec<(&'static str, String)>) -> Vec<Hidden> {
    fields.into_iter().map(|(name, value)| Hidden { name, value }).collect()
}

/// The table's frame: everything but the rows and pager.
fn frame(
    user: &SessionUser,
    experiment_id: i64,
    state: &TableState,
    columns: &[Column],
    keys: &ExperimentKeys,
) -> RunsTable {
    RunsTable {
        csrf_token: user.csrf_token.clone(),
        can_write: user.can_write(),
        filter: state.filter.clone(),
        error: None,
        head: Vec::new(),
        runs: Vec::new(),
        nested: false,
        picker: picker(keys, columns),
        columns_chosen: columns.len(),
        filter_hidden: hidden(state.hidden_fields("filter")),
        picker_hidden: hidden(state.hidden_fields("cols")),
        showing_deleted: state.view == View::Deleted,
        active_url: state.url(experiment_id, Change { view: Some(View::Active), ..Change::default() }),
        deleted_url: state.url(experiment_id, Change { view: Some(View::Deleted), ..Change::default() }),
        clear_filter_url: (!state.filter.is_empty())
            .then(|| state.url(experiment_id, Change { filter: Some(""), ..Change::default() })),
        next_url: None,
        previous_url: None,
        first_url: None,
        here: state.current_url(experiment_id),
        page_note: String::new(),
    }
}

fn error_table(
    user: &SessionUser,
    experiment_id: i64,
    state: &TableState,
    columns: &[Column],
    keys: &ExperimentKeys,
    message: String,
) -> RunsTable {
    RunsTable { error: Some(message), ..frame(user, experiment_id, state, columns, keys) }
}

fn build_table(
    user: &SessionUser,
    experiment_id: i64,
    state: &TableState,
    order: &[OrderBy<RunOrderKey>],
    columns: &[Column],
    keys: &ExperimentKeys,
    page: LoadedPage,
) -> RunsTable {
    let mut table = frame(user, experiment_id, state, columns, keys);
    table.head = rows::head(experiment_id, state, order.first(), columns);
    table.nested = page.nested;
    let count = page.roots.len();
    let offset_pages = matches!(sort_of(order.first()), RunSort::Attribute { .. });
    table.next_url = match (&page.next, page.more && offset_pages) {
        (Some(next), _) => Some(state.url(experiment_id, Change { after: Some(next), ..Change::default() })),
        (None, true) => Some(state.url(experiment_id, Change { page: Some(state.page + 1), ..Change::default() })),
        (None, false) => None,
    };
    if offset_pages && state.page > 1 {
        table.previous_url = Some(state.url(experiment_id, Change { page: Some(state.page - 1), ..Change::default() }));
    }
    if state.after.is_some() || state.page > 2 {
        table.first_url = Some(state.url(experiment_id, Change::default()));
    }
    let what = if page.nested { "top-level runs" } else { "runs" };
    table.page_note = match (count, offset_pages) {
        (0, _) => String::new(),
        (_, true) => {
            let first = (state.page - 1) * PAGE_SIZE + 1;
            format!("{what} {first}–{}", first + count as i64 - 1)
        }
        (_, false) if state.after.is_some() => format!("{count} {what}, continuing from the previous page"),
        (_, false) if order.is_empty() => format!("{count} newest {what}"),
        (_, false) => format!("first {count} {what}"),
    };
    table.runs = rows::lines(page, columns);
    table
}

/// The link to all children of a run: the same table filtered on the parent tag.
fn children_url(experiment_id: i64, parent: &uuid::Uuid) -> String {
    let filter = format!("tags.mlflow.parentRunId = '{}'", parent.simple());
    links::url(&links::experiment(experiment_id), &[("filter", &filter)])
}
