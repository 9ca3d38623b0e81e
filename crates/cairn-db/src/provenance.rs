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
