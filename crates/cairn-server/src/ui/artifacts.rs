//! The artifact browser of a run:
//!
//! - `GET /runs/{run_id}/artifacts[/{path}]`: the run's artifact tree, opened along `path`,
//!   beside the listing of the directory at `path` or the preview of the file there
//!   ([`super::artifact_preview`]). Plain links: it works without JavaScript.
//! - `GET /runs/{run_id}/files/{path}[?download=1]`: the file's bytes, streamed from storage.
//!   Raster images are sent `inline` (the preview's `<img>`, or a click on one); every other
//!   type, SVG and HTML included, as an `attachment`, so nothing from an artifact is ever
//!   rendered as a page on this origin, where the session cookie lives. A sandboxing
//!   `Content-Security-Policy` and `nosniff` hold even if a browser ignored that.
//!
//! Paths are parsed into [`ArtifactPath`] first: a traversal (`..`, encoded or not) is a
//! readable 400 page and never reaches storage. Any logged-in user may read, viewers
//! included, as through the API.

use askama::Template;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_storage::{ArtifactPath, ByteRange, Entry, EntryKind, Storage, StorageError};
use futures::TryStreamExt;
use uuid::Uuid;

use super::artifact_preview::{self as preview, Kind, PREVIEW_BYTES, Preview};
use super::run_page::Link;
use super::{Header, HtmlError, SessionUser, display, links, render};
use crate::mlflow::artifacts::{attachment, content_type};
use crate::state::AppState;
use crate::tracking::{self, ArtifactRoot, RunArtifacts};

/// Entries shown of one directory; the rest are counted.
const ENTRIES_SHOWN: usize = 500;

/// Types a browser may show inline: raster images, which cannot carry script.
const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"];

/// For every file response: no scripts, plugins, frames or forms, whatever the file holds.
const FILE_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox";

/// One entry of a directory listing.
pub struct EntryLine {
    pub name: String,
    pub url: String,
    pub is_dir: bool,
    pub size: String,
    pub bytes: String,
    pub download_url: Option<String>,
}

/// A directory's entries as the pages list them.
pub struct Listing {
    pub entries: Vec<EntryLine>,
    /// Entries not shown.
    pub more: usize,
}

/// One line of the tree: an entry at `depth`, open when it is a directory on the way to
/// the current path.
pub struct TreeLine {
    pub name: String,
    pub url: String,
    pub depth: usize,
    pub is_dir: bool,
    pub open: bool,
    pub current: bool,
}

pub struct FileView {
    pub name: String,
    pub size: String,
    pub bytes: u64,
    pub content_type: String,
    pub download_url: String,
    pub preview: Preview,
    pub truncated: bool,
    pub preview_limit: String,
}

pub enum View {
    Dir(Listing),
    File(FileView),
    /// The run's artifacts are not in Cairn's store.
    Elsewhere(String),
}

#[derive(Template)]
#[template(path = "artifacts.html")]
struct ArtifactsPage {
    header: Header,
    run: Link,
    experiment: Link,
    crumbs: Vec<Link>,
    here: String,
    tree: Vec<TreeLine>,
    tree_more: usize,
    view: View,
}

/// What the run page shows: the top level, or why there is none.
pub enum RunArtifactsSummary {
    Listing(Listing),
    Elsewhere(String),
    /// The store did not answer; the rest of the run page still shows.
    Unavailable,
}

/// How long the run page waits for the store's listing.
const SUMMARY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The top level of a run's artifacts, for the run page. A store that fails or does not
/// answer in [`SUMMARY_TIMEOUT`] costs the page its artifact list, not the whole page.
pub async fn summary(storage: &Storage, run_uuid: &Uuid, artifact_uri: &str) -> RunArtifactsSummary {
    let root = match tracking::artifact_root(artifact_uri) {
        ArtifactRoot::Elsewhere(uri) => return RunArtifactsSummary::Elsewhere(uri),
        ArtifactRoot::Stored(root) => root,
    };
    match tokio::time::timeout(SUMMARY_TIMEOUT, storage.list(Some(&root))).await {
        Ok(Ok(mut entries)) => {
            entries.sort_by_key(|e| e.kind != EntryKind::Dir);
            RunArtifactsSummary::Listing(listing(run_uuid, None, entries))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, run = %run_uuid.simple(), "listing a run's artifacts failed");
            RunArtifactsSummary::Unavailable
        }
        Err(_) => {
            tracing::warn!(run = %run_uuid.simple(), "listing a run's artifacts timed out");
            RunArtifactsSummary::Unavailable
        }
    }
}

/// `GET /runs/{run_id}/artifacts`
pub async fn root(
    State(state): State<AppState>,
    user: SessionUser,
    Path(run_id): Path<String>,
) -> Result<Response, HtmlError> {
    browse(&state, &user, &run_id, None).await
}

/// `GET /runs/{run_id}/artifacts/{*path}`
pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, HtmlError> {
    let (run_id, raw) = path_params(path)?;
    let path = parse_path(&raw)?;
    browse(&state, &user, &run_id, Some(&path)).await
}

#[derive(serde::Deserialize)]
pub struct FileQuery {
    download: Option<String>,
}

/// `GET /runs/{run_id}/files/{*path}[?download=1]`
pub async fn file(
    State(state): State<AppState>,
    _user: SessionUser,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<FileQuery>,
) -> Result<Response, HtmlError> {
    let (run_id, raw) = path_params(path)?;
    let path = parse_path(&raw)?;
    let root = stored_root(&state, &run_id).await?;
    let download = state.storage.get_stream(&root.join(&path), None).await.map_err(|e| storage_error(e, &path))?;
    let kind = content_type(path.file_name());
    let inline = query.download.is_none() && INLINE_TYPES.contains(&kind.to_str().unwrap_or_default());
    let disposition = if inline { HeaderValue::from_static("inline") } else { attachment(path.file_name()) };
    let mut response = Response::new(Body::from_stream(download.stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(download.range.end - download.range.start));
    headers.insert(header::CONTENT_TYPE, kind);
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

async fn browse(
    state: &AppState,
    user: &SessionUser,
    run_id: &str,
    path: Option<&ArtifactPath>,
) -> Result<Response, HtmlError> {
    let id = tracking::parse_run_id(run_id)?;
    let RunArtifacts { run, root } = tracking::run_artifacts(&state.db, id).await?;
    let (experiment, _) = tracking::get_experiment(&state.db, run.experiment_id).await?;
    let uuid = run.run_uuid;
    let (tree, tree_more, view) = match root {
        ArtifactRoot::Elsewhere(uri) => (Vec::new(), 0, View::Elsewhere(uri)),
        ArtifactRoot::Stored(root) => {
            let walk = walk(&state.storage, &root, path).await?;
            let (tree, more) = tree_lines(&uuid, &walk.levels, path);
            let view = match walk.target {
                Target::Dir(entries) => View::Dir(listing(&uuid, path, entries)),
                Target::File { size } => {
                    let path = path.ok_or_else(|| HtmlError::internal("a file target without a path"))?;
                    View::File(file_view(&state.storage, &uuid, &root, path, size).await?)
                }
            };
            (tree, more, view)
        }
    };
    let page = ArtifactsPage {
        header: Header::from(user),
        run: Link {
            label: if run.name.is_empty() { uuid.simple().to_string() } else { run.name.clone() },
            url: links::run(&uuid),
        },
        experiment: Link { label: experiment.name, url: links::experiment(experiment.id) },
        crumbs: crumbs(&uuid, path),
        here: path.map_or_else(|| "Artifacts".to_owned(), |p| p.file_name().to_owned()),
        tree,
        tree_more,
        view,
    };
    Ok(render(&page)?.into_response())
}

/// The listings from the root down along `path`, and what `path` is.
struct Walk {
    /// `levels[i]`: the entries of the directory named by the first `i` segments.
    levels: Vec<Vec<Entry>>,
    target: Target,
}

enum Target {
    Dir(Vec<Entry>),
    File { size: u64 },
}

/// A directory's entries, folders first, each group by name.
async fn list(storage: &Storage, dir: ArtifactPath) -> Result<Vec<Entry>, HtmlError> {
    let mut entries = storage.list(Some(&dir)).await.map_err(HtmlError::internal)?;
    // Stable: the store's name order stays within each group.
    entries.sort_by_key(|e| e.kind != EntryKind::Dir);
    Ok(entries)
}

async fn walk(storage: &Storage, root: &ArtifactPath, path: Option<&ArtifactPath>) -> Result<Walk, HtmlError> {
    let list = |dir: ArtifactPath| list(storage, dir);
    let mut levels = vec![list(root.clone()).await?];
    let Some(path) = path else {
        let entries = levels[0].clone();
        return Ok(Walk { levels, target: Target::Dir(entries) });
    };
    let segments: Vec<&str> = path.segments().collect();
    let mut dir = root.clone();
    for (i, segment) in segments.iter().enumerate() {
        let found = levels[i].iter().find(|e| e.name == *segment).map(|e| e.kind);
        let segment_path = ArtifactPath::parse(segment).map_err(HtmlError::internal)?;
        dir = dir.join(&segment_path);
        match found {
            Some(EntryKind::Dir) => levels.push(list(dir.clone()).await?),
            Some(EntryKind::File { size }) if i + 1 == segments.len() => {
                return Ok(Walk { levels, target: Target::File { size } });
            }
            _ => return Err(not_found(path)),
        }
    }
    let entries = levels.last().cloned().unwrap_or_default();
    Ok(Walk { levels, target: Target::Dir(entries) })
}

/// The tree: every level's entries, each open directory followed by its children. At most
/// [`ENTRIES_SHOWN`] per directory, always including the one on the way to `path`.
fn tree_lines(run: &Uuid, levels: &[Vec<Entry>], path: Option<&ArtifactPath>) -> (Vec<TreeLine>, usize) {
    let segments: Vec<&str> = path.map(|p| p.segments().collect()).unwrap_or_default();
    let mut lines = Vec::new();
    let mut more = 0;
    push_level(run, levels, &segments, 0, "", &mut lines, &mut more);
    (lines, more)
}

fn push_level(
    run: &Uuid,
    levels: &[Vec<Entry>],
    segments: &[&str],
    depth: usize,
    prefix: &str,
    lines: &mut Vec<TreeLine>,
    more: &mut usize,
) {
    let Some(entries) = levels.get(depth) else {
        return;
    };
    let on_path = segments.get(depth).copied();
    for (i, entry) in entries.iter().enumerate() {
        let is_on_path = on_path == Some(entry.name.as_str());
        if i >= ENTRIES_SHOWN && !is_on_path {
            *more += 1;
            continue;
        }
        let full = if prefix.is_empty() { entry.name.clone() } else { format!("{prefix}/{}", entry.name) };
        let is_dir = entry.kind == EntryKind::Dir;
        let open = is_on_path && is_dir && levels.len() > depth + 1;
        lines.push(TreeLine {
            name: entry.name.clone(),
            url: links::artifacts(run, Some(&full)),
            depth,
            is_dir,
            open,
            current: is_on_path && depth + 1 == segments.len(),
        });
        if open {
            push_level(run, levels, segments, depth + 1, &full, lines, more);
        }
    }
}

fn listing(run: &Uuid, dir: Option<&ArtifactPath>, entries: Vec<Entry>) -> Listing {
    let more = entries.len().saturating_sub(ENTRIES_SHOWN);
    let entries = entries
        .into_iter()
        .take(ENTRIES_SHOWN)
        .map(|entry| {
            let full = match dir {
                Some(dir) => format!("{dir}/{}", entry.name),
                None => entry.name.clone(),
            };
            let (is_dir, size, bytes, download_url) = match entry.kind {
                EntryKind::Dir => (true, String::new(), String::new(), None),
                EntryKind::File { size } => (
                    false,
                    display::bytes(size),
                    format!("{size} bytes"),
                    Some(links::url(&links::artifact_file(run, &full), &[("download", "1")])),
                ),
            };
            EntryLine { url: links::artifacts(run, Some(&full)), name: entry.name, is_dir, size, bytes, download_url }
        })
        .collect();
    Listing { entries, more }
}

async fn file_view(
    storage: &Storage,
    run: &Uuid,
    root: &ArtifactPath,
    path: &ArtifactPath,
    size: u64,
) -> Result<FileView, HtmlError> {
    let kind = Kind::of(path.file_name());
    let file_url = links::artifact_file(run, path.as_str());
    let (preview, truncated) = match kind {
        Kind::Image => (Preview::Image { src: file_url.clone(), alt: path.file_name().to_owned() }, false),
        _ if size == 0 => (Preview::Empty, false),
        _ => {
            let head = read_head(storage, &root.join(path), size).await.map_err(|e| storage_error(e, path))?;
            let truncated = (head.len() as u64) < size;
            (preview::of_bytes(kind, &head, truncated), truncated)
        }
    };
    Ok(FileView {
        name: path.file_name().to_owned(),
        size: display::bytes(size),
        bytes: size,
        content_type: content_type(path.file_name()).to_str().unwrap_or_default().to_owned(),
        download_url: links::url(&file_url, &[("download", "1")]),
        preview,
        truncated,
        preview_limit: display::bytes(PREVIEW_BYTES),
    })
}

/// The first [`PREVIEW_BYTES`] of a file of `size` bytes.
async fn read_head(storage: &Storage, key: &ArtifactPath, size: u64) -> Result<Vec<u8>, StorageError> {
    let range = (size > PREVIEW_BYTES).then_some(ByteRange::Bounded { first: 0, last: PREVIEW_BYTES - 1 });
    let mut stream = storage.get_stream(key, range).await?.stream;
    let limit = usize::try_from(PREVIEW_BYTES).unwrap_or(usize::MAX);
    let mut head = Vec::with_capacity(limit.min(usize::try_from(size).unwrap_or(limit)));
    while let Some(chunk) = stream.try_next().await? {
        head.extend_from_slice(&chunk);
        if head.len() >= limit {
            break;
        }
    }
    head.truncate(limit);
    Ok(head)
}

/// "Artifacts" then one link per segment of `path`.
fn crumbs(run: &Uuid, path: Option<&ArtifactPath>) -> Vec<Link> {
    let mut crumbs = vec![Link { label: "Artifacts".into(), url: links::artifacts(run, None) }];
    if let Some(path) = path {
        let mut prefix = String::new();
        for segment in path.segments() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            crumbs.push(Link { label: segment.to_owned(), url: links::artifacts(run, Some(&prefix)) });
        }
    }
    crumbs
}

/// The run's artifact root in the store; a run whose files are elsewhere has none here.
async fn stored_root(state: &AppState, run_id: &str) -> Result<ArtifactPath, HtmlError> {
    let id = tracking::parse_run_id(run_id)?;
    match tracking::run_artifacts(&state.db, id).await?.root {
        ArtifactRoot::Stored(root) => Ok(root),
        ArtifactRoot::Elsewhere(uri) => Err(HtmlError::page(
            StatusCode::NOT_FOUND,
            format!("This run's artifacts are at {uri}, outside Cairn's store; Cairn cannot serve them."),
        )),
    }
}

fn path_params(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), HtmlError> {
    path.map(|Path(p)| p).map_err(|e| HtmlError::page(StatusCode::BAD_REQUEST, format!("This URL is not valid: {e}.")))
}

fn parse_path(raw: &str) -> Result<ArtifactPath, HtmlError> {
    ArtifactPath::parse(raw)
        .map_err(|e| HtmlError::page(StatusCode::BAD_REQUEST, format!("“{raw}” is not a valid artifact path: {e}.")))
}

fn not_found(path: &ArtifactPath) -> HtmlError {
    HtmlError::page(StatusCode::NOT_FOUND, format!("This run has no artifact at {path}."))
}

fn storage_error(e: StorageError, path: &ArtifactPath) -> HtmlError {
    match e {
        StorageError::NotFound { .. } => not_found(path),
        other => HtmlError::internal(format!("artifact {path}: {other}")),
    }
}
