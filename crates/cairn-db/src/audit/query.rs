//! Reading the audit log: filters with a prefix wildcard, keyset pages (newest first) and
//! the ascending batches an export streams. Each filter is served by an index from
//! migrations 0001, 0006 and 0013 (`(column text_pattern_ops, id)` for the text filters).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::EventRow;
use crate::DbError;

/// A text filter: the exact value, or with a trailing `*` every value with that prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    /// `job.*` is a prefix; a `*` anywhere but at the end is refused, so that a filter
    /// never means something other than what it looks like.
    pub fn parse(raw: &str) -> Result<Pattern, String> {
        let (body, prefix) = match raw.strip_suffix('*') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        if body.contains('*') {
            return Err(format!("{raw:?}: `*` is allowed only at the end (a prefix wildcard, as in `job.*`)"));
        }
        if body.is_empty() && !prefix {
            return Err("an empty filter matches nothing; leave the parameter out instead".into());
        }
        Ok(if prefix { Pattern::Prefix(body.to_owned()) } else { Pattern::Exact(body.to_owned()) })
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(v) => f.write_str(v),
            Pattern::Prefix(v) => write!(f, "{v}*"),
        }
    }
}

/// Which events: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The actor's name (`admin`, `cli:root`, `anonymous`, `system:bootstrap`).
    pub actor: Option<Pattern>,
    pub action: Option<Pattern>,
    /// The object acted on (`job:ID`, `model:NAME/VERSION`, ...).
    pub target: Option<Pattern>,
    pub outcome: Option<Pattern>,
    /// `occurred_at >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `occurred_at < until`.
    pub until: Option<DateTime<Utc>>,
    /// The project (by name) of the event's object, as it was when the event was written.
    pub project: Option<String>,
}

fn push_pattern(q: &mut QueryBuilder<Postgres>, column: &str, pattern: &Option<Pattern>) {
    match pattern {
        None => {}
        Some(Pattern::Exact(v)) => {
            q.push(format_args!(" AND {column} = ")).push_bind(v.clone());
        }
        Some(Pattern::Prefix(v)) if v.is_empty() => {}
        Some(Pattern::Prefix(v)) => {
            let escaped = v.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            q.push(format_args!(" AND {column} LIKE ")).push_bind(format!("{escaped}%"));
        }
    }
}

fn where_clause(q: &mut QueryBuilder<Postgres>, filter: &Filter) {
    q.push(" WHERE true");
    push_pattern(q, "actor_name", &filter.actor);
    push_pattern(q, "action", &filter.action);
    push_pattern(q, "target", &filter.target);
    push_pattern(q, "outcome", &filter.outcome);
    if let Some(since) = filter.since {
        q.push(" AND occurred_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        q.push(" AND occurred_at < ").push_bind(until);
    }
    if let Some(project) = &filter.project {
        q.push(" AND project_id = (SELECT id FROM projects WHERE name = ").push_bind(project.clone()).push(")");
    }
}

/// One page, newest first: at most `limit` events with ids below `before`, and the
/// `before` of the next page when there is one.
pub async fn page(
    pool: &PgPool,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<EventRow>, Option<i64>), DbError> {
    let mut q = QueryBuilder::new("SELECT * FROM audit_events");
    where_clause(&mut q, filter);
    if let Some(before) = before {
        q.push(" AND id < ").push_bind(before);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let rows: Vec<EventRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::paging::split(rows, limit, |r| r.id))
}

/// The id of the newest event (0 when the log is empty): an export stops there, so it is a
/// consistent prefix of the chain even while events are appended.
pub async fn head_id(pool: &PgPool) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM audit_events").fetch_one(pool).await?)
}

/// Up to `limit` events after `after` and at most `up_to`, in chain order: one batch of an
/// export.
pub async fn batch(
    pool: &PgPool,
    filter: &Filter,
    after: i64,
    up_to: i64,
    limit: i64,
) -> Result<Vec<EventRow>, DbError> {
    let mut q = QueryBuilder::new("SELECT * FROM audit_events");
    where_clause(&mut q, filter);
    q.push(" AND id > ").push_bind(after);
    q.push(" AND id <= ").push_bind(up_to);
    q.push(" ORDER BY id LIMIT ").push_bind(limit);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_exact_or_a_trailing_prefix() {
        assert_eq!(Pattern::parse("job.*"), Ok(Pattern::Prefix("job.".into())));
        assert_eq!(Pattern::parse("admin"), Ok(Pattern::Exact("admin".into())));
        assert_eq!(Pattern::parse("*"), Ok(Pattern::Prefix(String::new())));
        assert!(Pattern::parse("j*b").is_err());
        assert!(Pattern::parse("**").is_err());
        assert!(Pattern::parse("").is_err());
        assert_eq!(Pattern::Prefix("job.".into()).to_string(), "job.*");
    }
}
