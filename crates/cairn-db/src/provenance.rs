//! What a model version's provenance needs beyond the registry and tracking reads: the
//! account that created its source run, and the audit events concerning it.

use sqlx::PgExecutor;

use crate::DbError;
use crate::audit::EventRow;

/// The Cairn account that created a run (not MLflow's free-form `user_id`), when one did.
pub async fn run_creator(db: impl PgExecutor<'_>, run_id: i64) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT u.username FROM runs r JOIN users u ON u.id = r.created_by WHERE r.id = $1")
        .bind(run_id)
        .fetch_optional(db)
        .await?)
}

/// The audit events about version `version` of model `model`, in the chain's order: those
/// whose target is the version (`model:NAME/VERSION`: registration, edits, stages, aliases
/// set on or removed from it) or the model (`model:NAME`: creation, description, tags), and
/// the alias moves that took an alias away from this version to another one. Served by the
/// `(target text_pattern_ops, id)` index.
pub async fn model_version_events(
    db: impl PgExecutor<'_>,
    model: &str,
    version: i64,
) -> Result<Vec<EventRow>, DbError> {
    let version_target = format!("model:{model}/{version}");
    let model_target = format!("model:{model}");
    let escaped = model.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let other_versions = format!("model:{escaped}/%");
    Ok(sqlx::query_as(
        "SELECT * FROM audit_events WHERE target = $1 OR target = $2 \
         OR (target LIKE $3 AND action = 'model_alias.set' AND details::jsonb ->> 'previous_version' = $4) \
         ORDER BY id",
    )
    .bind(version_target)
    .bind(model_target)
    .bind(other_versions)
    .bind(version.to_string())
    .fetch_all(db)
    .await?)
}

/// One line of "who trained what": a model version, who registered it, and the run it
/// came from with who created it, its source commit and the dataset versions it used.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WhoTrainedRow {
    /// `model_versions.id`, the keyset of the list.
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub stage: String,
    pub registered_at: i64,
    pub registered_by: Option<String>,
    /// The source run, when there is one the caller can read.
    pub run_uuid: Option<uuid::Uuid>,
    pub run_name: Option<String>,
    pub trained_by: Option<String>,
    /// MLflow's free-form `user_id` of the run (what the client said).
    pub run_user: Option<String>,
    pub source_commit: Option<String>,
    /// `(name, version)` of each dataset version the run used that the caller can read, by name.
    pub datasets: sqlx::types::Json<Vec<(String, i32)>>,
    /// The version has a source run, in a project the caller cannot read: every run
    /// field above is then empty.
    pub run_hidden: bool,
    /// `(deployment, actor)` for each deployment that served this version, with each
    /// account that put it there (create, update, rollback; `system:...` for alias moves).
    pub deployed_by: sqlx::types::Json<Vec<(String, String)>>,
}

/// Model versions of models in `projects` (None: every project) newest first (ids below
/// `before`), at most `limit`, optionally of one model, with their training facts: one
/// statement, whatever the number of versions. A source run, or a dataset it used, in a
/// project outside `projects` is left out (the row says when the run was).
pub async fn who_trained(
    db: impl PgExecutor<'_>,
    projects: Option<&[i64]>,
    model: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<WhoTrainedRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT mv.id, rm.name AS model, mv.version, mv.current_stage AS stage, \
                mv.creation_time AS registered_at, reg.username AS registered_by, \
                r.run_uuid, r.name AS run_name, trainer.username AS trained_by, r.user_id AS run_user, \
                commit_tag.value AS source_commit, \
                coalesce(inputs.datasets, '[]'::jsonb) AS datasets, \
                (mv.run_id IS NOT NULL AND r.id IS NULL) AS run_hidden, \
                coalesce(served.deployed_by, '[]'::jsonb) AS deployed_by \
         FROM model_versions mv \
         JOIN registered_models rm ON rm.id = mv.model_id \
         LEFT JOIN users reg ON reg.id = mv.created_by \
         LEFT JOIN runs r ON r.id = mv.run_id AND ($4::bigint[] IS NULL OR EXISTS ( \
             SELECT 1 FROM experiments re WHERE re.id = r.experiment_id AND re.project_id = ANY($4))) \
         LEFT JOIN users trainer ON trainer.id = r.created_by \
         LEFT JOIN run_tags commit_tag ON commit_tag.run_id = r.id AND commit_tag.key = 'mlflow.source.git.commit' \
         LEFT JOIN LATERAL ( \
             SELECT jsonb_agg(jsonb_build_array(d.name, dv.version) ORDER BY d.name, dv.version) AS datasets \
             FROM run_dataset_versions rdv \
             JOIN dataset_versions dv ON dv.id = rdv.version_id \
             JOIN datasets d ON d.id = dv.dataset_id \
             WHERE rdv.run_id = r.id AND ($4::bigint[] IS NULL OR d.project_id = ANY($4)) \
         ) inputs ON true \
         LEFT JOIN LATERAL ( \
             SELECT jsonb_agg(DISTINCT jsonb_build_array(dep.name, dr.actor_name)) AS deployed_by \
             FROM deployment_revisions dr JOIN deployments dep ON dep.id = dr.deployment_id \
             WHERE dr.model_version_id = mv.id AND ($4::bigint[] IS NULL OR dep.project_id = ANY($4)) \
         ) served ON true \
         WHERE ($1::text IS NULL OR rm.name = $1) AND ($2::bigint IS NULL OR mv.id < $2) \
           AND ($4::bigint[] IS NULL OR rm.project_id = ANY($4)) \
         ORDER BY mv.id DESC LIMIT $3",
    )
    .bind(model)
    .bind(before)
    .bind(limit)
    .bind(projects)
    .fetch_all(db)
    .await?)
}
