//! `GET /api/v1/who-trained`: "who trained what", one line per model version with who
//! trained its source run, on which dataset versions, from which commit, and who
//! registered it; read in one statement however many versions ([`cairn_db::provenance::who_trained`]).
//! Who deployed it comes with deployments.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::openapi::Problem;
use super::query::{ApiQuery, DEFAULT_LIMIT, MAX_LIMIT, limit};
use crate::state::AppState;
use crate::ui::links;
use crate::visibility::Visible;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WhoTrainedQuery {
    /// Only the versions of this registered model.
    model: Option<String>,
    /// Versions registered before this one: the `next_before` of the previous page.
    before: Option<i64>,
    /// How many versions, 1 to 1000 (default 100).
    limit: Option<i64>,
}

/// A deployment that served the version, and an account that deployed it there.
#[derive(Serialize, ToSchema)]
pub struct Deployer {
    deployment: String,
    by: String,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetUse {
    name: String,
    version: i32,
    /// The dashboard page of the dataset version.
    url: String,
}

/// One model version and how it came to be.
#[derive(Serialize, ToSchema)]
pub struct WhoTrainedLine {
    model: String,
    version: i64,
    stage: String,
    registered_at: Option<DateTime<Utc>>,
    /// The Cairn account that registered the version.
    registered_by: Option<String>,
    /// The source run (32 hex digits); null for a version registered from a bare URI.
    run_id: Option<String>,
    run_name: Option<String>,
    /// The Cairn account that created the source run (for a job's run: who submitted it).
    trained_by: Option<String>,
    /// The user the MLflow client reported for the run.
    run_user: Option<String>,
    /// The run's `mlflow.source.git.commit` tag.
    source_commit: Option<String>,
    /// The dataset versions the run used (those in projects the caller can read).
    datasets: Vec<DatasetUse>,
    /// The version has a source run in a project the caller cannot read; the run's fields
    /// are then null.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    source_run_hidden: bool,
    /// Who deployed it: each deployment that served the version, with each account that
    /// created, updated or rolled it back to this version.
    deployed_by: Vec<Deployer>,
    /// Dashboard pages: the version, its provenance, the run.
    url: String,
    provenance_url: String,
    run_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WhoTrainedList {
    versions: Vec<WhoTrainedLine>,
    /// Pass as `before` for the next page; null on the last page.
    next_before: Option<i64>,
}

impl From<cairn_db::provenance::WhoTrainedRow> for WhoTrainedLine {
    fn from(r: cairn_db::provenance::WhoTrainedRow) -> Self {
        let url = links::model_version(&r.model, r.version);
        WhoTrainedLine {
            provenance_url: format!("{url}/provenance"),
            run_url: r.run_uuid.as_ref().map(links::run),
            run_id: r.run_uuid.map(|u| u.simple().to_string()),
            url,
            registered_at: DateTime::from_timestamp_millis(r.registered_at),
            datasets: r
                .datasets
                .0
                .into_iter()
                .map(|(name, version)| DatasetUse { url: links::dataset(&name, Some(version)), name, version })
                .collect(),
            model: r.model,
            version: r.version,
            stage: r.stage,
            registered_by: r.registered_by,
            run_name: r.run_name,
            trained_by: r.trained_by,
            run_user: r.run_user.filter(|u| !u.is_empty()),
            source_commit: r.source_commit,
            source_run_hidden: r.run_hidden,
            deployed_by: r.deployed_by.0.into_iter().map(|(deployment, by)| Deployer { deployment, by }).collect(),
        }
    }
}

/// Model versions of models in the projects the caller can read, newest first, with who trained the source run, on which dataset
/// versions, from which commit, and who registered them.
#[utoipa::path(get, path = "/who-trained", tag = "lineage", params(WhoTrainedQuery), responses(
    (status = 200, body = WhoTrainedList),
    (status = 400, body = Problem),
))]
pub async fn list(
    State(state): State<AppState>,
    visible: Visible,
    ApiQuery(query): ApiQuery<WhoTrainedQuery>,
) -> Result<Json<WhoTrainedList>, ApiError> {
    let limit = limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let (versions, next_before) =
        crate::provenance::who_trained(&state.db, visible.projects(), query.model.as_deref(), query.before, limit)
            .await?;
    Ok(Json(WhoTrainedList { versions: versions.into_iter().map(WhoTrainedLine::from).collect(), next_before }))
}
