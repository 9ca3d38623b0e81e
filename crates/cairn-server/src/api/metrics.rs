//! `/api/v1/runs/{id}/metrics/{key}`: a metric's history, either whole and keyset-paged, or
//! downsampled on the server for a chart (`max_points`).

use axum::Json;
use axum::extract::{Path, State};
use cairn_db::tracking::metrics::SeriesPoint;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiError;
use super::openapi::Problem;
use super::query::{self, ApiQuery, cursor};
use super::views::{self, NonFinite, split_value};
use crate::state::AppState;
use crate::tracking::{self, parse_run_id};

/// Points per page of a history read without `max_points`.
const DEFAULT_HISTORY_LIMIT: i64 = 10_000;
const MAX_HISTORY_LIMIT: i64 = 100_000;
/// The most points a downsampled series may ask for.
const MAX_POINTS: usize = 100_000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Downsample to at most this many points (4 to 100000): the series is cut into
    /// `max_points / 4` equal ranges of steps and each keeps its first, lowest, highest and
    /// last point. A series that already fits comes back whole. Not with `cursor`.
    max_points: Option<usize>,
    /// Page size without `max_points`, 1 to 100000 (default 10000).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One point of a metric's history.
#[derive(Serialize, ToSchema)]
pub struct PointView {
    step: i64,
    timestamp: Option<DateTime<Utc>>,
    /// Null when the value is NaN or infinite; `non_finite` then says which.
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    non_finite: Option<NonFinite>,
}

impl PointView {
    fn new(step: i64, timestamp: i64, value: f64) -> Self {
        let (value, non_finite) = split_value(value);
        PointView { step, timestamp: views::time(timestamp), value, non_finite }
    }
}

impl From<SeriesPoint> for PointView {
    fn from(p: SeriesPoint) -> Self {
        PointView::new(p.step, p.timestamp, p.value)
    }
}

/// A metric's history, or a page of it, in step then timestamp order.
#[derive(Serialize, ToSchema)]
pub struct MetricHistory {
    key: String,
    points: Vec<PointView>,
    /// Whether `points` is a downsampled selection of the history.
    downsampled: bool,
    /// With `max_points`: how many points the whole history has.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_points: Option<i64>,
    /// Without `max_points`: pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// A metric's history (empty for a key the run never logged). Percent-encode slashes in
/// the key (`train%2Floss`).
#[utoipa::path(get, path = "/runs/{id}/metrics/{key}", tag = "runs",
    params(("id" = String, Path), ("key" = String, Path), HistoryQuery), responses(
    (status = 200, body = MetricHistory),
    (status = 400, description = "Bad max_points, limit or cursor", body = Problem),
    (status = 404, body = Problem),
))]
pub async fn history(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<MetricHistory>, ApiError> {
    let id = parse_run_id(&id)?;
    match q.max_points {
        Some(max_points) => downsampled(&state, id, key, max_points, &q).await,
        None => paged(&state, id, key, &q).await,
    }
}

async fn paged(state: &AppState, id: Uuid, key: String, q: &HistoryQuery) -> Result<Json<MetricHistory>, ApiError> {
    let limit = query::limit(q.limit, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)?;
    let after = q.cursor.as_deref().map(cursor::parse_history).transpose()?;
    let (points, next) = tracking::metric_history(&state.db, id, &key, after, limit).await?;
    let points = points.into_iter().map(|p| PointView::new(p.step, p.timestamp, p.value)).collect();
    let next_cursor = next.map(cursor::history);
    Ok(Json(MetricHistory { key, points, downsampled: false, total_points: None, next_cursor }))
}

async fn downsampled(
    state: &AppState,
    id: Uuid,
    key: String,
    max_points: usize,
    q: &HistoryQuery,
) -> Result<Json<MetricHistory>, ApiError> {
    if !(4..=MAX_POINTS).contains(&max_points) {
        return Err(ApiError::bad_request(format!("max_points must be between 4 and {MAX_POINTS}")));
    }
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(ApiError::bad_request("max_points returns the whole series: leave out limit and cursor"));
    }
    let series = tracking::metric_series(&state.db, id, &key, max_points).await?;
    let points = series.points.into_iter().map(PointView::from).collect();
    Ok(Json(MetricHistory {
        key,
        points,
        downsampled: series.downsampled,
        total_points: Some(series.total_points),
        next_cursor: None,
    }))
}
