//! Search: the parsed MLflow filter and order_by ASTs turned into one SQL statement each,
//! every value a bind parameter. Run filters on metrics, params and tags become `EXISTS`
//! semi-joins served by the `(experiment_id, key, value)` indexes; ordering by a metric,
//! param or tag sorts runs without that key last, as MLflow does.

use cairn_core::search::{
    DatasetField, ExperimentClause, ExperimentFilter, ExperimentOrderKey, ExperimentTimeAttr, OrderBy, RunAttr,
    RunClause, RunFilter, RunOrderKey, StrCond, StrOp,
};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
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
pub async fn run_ids(db: &PgPool, query: &RunQuery<'_>) -> Result<Vec<i64>, DbError> {
    let hashed = hashed_filters(db, query.experiment_ids, query.filter, query.order_by).await?;
    let search = Search::new(query.experiment_ids, query.view, query.filter, query.order_by, hashed);
    let Some(first) = search.first_child_key() else {
        return fetch_ids(db, search.select(Segment::Whole, None), query.offset, query.limit).await;
    };
    let mut ids = fetch_ids(db, search.select(Segment::Keyed(first), None), query.offset, query.limit).await?;
    let wanted = query.limit - ids.len() as i64;
    if wanted > 0 {
        // The page reaches the runs without the key: skip those that earlier pages showed.
        let keyed_runs = if ids.is_empty() {
            let mut count = QueryBuilder::<Postgres>::new("SELECT count(*)");
            search.push_from_where(&mut count, Segment::Keyed(first), None);
            count.build_query_scalar::<i64>().fetch_one(db).await?
        } else {
            query.offset + ids.len() as i64
        };
        let skip = (query.offset - keyed_runs).max(0);
        ids.extend(fetch_ids(db, search.select(Segment::Missing(first), None), skip, wanted).await?);
    }
    Ok(ids)
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
/// shift later pages.
pub async fn run_ids_after(db: &PgPool, query: &RunPageQuery<'_>) -> Result<Vec<i64>, DbError> {
    let hashed = hashed_filters(db, query.experiment_ids, query.filter, query.order_by).await?;
    let search = Search::new(query.experiment_ids, query.view, query.filter, query.order_by, hashed);
    let Some(first) = search.first_child_key() else {
        return fetch_ids(db, search.select(Segment::Whole, query.after), 0, query.limit).await;
    };
    let mut ids = fetch_ids(db, search.select(Segment::Keyed(first), query.after), 0, query.limit).await?;
    let wanted = query.limit - ids.len() as i64;
    if wanted > 0 {
        ids.extend(fetch_ids(db, search.select(Segment::Missing(first), query.after), 0, wanted).await?);
    }
    Ok(ids)
}

async fn fetch_ids(db: &PgPool, mut q: QueryBuilder<Postgres>, offset: i64, limit: i64) -> Result<Vec<i64>, DbError> {
    q.push(" LIMIT ").push_bind(limit);
    if offset > 0 {
        q.push(" OFFSET ").push_bind(offset);
    }
    Ok(q.build_query_scalar().fetch_all(db).await?)
}

/// `WHERE`: the runs of the experiments, in the lifecycle stages asked for, that match every clause.
pub(super) fn push_run_where(
    q: &mut QueryBuilder<Postgres>,
    experiment_ids: &[i64],
    view: ViewType,
    filter: &RunFilter,
) {
    push_run_where_hashing(q, experiment_ids, view, filter, Hashing::NONE);
}

/// [`push_run_where`], with the clauses `hashing` names checked against a hash of their runs.
fn push_run_where_hashing(
    q: &mut QueryBuilder<Postgres>,
    experiment_ids: &[i64],
    view: ViewType,
    filter: &RunFilter,
    hashing: Hashing<'_>,
) {
    q.push(" WHERE ");
    push_in_experiments(q, "r.experiment_id", experiment_ids);
    q.push(" AND r.lifecycle_stage = ANY(").push_bind(view.stages()).push(")");
    for (i, clause) in filter.0.iter().enumerate() {
        q.push(" AND ");
        match clause {
            RunClause::Param { key, value, .. } | RunClause::Tag { key, value, .. } if hashing.clauses.contains(&i) => {
                push_hashed_clause(q, experiment_ids, child_table(clause), key, value, hashing.column);
            }
            _ => push_run_clause(q, experiment_ids, clause),
        }
    }
}

/// Which clauses of a filter are checked against a hash of the runs they match, and the
/// run id column they are checked on.
#[derive(Clone, Copy)]
struct Hashing<'a> {
    /// Indexes into the filter's clauses (equality filters on params or tags).
    clauses: &'a [usize],
    column: &'static str,
}

impl Hashing<'_> {
    const NONE: Hashing<'static> = Hashing { clauses: &[], column: "r.id" };
}

/// A walk of the sort key's index in order (see [`Segment`]) costs one probe per entry
/// walked until the page is full, for each filter: a filter that keeps 5 % of 100,000 runs
/// made a page of 100 walk 2,200 entries and probe `run_params` for each, 15 ms of the
/// search's 20 (more under load). An equality filter on a param or tag can instead be read
/// once from its index (10,000 matches in 3 ms) into a hash table that each walked entry is
/// checked against, for a fraction of a probe: 2-3x faster in all.
///
/// Not when the filter matches few runs: PostgreSQL then starts from those runs and sorts
/// them (a few probes each), which the hashed form rules out. Nor when so many that the hash
/// table would not fit in memory (PostgreSQL then runs the subquery once per entry). The
/// number of matches is PostgreSQL's own estimate, from the column statistics.
const HASHED_MATCHES: std::ops::RangeInclusive<f64> = 1_000.0..=50_000.0;

/// The equality filters on params and tags that a keyed walk checks by hash: those whose
/// expected matches are in [`HASHED_MATCHES`]. One `EXPLAIN` per candidate filter, and none
/// unless the search sorts by a metric, param or tag (sorted by an attribute, a walk of the
/// runs' own index probes the filters' tables no faster with a hash: measured, no gain).
/// Public so that tests can see which form a search takes.
pub async fn hashed_filters(
    db: &PgPool,
    experiment_ids: &[i64],
    filter: &RunFilter,
    order_by: &[OrderBy<RunOrderKey>],
) -> Result<Vec<usize>, DbError> {
    if order_by.first().and_then(|o| ChildKey::of(&o.key)).is_none() {
        return Ok(Vec::new());
    }
    let mut hashed = Vec::new();
    for (i, clause) in filter.0.iter().enumerate() {
        let (RunClause::Param { key, op, value } | RunClause::Tag { key, op, value }) = clause else {
            continue;
        };
        if !prefix_decides(*op, value) {
            continue;
        }
        let mut q = QueryBuilder::<Postgres>::new("EXPLAIN (FORMAT JSON) ");
        push_prefix_matches(&mut q, experiment_ids, child_table(clause), key, value);
        let plan: serde_json::Value = q.build_query_scalar().fetch_one(db).await?;
        let expected = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
        if HASHED_MATCHES.contains(&expected) {
            hashed.push(i);
        }
    }
    Ok(hashed)
}

/// The table of a param or tag clause.
fn child_table(clause: &RunClause) -> &'static str {
    if matches!(clause, RunClause::Param { .. }) { "run_params" } else { "run_tags" }
}

/// `params.<key> = '<value>'` (or a tag), for a value shorter than the prefix, as a hashed
/// test of `column`: the same answer as the `EXISTS` of [`push_run_clause`] (run ids are never
/// null), but an `IN` inside an expression is not turned into a join: PostgreSQL reads the
/// subquery once into a hash table ("hashed SubPlan") and checks each walked entry against
/// it, keeping the walk's order.
fn push_hashed_clause(
    q: &mut QueryBuilder<Postgres>,
    experiment_ids: &[i64],
    table: &str,
    key: &str,
    value: &str,
    column: &str,
) {
    q.push(format!("COALESCE({column} IN ("));
    push_prefix_matches(q, experiment_ids, table, key, value);
    q.push("), false)");
}

/// The runs whose `key` in `table` has `value` as its stored prefix: the subquery that the
/// hashed form reads, and whose size [`hashed_filters`] asks PostgreSQL to estimate.
fn push_prefix_matches(q: &mut QueryBuilder<Postgres>, experiment_ids: &[i64], table: &str, key: &str, value: &str) {
    q.push(format!("SELECT x.run_id FROM {table} x WHERE "));
    push_in_experiments(q, "x.experiment_id", experiment_ids);
    q.push(" AND x.key = ").push_bind(key.to_owned());
    q.push(" AND x.value_prefix = ").push_bind(value.to_owned());
}

/// Whether the stored prefix alone decides `<op> value`: an equality with a value shorter
/// than the prefix equals the stored value exactly when it equals the stored prefix.
fn prefix_decides(op: StrOp, value: &str) -> bool {
    op == StrOp::Eq && value.chars().count() < VALUE_PREFIX_CHARS
}

/// `column` is one of the experiments: a plain equality for one (so that an index on
/// `(experiment_id, key, value)` yields rows in value order), `= ANY` for several.
fn push_in_experiments(q: &mut QueryBuilder<Postgres>, column: &str, experiment_ids: &[i64]) {
    match experiment_ids {
        [one] => q.push(format!("{column} = ")).push_bind(*one),
        many => q.push(format!("{column} = ANY(")).push_bind(many.to_vec()).push(")"),
    };
}

/// Runs sort by the requested keys, then by start time (newest first), then by id.
const START_TIME_DESC: OrderBy<RunOrderKey> =
    OrderBy { key: RunOrderKey::Attribute(RunAttr::StartTime), ascending: false };

/// A metric, param or tag key and the table that holds it.
#[derive(Clone, Copy)]
struct ChildKey<'k> {
    table: &'static str,
    key: &'k str,
}

impl<'k> ChildKey<'k> {
    /// The key a sort key names; None for a run attribute.
    fn of(order_key: &'k RunOrderKey) -> Option<ChildKey<'k>> {
        let (table, key) = match order_key {
            RunOrderKey::Metric(key) => ("latest_metrics", key),
            RunOrderKey::Param(key) => ("run_params", key),
            RunOrderKey::Tag(key) => ("run_tags", key),
            RunOrderKey::Attribute(_) => return None,
        };
        Some(ChildKey { table, key })
    }
}

/// Which runs one statement of a search reads.
///
/// Sorted by a metric, param or tag, a search reads in two segments: the runs that have the
/// key, by walking the key's `(experiment_id, key, value)` index in order joined to the runs
/// and their filters (a page then costs about `limit / selectivity` index entries instead of
/// a sort of every match), then the runs without it, which sort last, as in MLflow. The
/// second is only read when the first runs out within the page.
#[derive(Clone, Copy)]
enum Segment<'k> {
    /// Every matching run: the first sort key is a run attribute.
    Whole,
    /// The matching runs that have the first sort key, its value joined in as `s.value`.
    Keyed(ChildKey<'k>),
    /// The matching runs without it.
    Missing(ChildKey<'k>),
}

struct Search<'a> {
    experiment_ids: &'a [i64],
    view: ViewType,
    filter: &'a RunFilter,
    /// The requested sort keys, then the start-time tie-breaker; `r.id DESC` breaks the
    /// remaining ties, so the order is total and no run appears on two pages.
    keys: Vec<&'a OrderBy<RunOrderKey>>,
    /// The filter's clauses that the keyed segment checks by hash ([`hashed_filters`]).
    hashed: Vec<usize>,
}

impl<'a> Search<'a> {
    fn new(
        experiment_ids: &'a [i64],
        view: ViewType,
        filter: &'a RunFilter,
        order_by: &'a [OrderBy<RunOrderKey>],
        hashed: Vec<usize>,
    ) -> Self {
        let keys = order_by.iter().chain(std::iter::once(&START_TIME_DESC)).collect();
        Search { experiment_ids, view, filter, keys, hashed }
    }

    fn first_child_key(&self) -> Option<ChildKey<'a>> {
        ChildKey::of(&self.keys[0].key)
    }

    /// The segment's run ids in order, without `LIMIT`.
    fn select(&self, segment: Segment<'_>, after: Option<Uuid>) -> QueryBuilder<Postgres> {
        let mut q = QueryBuilder::new("SELECT r.id");
        self.push_from_where(&mut q, segment, after);
        q.push(" ORDER BY ");
        for (i, order) in self.keys.iter().enumerate() {
            match (i, segment) {
                // The column is NOT NULL, so DESC's default NULLS FIRST changes nothing and lets
                // a backward scan of the index supply the order.
                (0, Segment::Keyed(child)) => {
                    let direction = if order.ascending { "ASC" } else { "DESC" };
                    if child.table != "latest_metrics" {
                        // The index holds a prefix of text values (see `VALUE_PREFIX`): it
                        // supplies that order, ties are sorted on the whole value.
                        q.push(format!("{VALUE_PREFIX} {direction}, "));
                    }
                    q.push(format!("s.value {direction}, "))
                }
                (0, Segment::Missing(_)) => continue,
                _ => {
                    push_run_order(&mut q, order);
                    q.push(", ")
                }
            };
        }
        q.push("r.id DESC");
        q
    }

    fn push_from_where(&self, q: &mut QueryBuilder<Postgres>, segment: Segment<'_>, after: Option<Uuid>) {
        q.push(" FROM runs r");
        if let Segment::Keyed(child) = segment {
            q.push(format!(" JOIN {} s ON s.run_id = r.id AND ", child.table));
            push_in_experiments(q, "s.experiment_id", self.experiment_ids);
            q.push(" AND s.key = ").push_bind(child.key.to_owned());
        }
        if let Some(after) = after {
            q.push(" CROSS JOIN (SELECT ");
            for (i, order) in self.keys.iter().enumerate() {
                push_run_sort_value(q, &order.key, "c");
                q.push(format!(" AS k{i}, "));
            }
            q.push("c.id FROM runs c WHERE c.run_uuid = ").push_bind(after).push(") cur");
        }
        // Checked on the walked index entry (`s.run_id`), before the join to the run.
        let hashing = match segment {
            Segment::Keyed(_) => Hashing { clauses: &self.hashed, column: "s.run_id" },
            _ => Hashing::NONE,
        };
        push_run_where_hashing(q, self.experiment_ids, self.view, self.filter, hashing);
        match (segment, after) {
            (Segment::Missing(child), _) => {
                q.push(format!(" AND NOT EXISTS (SELECT 1 FROM {} s WHERE s.run_id = r.id AND s.key = ", child.table));
                q.push_bind(child.key.to_owned()).push(")");
            }
            (Segment::Keyed(child), Some(after)) => {
                // A cursor among the runs without the key has none with it after it. Not
                // correlated, so PostgreSQL checks it once, before reading the index.
                q.push(format!(" AND EXISTS (SELECT 1 FROM runs c JOIN {} ck ON ck.run_id = c.id", child.table));
                q.push(" AND ck.key = ").push_bind(child.key.to_owned());
                q.push(" WHERE c.run_uuid = ").push_bind(after).push(")");
            }
            _ => {}
        }
        if after.is_some() {
            q.push(" AND (");
            self.push_after_cursor(q, segment);
            q.push(")");
        }
    }

    /// The value that sort key `i` has for run `r` in this segment (null when it lacks the key).
    fn push_sort_value(&self, q: &mut QueryBuilder<Postgres>, i: usize, segment: Segment<'_>) {
        match (i, segment) {
            (0, Segment::Keyed(_)) => {
                q.push("s.value");
            }
            (0, Segment::Missing(_)) => {
                q.push("NULL");
            }
            _ => push_run_sort_value(q, &self.keys[i].key, "r"),
        }
    }

    /// "`r` sorts after `cur`": after it on the first key, or tied on the first and after it
    /// on the second, ..., or tied on all keys with a smaller id. With nulls last, the values
    /// after a non-null value are the greater (descending: smaller) ones and every null;
    /// nothing but tied nulls follows a null.
    fn push_after_cursor(&self, q: &mut QueryBuilder<Postgres>, segment: Segment<'_>) {
        for i in 0..=self.keys.len() {
            q.push(if i == 0 { "(" } else { " OR (" });
            for j in 0..i {
                self.push_sort_value(q, j, segment);
                q.push(format!(" IS NOT DISTINCT FROM cur.k{j} AND "));
            }
            match self.keys.get(i) {
                Some(order) => {
                    let op = if order.ascending { ">" } else { "<" };
                    q.push(format!("cur.k{i} IS NOT NULL AND ("));
                    self.push_sort_value(q, i, segment);
                    q.push(format!(" {op} cur.k{i} OR "));
                    self.push_sort_value(q, i, segment);
                    q.push(" IS NULL))");
                }
                None => {
                    q.push("r.id < cur.id)");
                }
            }
        }
    }
}

/// The part of a param or tag value that the `(experiment_id, key, value_prefix)` search
/// indexes hold (migrations 0012 and 0017: `left(value, 400)`, stored): whole values (up to
/// 8000 characters) can exceed a btree entry.
const VALUE_PREFIX: &str = "s.value_prefix";

/// The length of that prefix, in characters (PostgreSQL's `left` counts characters).
const VALUE_PREFIX_CHARS: usize = 400;

/// A run's public id as MLflow writes it (32 hex digits, no dashes), for filters on it.
pub(crate) const RUN_ID_COLUMN: &str = "replace(r.run_uuid::text, '-', '')";

/// `column` compared with a string, or `= ANY`/`NOT (= ANY)` a list, every value bound.
pub(crate) fn push_str_cond(q: &mut QueryBuilder<Postgres>, column: &str, cond: &StrCond) {
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
    q.push(format!("EXISTS (SELECT 1 FROM {table} x WHERE "));
    push_in_experiments(q, "x.experiment_id", experiment_ids);
    q.push(" AND x.run_id = r.id AND x.key = ");
    q.push_bind(key.to_owned());
}

fn push_run_clause(q: &mut QueryBuilder<Postgres>, experiment_ids: &[i64], clause: &RunClause) {
    match clause {
        RunClause::Metric { key, op, value } => {
            push_keyed(q, "latest_metrics", experiment_ids, key);
            q.push(format!(" AND x.value {} ", op.as_sql())).push_bind(*value).push(")");
        }
        RunClause::Param { key, op, value } | RunClause::Tag { key, op, value } => {
            push_keyed(q, child_table(clause), experiment_ids, key);
            if prefix_decides(*op, value) {
                // The prefix test alone decides, and it must stand alone:
                // given `x.value = $v` as well, PostgreSQL multiplies the two selectivities as
                // if independent, expects 1 % of the runs where 10 % match, and reads every
                // match and sorts them instead of walking the sort key's index in order
                // (74,000 buffers against 10,000 over 100,000 runs; bench/RESULTS.md).
                q.push(" AND x.value_prefix = ").push_bind(value.clone()).push(")");
                return;
            }
            if *op == StrOp::Eq {
                // Lets the prefix search index find the value.
                q.push(" AND x.value_prefix = left(").push_bind(value.clone()).push(", 400)");
            }
            q.push(format!(" AND x.value {} ", op.as_sql())).push_bind(value.clone()).push(")");
        }
        RunClause::StrAttribute { attr, cond } => {
            let column = match attr {
                RunAttr::RunId => RUN_ID_COLUMN,
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
    /// Only experiments in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
    pub filter: &'a ExperimentFilter,
    pub order_by: &'a [OrderBy<ExperimentOrderKey>],
    pub view: ViewType,
    pub offset: i64,
    pub limit: i64,
}

pub async fn experiments(db: impl PgExecutor<'_>, query: &ExperimentQuery<'_>) -> Result<Vec<ExperimentRow>, DbError> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT e.id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time, \
         e.project_id FROM experiments e WHERE e.lifecycle_stage = ANY(",
    );
    q.push_bind(query.view.stages()).push(")");
    if let Some(projects) = query.projects {
        q.push(" AND e.project_id = ANY(").push_bind(projects.to_vec()).push(")");
    }
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
