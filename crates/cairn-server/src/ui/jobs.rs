//! The jobs list: newest first, filtered by state, keyset pages, each job with who submitted
//! it, its template or command, GPUs, duration and, while queued, its place in the queue;
//! and below it the GPU-hour usage over a date range, per user, template or model version.
//! The job page, its forms and the retrain and template forms are in [`super::job_page`]
//! and [`super::job_forms`].

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use cairn_core::job::JobState;
use cairn_db::job_listing::{self, After, JobLine};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::display::{self, When};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::job_usage::{self, UsageBy};
use crate::state::AppState;
use crate::tracking::TrackingError;

const PAGE_SIZE: i64 = 50;

/// The path of a job's page.
pub fn job_url(id: &Uuid) -> String {
    format!("/jobs/{}", id.simple())
}

/// A job state as a badge: its words and the CSS class of the matching run status.
pub fn state_badge(state: &str) -> (String, &'static str) {
    let class = match JobState::parse(state) {
        Some(JobState::Succeeded) => "finished",
        Some(JobState::Running) => "running",
        Some(JobState::Failed) => "failed",
        Some(JobState::Cancelled) => "killed",
        Some(JobState::Queued | JobState::Scheduled) | None => "scheduled",
    };
    (display::status_label(state), class)
}

pub fn when(at: DateTime<Utc>) -> When {
    When {
        iso: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        text: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// How long a job ran (or has been running).
pub fn job_duration(started: Option<DateTime<Utc>>, finished: Option<DateTime<Utc>>) -> Option<String> {
    let started = started?.timestamp_millis();
    let ended = finished.unwrap_or_else(Utc::now).timestamp_millis();
    display::duration(Some(started), Some(ended))
}

struct Line {
    url: String,
    short_id: String,
    state_label: String,
    state_class: &'static str,
    reason: String,
    queue_position: Option<i64>,
    created_by: String,
    template: Option<(String, String)>,
    command: String,
    gpus: i32,
    duration: Option<String>,
    created: When,
    run_url: String,
}

fn line(job: JobLine) -> Line {
    let (state_label, state_class) = state_badge(&job.state);
    Line {
        url: job_url(&job.id),
        short_id: job.id.simple().to_string()[..8].to_owned(),
        state_label,
        state_class,
        reason: job.reason,
        queue_position: job.queue_position,
        created_by: job.created_by.unwrap_or_default(),
        template: job.template.map(|name| {
            let label = format!("{name} v{}", job.template_version.unwrap_or(1));
            (super::job_forms::template_url(&name), label)
        }),
        command: job.spec.0.command.join(" "),
        gpus: job.gpus,
        duration: job_duration(job.started_at, job.finished_at),
        created: when(job.created_at),
        run_url: links::run(&job.run_uuid),
    }
}

struct StateTab {
    label: String,
    url: String,
    count: i64,
    current: bool,
}

struct UsageLine {
    key: String,
    jobs: i64,
    gpu_hours: String,
    cpu_hours: String,
    wall_hours: String,
}

struct Usage {
    by: &'static str,
    from: String,
    to: String,
    rows: Vec<UsageLine>,
    total: UsageLine,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    header: Header,
    tabs: Vec<StateTab>,
    state: String,
    jobs: Vec<Line>,
    next_url: Option<String>,
    first_url: Option<String>,
    usage: Usage,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    /// Keyset position: the `created_at` (RFC 3339) and id of the previous page's last job.
    before: Option<String>,
    before_id: Option<String>,
    /// Usage section: `user`, `template` or `model`, and dates `YYYY-MM-DD` (`to` inclusive).
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: SessionUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let filter = match query.state.as_str() {
        "" => None,
        s => Some(JobState::parse(s).ok_or_else(|| {
            TrackingError::Invalid(format!(
                "Unknown state {s:?}: use queued, scheduled, running, succeeded, failed or cancelled."
            ))
        })?),
    };
    let after = match (query.before.as_deref(), query.before_id.as_deref()) {
        (Some(at), Some(id)) if !at.is_empty() => Some(After {
            created_at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| TrackingError::Invalid(format!("{at:?} is not a page position: follow the page links")))?
                .with_timezone(&Utc),
            id: Uuid::try_parse(id)
                .map_err(|_| TrackingError::Invalid(format!("{id:?} is not a page position: follow the page links")))?,
        }),
        _ => None,
    };
    let visible = user.visible();
    let mut rows = job_listing::page(&state.db.pool, visible.projects(), filter, after, PAGE_SIZE + 1).await?;
    let more = rows.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));
    let state_name = filter.map_or("", JobState::as_str);
    let next_url = more.then(|| rows.last()).flatten().map(|last| {
        let at = last.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        links::url("/jobs", &[("state", state_name), ("before", &at), ("before_id", &last.id.simple().to_string())])
    });
    let counts = job_listing::counts(&state.db.pool, visible.projects()).await?;
    let count = |s: &str| counts.iter().find(|(name, _)| name == s).map_or(0, |(_, n)| *n);
    let mut tabs = vec![StateTab {
        label: "All".into(),
        url: "/jobs".into(),
        count: counts.iter().map(|(_, n)| n).sum(),
        current: filter.is_none(),
    }];
    tabs.extend(JobState::ALL.into_iter().map(|s| StateTab {
        label: display::status_label(s.as_str()),
        url: links::url("/jobs", &[("state", s.as_str())]),
        count: count(s.as_str()),
        current: filter == Some(s),
    }));
    let page = JobsPage {
        header: Header::from(&user),
        tabs,
        state: state_name.to_owned(),
        jobs: rows.into_iter().map(line).collect(),
        next_url,
        first_url: after.map(|_| links::url("/jobs", &[("state", state_name)])),
        usage: usage(&state, visible.projects(), &query).await?,
    };
    Ok(render(&page)?.into_response())
}

/// Hours in about six significant digits (a few seconds still show as more than 0).
fn hours(seconds: f64) -> String {
    display::metric(seconds / 3600.0)
}

fn usage_line(row: cairn_db::job_usage::UsageRow, by: UsageBy) -> UsageLine {
    let none = match by {
        UsageBy::User => "(no user)",
        UsageBy::Template => "(no template)",
        UsageBy::Model => "(no model version)",
    };
    UsageLine {
        key: row.key.unwrap_or_else(|| none.to_owned()),
        jobs: row.jobs,
        gpu_hours: hours(row.gpu_seconds),
        cpu_hours: hours(row.cpu_seconds),
        wall_hours: hours(row.wall_seconds),
    }
}

fn parse_day(raw: Option<&str>, field: &str) -> Result<Option<NaiveDate>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("{field} {s:?} is not a date (YYYY-MM-DD).")),
    }
}

/// The usage section: a bad date or grouping is said in the section, not as an error page.
async fn usage(state: &AppState, projects: Option<&[i64]>, query: &ListQuery) -> Result<Usage, HtmlError> {
    let mut error = None;
    let by = match job_usage::parse_by(query.by.as_deref().unwrap_or("user")) {
        Ok(by) => by,
        Err(e) => {
            error = Some(e.to_string());
            UsageBy::User
        }
    };
    let days =
        parse_day(query.from.as_deref(), "From").and_then(|from| Ok((from, parse_day(query.to.as_deref(), "To")?)));
    let (from_day, to_day) = days.unwrap_or_else(|message| {
        error = Some(message);
        (None, None)
    });
    let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let to = to_day.and_then(|d| d.succ_opt()).and_then(start);
    let from = from_day.and_then(start);
    let (from, to) = match job_usage::range(from, to) {
        Ok(range) => range,
        Err(e) => {
            error = Some(e.to_string());
            job_usage::range(None, None)?
        }
    };
    let report = job_usage::report(&state.db, projects, by, from, to).await?;
    let last_day = (to - chrono::Duration::seconds(1)).date_naive();
    Ok(Usage {
        by: job_usage::by_name(by),
        from: from.date_naive().to_string(),
        to: last_day.to_string(),
        rows: report.rows.into_iter().map(|r| usage_line(r, by)).collect(),
        total: usage_line(report.total, by),
        error,
    })
}
