//! Metric series for charts: the whole history of one key, downsampled on the server when
//! it is longer than the chart can show.

use cairn_db::Db;
use cairn_db::tracking::metrics::{self, Bucket, BucketPlan, SeriesPoint};
use uuid::Uuid;

use super::Result;
use super::runs::require_run;

/// Points per bucket in a downsampled series: first, min, max and last.
const POINTS_PER_BUCKET: usize = 4;
/// Most connections one series is computed on.
const MAX_PARTS: usize = 4;

/// A metric's series as a chart gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// How many points the metric has in all.
    pub total_points: i64,
    /// Whether `points` is a downsampled selection rather than the whole history.
    pub downsampled: bool,
    /// In step, then timestamp, order.
    pub points: Vec<SeriesPoint>,
}

/// The series of `key` in run `id`, at most `max_points` points (at least 4). A longer
/// series is cut into `max_points / 4` buckets of steps and each bucket keeps its first,
/// min, max and last points, so spikes, the global extremes and both ends survive.
///
/// The buckets are computed by PostgreSQL in one pass over the points; that pass is split
/// into [`parts`] ranges of buckets, run at once on as many connections, so a long series
/// uses the database's idle cores rather than one.
pub async fn metric_series(db: &Db, id: Uuid, key: &str, max_points: usize) -> Result<Series> {
    metric_series_in(db, id, key, max_points, parts()).await
}

/// [`metric_series`] on one connection: for callers that fetch several series at once and
/// so already keep several connections busy (the compare view's overlaid charts).
pub async fn metric_series_serial(db: &Db, id: Uuid, key: &str, max_points: usize) -> Result<Series> {
    metric_series_in(db, id, key, max_points, 1).await
}

async fn metric_series_in(db: &Db, id: Uuid, key: &str, max_points: usize, parts: usize) -> Result<Series> {
    let run = require_run(db, id).await?;
    // A series that fits is read whole; one point more says it does not.
    let limit = i64::try_from(max_points).unwrap_or(i64::MAX - 1);
    let head = metrics::history(&db.pool, run.id, key, None, limit + 1).await?;
    if head.len() <= max_points {
        let points: Vec<SeriesPoint> =
            head.into_iter().map(|p| SeriesPoint { step: p.step, timestamp: p.timestamp, value: p.value }).collect();
        return Ok(Series { total_points: points.len() as i64, downsampled: false, points });
    }
    let Some((lo, hi)) = metrics::step_bounds(&db.pool, run.id, key).await? else {
        return Ok(Series { total_points: 0, downsampled: false, points: Vec::new() });
    };
    let count = i32::try_from((max_points / POINTS_PER_BUCKET).max(1)).unwrap_or(i32::MAX);
    let plans = split(BucketPlan { lo, hi, count, first: 1, last: count }, parts);
    let parts =
        futures::future::try_join_all(plans.into_iter().map(|plan| metrics::buckets(&db.pool, run.id, key, plan)))
            .await?;
    let buckets: Vec<Bucket> = parts.into_iter().flatten().collect();
    let total_points = buckets.iter().map(|b| b.points).sum();
    Ok(Series { total_points, downsampled: true, points: flatten(&buckets) })
}

/// Parts one series is computed in: one per core of this machine (the database is usually
/// on it or on one like it), at most [`MAX_PARTS`], so a compare view fetching several series
/// at once does not take the whole connection pool.
fn parts() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).clamp(1, MAX_PARTS)
}

/// `plan`'s buckets cut into at most `parts` contiguous ranges of nearly equal size.
fn split(plan: BucketPlan, parts: usize) -> Vec<BucketPlan> {
    let buckets = i64::from(plan.last) - i64::from(plan.first) + 1;
    let parts = i64::try_from(parts).unwrap_or(1).clamp(1, buckets.max(1));
    (0..parts)
        .filter_map(|i| {
            let first = i64::from(plan.first) + buckets * i / parts;
            let last = i64::from(plan.first) + buckets * (i + 1) / parts - 1;
            Some(BucketPlan { first: i32::try_from(first).ok()?, last: i32::try_from(last).ok()?, ..plan })
        })
        .filter(|p| p.first <= p.last)
        .collect()
}

/// The distinct points of the buckets, in step, timestamp order.
fn flatten(buckets: &[Bucket]) -> Vec<SeriesPoint> {
    let mut points: Vec<SeriesPoint> = Vec::with_capacity(buckets.len() * POINTS_PER_BUCKET);
    for bucket in buckets {
        let mut own: Vec<SeriesPoint> =
            [Some(bucket.first), bucket.min, bucket.max, Some(bucket.last)].into_iter().flatten().collect();
        own.sort_by_key(|p| (p.step, p.timestamp));
        own.dedup_by(|a, b| a.step == b.step && a.timestamp == b.timestamp && a.value.to_bits() == b.value.to_bits());
        points.extend(own);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: i64, value: f64) -> SeriesPoint {
        SeriesPoint { step, timestamp: step * 10, value }
    }

    #[test]
    fn plans_split_into_contiguous_ranges_covering_every_bucket() {
        let plan = BucketPlan { lo: 0, hi: 999, count: 250, first: 1, last: 250 };
        let ranges: Vec<(i32, i32)> = split(plan, 4).iter().map(|p| (p.first, p.last)).collect();
        assert_eq!(ranges, [(1, 62), (63, 125), (126, 187), (188, 250)]);
        assert_eq!(split(plan, 1), [plan]);
        let one = BucketPlan { count: 1, last: 1, ..plan };
        assert_eq!(split(one, 4), [one], "never more parts than buckets");
    }

    #[test]
    fn buckets_flatten_in_order_without_duplicates() {
        let buckets = [
            Bucket {
                bucket: 1,
                points: 10,
                first: point(0, 5.0),
                last: point(9, 1.0),
                min: Some(point(9, 1.0)),
                max: Some(point(3, 8.0)),
            },
            Bucket { bucket: 2, points: 1, first: point(10, 2.0), last: point(10, 2.0), min: None, max: None },
        ];
        let steps: Vec<i64> = flatten(&buckets).iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 3, 9, 10]);
    }
}
