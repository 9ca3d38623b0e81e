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
