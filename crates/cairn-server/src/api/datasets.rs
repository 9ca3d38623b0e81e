//! `/api/v1/datasets` and `/api/v1/blobs`: versioned datasets over content-addressed blobs,
//! as `cairn dataset push|pull` uses them. A push asks which blobs are missing
//! (`POST /blobs/missing`), uploads those (`PUT /blobs/{sha256}`, streamed and hash-checked),
//! then creates the version from its manifest (`POST /datasets/{name}/versions`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_core::dataset::DatasetRef;
use cairn_db::datasets::{DatasetRow, FileRow, RunUse, UsedVersion, VersionRow};
use cairn_storage::{BlobDigest, StorageError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Problem;
use super::query::ApiQuery;
use super::views;
use super::{ApiError, ApiJson};
use crate::access::NewObjectProject;
use crate::audit::{Actor, AuditExempt, AuditNote, Audited};
use crate::datasets::{self, ManifestFile, VersionDiff};
use crate::service_error::ServiceError;
use crate::state::AppState;
use crate::tracking::parse_run_id;
use crate::visibility::Visible;

/// The largest file a dataset may hold (1 TiB).
const MAX_BLOB_BYTES: u64 = 1 << 40;

/// Whether a request is a blob upload, which runs as long as its data keeps coming.
pub fn is_blob_upload(request: &axum::extract::Request) -> bool {
    request.method() == axum::http::Method::PUT && request.uri().path().starts_with("/api/v1/blobs/")
}

/// A dataset in a list, with its latest version.
#[derive(Serialize, ToSchema)]
pub struct DatasetSummaryView {
    name: String,
    description: String,
    latest_version: Option<i32>,
    file_count: Option<i32>,
    total_bytes: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetList {
    datasets: Vec<DatasetSummaryView>,
}

/// Lists the datasets in the projects the caller can read, by name.
#[utoipa::path(get, path = "/datasets", tag = "datasets", responses((status = 200, body = DatasetList)))]
pub async fn list(State(state): State<AppState>, visible: Visible) -> Result<Json<DatasetList>, ApiError> {
    let rows = cairn_db::datasets::list(&state.db.pool, visible.projects()).await.map_err(ServiceError::from)?;
    let datasets = rows
        .into_iter()
        .map(|d| DatasetSummaryView {
            name: d.name,
            description: d.description,
            latest_version: d.latest_version,
            file_count: d.file_count,
            total_bytes: d.total_bytes,
            updated_at: views::time(d.last_update_time),
        })
        .collect();
    Ok(Json(DatasetList { datasets }))
}

/// A dataset version, without its files.
#[derive(Serialize, ToSchema)]
pub struct VersionView {
    dataset: String,
    version: i32,
    /// `NAME@VERSION`, as `cairn dataset pull` and job specs take it.
    reference: String,
    /// SHA-256 of the manifest: equal contents have equal digests.
    digest: String,
    file_count: i32,
    total_bytes: i64,
    message: String,
    /// Columns, types and row counts of the CSV files, by path.
    #[schema(value_type = Object)]
    schema: serde_json::Value,
    created_at: Option<DateTime<Utc>>,
    created_by: Option<String>,
}

impl VersionView {
    fn new(dataset: &str, v: VersionRow) -> Self {
        VersionView {
            dataset: dataset.to_owned(),
            version: v.version,
            reference: format!("{dataset}@{}", v.version),
            digest: v.digest,
            file_count: v.file_count,
            total_bytes: v.total_bytes,
            message: v.message,
            schema: v.schema.0,
            created_at: views::time(v.creation_time),
            created_by: v.created_by,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DatasetView {
    name: String,
    description: String,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    /// Newest first.
    versions: Vec<VersionView>,
}

/// Gets a dataset with its versions.
#[utoipa::path(get, path = "/datasets/{name}", tag = "datasets", params(("name" = String, Path)), responses(
    (status = 200, body = DatasetView),
    (status = 404, body = Problem),
))]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<DatasetView>, ApiError> {
    let (dataset, versions) = datasets::get_dataset(&state.db, &name).await?;
    Ok(Json(dataset_view(dataset, versions)))
}

fn dataset_view(dataset: DatasetRow, versions: Vec<VersionRow>) -> DatasetView {
    DatasetView {
        versions: versions.into_iter().map(|v| VersionView::new(&dataset.name, v)).collect(),
        name: dataset.name,
        description: dataset.description,
        created_at: views::time(dataset.creation_time),
        updated_at: views::time(dataset.last_update_time),
    }
}

/// A file of a version.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileView {
    /// Relative, `/`-separated.
    path: String,
    size: i64,
    /// SHA-256 of the content, 64 lowercase hex digits.
    sha256: String,
}

impl From<FileRow> for FileView {
    fn from(f: FileRow) -> Self {
        FileView { path: f.path, size: f.size, sha256: f.sha256 }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    files: Vec<FileView>,
    /// What changed, for people.
    #[serde(default)]
    message: String,
    /// The project (by name) the new dataset (its first version) goes to; by default the token's project, or
    /// the default project. Read by the access check, which requires write access there.
    #[allow(dead_code)]
    project: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedVersionView {
    #[serde(flatten)]
    version: VersionView,
    /// False when the manifest equals the latest version's, which is returned unchanged.
    created: bool,
}

/// Creates the next version of a dataset (and the dataset, on its first version) from a
/// manifest whose file contents are all uploaded.
#[utoipa::path(post, path = "/datasets/{name}/versions", tag = "datasets", params(("name" = String, Path)),
    request_body = CreateVersion, responses(
    (status = 201, description = "A new version", body = CreatedVersionView),
    (status = 200, description = "Same content as the latest version, which is returned", body = CreatedVersionView),
    (status = 422, description = "Invalid name or manifest, or contents not uploaded", body = Problem),
))]
pub async fn create_version(
    State(state): State<AppState>,
    actor: Actor,
    NewObjectProject(project): NewObjectProject,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<CreateVersion>,
) -> Result<Response, ApiError> {
    let files = body.files.into_iter().map(|f| ManifestFile { path: f.path, size: f.size, sha256: f.sha256 }).collect();
    let new = datasets::NewDatasetVersion { name: &name, files, message: &body.message, project_id: project };
    let created = datasets::create_version(&state.db, &state.storage, &actor, new).await?;
    let view = Json(CreatedVersionView {
        version: VersionView::new(&created.dataset.name, created.version),
        created: created.created,
    });
    Ok(if created.created {
        (StatusCode::CREATED, Extension(Audited), view).into_response()
    } else {
        (Extension(AuditExempt), view).into_response()
    })
}

/// A run that used a version.
#[derive(Serialize, ToSchema)]
pub struct RunUseView {
    run_id: String,
    run_name: String,
    experiment_id: String,
    context: String,
}

impl From<RunUse> for RunUseView {
    fn from(r: RunUse) -> Self {
        RunUseView {
            run_id: r.run_uuid.simple().to_string(),
            run_name: r.run_name,
            experiment_id: r.experiment_id.to_string(),
            context: r.context,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct VersionDetail {
    #[serde(flatten)]
    version: VersionView,
    files: Vec<FileView>,
    /// The runs that used this version, newest first.
    runs: Vec<RunUseView>,
}

/// Gets a version (a number, or `latest`) with its files and the runs that used it. A
/// file's content is at `/api/v1/datasets/{name}/versions/{version}/files/{path}`.
#[utoipa::path(get, path = "/datasets/{name}/versions/{version}", tag = "datasets",
    params(("name" = String, Path), ("version" = String, Path, description = "A number, or `latest`")), responses(
    (status = 200, body = VersionDetail),
    (status = 404, body = Problem),
))]
pub async fn version(
    State(state): State<AppState>,
    visible: Visible,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionDetail>, ApiError> {
    let reference = reference(&name, &version)?;
    let (dataset, version) = datasets::get_version(&state.db, &reference).await?;
    let pool = &state.db.pool;
    let ids = [version.id];
    let (files, runs) = tokio::try_join!(
        cairn_db::datasets::files(pool, version.id),
        cairn_db::datasets::runs_using(pool, &ids, visible.projects())
    )
    .map_err(ServiceError::from)?;
    Ok(Json(VersionDetail {
        version: VersionView::new(&dataset.name, version),
        files: files.into_iter().map(FileView::from).collect(),
        runs: runs.into_iter().map(RunUseView::from).collect(),
    }))
}

fn reference(name: &str, version: &str) -> Result<DatasetRef, ApiError> {
    let text = if version == "latest" { name.to_owned() } else { format!("{name}@{version}") };
    text.parse::<DatasetRef>().map_err(|e| ApiError::bad_request(e.0))
}

/// Streams a file of a version (not in the OpenAPI document: its path is a wildcard).
pub async fn file(
    State(state): State<AppState>,
    Path((name, version, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let reference = reference(&name, &version)?;
    let (_, version) = datasets::get_version(&state.db, &reference).await?;
    let file = cairn_db::datasets::file(&state.db.pool, version.id, &path)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| ApiError::not_found(format!("{reference} has no file {path:?}")))?;
    let digest = BlobDigest::parse(&file.sha256).map_err(ApiError::internal)?;
    let download = state.storage.get_blob(&digest).await.map_err(ServiceError::from)?;
    let mut response = Response::new(Body::from_stream(download.stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(download.size));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let file_name = path.rsplit('/').next().unwrap_or(&path);
    headers.insert(header::CONTENT_DISPOSITION, crate::mlflow::artifacts::attachment(file_name));
    headers.insert("x-content-sha256", HeaderValue::try_from(file.sha256).map_err(ApiError::internal)?);
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older version (a number).
    from: i32,
    /// The newer version (a number, or the latest when absent).
    to: Option<i32>,
}

/// What changed between two versions, by path.
#[utoipa::path(get, path = "/datasets/{name}/diff", tag = "datasets", params(("name" = String, Path), DiffQuery),
    responses((status = 200, body = VersionDiff), (status = 404, body = Problem)))]
pub async fn diff(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<VersionDiff>, ApiError> {
    let from = DatasetRef { name: name.clone(), version: Some(q.from) };
    let to = DatasetRef { name, version: q.to };
    let ((_, old), (_, new)) =
        tokio::try_join!(datasets::get_version(&state.db, &from), datasets::get_version(&state.db, &to))?;
    let pool = &state.db.pool;
    let (before, after) =
        tokio::try_join!(cairn_db::datasets::files(pool, old.id), cairn_db::datasets::files(pool, new.id))
            .map_err(ServiceError::from)?;
    Ok(Json(datasets::diff(&before, &after)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlobQuery {
    /// SHA-256 digests (64 lowercase hex digits each), at most 100,000.
    sha256: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MissingBlobs {
    /// The digests whose content is not stored yet, sorted.
    missing: Vec<String>,
}

/// Which of these contents are not stored yet (what a push must upload).
#[utoipa::path(post, path = "/blobs/missing", tag = "datasets", request_body = BlobQuery, responses(
    (status = 200, body = MissingBlobs),
    (status = 422, description = "A malformed digest", body = Problem),
))]
pub async fn missing(State(state): State<AppState>, ApiJson(body): ApiJson<BlobQuery>) -> Result<Response, ApiError> {
    if body.sha256.len() > datasets::MAX_FILES {
        return Err(ApiError::bad_request(format!("ask about at most {} digests at once", datasets::MAX_FILES)));
    }
    let missing = datasets::missing_blobs(&state.db, &body.sha256).await?;
    // A question, not a change.
    Ok((Extension(AuditExempt), Json(MissingBlobs { missing })).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct StoredBlob {
    sha256: String,
    size: u64,
}

/// Uploads a file's content, streamed; it is stored only when its bytes hash to the digest
/// in the path. Uploading a stored content again is harmless.
#[utoipa::path(put, path = "/blobs/{sha256}", tag = "datasets", params(("sha256" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses(
    (status = 200, body = StoredBlob),
    (status = 413, description = "Larger than 1 TiB", body = Problem),
    (status = 422, description = "The content does not hash to the digest", body = Problem),
))]
pub async fn upload(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let digest =
        BlobDigest::parse(&sha256).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BLOB_BYTES) {
        return Err(ServiceError::from(StorageError::TooLarge { limit: MAX_BLOB_BYTES }).into());
    }
    let body = crate::mlflow::artifacts::with_idle_timeout(body.into_data_stream(), state.config.request_timeout);
    let size = datasets::store_blob(&state.db, &state.storage, &digest, body, MAX_BLOB_BYTES).await?;
    let note = AuditNote {
        action: "dataset.blob.upload".into(),
        target: format!("blob:{digest}"),
        actor_name: None,
        details: serde_json::json!({ "bytes": size }),
    };
    Ok((Extension(note), Json(StoredBlob { sha256: digest.to_string(), size })).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkDataset {
    /// `NAME` (the latest version) or `NAME@VERSION`.
    dataset: String,
    /// How the run used it: `training`, `evaluation`, ...
    #[serde(default)]
    context: String,
}

/// A dataset version a run used.
#[derive(Serialize, ToSchema)]
pub struct RunDatasetView {
    dataset: String,
    version: i32,
    reference: String,
    digest: String,
    context: String,
}

impl From<UsedVersion> for RunDatasetView {
    fn from(u: UsedVersion) -> Self {
        RunDatasetView {
            reference: format!("{}@{}", u.dataset, u.version),
            dataset: u.dataset,
            version: u.version,
            digest: u.digest,
            context: u.context,
        }
    }
}

/// Records that a run used a dataset version.
#[utoipa::path(post, path = "/runs/{id}/datasets", tag = "datasets", params(("id" = String, Path)),
    request_body = LinkDataset, responses(
    (status = 200, body = RunDatasetView),
    (status = 404, description = "No such run or dataset version", body = Problem),
))]
pub async fn link_run(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LinkDataset>,
) -> Result<Response, ApiError> {
    let run = parse_run_id(&id)?;
    let reference =
        body.dataset.parse::<DatasetRef>().map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.0))?;
    let version = datasets::link_run(&state.db, &actor, run, &reference, &body.context).await?;
    let view = RunDatasetView {
        dataset: reference.name.clone(),
        version: version.version,
        reference: format!("{}@{}", reference.name, version.version),
        digest: version.digest,
        context: body.context,
    };
    Ok((Extension(Audited), Json(view)).into_response())
}

/// The dataset versions a run used.
#[utoipa::path(get, path = "/runs/{id}/datasets", tag = "datasets", params(("id" = String, Path)), responses(
    (status = 200, body = Vec<RunDatasetView>),
    (status = 404, body = Problem),
))]
pub async fn run_datasets(
    State(state): State<AppState>,
    visible: Visible,
    Path(id): Path<String>,
) -> Result<Json<Vec<RunDatasetView>>, ApiError> {
    let record = crate::tracking::get_run(&state.db, parse_run_id(&id)?).await?;
    let used = cairn_db::datasets::used_by_run(&state.db.pool, record.run.id, visible.projects())
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(used.into_iter().map(RunDatasetView::from).collect()))
}
