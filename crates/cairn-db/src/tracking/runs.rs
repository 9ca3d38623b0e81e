//! Runs with their params, tags, dataset inputs and outputs.

use std::collections::HashMap;

use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::KeyValue;
use super::metrics::LatestMetric;
use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub id: i64,
    pub run_uuid: Uuid,
    pub experiment_id: i64,
    pub name: String,
    pub status: String,
    pub user_id: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub lifecycle_stage: String,
    pub artifact_uri: String,
    pub parent_run_id: Option<i64>,
}

const COLUMNS: &str = "id, run_uuid, experiment_id, name, status, user_id, start_time, end_time, lifecycle_stage, \
                       artifact_uri, parent_run_id";

pub struct NewRun<'a> {
    pub run_uuid: Uuid,
    pub experiment_id: i64,
    pub name: &'a str,
    pub user_id: &'a str,
    pub start_time: Option<i64>,
    pub artifact_uri: &'a str,
    pub parent_run_id: Option<i64>,
    pub created_by: Option<i64>,
}

pub async fn insert(conn: &mut PgConnection, run: &NewRun<'_>) -> Result<RunRow, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO runs (run_uuid, experiment_id, name, user_id, start_time, artifact_uri, parent_run_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    )))
    .bind(run.run_uuid)
    .bind(run.experiment_id)
    .bind(run.name)
    .bind(run.user_id)
    .bind(run.start_time)
    .bind(run.artifact_uri)
    .bind(run.parent_run_id)
    .bind(run.created_by)
    .fetch_one(conn)
    .await?)
}

pub async fn get(db: impl PgExecutor<'_>, run_uuid: Uuid) -> Result<Option<RunRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM runs WHERE run_uuid = $1")))
        .bind(run_uuid)
        .fetch_optional(db)
        .await?)
}

/// The run locked for update, so concurrent writers to one run serialise.
pub async fn get_for_update(conn: &mut PgConnection, run_uuid: Uuid) -> Result<Option<RunRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM runs WHERE run_uuid = $1 FOR UPDATE")))
        .bind(run_uuid)
        .fetch_optional(conn)
        .await?)
}

pub async fn by_ids(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<RunRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM runs WHERE id = ANY($1)")))
        .bind(ids)
        .fetch_all(db)
        .await?)
}

pub struct RunUpdate<'a> {
    pub status: Option<&'a str>,
    pub end_time: Option<i64>,
    pub name: Option<&'a str>,
}

pub async fn update(conn: &mut PgConnection, id: i64, change: &RunUpdate<'_>) -> Result<RunRow, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE runs SET status = coalesce($2, status), end_time = coalesce($3, end_time), name = coalesce($4, name) \
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.status)
    .bind(change.end_time)
    .bind(change.name)
    .fetch_one(conn)
    .await?)
}

pub async fn set_lifecycle(
    db: impl PgExecutor<'_>,
    id: i64,
    stage: &str,
    deleted_time: Option<i64>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE runs SET lifecycle_stage = $2, deleted_time = $3 WHERE id = $1")
        .bind(id)
        .bind(stage)
        .bind(deleted_time)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_parent(db: impl PgExecutor<'_>, id: i64, parent: Option<i64>) -> Result<(), DbError> {
    sqlx::query("UPDATE runs SET parent_run_id = $2 WHERE id = $1").bind(id).bind(parent).execute(db).await?;
    Ok(())
}

/// A param whose logged value differs from the one being logged now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamConflict {
    pub key: String,
    pub existing: String,
    pub attempted: String,
}

/// Logs params (immutable once logged). Returns the conflicts; the caller rolls back when
/// there are any. Logging the same value again is not a conflict.
pub async fn log_params(
    conn: &mut PgConnection,
    run_id: i64,
    experiment_id: i64,
    params: &[KeyValue],
) -> Result<Vec<ParamConflict>, DbError> {
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = params.iter().map(|p| p.key.as_str()).collect();
    let values: Vec<&str> = params.iter().map(|p| p.value.as_str()).collect();
    sqlx::query(
        "INSERT INTO run_params (run_id, experiment_id, key, value) \
         SELECT $1, $2, k, v FROM UNNEST($3::text[], $4::text[]) AS t(k, v) ON CONFLICT (run_id, key) DO NOTHING",
    )
    .bind(run_id)
    .bind(experiment_id)
    .bind(&keys)
    .bind(&values)
    .execute(&mut *conn)
    .await?;
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM run_params WHERE run_id = $1 AND key = ANY($2)")
            .bind(run_id)
            .bind(&keys)
            .fetch_all(&mut *conn)
            .await?;
    let stored: HashMap<String, String> = stored.into_iter().collect();
    Ok(params
        .iter()
        .filter_map(|p| {
            let existing = stored.get(&p.key)?;
            (existing != &p.value).then(|| ParamConflict {
                key: p.key.clone(),
                existing: existing.clone(),
                attempted: p.value.clone(),
            })
        })
        .collect())
}

/// Sets tags (last value wins for a key given twice).
/// The tags that [`set_tags`] stores: the last value given for each key, sorted by key.
pub fn last_per_key(tags: &[KeyValue]) -> Vec<&KeyValue> {
    let mut last: Vec<&KeyValue> = Vec::with_capacity(tags.len());
    for tag in tags.iter().rev() {
        if !last.iter().any(|t| t.key == tag.key) {
            last.push(tag);
        }
    }
    last.sort_by(|a, b| a.key.cmp(&b.key));
    last
}

pub async fn set_tags(
    conn: &mut PgConnection,
    run_id: i64,
    experiment_id: i64,
    tags: &[KeyValue],
) -> Result<(), DbError> {
    if tags.is_empty() {
        return Ok(());
    }
    let last = last_per_key(tags);
    let keys: Vec<&str> = last.iter().map(|t| t.key.as_str()).collect();
    let values: Vec<&str> = last.iter().map(|t| t.value.as_str()).collect();
    sqlx::query(
        "INSERT INTO run_tags (run_id, experiment_id, key, value) SELECT $1, $2, k, v FROM UNNEST($3::text[], $4::text[]) AS t(k, v) \
         ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(run_id)
    .bind(experiment_id)
    .bind(&keys)
    .bind(&values)
    .execute(conn)
    .await?;
    Ok(())
}

/// Returns false when the tag did not exist.
pub async fn delete_tag(db: impl PgExecutor<'_>, run_id: i64, key: &str) -> Result<bool, DbError> {
    let done =
        sqlx::query("DELETE FROM run_tags WHERE run_id = $1 AND key = $2").bind(run_id).bind(key).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

/// A dataset input as stored.
#[derive(Debug, Clone, FromRow)]
pub struct InputRow {
    pub run_id: i64,
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub tags: serde_json::Value,
}

pub struct NewInput<'a> {
    pub name: &'a str,
    pub digest: &'a str,
    pub source_type: &'a str,
    pub source: &'a str,
    pub schema: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub tags: serde_json::Value,
}

/// Records a dataset input of a run; the dataset row is shared per experiment, name and digest.
pub async fn add_input(
    conn: &mut PgConnection,
    run_id: i64,
    experiment_id: i64,
    input: &NewInput<'_>,
) -> Result<(), DbError> {
    let dataset_id: i64 = sqlx::query_scalar(
        "WITH ins AS (INSERT INTO input_datasets (experiment_id, name, digest, source_type, source, schema, profile) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (experiment_id, name, digest) DO NOTHING RETURNING id) \
         SELECT id FROM ins UNION ALL \
         SELECT id FROM input_datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3 LIMIT 1",
    )
    .bind(experiment_id)
    .bind(input.name)
    .bind(input.digest)
    .bind(input.source_type)
    .bind(input.source)
    .bind(input.schema)
    .bind(input.profile)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO run_inputs (run_id, dataset_id, tags) VALUES ($1, $2, $3) \
         ON CONFLICT (run_id, dataset_id) DO UPDATE SET tags = EXCLUDED.tags",
    )
    .bind(run_id)
    .bind(dataset_id)
    .bind(&input.tags)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_outputs(conn: &mut PgConnection, run_id: i64, outputs: &[(String, i64)]) -> Result<(), DbError> {
    let ids: Vec<&str> = outputs.iter().map(|(id, _)| id.as_str()).collect();
    let steps: Vec<i64> = outputs.iter().map(|(_, step)| *step).collect();
    sqlx::query(
        "INSERT INTO run_outputs (run_id, model_id, step) SELECT $1, m, s FROM UNNEST($2::text[], $3::int8[]) AS t(m, s) \
         ON CONFLICT (run_id, model_id) DO UPDATE SET step = EXCLUDED.step",
    )
    .bind(run_id)
    .bind(&ids)
    .bind(&steps)
    .execute(conn)
    .await?;
    Ok(())
}

/// A run with everything MLflow shows about it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: RunRow,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    pub metrics: Vec<LatestMetric>,
    pub inputs: Vec<InputRow>,
    pub outputs: Vec<(String, i64)>,
}

/// A run and all its children in one row: each child table aggregated into arrays.
#[derive(FromRow)]
struct LoadedRow {
    #[sqlx(flatten)]
    run: RunRow,
    param_keys: Option<Vec<String>>,
    param_values: Option<Vec<String>>,
    tag_keys: Option<Vec<String>>,
    tag_values: Option<Vec<String>>,
    metric_keys: Option<Vec<String>>,
    metric_values: Option<Vec<f64>>,
    metric_timestamps: Option<Vec<i64>>,
    metric_steps: Option<Vec<i64>>,
    inputs: Option<sqlx::types::Json<Vec<LoadedInput>>>,
    output_models: Option<Vec<String>>,
    output_steps: Option<Vec<i64>>,
}

/// A dataset input as [`LOAD`] aggregates it (JSON: inputs are rare and have six fields).
#[derive(serde::Deserialize)]
struct LoadedInput {
    name: String,
    digest: String,
    source_type: String,
    source: String,
    schema: Option<String>,
    profile: Option<String>,
    tags: serde_json::Value,
}

/// Every run of `$1` with its children, in the order of the array. Each child table is read
/// through its `(run_id, ...)` primary key and folded into arrays (inputs ordered by dataset
/// name), so a page of runs is one statement and one round trip: with a query per child
/// table, a page of 100 runs cost six round trips and six pooled connections, which took
/// longer than the search itself (bench/RESULTS.md). The text is constant, so the
/// connection's prepared statement is reused. Params, tags and metrics are sorted by key in
/// [`LoadedRow::into_record`]: an `ORDER BY` inside each `array_agg` sorted every run's
/// arrays one by one and made the statement half as slow again (1.9 -> 3.0 ms for 100 runs).
const LOAD: &str = "SELECT r.id, r.run_uuid, r.experiment_id, r.name, r.status, r.user_id, r.start_time, r.end_time, \
     r.lifecycle_stage, r.artifact_uri, r.parent_run_id, \
     p.keys AS param_keys, p.vals AS param_values, t.keys AS tag_keys, t.vals AS tag_values, \
     m.keys AS metric_keys, m.vals AS metric_values, m.timestamps AS metric_timestamps, m.steps AS metric_steps, \
     (SELECT json_agg(json_build_object('name', d.name, 'digest', d.digest, 'source_type', d.source_type, \
       'source', d.source, 'schema', d.schema, 'profile', d.profile, 'tags', i.tags) ORDER BY d.name) \
      FROM run_inputs i JOIN input_datasets d ON d.id = i.dataset_id WHERE i.run_id = r.id) AS inputs, \
     o.models AS output_models, o.steps AS output_steps \
     FROM unnest($1::int8[]) WITH ORDINALITY AS u(id, ord) JOIN runs r ON r.id = u.id \
     CROSS JOIN LATERAL (SELECT array_agg(key) AS keys, array_agg(value) AS vals \
       FROM run_params WHERE run_id = r.id) p \
     CROSS JOIN LATERAL (SELECT array_agg(key) AS keys, array_agg(value) AS vals \
       FROM run_tags WHERE run_id = r.id) t \
     CROSS JOIN LATERAL (SELECT array_agg(key) AS keys, array_agg(value) AS vals, \
       array_agg(timestamp) AS timestamps, array_agg(step) AS steps \
       FROM latest_metrics WHERE run_id = r.id) m \
     CROSS JOIN LATERAL (SELECT array_agg(model_id) AS models, array_agg(step) AS steps \
       FROM run_outputs WHERE run_id = r.id) o \
     ORDER BY u.ord";

/// Loads whole runs in the order of `ids` (each once; ids of no run are skipped), in one
/// statement.
pub async fn load(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<RunRecord>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let unique: Vec<i64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    let rows: Vec<LoadedRow> = sqlx::query_as(LOAD).bind(&unique).fetch_all(db).await?;
    Ok(rows.into_iter().map(LoadedRow::into_record).collect())
}

impl LoadedRow {
    fn into_record(self) -> RunRecord {
        let run_id = self.run.id;
        // Keys are unique within a run (primary keys), so the unstable sorts are deterministic.
        let pairs = |keys: Option<Vec<String>>, values: Option<Vec<String>>| -> Vec<KeyValue> {
            let mut pairs: Vec<KeyValue> = keys
                .unwrap_or_default()
                .into_iter()
                .zip(values.unwrap_or_default())
                .map(|(key, value)| KeyValue { key, value })
                .collect();
            pairs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            pairs
        };
        let mut metrics: Vec<LatestMetric> = self
            .metric_keys
            .unwrap_or_default()
            .into_iter()
            .zip(self.metric_values.unwrap_or_default())
            .zip(self.metric_timestamps.unwrap_or_default())
            .zip(self.metric_steps.unwrap_or_default())
            .map(|(((key, value), timestamp), step)| LatestMetric { run_id, key, value, timestamp, step })
            .collect();
        metrics.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let inputs = self
            .inputs
            .map(|json| json.0)
            .unwrap_or_default()
            .into_iter()
            .map(|i| InputRow {
                run_id,
                name: i.name,
                digest: i.digest,
                source_type: i.source_type,
                source: i.source,
                schema: i.schema,
                profile: i.profile,
                tags: i.tags,
            })
            .collect();
        let outputs =
            self.output_models.unwrap_or_default().into_iter().zip(self.output_steps.unwrap_or_default()).collect();
        RunRecord {
            params: pairs(self.param_keys, self.param_values),
            tags: pairs(self.tag_keys, self.tag_values),
            metrics,
            inputs,
            outputs,
            run: self.run,
        }
    }
}

/// What a run's detail page shows beyond [`RunRecord`]: its environment snapshot, its
/// parent's public id and how many active child runs it has.
#[derive(Debug, Clone, FromRow)]
pub struct RunDetailRow {
    pub environment: Option<serde_json::Value>,
    pub parent_run_uuid: Option<Uuid>,
    pub child_runs: i64,
}

pub async fn details(db: impl PgExecutor<'_>, run_id: i64) -> Result<RunDetailRow, DbError> {
    Ok(sqlx::query_as(
        "SELECT r.environment, p.run_uuid AS parent_run_uuid, \
         (SELECT count(*) FROM runs c WHERE c.parent_run_id = r.id AND c.lifecycle_stage = 'active') AS child_runs \
         FROM runs r LEFT JOIN runs p ON p.id = r.parent_run_id WHERE r.id = $1",
    )
    .bind(run_id)
    .fetch_one(db)
    .await?)
}

/// Replaces the run's environment snapshot.
pub async fn set_environment(
    db: impl PgExecutor<'_>,
    run_id: i64,
    environment: &serde_json::Value,
) -> Result<(), DbError> {
    sqlx::query("UPDATE runs SET environment = $2 WHERE id = $1").bind(run_id).bind(environment).execute(db).await?;
    Ok(())
}
