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

/// A metric's whole history cut into `buckets` equal ranges of steps (integer division of
/// the span from the first to the last step), with the first, min, max and last point of
/// each non-empty bucket: what a chart needs to draw a long series faithfully, spikes
/// included.
///
/// Each bucket is one range scan of the `(run_id, key, step, ...)` index, aggregated without
/// a sort or a hash table (PostgreSQL cannot estimate the number of buckets, and a
/// misestimate made grouping plans slow), so the cost is one pass over the series; the
/// first and last points are then fetched by their step, one index probe each. Min and max
/// come from aggregates over `[value, step, timestamp]` arrays, which carry each extreme's
/// position; their steps and timestamps travel as float8 (exact below 2^53). NaN is left out
/// of min and max: PostgreSQL would rank it above every number. JIT compilation is turned
/// off for the statement: on a million points it cost more than the query.
pub async fn buckets(pool: &sqlx::PgPool, run_id: i64, key: &str, buckets: i32) -> Result<Vec<Bucket>, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let rows: Vec<BucketRow> = sqlx::query_as(
        "WITH bounds AS (SELECT min(step) AS lo, max(step) AS hi FROM metrics WHERE run_id = $1 AND key = $2), \
         edges AS ( \
           SELECT b AS bucket, lo + floor((hi - lo + 1)::numeric * (b - 1) / $3)::bigint AS start_step, \
                  lo + floor((hi - lo + 1)::numeric * b / $3)::bigint AS end_step \
           FROM bounds CROSS JOIN generate_series(1, $3) AS b WHERE lo IS NOT NULL) \
         SELECT e.bucket, a.points, \
                f.step AS first_step, f.timestamp AS first_timestamp, f.value AS first_value, \
                l.step AS last_step, l.timestamp AS last_timestamp, l.value AS last_value, \
                a.low[2]::bigint AS min_step, a.low[3]::bigint AS min_timestamp, a.low[1] AS min_value, \
                a.high[2]::bigint AS max_step, a.high[3]::bigint AS max_timestamp, a.high[1] AS max_value \
         FROM edges e \
         CROSS JOIN LATERAL ( \
           SELECT count(*) AS points, min(step) AS first_step, max(step) AS last_step, \
                  min(ARRAY[value, step, timestamp]) FILTER (WHERE value <> 'NaN') AS low, \
                  max(ARRAY[value, step, timestamp]) FILTER (WHERE value <> 'NaN') AS high \
           FROM metrics WHERE run_id = $1 AND key = $2 AND step >= e.start_step AND step < e.end_step) a \
         CROSS JOIN LATERAL (SELECT step, timestamp, value FROM metrics \
           WHERE run_id = $1 AND key = $2 AND step = a.first_step ORDER BY timestamp, id LIMIT 1) f \
         CROSS JOIN LATERAL (SELECT step, timestamp, value FROM metrics \
           WHERE run_id = $1 AND key = $2 AND step = a.last_step ORDER BY timestamp DESC, id DESC LIMIT 1) l \
         WHERE a.points > 0 ORDER BY e.bucket",
    )
    .bind(run_id)
    .bind(key)
    .bind(buckets)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Bucket::from).collect())
}
