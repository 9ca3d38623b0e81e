//! GPU-hour accounting reports: what jobs that ended in a time range used, per user,
//! template or resulting model version. Per-project totals and quotas wait for projects.

use cairn_db::Db;
use cairn_db::job_usage::{self as repo, UsageRow};
use chrono::{DateTime, Duration, Utc};

pub use cairn_db::job_usage::UsageBy;

use crate::tracking::TrackingError;

/// The range reports cover when none is given: the last 30 days.
pub const DEFAULT_DAYS: i64 = 30;

pub fn parse_by(raw: &str) -> Result<UsageBy, TrackingError> {
    match raw {
        "user" => Ok(UsageBy::User),
        "template" => Ok(UsageBy::Template),
        "model" => Ok(UsageBy::Model),
        other => Err(TrackingError::Invalid(format!("by={other:?}: group by user, template or model"))),
    }
}

pub fn by_name(by: UsageBy) -> &'static str {
    match by {
        UsageBy::User => "user",
        UsageBy::Template => "template",
        UsageBy::Model => "model",
    }
}

/// `[from, to)`, defaulting to the [`DEFAULT_DAYS`] before `to` (default now); an empty or
/// reversed range is refused.
pub fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), TrackingError> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS));
    if from >= to {
        return Err(TrackingError::Invalid(format!("from ({from}) must be before to ({to})")));
    }
    Ok((from, to))
}

pub struct Report {
    pub by: UsageBy,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<UsageRow>,
    /// All jobs in the range, each once (a job behind two model versions is in two rows).
    pub total: UsageRow,
}

/// The report over the jobs in `projects` (None: every project).
pub async fn report(
    db: &Db,
    projects: Option<&[i64]>,
    by: UsageBy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Report, TrackingError> {
    let rows = repo::totals(&db.pool, projects, by, from, to).await?;
    let total = repo::overall(&db.pool, projects, from, to).await?;
    Ok(Report { by, from, to, rows, total })
}
