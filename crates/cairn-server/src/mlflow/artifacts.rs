//! The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/...`): what the `mlflow` client
//! calls for runs and logged models whose artifact URI is `mlflow-artifacts:/...`.
//!
//! - `PUT /artifacts/{path}`: the raw body, streamed to storage (never through a body
//!   extractor, so `DefaultBodyLimit` does not apply; [`MAX_UPLOAD_BYTES`] does). A body
//!   that stalls for `request_timeout` fails the upload; a failed upload leaves nothing.
//! - `GET /artifacts/{path}`: the bytes, streamed, with `Content-Length`, a type guessed
//!   from the name, and single byte ranges (`Range: bytes=...`).
//! - `GET /artifacts?path=dir`: the directory's immediate children, paths relative to it
//!   (`{}` for a directory that does not exist, as MLflow answers).
//! - `DELETE /artifacts/{path}`: a file or a whole directory; deleting nothing succeeds,
//!   as in MLflow.
//! - `POST /mpu/{create,complete,abort}`: refused with a 400 (see [`multipart_disabled`]).
//!
//! Storage layout: the MLflow path (`{experiment_id}/{run_id}/artifacts/{rel}`, or
//! `{experiment_id}/models/{model_id}/artifacts/{rel}` for logged models) is stored under
//! the key `mlflow-artifacts/{path}` ([`crate::tracking::MLFLOW_ARTIFACTS_PREFIX`]), so
//! MLflow's tree shares the store with other kinds of data (datasets) without collisions,
//! and one experiment's artifacts are one prefix. The dashboard reads the same keys.
//!
//! Viewers may read; writing needs a member (the access guard decides by method). Uploads
//! and deletes are audited by the audit middleware, with the path and size noted here.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use cairn_storage::{ArtifactPath, ByteRange, EntryKind, StorageError};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;

use super::{ErrorCode, MlflowError};
use crate::audit::AuditNote;
use crate::state::AppState;

/// The largest artifact one PUT may upload.
pub const MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/{*path}", get(download).put(upload).delete(remove))
        .route("/mpu/{action}", post(multipart_disabled))
        .fallback(super::error::endpoint_not_found)
}

/// Whether `request` is an artifact upload, which may rightly run for a long time: it is
/// bounded by its size limit and by failing when its body stalls (for `request_timeout`),
/// not by the overall request timeout.
pub fn is_streaming_upload(request: &axum::extract::Request) -> bool {
    request.method() == axum::http::Method::PUT
        && request.uri().path().starts_with("/api/2.0/mlflow-artifacts/artifacts/")
}

async fn upload(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MlflowError> {
    let path = parse_path(path)?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_UPLOAD_BYTES) {
        return Err(storage_error(StorageError::TooLarge { limit: MAX_UPLOAD_BYTES }, &path));
    }
    let body = with_idle_timeout(body.into_data_stream(), state.config.request_timeout);
    let size = state
        .storage
        .put_stream(&key(Some(&path)), body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|e| storage_error(e, &path))?;
    let note = audit_note("artifact.upload", &path, json!({ "bytes": size }));
    Ok((Extension(note), Json(json!({}))).into_response())
}

async fn download(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, MlflowError> {
    let path = parse_path(path)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(parse_range);
    let download = match state.storage.get_stream(&key(Some(&path)), range).await {
        Ok(download) => download,
        Err(StorageError::RangeNotSatisfiable { size }) => {
            return Ok(range_not_satisfiable(size));
        }
        Err(e) => return Err(storage_error(e, &path)),
    };
    let (first, end) = (download.range.start, download.range.end);
    let mut response = Response::new(Body::from_stream(download.stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - first));
    headers.insert(header::CONTENT_TYPE, content_type(path.file_name()));
    headers.insert(header::CONTENT_DISPOSITION, attachment(path.file_name()));
    // With `attachment`, keeps a browser from rendering an uploaded HTML page on this
    // origin, where the dashboard's session cookie lives.
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        let content_range = format!("bytes {first}-{}/{}", end - 1, download.size);
        headers.insert(header::CONTENT_RANGE, HeaderValue::try_from(content_range).map_err(MlflowError::internal)?);
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

#[derive(Serialize)]
struct ListView {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileView>,
}

#[derive(Serialize)]
struct FileView {
    path: String,
    is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<u64>,
}

async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<ListView>, MlflowError> {
    let requested = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == "path").map(|(_, value)| value.into_owned())
    });
    // The root (no path, or an empty one) is listed as MLflow lists it; a trailing slash
    // names the same directory.
    let dir = match requested.as_deref().map(|p| p.strip_suffix('/').unwrap_or(p)) {
        None | Some("") => None,
        Some(p) => Some(ArtifactPath::parse(p).map_err(|e| invalid_path(p, e))?),
    };
    let entries = state
        .storage
        .list(Some(&key(dir.as_ref())))
        .await
        .map_err(|e| MlflowError::internal(format!("listing {dir:?}: {e}")))?;
    let files = entries
        .into_iter()
        .map(|entry| match entry.kind {
            EntryKind::File { size } => FileView { path: entry.name, is_dir: false, file_size: Some(size) },
            EntryKind::Dir => FileView { path: entry.name, is_dir: true, file_size: None },
        })
        .collect();
    Ok(Json(ListView { files }))
}

async fn remove(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, MlflowError> {
    let path = parse_path(path)?;
    let deleted = state.storage.delete_tree(&key(Some(&path))).await.map_err(|e| storage_error(e, &path))?;
    let note = audit_note("artifact.delete", &path, json!({ "objects": deleted }));
    Ok((Extension(note), Json(json!({}))).into_response())
}

/// The multipart-upload endpoints are not implemented: `/api/3.0/mlflow/server-info`
/// answers `multipart_uploads_enabled: false`, so the client never calls them and uploads
/// with one streamed PUT instead (which Cairn turns into a multipart upload to storage
/// itself). A caller that tries anyway gets a 400, never a 5xx, which the client would
/// retry for minutes.
async fn multipart_disabled(Path(action): Path<String>) -> MlflowError {
    MlflowError::new(
        ErrorCode::BadRequest,
        format!(
            "multipart upload ({action}) is disabled on this server, as server-info says; \
             upload with one PUT to /api/2.0/mlflow-artifacts/artifacts/<path>"
        ),
    )
}

/// The storage key of an MLflow artifact path (of the whole tree for `None`).
fn key(path: Option<&ArtifactPath>) -> ArtifactPath {
    crate::tracking::mlflow_artifact_key(path)
}

fn parse_path(path: Result<Path<String>, PathRejection>) -> Result<ArtifactPath, MlflowError> {
    let Path(raw) = path.map_err(|e| MlflowError::invalid(format!("invalid path: {e}")))?;
    ArtifactPath::parse(&raw).map_err(|e| invalid_path(&raw, e))
}

fn invalid_path(raw: &str, e: cairn_storage::ArtifactPathError) -> MlflowError {
    MlflowError::invalid(format!("invalid artifact path {raw:?}: {e}"))
}

fn storage_error(e: StorageError, path: &ArtifactPath) -> MlflowError {
    match e {
        StorageError::NotFound { .. } => MlflowError::not_found(format!("no artifact at {path:?}")),
        StorageError::TooLarge { limit } => {
            MlflowError::invalid(format!("artifact {path:?} is larger than the limit of {limit} bytes"))
        }
        StorageError::FileDirConflict => {
            MlflowError::invalid(format!("artifact {path:?}: a file and a directory cannot have the same path"))
        }
        StorageError::Body(cause) => {
            MlflowError::new(ErrorCode::BadRequest, format!("the upload of {path:?} did not complete: {cause}"))
        }
        other => MlflowError::internal(format!("artifact {path:?}: {other}")),
    }
}

fn audit_note(action: &str, path: &ArtifactPath, details: serde_json::Value) -> AuditNote {
    AuditNote { action: action.to_owned(), target: format!("artifact:{path}"), actor_name: None, details }
}

/// The request body, failing when no data arrives for `idle`: a client that stalls must
/// not hold an upload (and its buffered part) open for ever.
pub(crate) fn with_idle_timeout<S, E>(body: S, idle: Duration) -> impl Stream<Item = Result<Bytes, BodyError>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BodyError>,
{
    futures::stream::unfold(Some(Box::pin(body)), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(chunk)) => Some((chunk.map_err(Into::into), Some(body))),
            Ok(None) => None,
            Err(_) => {
                let error = format!("no data received for {} s", idle.as_secs());
                Some((Err(error.into()), None))
            }
        }
    })
}

type BodyError = cairn_storage::BodyError;

/// One range of `Range: bytes=...`. Anything else (several ranges, other units, bad
/// syntax) is ignored and the whole object is sent, as HTTP allows.
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(ByteRange::Suffix(number(last)?)),
        (false, true) => Some(ByteRange::From(number(first)?)),
        (false, false) => Some(ByteRange::Bounded { first: number(first)?, last: number(last)? }),
        (true, true) => None,
    }
}

fn range_not_satisfiable(size: u64) -> Response {
    let body = json!({
        "error_code": ErrorCode::InvalidParameterValue.as_str(),
        "message": format!("the requested range is outside the artifact ({size} bytes)"),
    });
    let content_range = format!("bytes */{size}");
    (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, content_range)], Json(body)).into_response()
}

/// The type MLflow's server would send: guessed from the extension; MLflow's own
/// extension-less YAML files as text.
pub(crate) fn content_type(file_name: &str) -> HeaderValue {
    if matches!(file_name, "MLmodel" | "MLproject") {
        return HeaderValue::from_static("text/plain; charset=utf-8");
    }
    let guess = mime_guess::from_path(file_name).first_or_octet_stream();
    HeaderValue::try_from(guess.essence_str()).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// `attachment` with the name in RFC 6266 form: an ASCII fallback and the exact UTF-8 name.
pub(crate) fn attachment(file_name: &str) -> HeaderValue {
    let fallback: String = file_name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let exact = percent_encoding::utf8_percent_encode(file_name, percent_encoding::NON_ALPHANUMERIC);
    HeaderValue::try_from(format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"))
        .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_parse_and_others_are_ignored() {
        assert_eq!(parse_range("bytes=0-99"), Some(ByteRange::Bounded { first: 0, last: 99 }));
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        for ignored in ["bytes=0-1,5-6", "items=0-1", "bytes=-", "bytes=a-b", "0-1"] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn content_types_and_dispositions() {
        assert_eq!(content_type("metrics.json"), "application/json");
        assert_eq!(content_type("model.pkl"), "application/octet-stream");
        assert_eq!(content_type("MLmodel"), "text/plain; charset=utf-8");
        assert_eq!(
            attachment("a \"b\" ü.txt"),
            "attachment; filename=\"a _b_ _.txt\"; filename*=UTF-8''a%20%22b%22%20%C3%BC%2Etxt"
        );
    }
}
