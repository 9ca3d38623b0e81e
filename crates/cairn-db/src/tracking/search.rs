//! Search: the parsed MLflow filter and order_by ASTs turned into one SQL statement each,
//! every value a bind parameter. Run filters on metrics, params and tags become `EXISTS`
//! semi-joins served by the `(experiment_id, key, value)` indexes; ordering by a metric,
//! param or tag sorts runs without that key last, as MLflow does.

use cairn_core::search::{
    DatasetField, ExperimentClause, ExperimentFilter, ExperimentOrderKey, ExperimentTimeAttr, OrderBy, RunAttr,
    RunClause, RunFilter, RunOrderKey, StrCond,
};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::experiments::ExperimentRow;
use crate::DbError;

/// Which lifecycle stages a search returns (MLflow's `view_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    /// The `lifecycle_stage` values this view admits.
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            ViewType::ActiveOnly => &["active"],
            ViewType::DeletedOnly => &["deleted"],
            ViewType::All => &["active", "deleted"],
        }
    }
}

pub struct RunQuery<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a RunFilter,
    pub order_by: &'a [OrderBy<RunOrderKey>],
    pub view: ViewType,
    pub offset: i64,
    pub limit: i64,
}

/// The ids of the matching runs, in order, for one page.
pub async fn run_ids(db: impl PgExecutor<'_>, query: &RunQuery<'_>) -> Result<Vec<i64>, DbError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT r.id FROM runs r");
    push_run_where(&mut q, query.experiment_ids, query.view, query.filter);
    q.push(" ORDER BY ");
    for order in query.order_by {
        push_run_order(&mut q, order);
        q.push(", ");
    }
    q.push("r.start_time DESC NULLS LAST, r.id DESC LIMIT ");
    q.push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
    Ok(q.build_query_scalar().fetch_all(db).await?)
}

/// `WHERE`: the runs of the experiments, in the lifecycle stages asked for, that match every clause.
pub(super) fn push_run_where(
    q: &mut QueryBuilder<Postgres>,
    experiment_ids: &[i64],
    view: ViewType,
    filter: &RunFilter,
) {
    q.push(" WHERE r.experiment_id = ANY(").push_bind(experiment_ids.to_vec()).push(") AND r.lifecycle_stage = ANY(");
    q.push_bind(view.stages()).push(")");
    for clause in &filter.0 {
        q.push(" AND ");
        push_run_clause(q, experiment_ids, clause);
    }
}

/// One page of a run search in keyset order, for the native API's cursors.
pub struct RunPageQuery<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a RunFilter,
    pub order_by: &'a [OrderBy<RunOrderKey>],
    pub view: ViewType,
    /// The last run of the previous page: the page holds the runs that sort after it.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// The ids of the matching runs that sort after `query.after`, in the order of [`run_ids`].
///
/// The cursor is a run, not an offset: its sort values are read in the same statement (as
/// `cur`), so a page costs the same at any depth and runs added or removed meanwhile do not
/// shift later pages. Every sort key sorts nulls last; `r.id` breaks the remaining ties, so
/// the order is total and no run appears on two pages.
pub async fn run_ids_after(db: impl PgExecutor<'_>, query: &RunPageQuery<'_>) -> Result<Vec<i64>, DbError> {
    // The requested keys, then run_ids' tie-breakers (start time, then id).
    let tail = OrderBy { key: RunOrderKey::Attribute(RunAttr::StartTime), ascending: false };
    let keys: Vec<&OrderBy<RunOrderKey>> = query.order_by.iter().chain(std::iter::once(&tail)).collect();
    let mut q = QueryBuilder::<Postgres>::new("SELECT r.id FROM runs r");
    if let Some(after) = query.after {
        q.push(" CROSS JOIN (SELECT ");
        for (i, order) in keys.iter().enumerate() {
            push_run_sort_value(&mut q, &order.key, "c");
            q.push(format!(" AS k{i}, "));
        }
        q.push("c.id FROM runs c WHERE c.run_uuid = ").push_bind(after).push(") cur");
    }
    push_run_where(&mut q, query.experiment_ids, query.view, query.filter);
    if query.after.is_some() {
        q.push(" AND (");
        push_after_cursor(&mut q, &keys);
        q.push(")");
    }
    q.push(" ORDER BY ");
    for order in &keys {
        push_run_order(&mut q, order);
        q.push(", ");
    }
    q.push("r.id DESC LIMIT ").push_bind(query.limit);
    Ok(q.build_query_scalar().fetch_all(db).await?)
}

/// "`r` sorts after `cur`": after it on the first key, or tied on the first and after it on
/// the second, ..., or tied on all keys with a smaller id. With nulls last, the values after
/// a non-null value are the greater (descending: smaller) ones and every null; nothing but
/// tied nulls follows a null.
fn push_after_cursor(q: &mut QueryBuilder<Postgres>, keys: &[&OrderBy<RunOrderKey>]) {
    for i in 0..=keys.len() {
        q.push(if i == 0 { "(" } else { " OR (" });
        for (j, order) in keys[..i].iter().enumerate() {
            push_run_sort_value(q, &order.key, "r");
            q.push(format!(" IS NOT DISTINCT FROM cur.k{j} AND "));
        }
        match keys.get(i) {
            Some(order) => {
                let op = if order.ascending { ">" } else { "<" };
                q.push(format!("cur.k{i} IS NOT NULL AND ("));
                push_run_sort_value(q, &order.key, "r");
                q.push(format!(" {op} cur.k{i} OR "));
                push_run_sort_value(q, &order.key, "r");
                q.push(" IS NULL))");
            }
            None => {
                q.push("r.id < cur.id)");
            }
        }
    }
}

fn push_str_cond(q: &mut QueryBuilder<Postgres>, column: &str, cond: &StrCond) {
    match cond {
        StrCond::Compare { op, value } => {
            q.push(format!("{column} {} ", op.as_sql())).push_bind(value.clone());
        }
        StrCond::In(values) => {
            q.push(format!("{column} = ANY(")).push_bind(values.clone()).push(")");
        }
        StrCond::NotIn(values) => {
            q.push(format!("NOT ({column} = ANY(")).push_bind(values.clone()).push("))");
        }
    }
}

/// `EXISTS` over a child table, constrained to the searched experiments so that the
/// covering `(experiment_id, key, value) INCLUDE (run_id)` index serves it.
fn push_keyed(q: &mut QueryBuilder<Postgres>, table: &str, experiment_ids: &[i64], key: &str) {
    q.push(format!("EXISTS (SELECT 1 FROM {table} x WHERE x.experiment_id = ANY("));
    q.push_bind(experiment_ids.to_vec()).push(") AND x.run_id = r.id AND x.key = ");
    q.push_bind(key.to_owned());
}

fn push_run_clause(q: &mut QueryBuilder<Postgres>, experiment_ids: &[i64], clause: &RunClause) {
    match clause {
        RunClause::Metric { key, op, value } => {
            push_keyed(q, "latest_metrics", experiment_ids, key);
            q.push(format!(" AND x.value {} ", op.as_sql())).push_bind(*value).push(")");
        }
        RunClause::Param { key, op, value } | RunClause::Tag { key, op, value } => {
            let table = if matches!(clause, RunClause::Param { .. }) { "run_params" } else { "run_tags" };
            push_keyed(q, table, experiment_ids, key);
            q.push(format!(" AND x.value {} ", op.as_sql())).push_bind(value.clone()).push(")");
        }
        RunClause::StrAttribute { attr, cond } => {
            let column = match attr {
                RunAttr::RunId => "replace(r.run_uuid::text, '-', '')",
                RunAttr::RunName => "r.name",
                RunAttr::Status => "r.status",
                RunAttr::UserId => "r.user_id",
                RunAttr::ArtifactUri => "r.artifact_uri",
                RunAttr::StartTime | RunAttr::EndTime => "NULL",
            };
            push_str_cond(q, column, cond);
        }
        RunClause::TimeAttribute { attr, op, value } => {
            let column = if *attr == RunAttr::EndTime { "r.end_time" } else { "r.start_time" };
            q.push(format!("{column} {} ", op.as_sql())).push_bind(*value);
        }
        RunClause::Dataset { field, cond } => {
            q.push("EXISTS (SELECT 1 FROM run_inputs i JOIN input_datasets d ON d.id = i.dataset_id WHERE i.run_id = r.id AND ");
            let column = match field {
                DatasetField::Name => "d.name",
                DatasetField::Digest => "d.digest",
                DatasetField::Context => {
                    "(SELECT t->>'value' FROM jsonb_array_elements(i.tags) t WHERE t->>'key' = 'mlflow.data.context' LIMIT 1)"
                }
            };
            push_str_cond(q, column, cond);
            q.push(")");
        }
    }
}

fn push_run_order(q: &mut QueryBuilder<Postgres>, order: &OrderBy<RunOrderKey>) {
    push_run_sort_value(q, &order.key, "r");
    q.push(if order.ascending { " ASC NULLS LAST" } else { " DESC NULLS LAST" });
}

/// The value that `key` sorts the run aliased `alias` by (null when the run lacks the key).
fn push_run_sort_value(q: &mut QueryBuilder<Postgres>, key: &RunOrderKey, alias: &str) {
    let keyed = |q: &mut QueryBuilder<Postgres>, table: &str, key: &str| {
        q.push(format!("(SELECT x.value FROM {table} x WHERE x.run_id = {alias}.id AND x.key = "));
        q.push_bind(key.to_owned()).push(")");
    };
    match key {
        RunOrderKey::Metric(key) => keyed(q, "latest_metrics", key),
        RunOrderKey::Param(key) => keyed(q, "run_params", key),
        RunOrderKey::Tag(key) => keyed(q, "run_tags", key),
        RunOrderKey::Attribute(attr) => {
            let column = match attr {
                RunAttr::RunId => "run_uuid",
                RunAttr::RunName => "name",
                RunAttr::Status => "status",
                RunAttr::UserId => "user_id",
                RunAttr::ArtifactUri => "artifact_uri",
                RunAttr::StartTime => "start_time",
                RunAttr::EndTime => "end_time",
            };
            q.push(format!("{alias}.{column}"));
        }
    }
}

pub struct ExperimentQuery<'a> {
    pub filter: &'a ExperimentFilter,
    pub order_by: &'a [OrderBy<ExperimentOrderKey>],
    pub view: ViewType,
    pub offset: i64,
    pub limit: i64,
}

pub async fn experiments(db: impl PgExecutor<'_>, query: &ExperimentQuery<'_>) -> Result<Vec<ExperimentRow>, DbError> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT e.id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time \
         FROM experiments e WHERE e.lifecycle_stage = ANY(",
    );
    q.push_bind(query.view.stages()).push(")");
    for clause in &query.filter.0 {
        q.push(" AND ");
        match clause {
            ExperimentClause::Name { op, value } => {
                q.push(format!("e.name {} ", op.as_sql())).push_bind(value.clone());
            }
            ExperimentClause::Time { attr, op, value } => {
                let column = match attr {
                    ExperimentTimeAttr::CreationTime => "e.creation_time",
                    ExperimentTimeAttr::LastUpdateTime => "e.last_update_time",
                };
                q.push(format!("{column} {} ", op.as_sql())).push_bind(*value);
            }
            ExperimentClause::Tag { key, op, value } => {
                q.push("EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.id AND t.key = ");
                q.push_bind(key.clone()).push(format!(" AND t.value {} ", op.as_sql()));
                q.push_bind(value.clone()).push(")");
            }
        }
    }
    q.push(" ORDER BY ");
    for order in query.order_by {
        let column = match order.key {
            ExperimentOrderKey::Name => "e.name",
            ExperimentOrderKey::ExperimentId => "e.id",
            ExperimentOrderKey::CreationTime => "e.creation_time",
            ExperimentOrderKey::LastUpdateTime => "e.last_update_time",
        };
        q.push(format!("{column} {}, ", if order.ascending { "ASC" } else { "DESC" }));
    }
    q.push("e.creation_time DESC, e.id ASC LIMIT ");
    q.push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
    Ok(q.build_query_as().fetch_all(db).await?)
}
