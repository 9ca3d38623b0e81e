//! Metric history and latest values. A batch is written with one statement: the points go
//! into the history and the newest point per key (greatest step, then timestamp, then
//! value, as MLflow orders them) is upserted into `latest_metrics`, which only moves forward.

use sqlx::{FromRow, PgConnection, PgExecutor};

use crate::DbError;

#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct LatestMetric {
    pub run_id: i64,
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

pub async fn log(
    conn: &mut PgConnection,
    run_id: i64,
    experiment_id: i64,
    points: &[MetricPoint],
) -> Result<(), DbError> {
    if points.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = points.iter().map(|p| p.key.as_str()).collect();
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let timestamps: Vec<i64> = points.iter().map(|p| p.timestamp).collect();
    let steps: Vec<i64> = points.iter().map(|p| p.step).collect();
    sqlx::query(
        "WITH points AS (SELECT * FROM UNNEST($3::text[], $4::float8[], $5::int8[], $6::int8[]) AS p(key, value, timestamp, step)), \
         history AS (INSERT INTO metrics (run_id, key, step, timestamp, value) SELECT $1, key, step, timestamp, value FROM points) \
         INSERT INTO latest_metrics AS l (run_id, experiment_id, key, step, timestamp, value) \
         SELECT DISTINCT ON (key) $1, $2, key, step, timestamp, value FROM points ORDER BY key, step DESC, timestamp DESC, value DESC \
         ON CONFLICT (run_id, key) DO UPDATE SET step = EXCLUDED.step, timestamp = EXCLUDED.timestamp, value = EXCLUDED.value \
         WHERE (EXCLUDED.step, EXCLUDED.timestamp, EXCLUDED.value) > (l.step, l.timestamp, l.value)",
    )
    .bind(run_id)
    .bind(experiment_id)
    .bind(&keys)
    .bind(&values)
    .bind(&timestamps)
    .bind(&steps)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a page of history starts: after this (step, timestamp, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub step: i64,
    pub timestamp: i64,
    pub id: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct HistoryPoint {
    pub id: i64,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

/// One page of a metric's history in (step, timestamp) order, keyset-paged.
pub async fn history(
    db: impl PgExecutor<'_>,
    run_id: i64,
    key: &str,
    after: Option<HistoryCursor>,
    limit: i64,
) -> Result<Vec<HistoryPoint>, DbError> {
    let after = after.unwrap_or(HistoryCursor { step: i64::MIN, timestamp: i64::MIN, id: i64::MIN });
    Ok(sqlx::query_as(
        "SELECT id, value, timestamp, step FROM metrics WHERE run_id = $1 AND key = $2 \
         AND (step, timestamp, id) > ($3, $4, $5) ORDER BY step, timestamp, id LIMIT $6",
    )
    .bind(run_id)
    .bind(key)
    .bind(after.step)
    .bind(after.timestamp)
    .bind(after.id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A point of a metric series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesPoint {
    pub step: i64,
    pub timestamp: i64,
    pub value: f64,
}

/// One bucket of a downsampled series: how many points fell into it, its first and last
/// points (in step, timestamp order) and the points holding its smallest and largest
/// values (none when every value in the bucket is NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub bucket: i32,
    pub points: i64,
    pub first: SeriesPoint,
    pub last: SeriesPoint,
    pub min: Option<SeriesPoint>,
    pub max: Option<SeriesPoint>,
}

#[derive(FromRow)]
struct BucketRow {
    bucket: i32,
    points: i64,
    first_step: i64,
    first_timestamp: i64,
    first_value: f64,
    last_step: i64,
    last_timestamp: i64,
    last_value: f64,
    min_step: Option<i64>,
    min_timestamp: Option<i64>,
    min_value: Option<f64>,
    max_step: Option<i64>,
    max_timestamp: Option<i64>,
    max_value: Option<f64>,
}

impl From<BucketRow> for Bucket {
    fn from(r: BucketRow) -> Self {
        let point = |step: Option<i64>, timestamp: Option<i64>, value: Option<f64>| {
            Some(SeriesPoint { step: step?, timestamp: timestamp?, value: value? })
        };
        Bucket {
            bucket: r.bucket,
            points: r.points,
            first: SeriesPoint { step: r.first_step, timestamp: r.first_timestamp, value: r.first_value },
            last: SeriesPoint { step: r.last_step, timestamp: r.last_timestamp, value: r.last_value },
            min: point(r.min_step, r.min_timestamp, r.min_value),
            max: point(r.max_step, r.max_timestamp, r.max_value),
        }
    }
}

/// The smallest and largest step of a metric; `None` when it has no points. Two index probes.
pub async fn step_bounds(db: impl PgExecutor<'_>, run_id: i64, key: &str) -> Result<Option<(i64, i64)>, DbError> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT min(step), max(step) FROM metrics WHERE run_id = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .fetch_one(db)
            .await?;
    Ok(lo.zip(hi))
}

/// Which buckets to compute: the steps `lo..=hi` cut into `count` equal ranges (integer
/// division of the span), of which buckets `first..=last` (numbered from 1) are wanted. A
/// series can be computed in several parts, on several connections, each giving the same
/// edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketPlan {
    pub lo: i64,
    pub hi: i64,
    pub count: i32,
    pub first: i32,
    pub last: i32,
}

/// Slices per bucket: the unit that locates a bucket's min and max (see [`buckets`]).
const SLICES_PER_BUCKET: i32 = 8;

/// Buckets `plan.first..=plan.last` of a metric's history, with the first, min, max and last
/// point of each non-empty one: what a chart needs to draw a long series faithfully, spikes
/// included.
///
/// The cost is one pass over the points with the cheapest aggregates there are (count, min
/// and max of a float8) and a few index probes per bucket. Each bucket is cut into
/// [`SLICES_PER_BUCKET`] slices, and each slice is one range scan of the covering
/// `(run_id, key, step, timestamp, id) INCLUDE (value)` index (an index-only scan), counted
/// and aggregated without a sort or a hash table (PostgreSQL cannot estimate the number of
/// buckets; a misestimate made grouping plans slow). A bucket's min and max values are the
/// extremes of its slices; their points are then found by scanning only the slice that
/// holds each, and the first and last points by one index probe each. (Carrying each
/// extreme's position through the pass in `min(ARRAY[value, step, timestamp])` cost three
/// times as much: building two arrays per point.)
///
/// NaN is left out of min and max: PostgreSQL ranks it above every number, so `min` only
/// sees it when a slice holds nothing else, and a slice whose `max` is NaN (rare) is
/// aggregated again without it. JIT compilation is turned off for the statement: on a
/// million points it cost more than the query.
pub async fn buckets(pool: &sqlx::PgPool, run_id: i64, key: &str, plan: BucketPlan) -> Result<Vec<Bucket>, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let rows: Vec<BucketRow> = sqlx::query_as(
        "WITH slices AS ( \
           SELECT s, (s - 1) / $7 + 1 AS bucket, \
                  $3 + floor(($4 - $3 + 1)::numeric * (s - 1) / ($5 * $7))::bigint AS start_step, \
                  $3 + floor(($4 - $3 + 1)::numeric * s / ($5 * $7))::bigint AS end_step \
           FROM generate_series(($6 - 1) * $7 + 1, $8 * $7) AS s), \
         sliced AS ( \
           SELECT sl.s, sl.bucket, sl.start_step, sl.end_step, a.points, NULLIF(a.low, 'NaN') AS low, \
                  CASE WHEN a.high = 'NaN' THEN (SELECT max(value) FROM metrics WHERE run_id = $1 AND key = $2 \
                      AND step >= sl.start_step AND step < sl.end_step AND value <> 'NaN') ELSE a.high END AS high \
           FROM slices sl CROSS JOIN LATERAL ( \
             SELECT count(*) AS points, min(value) AS low, max(value) AS high FROM metrics \
             WHERE run_id = $1 AND key = $2 AND step >= sl.start_step AND step < sl.end_step) a \
           WHERE a.points > 0), \
         buckets AS ( \
           SELECT bucket, sum(points)::int8 AS points, min(start_step) AS start_step, max(end_step) AS end_step, \
                  min(low) AS low, max(high) AS high, \
                  (array_agg(start_step ORDER BY low, s) FILTER (WHERE low IS NOT NULL))[1] AS low_start, \
                  (array_agg(end_step ORDER BY low, s) FILTER (WHERE low IS NOT NULL))[1] AS low_end, \
                  (array_agg(start_step ORDER BY high DESC, s) FILTER (WHERE high IS NOT NULL))[1] AS high_start, \
                  (array_agg(end_step ORDER BY high DESC, s) FILTER (WHERE high IS NOT NULL))[1] AS high_end \
           FROM sliced GROUP BY bucket) \
         SELECT b.bucket::int4 AS bucket, b.points, \
                f.step AS first_step, f.timestamp AS first_timestamp, f.value AS first_value, \
                l.step AS last_step, l.timestamp AS last_timestamp, l.value AS last_value, \
                mn.step AS min_step, mn.timestamp AS min_timestamp, mn.value AS min_value, \
                mx.step AS max_step, mx.timestamp AS max_timestamp, mx.value AS max_value \
         FROM buckets b \
         CROSS JOIN LATERAL (SELECT step, timestamp, value FROM metrics WHERE run_id = $1 AND key = $2 \
           AND step >= b.start_step AND step < b.end_step ORDER BY step, timestamp, id LIMIT 1) f \
         CROSS JOIN LATERAL (SELECT step, timestamp, value FROM metrics WHERE run_id = $1 AND key = $2 \
           AND step >= b.start_step AND step < b.end_step ORDER BY step DESC, timestamp DESC, id DESC LIMIT 1) l \
         LEFT JOIN LATERAL (SELECT step, timestamp, value FROM metrics WHERE run_id = $1 AND key = $2 \
           AND step >= b.low_start AND step < b.low_end AND value = b.low ORDER BY step, timestamp, id LIMIT 1) mn ON true \
         LEFT JOIN LATERAL (SELECT step, timestamp, value FROM metrics WHERE run_id = $1 AND key = $2 \
           AND step >= b.high_start AND step < b.high_end AND value = b.high ORDER BY step, timestamp, id LIMIT 1) mx ON true \
         ORDER BY b.bucket",
    )
    .bind(run_id)
    .bind(key)
    .bind(plan.lo)
    .bind(plan.hi)
    .bind(plan.count)
    .bind(plan.first)
    .bind(SLICES_PER_BUCKET)
    .bind(plan.last)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Bucket::from).collect())
}
