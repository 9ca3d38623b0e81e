//! Read-only queries that only the dashboard needs: run counts and last activity of
//! experiments, pages of an experiment's runs with their child runs grouped apart, and the
//! metric, param and tag keys an experiment uses (for the column picker).
//!
//! Every query here is served by an index (see `migrations/0002_tracking.sql`): pages of
//! runs walk `runs_by_experiment_start` or a key's `(experiment_id, key, value)` index from
//! the cursor on, child runs come from `runs_by_parent`, and the key lists skip through the
//! `*_search` indexes.

use cairn_core::search::{RunAttr, RunFilter};
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::search::{ViewType, push_run_where};
use crate::DbError;

/// Run statistics of one experiment.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ExperimentActivity {
    pub experiment_id: i64,
    /// Active runs.
    pub runs: i64,
    /// The latest start or end time of any of its runs (epoch milliseconds).
    pub last_run_activity: Option<i64>,
}

/// Run counts and last run activity of several experiments (those without runs are absent).
pub async fn experiment_activity(
    db: impl PgExecutor<'_>,
    experiment_ids: &[i64],
) -> Result<Vec<ExperimentActivity>, DbError> {
    Ok(sqlx::query_as(
        "SELECT experiment_id, count(*) FILTER (WHERE lifecycle_stage = 'active') AS runs, \
         greatest(max(start_time), max(end_time)) AS last_run_activity \
         FROM runs WHERE experiment_id = ANY($1) GROUP BY experiment_id",
    )
    .bind(experiment_ids)
    .fetch_all(db)
    .await?)
}

/// How a runs table is sorted. Every sort ends with the run's internal id, so the order is
/// total and a cursor names one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSort<'a> {
    /// By start time, then id, both the same way: the `runs_by_experiment_start` index read
    /// forwards (newest first, the default) or backwards.
    Start { ascending: bool },
    /// By the value of a metric (latest), param or tag, then id descending; runs without the
    /// key come last, newest first. Read in value order off the `(experiment_id, key, value)`
    /// index of the key's table.
    Value { kind: KeyKind, key: &'a str, ascending: bool },
    /// By another run attribute (name, status, user, end time): no index serves these, so
    /// pages are offsets ([`RunTableQuery::offset`]) into a sort of all matching runs.
    Attribute { attr: RunAttr, ascending: bool },
}

/// Which table a keyed sort reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
}

impl KeyKind {
    fn table(self) -> &'static str {
        match self {
            KeyKind::Metric => "latest_metrics",
            KeyKind::Param => "run_params",
            KeyKind::Tag => "run_tags",
        }
    }

    /// The SQL type a cursor's value is compared as.
    fn value_type(self) -> &'static str {
        match self {
            KeyKind::Metric => "float8",
            KeyKind::Param | KeyKind::Tag => "text",
        }
    }
}

/// The last run of a page, where the next page continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCursor {
    /// In a [`RunSort::Start`] order, or among the runs without the key of a
    /// [`RunSort::Value`] order.
    Start { start_time: Option<i64>, id: i64 },
    /// Among the runs with the key of a [`RunSort::Value`] order; the value as PostgreSQL
    /// writes it as text (exact for floats).
    Value { value: String, id: i64 },
}

pub struct RunTableQuery<'a> {
    pub experiment_id: i64,
    pub filter: &'a RunFilter,
    pub view: ViewType,
    /// Only runs without a parent run (their children are listed with [`child_runs`]).
    pub roots_only: bool,
    pub sort: RunSort<'a>,
    /// Where the page starts in a keyset order (`Start`, `Value`); the first page without.
    pub after: Option<RunCursor>,
    /// Where the page starts in an `Attribute` order. The caller bounds it: its cost grows
    /// with it.
    pub offset: i64,
    /// Runs per page.
    pub limit: i64,
}

/// One page: the internal ids of its runs in order and, in keyset orders, the cursor of
/// the next page when more runs follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTablePage {
    pub ids: Vec<i64>,
    pub more: bool,
    pub next: Option<RunCursor>,
}

/// One page of an experiment's runs.
///
/// Keyset orders cost the same on every page: `Start` walks the index from the cursor on;
/// `Value` walks the key's index from the cursor's value (ties on one value are sorted by
/// id), then, once the runs with the key are exhausted, the runs without it by start time.
pub async fn run_table_page(db: &sqlx::PgPool, query: &RunTableQuery<'_>) -> Result<RunTablePage, DbError> {
    let want = query.limit + 1;
    let mut rows: Vec<PageRow> = match query.sort {
        RunSort::Start { ascending } => {
            let after = match &query.after {
                Some(RunCursor::Start { start_time, id }) => Some((*start_time, *id)),
                _ => None,
            };
            by_start(db, query, ascending, after, None, want).await?
        }
        RunSort::Value { kind, key, ascending } => {
            let mut rows = match &query.after {
                Some(RunCursor::Start { .. }) => Vec::new(),
                Some(RunCursor::Value { value, id }) => {
                    by_value(db, query, kind, key, ascending, Some((value, *id)), want).await?
                }
                None => by_value(db, query, kind, key, ascending, None, want).await?,
            };
            if (rows.len() as i64) < want {
                let after = match &query.after {
                    Some(RunCursor::Start { start_time, id }) => Some((*start_time, *id)),
                    _ => None,
                };
                let missing = want - rows.len() as i64;
                rows.extend(by_start(db, query, false, after, Some((kind, key)), missing).await?);
            }
            rows
        }
        RunSort::Attribute { attr, ascending } => by_attribute(db, query, attr, ascending, want).await?,
    };
    let more = rows.len() as i64 > query.limit;
    rows.truncate(usize::try_from(query.limit).unwrap_or(0));
    let keyset = !matches!(query.sort, RunSort::Attribute { .. });
    let next = match rows.last() {
        Some(last) if more && keyset => Some(match &last.sort_value {
            Some(value) => RunCursor::Value { value: value.clone(), id: last.id },
            None => RunCursor::Start { start_time: last.start_time, id: last.id },
        }),
        _ => None,
    };
    Ok(RunTablePage { ids: rows.into_iter().map(|r| r.id).collect(), more, next })
}

#[derive(FromRow)]
struct PageRow {
    id: i64,
    start_time: Option<i64>,
    /// The keyed sort's value, for rows that have the key.
    sort_value: Option<String>,
}

/// `SELECT ... FROM runs r [JOIN ...] WHERE` the query's experiment, view, filter and roots.
/// The scalar `r.experiment_id = $n` (besides the `= ANY` of the shared filter SQL) is what
/// lets PostgreSQL read `runs_by_experiment_start` in order.
fn select(query: &RunTableQuery<'_>, head: &str) -> QueryBuilder<Postgres> {
    let experiment_ids = [query.experiment_id];
    let mut q = QueryBuilder::<Postgres>::new(head.to_owned());
    push_run_where(&mut q, &experiment_ids, query.view, query.filter);
    q.push(" AND r.experiment_id = ").push_bind(query.experiment_id);
    if query.roots_only {
        q.push(" AND r.parent_run_id IS NULL");
    }
    q
}

/// Runs by start time after a (start time, id) cursor; with `without`, only the runs that
/// lack that key.
async fn by_start(
    db: &sqlx::PgPool,
    query: &RunTableQuery<'_>,
    ascending: bool,
    after: Option<(Option<i64>, i64)>,
    without: Option<(KeyKind, &str)>,
    limit: i64,
) -> Result<Vec<PageRow>, DbError> {
    let mut q = select(query, "SELECT r.id, r.start_time, NULL::text AS sort_value FROM runs r");
    if let Some((kind, key)) = without {
        q.push(format!(" AND NOT EXISTS (SELECT 1 FROM {} s WHERE s.run_id = r.id AND s.key = ", kind.table()));
        q.push_bind(key.to_owned()).push(")");
    }
    // Descending puts runs without a start time first (the index's order), ascending last.
    match (after, ascending) {
        (Some((Some(start), id)), false) => {
            q.push(" AND (r.start_time, r.id) < (").push_bind(start).push(", ").push_bind(id).push(")");
        }
        (Some((Some(start), id)), true) => {
            q.push(" AND ((r.start_time, r.id) > (").push_bind(start).push(", ").push_bind(id);
            q.push(") OR r.start_time IS NULL)");
        }
        (Some((None, id)), false) => {
            q.push(" AND (r.start_time IS NOT NULL OR r.id < ").push_bind(id).push(")");
        }
        (Some((None, id)), true) => {
            q.push(" AND r.start_time IS NULL AND r.id > ").push_bind(id);
        }
        (None, _) => {}
    }
    let direction = if ascending { "ASC" } else { "DESC" };
    q.push(format!(" ORDER BY r.start_time {direction}, r.id {direction} LIMIT ")).push_bind(limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// Runs that have the key, in value order after a (value, id) cursor.
async fn by_value(
    db: &sqlx::PgPool,
    query: &RunTableQuery<'_>,
    kind: KeyKind,
    key: &str,
    ascending: bool,
    after: Option<(&String, i64)>,
    limit: i64,
) -> Result<Vec<PageRow>, DbError> {
    let head = format!(
        "SELECT r.id, r.start_time, s.value::text AS sort_value FROM {} s JOIN runs r ON r.id = s.run_id",
        kind.table()
    );
    let mut q = select(query, &head);
    q.push(" AND s.experiment_id = ").push_bind(query.experiment_id);
    q.push(" AND s.key = ").push_bind(key.to_owned());
    // Text values are indexed by their first 400 characters (`value_prefix`): seek and
    // order on that prefix, then on the whole value.
    let prefix = kind != KeyKind::Metric;
    if let Some((value, id)) = after {
        let (op, ty) = (if ascending { ">" } else { "<" }, kind.value_type());
        // The first comparison is an index condition; the rest is exact, ties broken by id.
        if prefix {
            q.push(format!(" AND s.value_prefix {op}= left(")).push_bind(value.clone()).push("::text, 400)");
        } else {
            q.push(format!(" AND s.value {op}= ")).push_bind(value.clone()).push("::float8");
        }
        q.push(format!(" AND (s.value {op} ")).push_bind(value.clone()).push(format!("::{ty}"));
        q.push(" OR (s.value = ").push_bind(value.clone()).push(format!("::{ty} AND r.id < ")).push_bind(id).push("))");
    }
    let direction = if ascending { "ASC" } else { "DESC" };
    let order = if prefix { format!("s.value_prefix {direction}, ") } else { String::new() };
    q.push(format!(" ORDER BY {order}s.value {direction}, r.id DESC LIMIT ")).push_bind(limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// Runs sorted by an unindexed attribute, at an offset.
async fn by_attribute(
    db: &sqlx::PgPool,
    query: &RunTableQuery<'_>,
    attr: RunAttr,
    ascending: bool,
    limit: i64,
) -> Result<Vec<PageRow>, DbError> {
    let column = match attr {
        RunAttr::RunId => "r.run_uuid",
        RunAttr::RunName => "r.name",
        RunAttr::Status => "r.status",
        RunAttr::UserId => "r.user_id",
        RunAttr::ArtifactUri => "r.artifact_uri",
        RunAttr::StartTime => "r.start_time",
        RunAttr::EndTime => "r.end_time",
    };
    let mut q = select(query, "SELECT r.id, r.start_time, NULL::text AS sort_value FROM runs r");
    let direction = if ascending { "ASC" } else { "DESC" };
    q.push(format!(" ORDER BY {column} {direction} NULLS LAST, r.start_time DESC, r.id DESC LIMIT "));
    q.push_bind(limit).push(" OFFSET ").push_bind(query.offset);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// The children of some runs, newest first, at most `per_parent` of each.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ChildRun {
    pub parent_id: i64,
    pub id: i64,
    /// How many children (in the view) the parent has in all.
    pub siblings: i64,
}

pub async fn child_runs(
    db: impl PgExecutor<'_>,
    parent_ids: &[i64],
    view: ViewType,
    per_parent: i64,
) -> Result<Vec<ChildRun>, DbError> {
    Ok(sqlx::query_as(
        "SELECT parent_id, id, siblings FROM ( \
           SELECT parent_run_id AS parent_id, id, \
                  row_number() OVER (PARTITION BY parent_run_id ORDER BY start_time DESC, id DESC) AS rank, \
                  count(*) OVER (PARTITION BY parent_run_id) AS siblings \
           FROM runs WHERE parent_run_id = ANY($1) AND lifecycle_stage = ANY($2)) c \
         WHERE rank <= $3 ORDER BY parent_id, rank",
    )
    .bind(parent_ids)
    .bind(view.stages())
    .bind(per_parent)
    .fetch_all(db)
    .await?)
}

/// The metric, param and tag keys used in an experiment, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExperimentKeys {
    pub metrics: Vec<String>,
    pub params: Vec<String>,
    pub tags: Vec<String>,
}

/// The distinct keys of the experiment's runs, at most `limit` of each kind.
///
/// A loose index scan: each step asks the `(experiment_id, key, value)` index for the first
/// key after the previous one, so the cost follows the number of keys, not of runs.
pub async fn experiment_keys(db: &sqlx::PgPool, experiment_id: i64, limit: i64) -> Result<ExperimentKeys, DbError> {
    let (metrics, params, tags) = tokio::try_join!(
        distinct_keys(db, "latest_metrics", experiment_id, limit),
        distinct_keys(db, "run_params", experiment_id, limit),
        distinct_keys(db, "run_tags", experiment_id, limit),
    )?;
    Ok(ExperimentKeys { metrics, params, tags })
}

async fn distinct_keys(db: &sqlx::PgPool, table: &str, experiment_id: i64, limit: i64) -> Result<Vec<String>, DbError> {
    // `table` is one of three constants above, never input.
    let sql = format!(
        "WITH RECURSIVE k(key) AS ( \
           (SELECT key FROM {table} WHERE experiment_id = $1 ORDER BY key LIMIT 1) \
           UNION ALL \
           SELECT (SELECT t.key FROM {table} t WHERE t.experiment_id = $1 AND t.key > k.key ORDER BY t.key LIMIT 1) \
           FROM k WHERE k.key IS NOT NULL) \
         SELECT key FROM k WHERE key IS NOT NULL LIMIT $2"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(experiment_id).bind(limit).fetch_all(db).await?)
}

/// The internal ids of runs named by their public ids, as (public id, internal id); unknown
/// ids are left out.
pub async fn run_ids_by_uuid(db: impl PgExecutor<'_>, uuids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, DbError> {
    Ok(sqlx::query_as("SELECT run_uuid, id FROM runs WHERE run_uuid = ANY($1)").bind(uuids).fetch_all(db).await?)
}
