//! The runs table's state, all of it in the query string:
//! `/experiments/{id}?filter=...&order_by=metrics.acc DESC&cols=metrics.acc,params.lr&view=deleted&after=...`.
//!
//! Pages are keyset pages: `after=<start_time>:<id>` continues the default order (newest
//! first) after a run, `after=v<id>:<value>` an order by a metric, param or tag. Only orders
//! by an unindexed attribute (name, status, user, end time) count pages with `page=N`
//! instead (see [`MAX_SORTED_OFFSET`]).

use cairn_core::search::{OrderBy, RunAttr, RunOrderKey};
use cairn_db::tracking::dashboard::RunCursor;
use cairn_db::tracking::search::ViewType;

use crate::ui::links;

/// Runs per page.
pub const PAGE_SIZE: i64 = 50;

/// How deep pages sorted by name, status, user or end time go. Such pages are offsets into
/// a sort of every matching run, and an offset costs what it skips; narrowing with a filter
/// reaches any run. Keyset orders have no such limit.
pub const MAX_SORTED_OFFSET: i64 = 10_000;

/// A chosen column: a metric, param or tag key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Column {
    Metric(String),
    Param(String),
    Tag(String),
}

impl Column {
    /// `metrics.acc`, `params.lr`, `tags.team` (the key may hold dots and slashes).
    pub fn parse(raw: &str) -> Option<Column> {
        let (kind, key) = raw.trim().split_once('.')?;
        if key.is_empty() {
            return None;
        }
        let key = key.to_owned();
        Some(match kind {
            "metrics" => Column::Metric(key),
            "params" => Column::Param(key),
            "tags" => Column::Tag(key),
            _ => return None,
        })
    }

    pub fn key(&self) -> &str {
        match self {
            Column::Metric(k) | Column::Param(k) | Column::Tag(k) => k,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Column::Metric(_) => "metrics",
            Column::Param(_) => "params",
            Column::Tag(_) => "tags",
        }
    }

    /// How the column is written in `cols`.
    pub fn param(&self) -> String {
        format!("{}.{}", self.kind(), self.key())
    }

    pub fn order_key(&self) -> RunOrderKey {
        match self {
            Column::Metric(k) => RunOrderKey::Metric(k.clone()),
            Column::Param(k) => RunOrderKey::Param(k.clone()),
            Column::Tag(k) => RunOrderKey::Tag(k.clone()),
        }
    }
}

/// An order_by key as the filter grammar writes it, quoting keys that need it.
pub fn order_key_text(key: &RunOrderKey) -> String {
    let quoted = |prefix: &str, k: &str| {
        if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            format!("{prefix}.{k}")
        } else {
            format!("{prefix}.`{k}`")
        }
    };
    match key {
        RunOrderKey::Metric(k) => quoted("metrics", k),
        RunOrderKey::Param(k) => quoted("params", k),
        RunOrderKey::Tag(k) => quoted("tags", k),
        RunOrderKey::Attribute(attr) => attr.as_str().to_owned(),
    }
}

pub fn order_text(order: &OrderBy<RunOrderKey>) -> String {
    format!("{} {}", order_key_text(&order.key), if order.ascending { "ASC" } else { "DESC" })
}

/// Which runs by lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Active,
    Deleted,
}

impl View {
    pub fn param(self) -> &'static str {
        match self {
            View::Active => "",
            View::Deleted => "deleted",
        }
    }

    pub fn view_type(self) -> ViewType {
        match self {
            View::Active => ViewType::ActiveOnly,
            View::Deleted => ViewType::DeletedOnly,
        }
    }
}

/// The table's state as the query string gives it (not yet validated against the grammar).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableState {
    pub filter: String,
    pub order_by: String,
    /// `None`: the default columns.
    pub columns: Option<Vec<Column>>,
    pub view: View,
    pub after: Option<RunCursor>,
    /// 1-based, for pages sorted by an unindexed attribute.
    pub page: i64,
    /// The column picker's form sent `col=...` pairs: redirect to the canonical `cols=` URL.
    pub from_picker: bool,
}

impl TableState {
    pub fn from_query(raw: Option<&str>) -> TableState {
        let pairs = links::pairs(raw);
        let from_picker = pairs.iter().any(|(k, _)| k == "col" || k == "cols_form");
        let columns = if from_picker {
            Some(pairs.iter().filter(|(k, _)| k == "col").filter_map(|(_, v)| Column::parse(v)).collect())
        } else {
            links::last(&pairs, "cols").map(|cols| {
                let mut chosen: Vec<Column> = Vec::new();
                for column in cols.split(',').filter_map(Column::parse) {
                    if !chosen.contains(&column) {
                        chosen.push(column);
                    }
                }
                chosen
            })
        };
        TableState {
            filter: links::last(&pairs, "filter").unwrap_or_default().trim().to_owned(),
            order_by: links::last(&pairs, "order_by").unwrap_or_default().trim().to_owned(),
            columns,
            view: if links::last(&pairs, "view") == Some("deleted") { View::Deleted } else { View::Active },
            after: links::last(&pairs, "after").and_then(parse_cursor),
            page: links::last(&pairs, "page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1),
            from_picker,
        }
    }

    /// The chosen columns as `cols` writes them: `none` for an explicit empty choice.
    fn cols_param(&self) -> String {
        match &self.columns {
            None => String::new(),
            Some(cols) if cols.is_empty() => "none".into(),
            Some(cols) => cols.iter().map(Column::param).collect::<Vec<_>>().join(","),
        }
    }

    /// The URL of this state on the first page, with some parts replaced.
    pub fn url(&self, experiment_id: i64, change: Change<'_>) -> String {
        let filter = change.filter.unwrap_or(&self.filter);
        let order_by = change.order_by.unwrap_or(&self.order_by);
        let view = change.view.unwrap_or(self.view);
        let cols = self.cols_param();
        let after = change.after.map(cursor_text).unwrap_or_default();
        let page = change.page.filter(|p| *p > 1).map(|p| p.to_string()).unwrap_or_default();
        links::url(
            &links::experiment(experiment_id),
            &[
                ("filter", filter),
                ("order_by", order_by),
                ("cols", &cols),
                ("view", view.param()),
                ("after", &after),
                ("page", &page),
            ],
        )
    }

    /// This very page.
    pub fn current_url(&self, experiment_id: i64) -> String {
        self.url(experiment_id, Change { after: self.after.as_ref(), page: Some(self.page), ..Change::default() })
    }

    /// The hidden fields that carry the state through a GET form that changes one part of it.
    pub fn hidden_fields(&self, except: &str) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        if except != "filter" && !self.filter.is_empty() {
            fields.push(("filter", self.filter.clone()));
        }
        if except != "order_by" && !self.order_by.is_empty() {
            fields.push(("order_by", self.order_by.clone()));
        }
        if except != "cols" && self.columns.is_some() {
            fields.push(("cols", self.cols_param()));
        }
        if self.view != View::Active {
            fields.push(("view", self.view.param().to_owned()));
        }
        fields
    }
}

/// What [`TableState::url`] changes.
#[derive(Default)]
pub struct Change<'a> {
    pub filter: Option<&'a str>,
    pub order_by: Option<&'a str>,
    pub view: Option<View>,
    pub after: Option<&'a RunCursor>,
    pub page: Option<i64>,
}

/// `<start_time>:<id>` (the start time empty when the run has none), or `v<id>:<value>`.
pub fn cursor_text(cursor: &RunCursor) -> String {
    match cursor {
        RunCursor::Start { start_time, id } => {
            format!("{}:{id}", start_time.map(|t| t.to_string()).unwrap_or_default())
        }
        RunCursor::Value { value, id } => format!("v{id}:{value}"),
    }
}

fn parse_cursor(raw: &str) -> Option<RunCursor> {
    if let Some(rest) = raw.strip_prefix('v') {
        let (id, value) = rest.split_once(':')?;
        return Some(RunCursor::Value { value: value.to_owned(), id: id.parse().ok()? });
    }
    let (start, id) = raw.split_once(':')?;
    let start_time = if start.is_empty() { None } else { Some(start.parse().ok()?) };
    Some(RunCursor::Start { start_time, id: id.parse().ok()? })
}

/// The default order, for headers: newest start first.
pub fn default_order() -> OrderBy<RunOrderKey> {
    OrderBy { key: RunOrderKey::Attribute(RunAttr::StartTime), ascending: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_url() {
        let state = TableState::from_query(Some(
            "filter=metrics.acc+%3E+0.9&order_by=metrics.acc+DESC&cols=metrics.acc,params.lr,metrics.acc&view=deleted",
        ));
        assert_eq!(state.filter, "metrics.acc > 0.9");
        assert_eq!(state.columns, Some(vec![Column::Metric("acc".into()), Column::Param("lr".into())]));
        let url = state.url(7, Change::default());
        assert_eq!(
            url,
            "/experiments/7?filter=metrics.acc+%3E+0.9&order_by=metrics.acc+DESC&cols=metrics.acc%2Cparams.lr&view=deleted"
        );
        assert_eq!(TableState::from_query(url.split_once('?').map(|(_, q)| q)), state);
    }

    #[test]
    fn picker_forms_are_recognised_and_may_choose_nothing() {
        let state = TableState::from_query(Some("cols_form=1&col=metrics.loss&col=tags.team"));
        assert!(state.from_picker);
        assert_eq!(state.url(1, Change::default()), "/experiments/1?cols=metrics.loss%2Ctags.team");
        let none = TableState::from_query(Some("cols_form=1"));
        assert_eq!(none.url(1, Change::default()), "/experiments/1?cols=none");
        assert_eq!(TableState::from_query(Some("cols=none")).columns, Some(vec![]));
    }

    #[test]
    fn cursors_carry_the_sort_position() {
        let state = TableState::from_query(Some("after=1700000000000:42"));
        assert_eq!(state.after, Some(RunCursor::Start { start_time: Some(1_700_000_000_000), id: 42 }));
        assert_eq!(
            TableState::from_query(Some("after=:42")).after,
            Some(RunCursor::Start { start_time: None, id: 42 })
        );
        assert_eq!(TableState::from_query(Some("after=x:42")).after, None);
        let value = RunCursor::Value { value: "a:b".into(), id: 7 };
        assert_eq!(cursor_text(&value), "v7:a:b");
        assert_eq!(parse_cursor("v7:a:b"), Some(value));
    }

    #[test]
    fn keys_that_need_it_are_quoted_in_order_by() {
        assert_eq!(order_key_text(&RunOrderKey::Metric("train/loss".into())), "metrics.`train/loss`");
        assert_eq!(
            order_key_text(&RunOrderKey::Tag("mlflow.source.git.commit".into())),
            "tags.mlflow.source.git.commit"
        );
    }
}
