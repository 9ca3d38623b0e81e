//! A model version's provenance, the page an auditor opens: who trained it and when (the
//! source run's user and the Cairn account that created the run), the run's parameters and
//! latest metrics, the code (repository, commit, entry point), the environment (the run's
//! snapshot and the client's `mlflow.*` tags), the dataset versions it used with their
//! digests, and every registry audit event concerning the version, in the chain's order.
//! Read by the dashboard page and the JSON export alike.

use cairn_db::Db;
use cairn_db::audit::EventRow;
use cairn_db::datasets::UsedVersion;
use cairn_db::tracking::KeyValue;
use cairn_db::tracking::runs::RunRecord;
use serde_json::Value;

use crate::registry::{self, ModelVersion};
use crate::tracking::{self, Result};

/// The tags that say which code ran.
pub const REPOSITORY_TAG: &str = "mlflow.source.git.repoURL";
pub const COMMIT_TAG: &str = "mlflow.source.git.commit";
pub const ENTRY_POINT_TAG: &str = "mlflow.source.name";
pub const BRANCH_TAG: &str = "mlflow.source.git.branch";
const CODE_TAGS: [&str; 4] = [REPOSITORY_TAG, COMMIT_TAG, ENTRY_POINT_TAG, BRANCH_TAG];

/// Where the code came from, as the client tagged the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Code {
    pub repository: Option<String>,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub entry_point: Option<String>,
}

/// The run a version was registered from.
#[derive(Debug, Clone)]
pub struct SourceRun {
    pub record: RunRecord,
    pub experiment_name: String,
    /// The Cairn account that created the run.
    pub created_by: Option<String>,
    pub code: Code,
    /// The snapshot given through the native API (library versions, image...).
    pub environment: Option<Value>,
    /// The run's other `mlflow.*` tags (source type, user, logged-model history...).
    pub system_tags: Vec<KeyValue>,
    /// The Cairn dataset versions it used.
    pub datasets: Vec<UsedVersion>,
}

#[derive(Debug, Clone)]
pub struct Provenance {
    pub version: ModelVersion,
    /// None when the version was registered from a bare URI, without a run, or when the
    /// run is hidden.
    pub run: Option<SourceRun>,
    /// The source run is in a project the caller cannot read: nothing of it is shown.
    pub run_hidden: bool,
    /// Registry events about the version and its model, oldest first.
    pub events: Vec<EventRow>,
}

/// The provenance of a model version, as a caller who can read `projects` (None: every
/// project) may see it: a source run in another project is left out (and said to be), as
/// are dataset versions in other projects.
pub async fn model_version(db: &Db, name: &str, number: i64, projects: Option<&[i64]>) -> Result<Provenance> {
    let version = registry::get_version(db, name, number).await?;
    let run_hidden = version.row.run_project_id.is_some_and(|p| projects.is_some_and(|ids| !ids.contains(&p)));
    let events = cairn_db::provenance::model_version_events(&db.pool, name, number);
    let run = async {
        match version.row.run_uuid {
            Some(id) if !run_hidden => source_run(db, id, projects).await.map(Some),
            _ => Ok(None),
        }
    };
    let (events, run) = tokio::try_join!(async { events.await.map_err(Into::into) }, run)?;
    Ok(Provenance { version, run, run_hidden, events })
}

async fn source_run(db: &Db, id: uuid::Uuid, projects: Option<&[i64]>) -> Result<SourceRun> {
    let (record, details) = tracking::get_run_details(db, id).await?;
    let pool = &db.pool;
    let (created_by, datasets) = tokio::try_join!(
        cairn_db::provenance::run_creator(pool, record.run.id),
        cairn_db::datasets::used_by_run(pool, record.run.id, projects),
    )?;
    let (experiment, _) = tracking::get_experiment(db, record.run.experiment_id).await?;
    let tag = |key: &str| record.tags.iter().find(|t| t.key == key).map(|t| t.value.clone());
    let code = Code {
        repository: tag(REPOSITORY_TAG),
        commit: tag(COMMIT_TAG),
        branch: tag(BRANCH_TAG),
        entry_point: tag(ENTRY_POINT_TAG),
    };
    let system_tags = record
        .tags
        .iter()
        .filter(|t| t.key.starts_with("mlflow.") && !CODE_TAGS.contains(&t.key.as_str()))
        .cloned()
        .collect();
    Ok(SourceRun {
        experiment_name: experiment.name,
        created_by,
        code,
        environment: details.environment,
        system_tags,
        datasets,
        record,
    })
}

/// One page of "who trained what" over the models in `projects` (None: every project),
/// newest version first, and the `before` of the next page. Source runs and datasets in
/// other projects are left out of the rows ([`cairn_db::provenance::WhoTrainedRow::run_hidden`]).
pub async fn who_trained(
    db: &Db,
    projects: Option<&[i64]>,
    model: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<cairn_db::provenance::WhoTrainedRow>, Option<i64>), cairn_db::DbError> {
    let rows = cairn_db::provenance::who_trained(&db.pool, projects, model, before, limit + 1).await?;
    Ok(cairn_db::paging::split(rows, limit, |r| r.id))
}
