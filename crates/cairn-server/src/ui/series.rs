//! The charts' data: a metric's series as JSON, downsampled on the server (first, min, max
//! and last point of each bucket of steps, see [`tracking::metric_series`]) so that a
//! million-point series arrives as a few thousand points. Session-authenticated like the
//! pages; columnar arrays, as the charting library takes them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{HtmlError, SessionUser};
use crate::state::AppState;
use crate::tracking::{self, Series};

const DEFAULT_POINTS: usize = 1000;
const MAX_POINTS: usize = 10_000;
/// Runs whose series a compare chart fetches at once.
const CONCURRENT_SERIES: usize = 4;

#[derive(Deserialize)]
pub struct SeriesQuery {
    max_points: Option<usize>,
    #[serde(default)]
    runs: String,
}

impl SeriesQuery {
    fn max_points(&self) -> usize {
        self.max_points.unwrap_or(DEFAULT_POINTS).clamp(4, MAX_POINTS)
    }
}

/// One series in columns: `step[i]`, `timestamp[i]` and `value[i]` are one point; values
/// that are not finite are `null`.
#[derive(Serialize)]
pub struct SeriesJson {
    run_id: String,
    key: String,
    total_points: i64,
    downsampled: bool,
    step: Vec<i64>,
    timestamp: Vec<i64>,
    value: Vec<Option<f64>>,
}

impl SeriesJson {
    fn new(run_id: uuid::Uuid, key: &str, series: Series) -> Self {
        SeriesJson {
            run_id: run_id.simple().to_string(),
            key: key.to_owned(),
            total_points: series.total_points,
            downsampled: series.downsampled,
            step: series.points.iter().map(|p| p.step).collect(),
            timestamp: series.points.iter().map(|p| p.timestamp).collect(),
            value: series.points.iter().map(|p| Some(p.value).filter(|v| v.is_finite())).collect(),
        }
    }
}

/// `{*key}` is `<metric key>.json`; metric keys may hold slashes.
fn metric_key(raw: &str) -> Result<&str, HtmlError> {
    raw.strip_suffix(".json")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| HtmlError::page(StatusCode::NOT_FOUND, "Metric series are at /runs/RUN/metrics/KEY.json."))
}

/// `GET /runs/{run_id}/metrics/{key}.json?max_points=1000`
pub async fn run_series(
    State(state): State<AppState>,
    _user: SessionUser,
    Path((run_id, key)): Path<(String, String)>,
    Query(query): Query<SeriesQuery>,
) -> Result<Response, HtmlError> {
    let key = metric_key(&key)?;
    let id = tracking::parse_run_id(&run_id)?;
    let series = tracking::metric_series(&state.db, id, key, query.max_points()).await?;
    Ok(Json(SeriesJson::new(id, key, series)).into_response())
}

#[derive(Serialize)]
pub struct CompareJson {
    key: String,
    series: Vec<SeriesJson>,
}

/// `GET /compare/metrics/{key}.json?runs=a,b,c&max_points=500`: the series of one key in
/// several runs, for an overlaid chart. Runs without the key have empty series.
pub async fn compare_series(
    State(state): State<AppState>,
    _user: SessionUser,
    Path(key): Path<String>,
    Query(query): Query<SeriesQuery>,
) -> Result<Response, HtmlError> {
    let key = metric_key(&key)?;
    let ids = super::compare::parse_run_list(&query.runs)?;
    let max_points = query.max_points();
    let db = &state.db;
    let series: Vec<SeriesJson> = futures::stream::iter(ids)
        .map(|id| async move {
            let series = tracking::metric_series_serial(db, id, key, max_points).await?;
            Ok::<_, tracking::TrackingError>(SeriesJson::new(id, key, series))
        })
        .buffered(CONCURRENT_SERIES)
        .try_collect()
        .await?;
    Ok(Json(CompareJson { key: key.to_owned(), series }).into_response())
}
