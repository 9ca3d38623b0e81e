//! Reading the audit trail, shared by the API (`/api/v1/audit`, `/api/v1/audit/export`)
//! and the dashboard's audit page: the filters as they arrive in a query string, parsed
//! once, and the export streamed in batches (never the whole result in memory).

use bytes::Bytes;
use cairn_db::audit::export::{CSV_HEADER, ExportRecord, csv_line};
use cairn_db::audit::query::{self, Filter, Pattern};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::Stream;
use serde::Deserialize;
use sqlx::PgPool;

/// The filters as a query string carries them: every value optional, an empty value the
/// same as an absent one (what an HTML form sends for an empty field).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Actor name; a trailing `*` matches a prefix (`cli:*`).
    pub actor: Option<String>,
    /// Action, e.g. `job.submit`, or `job.*` for every job action.
    pub action: Option<String>,
    /// The object acted on, e.g. `job:ID`, `model:NAME/VERSION`, `run:*`.
    #[serde(alias = "object")]
    pub target: Option<String>,
    /// `success`, `denied`, `failed (422)`...; `failed*` for every failure.
    pub outcome: Option<String>,
    /// Events at or after this time (RFC 3339; a time without offset is UTC).
    pub since: Option<String>,
    /// Events before this time (RFC 3339; a time without offset is UTC).
    pub until: Option<String>,
    /// Events about objects of this project (by name).
    pub project: Option<String>,
}

/// A filter that cannot be applied; the message says which parameter and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadFilter(pub String);

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn pattern(name: &str, value: &Option<String>) -> Result<Option<Pattern>, BadFilter> {
    present(value).map(|v| Pattern::parse(v).map_err(|e| BadFilter(format!("{name}: {e}")))).transpose()
}

/// RFC 3339, or the same without an offset (UTC; what `<input type=datetime-local>`
/// sends), or a date (its midnight UTC).
pub fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, BadFilter> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, format) {
            return Ok(t.and_utc());
        }
    }
    if let Some(midnight) = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)) {
        return Ok(midnight.and_utc());
    }
    Err(BadFilter(format!("{name}: {raw:?} is not a time; use RFC 3339, e.g. 2026-01-31T09:00:00Z")))
}

impl FilterParams {
    pub fn parse(&self) -> Result<Filter, BadFilter> {
        let time = |name: &str, v: &Option<String>| present(v).map(|raw| parse_time(name, raw)).transpose();
        let filter = Filter {
            actor: pattern("actor", &self.actor)?,
            action: pattern("action", &self.action)?,
            target: pattern("target", &self.target)?,
            outcome: pattern("outcome", &self.outcome)?,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            project: present(&self.project).map(str::to_owned),
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(BadFilter("since must be before until".into()));
        }
        Ok(filter)
    }

    /// The filters as query-string pairs (empty ones included, for the caller to drop).
    pub fn pairs(&self) -> [(&'static str, &str); 7] {
        fn v(o: &Option<String>) -> &str {
            present(o).unwrap_or("")
        }
        [
            ("actor", v(&self.actor)),
            ("action", v(&self.action)),
            ("target", v(&self.target)),
            ("outcome", v(&self.outcome)),
            ("since", v(&self.since)),
            ("until", v(&self.until)),
            ("project", v(&self.project)),
        ]
    }
}

/// The formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Rows per database round trip of an export.
const EXPORT_BATCH: i64 = 1000;

struct ExportCursor {
    pool: PgPool,
    filter: Filter,
    format: ExportFormat,
    /// The newest id included, fixed when the export starts.
    up_to: Option<i64>,
    after: i64,
    done: bool,
}

/// The matching events in chain order, from the oldest to the newest at the moment the
/// export starts, as chunks of lines (one batch of rows each).
pub fn export(pool: PgPool, filter: Filter, format: ExportFormat) -> impl Stream<Item = std::io::Result<Bytes>> {
    let cursor = ExportCursor { pool, filter, format, up_to: None, after: 0, done: false };
    futures::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let mut chunk = String::new();
        let up_to = match c.up_to {
            Some(id) => id,
            None => match query::head_id(&c.pool).await {
                Ok(id) => {
                    if c.format == ExportFormat::Csv {
                        chunk.push_str(CSV_HEADER);
                    }
                    c.up_to = Some(id);
                    id
                }
                Err(e) => return Some((Err(failed(&mut c, e)), c)),
            },
        };
        let rows = match query::batch(&c.pool, &c.filter, c.after, up_to, EXPORT_BATCH).await {
            Ok(rows) => rows,
            Err(e) => return Some((Err(failed(&mut c, e)), c)),
        };
        c.done = (rows.len() as i64) < EXPORT_BATCH;
        for row in &rows {
            let record = ExportRecord::from(row);
            match c.format {
                ExportFormat::Jsonl => {
                    // Serializing a struct of strings and integers cannot fail.
                    chunk.push_str(&serde_json::to_string(&record).unwrap_or_default());
                    chunk.push('\n');
                }
                ExportFormat::Csv => chunk.push_str(&csv_line(&record)),
            }
        }
        if let Some(last) = rows.last() {
            c.after = last.id;
        }
        Some((Ok(Bytes::from(chunk)), c))
    })
}

/// An export that fails half-way ends its body with an error (the client sees a truncated
/// transfer, never a silently short file); the cause goes to the log.
fn failed(c: &mut ExportCursor, e: cairn_db::DbError) -> std::io::Error {
    tracing::error!(error = %e, "audit export failed");
    c.done = true;
    std::io::Error::other("audit export failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_absent_and_bad_ones_name_the_parameter() {
        let params = FilterParams {
            actor: Some(String::new()),
            action: Some("job.*".into()),
            since: Some("2026-01-31T09:00".into()),
            ..FilterParams::default()
        };
        let filter = params.parse().expect("valid");
        assert_eq!(filter.actor, None);
        assert_eq!(filter.action, Some(Pattern::Prefix("job.".into())));
        assert_eq!(filter.since.map(|t| t.to_rfc3339()), Some("2026-01-31T09:00:00+00:00".into()));
        let bad = FilterParams { until: Some("yesterday".into()), ..FilterParams::default() };
        assert!(bad.parse().expect_err("bad time").0.starts_with("until:"));
        let bad = FilterParams { target: Some("run:*x".into()), ..FilterParams::default() };
        assert!(bad.parse().expect_err("bad pattern").0.starts_with("target:"));
        let reversed = FilterParams {
            since: Some("2026-02-01".into()),
            until: Some("2026-01-01".into()),
            ..FilterParams::default()
        };
        assert!(reversed.parse().is_err());
    }
}
