//! Where a new version's artifacts are: its `source` resolved to a storage location, source
//! run and logged model, as MLflow's server does. Nothing is copied; the version points at the
//! run's (or logged model's) stored artifacts.
//!
//! - `models:/m-<id>` (what MLflow 3's `register_model` sends, with `model_id`): the logged
//!   model's artifact location; the run defaults to the logged model's source run.
//! - `models:/<name>/<version>` or `models:/<name>@<alias>`: the referenced version's location,
//!   run and logged model (the source is recorded as `models:/<name>/<version>`).
//! - `runs:/<run_id>/<path>`: the run's artifact URI plus the path; a given `run_id` must match.
//! - Any other URI is kept as it is; local paths are refused (this server cannot read them).

use cairn_core::registry::parse_version;
use cairn_db::Db;
use cairn_db::registry::{models as model_repo, versions as version_repo};
use cairn_db::tracking::runs as run_repo;
use uuid::Uuid;

use super::{model_not_found, version_not_found};
use crate::tracking::{self, Result, TrackingError};

/// A source resolved: what the version row stores.
#[derive(Debug, Default)]
pub struct Resolved {
    pub source: String,
    pub storage_location: String,
    /// The source run's internal id.
    pub run_id: Option<i64>,
    pub logged_model_id: Option<String>,
}

fn invalid_source(source: &str, why: &str) -> TrackingError {
    TrackingError::Invalid(format!("Invalid model version source: '{source}'. {why}"))
}

pub async fn resolve(db: &Db, source: &str, run_id: Option<Uuid>, model_id: Option<&str>) -> Result<Resolved> {
    if source.is_empty() {
        return Err(TrackingError::Invalid("Missing value for required parameter 'source'.".into()));
    }
    // A source that climbs out of its directory could name another run's artifacts.
    if source.split(['/', '\\']).any(|segment| segment == "..") {
        return Err(invalid_source(source, "Relative path segments ('..') are not allowed."));
    }
    let (mut resolved, source_run) = match source.split_once(":/") {
        Some(("models", rest)) => from_models_uri(db, source, rest.trim_start_matches('/'), model_id).await?,
        Some(("runs", rest)) => from_runs_uri(db, source, rest.trim_start_matches('/'), run_id).await?,
        Some((scheme, _)) if scheme.len() > 1 && scheme != "file" => {
            let logged = match model_id {
                Some(id) => Some(tracking::get_logged_model(db, id).await?),
                None => None,
            };
            let run = logged.as_ref().and_then(|m| m.source_run_uuid);
            let resolved = Resolved {
                source: source.to_owned(),
                storage_location: source.to_owned(),
                run_id: None,
                logged_model_id: logged.map(|m| m.model_id),
            };
            (resolved, run)
        }
        _ => {
            return Err(invalid_source(
                source,
                "Local paths cannot be registered on this server: log the model to a run and register its URI.",
            ));
        }
    };
    if let Some(run) = run_id.or(source_run) {
        let row = run_repo::get(&db.pool, run)
            .await?
            .ok_or_else(|| TrackingError::NotFound(format!("Run with id={} not found", run.simple())))?;
        resolved.run_id = Some(row.id);
    }
    Ok(resolved)
}

/// `models:/m-<id>`, `models:/<name>/<version>` or `models:/<name>@<alias>`; returns the
/// resolution and the run it implies.
async fn from_models_uri(
    db: &Db,
    source: &str,
    rest: &str,
    model_id: Option<&str>,
) -> Result<(Resolved, Option<Uuid>)> {
    if !rest.contains(['/', '@']) {
        if model_id.is_some_and(|id| id != rest) {
            return Err(invalid_source(source, "The model_id request parameter must match the source."));
        }
        let logged = tracking::get_logged_model(db, rest).await?;
        let resolved = Resolved {
            source: source.to_owned(),
            storage_location: logged.artifact_location,
            run_id: None,
            logged_model_id: Some(logged.model_id),
        };
        return Ok((resolved, logged.source_run_uuid));
    }
    let referenced = match rest.split_once('@') {
        Some((name, alias)) => {
            let model = model_repo::get_by_name(&db.pool, name).await?.ok_or_else(|| model_not_found(name))?;
            version_repo::by_alias(&db.pool, model.id, alias)
                .await?
                .ok_or_else(|| TrackingError::Invalid(format!("Registered model alias {alias} not found.")))?
        }
        None => {
            let (name, version) = rest.rsplit_once('/').unwrap_or((rest, ""));
            let version = parse_version(version)?;
            version_repo::get(&db.pool, name, version).await?.ok_or_else(|| version_not_found(name, version))?
        }
    };
    let resolved = Resolved {
        source: format!("models:/{}/{}", referenced.model_name, referenced.version),
        storage_location: referenced.storage_location,
        run_id: None,
        logged_model_id: referenced.logged_model_id.or_else(|| model_id.map(str::to_owned)),
    };
    Ok((resolved, referenced.run_uuid))
}

/// `runs:/<run_id>/<path>`.
async fn from_runs_uri(db: &Db, source: &str, rest: &str, run_id: Option<Uuid>) -> Result<(Resolved, Option<Uuid>)> {
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let run = tracking::parse_run_id(id)?;
    if run_id.is_some_and(|given| given != run) {
        return Err(invalid_source(source, "The run_id request parameter must match the run of the source."));
    }
    let row = run_repo::get(&db.pool, run)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("Run with id={} not found", run.simple())))?;
    let base = row.artifact_uri.trim_end_matches('/');
    let path = path.trim_matches('/');
    let storage_location = if path.is_empty() { base.to_owned() } else { format!("{base}/{path}") };
    Ok((
        Resolved { source: source.to_owned(), storage_location, run_id: Some(row.id), logged_model_id: None },
        Some(run),
    ))
}
