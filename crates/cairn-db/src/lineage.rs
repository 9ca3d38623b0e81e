//! The lineage graph's edges, read a layer at a time: dataset version -> run (what the run
//! used, `run_dataset_versions`), run -> model version (`model_versions.run_id`). Each
//! function takes the ids of a whole layer (`= ANY($1)`) and returns the next one, so a
//! walk costs one query per hop however wide the graph is. Deployments, the layer after
//! model versions, arrive with their own tables.

use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::DbError;

/// A dataset version, as a node.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DatasetVersionNode {
    pub id: i64,
    pub dataset: String,
    pub version: i32,
    pub digest: String,
    /// The dataset's project.
    pub project_id: i64,
}

/// A run, as a node.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RunNode {
    pub id: i64,
    pub run_uuid: Uuid,
    pub name: String,
    pub experiment_id: i64,
    pub deleted: bool,
    /// The project of the run's experiment.
    pub project_id: i64,
}

/// A model version, as a node.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ModelVersionNode {
    pub id: i64,
    pub model: String,
    pub version: i64,
    /// The model's project.
    pub project_id: i64,
}

/// An edge from a dataset version to a run that used it, with how it used it.
#[derive(Debug, Clone, FromRow)]
pub struct InputEdge {
    pub run_id: i64,
    #[sqlx(flatten)]
    pub dataset: DatasetVersionNode,
    pub context: String,
}

/// An edge into or out of a run: `other_id` is the dataset version (downstream walks) or
/// the model version (upstream walks) at the other end.
#[derive(Debug, Clone, FromRow)]
pub struct RunEdge {
    pub other_id: i64,
    #[sqlx(flatten)]
    pub run: RunNode,
    pub context: String,
}

/// An edge from a run to a model version registered from it.
#[derive(Debug, Clone, FromRow)]
pub struct ModelEdge {
    pub run_id: i64,
    #[sqlx(flatten)]
    pub model: ModelVersionNode,
}

const RUN_NODE: &str = "r.id, r.run_uuid, r.name, r.experiment_id, r.lifecycle_stage = 'deleted' AS deleted, \
                        (SELECT e.project_id FROM experiments e WHERE e.id = r.experiment_id) AS project_id";

pub async fn dataset_version(
    db: impl PgExecutor<'_>,
    name: &str,
    version: i32,
) -> Result<Option<DatasetVersionNode>, DbError> {
    Ok(sqlx::query_as(
        "SELECT v.id, d.name AS dataset, v.version, v.digest, d.project_id FROM dataset_versions v \
         JOIN datasets d ON d.id = v.dataset_id WHERE d.name = $1 AND v.version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(db)
    .await?)
}

pub async fn run(db: impl PgExecutor<'_>, run_uuid: Uuid) -> Result<Option<RunNode>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {RUN_NODE} FROM runs r WHERE r.run_uuid = $1")))
        .bind(run_uuid)
        .fetch_optional(db)
        .await?)
}

pub async fn model_version(
    db: impl PgExecutor<'_>,
    name: &str,
    version: i64,
) -> Result<Option<ModelVersionNode>, DbError> {
    Ok(sqlx::query_as(
        "SELECT v.id, m.name AS model, v.version, m.project_id FROM model_versions v \
         JOIN registered_models m ON m.id = v.model_id WHERE m.name = $1 AND v.version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(db)
    .await?)
}

/// Downstream of dataset versions: the runs that used them (at most `limit` edges).
pub async fn runs_using(db: impl PgExecutor<'_>, version_ids: &[i64], limit: i64) -> Result<Vec<RunEdge>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT l.version_id AS other_id, {RUN_NODE}, l.context FROM run_dataset_versions l \
         JOIN runs r ON r.id = l.run_id WHERE l.version_id = ANY($1) ORDER BY r.id DESC, l.version_id LIMIT $2"
    )))
    .bind(version_ids)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Upstream of model versions: the runs they were registered from.
pub async fn source_runs(
    db: impl PgExecutor<'_>,
    model_version_ids: &[i64],
    limit: i64,
) -> Result<Vec<RunEdge>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT v.id AS other_id, {RUN_NODE}, '' AS context FROM model_versions v \
         JOIN runs r ON r.id = v.run_id WHERE v.id = ANY($1) ORDER BY r.id DESC, v.id LIMIT $2"
    )))
    .bind(model_version_ids)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Upstream of runs: the dataset versions they used.
pub async fn inputs_of(db: impl PgExecutor<'_>, run_ids: &[i64], limit: i64) -> Result<Vec<InputEdge>, DbError> {
    Ok(sqlx::query_as(
        "SELECT l.run_id, v.id, d.name AS dataset, v.version, v.digest, d.project_id, l.context FROM run_dataset_versions l \
         JOIN dataset_versions v ON v.id = l.version_id JOIN datasets d ON d.id = v.dataset_id \
         WHERE l.run_id = ANY($1) ORDER BY d.name, v.version, l.run_id LIMIT $2",
    )
    .bind(run_ids)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Downstream of runs: the model versions registered from them.
pub async fn models_from(db: impl PgExecutor<'_>, run_ids: &[i64], limit: i64) -> Result<Vec<ModelEdge>, DbError> {
    Ok(sqlx::query_as(
        "SELECT v.run_id, v.id, m.name AS model, v.version, m.project_id FROM model_versions v \
         JOIN registered_models m ON m.id = v.model_id WHERE v.run_id = ANY($1) ORDER BY m.name, v.version LIMIT $2",
    )
    .bind(run_ids)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
