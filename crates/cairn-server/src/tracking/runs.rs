//! Runs: creation, lifecycle, logging (params, metrics, tags, inputs) and search.

use cairn_core::search::{OrderBy, RunFilter, RunOrderKey};
use cairn_core::tracking::{
    KeyKind, generated_run_name, validate_batch_sizes, validate_key, validate_param_value, validate_run_name,
    validate_run_status, validate_tag_value,
};
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::tracking::metrics::{self, HistoryCursor, HistoryPoint, MetricPoint};
use cairn_db::tracking::runs::{self as repo, NewInput, NewRun, RunDetailRow, RunRecord, RunRow, RunUpdate};
use cairn_db::tracking::search::{self, RunPageQuery, RunQuery, ViewType};
use cairn_db::tracking::{KeyValue, experiments, now_millis};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Environment, Result, TrackingError};
use crate::audit::Actor;

pub const RUN_NAME_TAG: &str = "mlflow.runName";
pub const PARENT_RUN_TAG: &str = "mlflow.parentRunId";

/// A run id as clients send it (32 hex digits, or a dashed UUID). Anything else names no run.
pub fn parse_run_id(raw: &str) -> Result<Uuid> {
    Uuid::try_parse(raw.trim()).map_err(|_| TrackingError::NotFound(format!("Run with id={raw} not found")))
}

fn not_found(id: Uuid) -> TrackingError {
    TrackingError::NotFound(format!("Run with id={} not found", id.simple()))
}

pub(super) async fn require_run(db: &Db, id: Uuid) -> Result<RunRow> {
    repo::get(&db.pool, id).await?.ok_or_else(|| not_found(id))
}

pub(super) fn require_active(run: &RunRow) -> Result<()> {
    if run.lifecycle_stage == "active" {
        Ok(())
    } else {
        Err(TrackingError::Invalid(format!(
            "The run {} must be in the 'active' state. Current state is {}.",
            run.run_uuid.simple(),
            run.lifecycle_stage
        )))
    }
}

pub struct NewRunRequest<'a> {
    pub experiment_id: i64,
    pub user_id: Option<&'a str>,
    pub run_name: Option<&'a str>,
    pub start_time: Option<i64>,
    pub tags: Vec<KeyValue>,
}

pub async fn create_run(db: &Db, actor: &Actor, request: NewRunRequest<'_>) -> Result<RunRecord> {
    create_run_with(db, actor, request, RunExtras::default()).await
}

/// What the native API gives a new run beyond MLflow's `runs/create`, written in the same
/// transaction as the run itself.
#[derive(Default)]
pub struct RunExtras {
    pub params: Vec<KeyValue>,
    pub environment: Option<Environment>,
    /// The parent run (recorded as MLflow's `mlflow.parentRunId` tag); it must exist.
    pub parent: Option<Uuid>,
    /// The status to start in, when not RUNNING (a job's run waits as SCHEDULED).
    pub status: Option<&'static str>,
}

/// Records that `experiment_id` changed, after the transaction that created a run in it.
pub async fn touch_experiment(db: &Db, experiment_id: i64) -> Result<()> {
    Ok(experiments::touch(&db.pool, experiment_id, now_millis()).await?)
}

pub async fn create_run_with(
    db: &Db,
    actor: &Actor,
    request: NewRunRequest<'_>,
    extras: RunExtras,
) -> Result<RunRecord> {
    let mut tx = db.pool.begin().await?;
    let record = create_run_in(&mut tx, db, actor, request, extras).await?;
    tx.commit().await?;
    // Outside the transaction: holding the experiment's row lock through the audit append
    // and the commit serialised every concurrent run creation (12 ms each under load).
    touch_experiment(db, record.run.experiment_id).await?;
    Ok(record)
}

/// [`create_run_with`] inside the caller's transaction, for services that create a run
/// together with other rows (a job and its run). The caller commits, then calls
/// [`touch_experiment`].
pub async fn create_run_in(
    tx: &mut PgConnection,
    db: &Db,
    actor: &Actor,
    mut request: NewRunRequest<'_>,
    extras: RunExtras,
) -> Result<RunRecord> {
    if let Some(parent) = extras.parent {
        require_run(db, parent).await?;
        request.tags.push(KeyValue { key: PARENT_RUN_TAG.into(), value: parent.simple().to_string() });
    }
    let params = Batch { params: extras.params, ..Batch::default() };
    validate_batch(&params)?;
    validate_tags(&request.tags)?;
    let experiment = experiments::get(&mut *tx, request.experiment_id)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("No Experiment with id={} exists", request.experiment_id)))?;
    if experiment.lifecycle_stage != "active" {
        return Err(TrackingError::Invalid(format!(
            "The experiment {} must be in the 'active' state. Current state is {}.",
            experiment.id, experiment.lifecycle_stage
        )));
    }
    let tag_name = request.tags.iter().rev().find(|t| t.key == RUN_NAME_TAG).map(|t| t.value.as_str());
    let name = match (request.run_name.filter(|n| !n.is_empty()), tag_name) {
        (Some(given), _) => given.to_owned(),
        (None, Some(tagged)) => tagged.to_owned(),
        (None, None) => generated_run_name(rand::random()),
    };
    validate_run_name(&name)?;
    let mut tags = request.tags;
    tags.retain(|t| t.key != RUN_NAME_TAG);
    tags.push(KeyValue { key: RUN_NAME_TAG.into(), value: name.clone() });

    let run_uuid = Uuid::new_v4();
    let artifact_uri =
        format!("{}/{}/artifacts", experiment.artifact_location.trim_end_matches('/'), run_uuid.simple());
    let parent = parent_of(tx, &tags).await?;
    let new = NewRun {
        run_uuid,
        experiment_id: experiment.id,
        name: &name,
        user_id: request.user_id.unwrap_or(&actor.name),
        start_time: Some(request.start_time.unwrap_or_else(now_millis)),
        artifact_uri: &artifact_uri,
        parent_run_id: parent,
        created_by: actor.user_id,
    };
    let mut row = repo::insert(tx, &new).await?;
    if let Some(status) = extras.status {
        let change = RunUpdate { status: Some(status), end_time: None, name: None };
        row = repo::update(tx, row.id, &change).await?;
    }
    repo::set_tags(tx, row.id, row.experiment_id, &tags).await?;
    repo::log_params(tx, row.id, row.experiment_id, &params.params).await?;
    if let Some(environment) = &extras.environment {
        repo::set_environment(&mut *tx, row.id, environment.as_json()).await?;
    }
    let details = json!({"experiment_id": experiment.id.to_string(), "name": name});
    audit::append_in(tx, actor.event("run.create", format!("run:{}", run_uuid.simple()), details)).await?;
    // The new run is exactly what was just written: no need to read it back.
    let mut params = params.params;
    params.sort_by(|a, b| a.key.cmp(&b.key));
    params.dedup_by(|a, b| a.key == b.key);
    let tags = repo::last_per_key(&tags).into_iter().cloned().collect();
    Ok(RunRecord { run: row, params, tags, metrics: Vec::new(), inputs: Vec::new(), outputs: Vec::new() })
}

/// The internal id of the run named by an `mlflow.parentRunId` tag, if it exists.
async fn parent_of(conn: &mut PgConnection, tags: &[KeyValue]) -> Result<Option<i64>> {
    let Some(tag) = tags.iter().rev().find(|t| t.key == PARENT_RUN_TAG) else {
        return Ok(None);
    };
    let Ok(id) = Uuid::try_parse(&tag.value) else {
        return Ok(None);
    };
    Ok(repo::get(&mut *conn, id).await?.map(|r| r.id))
}

pub async fn get_run(db: &Db, id: Uuid) -> Result<RunRecord> {
    let row = require_run(db, id).await?;
    repo::load(&db.pool, &[row.id]).await?.pop().ok_or_else(|| not_found(id))
}

pub struct RunChange<'a> {
    pub status: Option<&'a str>,
    pub end_time: Option<i64>,
    pub run_name: Option<&'a str>,
}

pub async fn update_run(db: &Db, id: Uuid, change: RunChange<'_>) -> Result<RunRow> {
    update_run_in(db, None, id, change).await
}

/// [`update_run`] on behalf of `actor`, who is recorded when the run is renamed.
pub async fn update_run_by(db: &Db, actor: &Actor, id: Uuid, change: RunChange<'_>) -> Result<RunRow> {
    update_run_in(db, Some(actor), id, change).await
}

async fn update_run_in(db: &Db, actor: Option<&Actor>, id: Uuid, change: RunChange<'_>) -> Result<RunRow> {
    if let Some(status) = change.status {
        validate_run_status(status)?;
    }
    let name = change.run_name.filter(|n| !n.is_empty());
    if let Some(name) = name {
        validate_run_name(name)?;
    }
    let run = require_run(db, id).await?;
    require_active(&run)?;
    let mut tx = db.pool.begin().await?;
    let updated =
        repo::update(&mut tx, run.id, &RunUpdate { status: change.status, end_time: change.end_time, name }).await?;
    if let Some(name) = name {
        let tag = KeyValue { key: RUN_NAME_TAG.into(), value: name.to_owned() };
        repo::set_tags(&mut tx, run.id, run.experiment_id, &[tag]).await?;
        if let Some(actor) = actor.filter(|_| name != run.name) {
            let details = json!({"from": run.name, "to": name});
            audit::append_in(&mut tx, actor.event("run.rename", format!("run:{}", id.simple()), details)).await?;
        }
    }
    tx.commit().await?;
    Ok(updated)
}

pub async fn set_run_deleted(db: &Db, actor: &Actor, id: Uuid, deleted: bool) -> Result<()> {
    let run = require_run(db, id).await?;
    let (stage, action, when) =
        if deleted { ("deleted", "run.delete", Some(now_millis())) } else { ("active", "run.restore", None) };
    let mut tx = db.pool.begin().await?;
    repo::set_lifecycle(&mut *tx, run.id, stage, when).await?;
    let details = json!({"experiment_id": run.experiment_id.to_string(), "name": run.name});
    audit::append_in(&mut tx, actor.event(action, format!("run:{}", id.simple()), details)).await?;
    tx.commit().await?;
    Ok(())
}

/// One `log-batch` worth of data.
#[derive(Default)]
pub struct Batch {
    pub metrics: Vec<MetricPoint>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

fn validate_tags(tags: &[KeyValue]) -> Result<()> {
    for tag in tags {
        validate_key(KeyKind::Tag, &tag.key)?;
        validate_tag_value(&tag.key, &tag.value)?;
    }
    Ok(())
}

fn validate_batch(batch: &Batch) -> Result<()> {
    validate_batch_sizes(batch.metrics.len(), batch.params.len(), batch.tags.len())?;
    for metric in &batch.metrics {
        validate_key(KeyKind::Metric, &metric.key)?;
    }
    for param in &batch.params {
        validate_key(KeyKind::Param, &param.key)?;
        validate_param_value(&param.key, &param.value)?;
    }
    for (i, param) in batch.params.iter().enumerate() {
        if batch.params[..i].iter().any(|p| p.key == param.key && p.value != param.value) {
            return Err(TrackingError::Invalid(format!(
                "Duplicate parameter keys have been submitted with different values: '{}'.",
                param.key
            )));
        }
    }
    validate_tags(&batch.tags)
}

/// Logs metrics, params and tags of an active run in one transaction: all or nothing.
pub async fn log_batch(db: &Db, id: Uuid, batch: Batch) -> Result<()> {
    validate_batch(&batch)?;
    let run = require_run(db, id).await?;
    require_active(&run)?;
    let mut tx = db.pool.begin().await?;
    let conflicts = repo::log_params(&mut tx, run.id, run.experiment_id, &batch.params).await?;
    if let Some(c) = conflicts.first() {
        return Err(TrackingError::Invalid(format!(
            "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{}'. Attempted logging new value '{}'.",
            c.key,
            c.existing,
            id.simple(),
            c.attempted
        )));
    }
    metrics::log(&mut tx, run.id, run.experiment_id, &batch.metrics).await?;
    set_tags_in(&mut tx, &run, &batch.tags).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets tags; the tags MLflow gives meaning to update the run itself.
async fn set_tags_in(conn: &mut PgConnection, run: &RunRow, tags: &[KeyValue]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    repo::set_tags(conn, run.id, run.experiment_id, tags).await?;
    if let Some(name) = tags.iter().rev().find(|t| t.key == RUN_NAME_TAG) {
        validate_run_name(&name.value)?;
        repo::update(conn, run.id, &RunUpdate { status: None, end_time: None, name: Some(&name.value) }).await?;
    }
    if tags.iter().any(|t| t.key == PARENT_RUN_TAG) {
        let parent = parent_of(conn, tags).await?;
        repo::set_parent(&mut *conn, run.id, parent).await?;
    }
    Ok(())
}

pub async fn delete_run_tag(db: &Db, id: Uuid, key: &str) -> Result<()> {
    let run = require_run(db, id).await?;
    require_active(&run)?;
    if !repo::delete_tag(&db.pool, run.id, key).await? {
        return Err(TrackingError::NotFound(format!("No tag with name: {key} in run with id {}", id.simple())));
    }
    Ok(())
}

/// A dataset input from `log-inputs`.
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub tags: Vec<KeyValue>,
}

/// Records a run's dataset inputs. An input whose digest is a Cairn dataset version's
/// manifest digest also links the run to that version (with the input's
/// `mlflow.data.context` tag), in the same transaction, audited as `run.dataset.link`.
pub async fn log_inputs(db: &Db, actor: &Actor, id: Uuid, inputs: &[DatasetInput]) -> Result<()> {
    let run = require_run(db, id).await?;
    require_active(&run)?;
    for input in inputs {
        if input.name.is_empty() || input.digest.is_empty() {
            return Err(TrackingError::Invalid("A dataset input needs a name and a digest".into()));
        }
    }
    let mut tx = db.pool.begin().await?;
    for input in inputs {
        let tags: Vec<serde_json::Value> = input.tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect();
        let new = NewInput {
            name: &input.name,
            digest: &input.digest,
            source_type: &input.source_type,
            source: &input.source,
            schema: input.schema.as_deref(),
            profile: input.profile.as_deref(),
            tags: serde_json::Value::Array(tags),
        };
        repo::add_input(&mut tx, run.id, run.experiment_id, &new).await?;
    }
    let (digests, contexts) = input_contexts(inputs);
    let linked = cairn_db::datasets::link_run_by_digests(&mut tx, run.id, &digests, &contexts).await?;
    if !linked.is_empty() {
        let versions: Vec<_> = linked
            .iter()
            .map(|l| json!({"dataset": l.dataset, "version": l.version, "digest": l.digest, "context": l.context}))
            .collect();
        let details = json!({"via": "mlflow log-inputs", "versions": versions});
        audit::append_in(&mut tx, actor.event("run.dataset.link", format!("run:{}", id.simple()), details)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Each input's digest once (the last input with it wins) with its `mlflow.data.context`.
fn input_contexts(inputs: &[DatasetInput]) -> (Vec<String>, Vec<String>) {
    let mut by_digest: Vec<(String, String)> = Vec::new();
    for input in inputs {
        let context = input.tags.iter().rev().find(|t| t.key == "mlflow.data.context").map(|t| t.value.clone());
        let context = context.unwrap_or_default();
        match by_digest.iter_mut().find(|(d, _)| *d == input.digest) {
            Some(entry) => entry.1 = context,
            None => by_digest.push((input.digest.clone(), context)),
        }
    }
    by_digest.into_iter().unzip()
}

/// Links logged models to the run that produced them.
pub async fn log_outputs(db: &Db, id: Uuid, outputs: &[(String, i64)]) -> Result<()> {
    let run = require_run(db, id).await?;
    let mut tx = db.pool.begin().await?;
    for (model_id, _) in outputs {
        if cairn_db::tracking::logged_models::get(&mut *tx, model_id).await?.is_none() {
            return Err(TrackingError::NotFound(format!("Logged model with ID '{model_id}' not found.")));
        }
    }
    repo::add_outputs(&mut tx, run.id, outputs).await?;
    tx.commit().await?;
    Ok(())
}

/// One page of a metric's history and the cursor of the next page, if any.
pub async fn metric_history(
    db: &Db,
    id: Uuid,
    key: &str,
    after: Option<HistoryCursor>,
    max_results: i64,
) -> Result<(Vec<HistoryPoint>, Option<HistoryCursor>)> {
    let run = require_run(db, id).await?;
    let mut points = metrics::history(&db.pool, run.id, key, after, max_results + 1).await?;
    let next = if points.len() as i64 > max_results {
        points.truncate(max_results as usize);
        points.last().map(|p| HistoryCursor { step: p.step, timestamp: p.timestamp, id: p.id })
    } else {
        None
    };
    Ok((points, next))
}

pub struct RunSearch<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a RunFilter,
    pub order_by: &'a [OrderBy<RunOrderKey>],
    pub view: ViewType,
    pub offset: i64,
    pub max_results: i64,
}

/// One page of runs and whether more follow.
pub async fn search_runs(db: &Db, query: &RunSearch<'_>) -> Result<(Vec<RunRecord>, bool)> {
    let mut ids = search::run_ids(
        &db.pool,
        &RunQuery {
            experiment_ids: query.experiment_ids,
            filter: query.filter,
            order_by: query.order_by,
            view: query.view,
            offset: query.offset,
            limit: query.max_results + 1,
        },
    )
    .await?;
    let more = ids.len() as i64 > query.max_results;
    ids.truncate(query.max_results as usize);
    Ok((repo::load(&db.pool, &ids).await?, more))
}

/// A run with what its detail page shows beyond [`RunRecord`].
pub async fn get_run_details(db: &Db, id: Uuid) -> Result<(RunRecord, RunDetailRow)> {
    let record = get_run(db, id).await?;
    let details = repo::details(&db.pool, record.run.id).await?;
    Ok((record, details))
}

/// One page of an experiment's runs, in keyset order.
pub struct RunPage<'a> {
    pub experiment_id: i64,
    pub filter: &'a RunFilter,
    pub order_by: &'a [OrderBy<RunOrderKey>],
    pub view: ViewType,
    /// The last run of the previous page.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// A page of runs and, when more follow, the run to continue after.
pub async fn list_runs(db: &Db, page: &RunPage<'_>) -> Result<(Vec<RunRecord>, Option<Uuid>)> {
    experiments::get(&db.pool, page.experiment_id)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("No Experiment with id={} exists", page.experiment_id)))?;
    if let Some(after) = page.after
        && repo::get(&db.pool, after).await?.is_none()
    {
        return Err(TrackingError::Invalid("the cursor names no run; start again without it".into()));
    }
    let experiment_ids = [page.experiment_id];
    let query = RunPageQuery {
        experiment_ids: &experiment_ids,
        filter: page.filter,
        order_by: page.order_by,
        view: page.view,
        after: page.after,
        limit: page.limit + 1,
    };
    let mut ids = search::run_ids_after(&db.pool, &query).await?;
    let more = ids.len() as i64 > page.limit;
    ids.truncate(usize::try_from(page.limit).unwrap_or(0));
    let records = repo::load(&db.pool, &ids).await?;
    let next = if more { records.last().map(|r| r.run.run_uuid) } else { None };
    Ok((records, next))
}
