//! The dataset pages: the list, a dataset's page (its versions; for the chosen one, given
//! as `?version=N`, its files, the schema of its CSV files and the runs that used it) and
//! the diff between two versions (`/datasets/{name}/diff?from=A&to=B`). They only read.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_core::dataset::DatasetRef;
use cairn_db::datasets::{self as repo, VersionRow};
use serde::Deserialize;
use serde_json::Value;

use super::display::{When, bytes};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::datasets;
use crate::service_error::ServiceError;
use crate::state::AppState;

/// Files listed on a version's page and paths on a diff, at most; the API has them all.
const FILES_SHOWN: usize = 1000;

impl From<ServiceError> for HtmlError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Tracking(e) => e.into(),
            ServiceError::Storage(e) => HtmlError::internal(e),
        }
    }
}

struct DatasetLine {
    name: String,
    url: String,
    /// The name of its project.
    project: String,
    description: String,
    latest_version: Option<i32>,
    files: Option<i32>,
    size: Option<String>,
    updated: Option<When>,
}

#[derive(Template)]
#[template(path = "datasets.html")]
struct ListPage {
    header: Header,
    datasets: Vec<DatasetLine>,
}

pub async fn list(State(state): State<AppState>, user: SessionUser) -> Result<Response, HtmlError> {
    let visible = user.visible();
    let rows = repo::list(&state.db.pool, visible.projects()).await?;
    let datasets = rows
        .into_iter()
        .map(|d| DatasetLine {
            url: links::dataset(&d.name, None),
            project: visible.project_name(d.project_id).to_owned(),
            latest_version: d.latest_version,
            files: d.file_count,
            size: d.total_bytes.map(size),
            updated: When::from_millis(d.last_update_time),
            description: d.description,
            name: d.name,
        })
        .collect();
    Ok(render(&ListPage { header: Header::from(&user), datasets })?.into_response())
}

fn size(n: i64) -> String {
    bytes(u64::try_from(n).unwrap_or(0))
}

struct VersionLine {
    version: i32,
    url: String,
    files: i32,
    size: String,
    exact_bytes: i64,
    message: String,
    created_by: String,
    created: Option<When>,
    digest: String,
    chosen: bool,
}

struct FileLine {
    path: String,
    size: String,
    exact_bytes: i64,
    sha256: String,
    /// The file's bytes, through the API.
    url: String,
}

struct ColumnLine {
    name: String,
    kind: String,
}

struct TableSchemaLine {
    path: String,
    rows: String,
    columns: Vec<ColumnLine>,
}

struct RunLine {
    url: String,
    name: String,
    id: String,
    context: String,
}

#[derive(Template)]
#[template(path = "dataset.html")]
struct DatasetPage {
    header: Header,
    name: String,
    description: String,
    versions: Vec<VersionLine>,
    chosen: Option<VersionLine>,
    files: Vec<FileLine>,
    /// How many files the chosen version has beyond those listed.
    more_files: usize,
    schemas: Vec<TableSchemaLine>,
    runs: Vec<RunLine>,
    /// A diff of the chosen version with the one before it.
    diff_url: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct VersionQuery {
    version: Option<String>,
}

/// A version number from the query string (empty means the latest).
fn version_param(name: &str, raw: Option<&str>) -> Result<Option<i32>, HtmlError> {
    match raw.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i32>().ok().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            HtmlError::page(StatusCode::BAD_REQUEST, format!("{v:?} is no version of {name}: versions are 1, 2, ..."))
        }),
    }
}

fn version_line(name: &str, v: &VersionRow, chosen: i32) -> VersionLine {
    VersionLine {
        version: v.version,
        url: links::dataset(name, Some(v.version)),
        files: v.file_count,
        size: size(v.total_bytes),
        exact_bytes: v.total_bytes,
        message: v.message.clone(),
        created_by: v.created_by.clone().unwrap_or_default(),
        created: When::from_millis(v.creation_time),
        digest: v.digest.clone(),
        chosen: v.version == chosen,
    }
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, HtmlError> {
    let wanted = version_param(&name, query.version.as_deref())?;
    let (dataset, versions) = datasets::get_dataset(&state.db, &name).await?;
    let chosen =
        match wanted {
            Some(n) => Some(versions.iter().find(|v| v.version == n).ok_or_else(|| {
                HtmlError::page(StatusCode::NOT_FOUND, format!("Dataset {name} has no version {n}."))
            })?),
            None => versions.first(),
        };
    let (files, runs) = match chosen {
        Some(v) => {
            let pool = &state.db.pool;
            let (limit, ids) = (i64::try_from(FILES_SHOWN).unwrap_or(i64::MAX), [v.id]);
            let visible = user.visible();
            tokio::try_join!(repo::first_files(pool, v.id, limit), repo::runs_using(pool, &ids, visible.projects()))?
        }
        None => (Vec::new(), Vec::new()),
    };
    let chosen_number = chosen.map_or(0, |v| v.version);
    let file_name = |path: &str| {
        format!(
            "/api/v1/datasets/{}/versions/{chosen_number}/files/{}",
            links::encoded_path(&name),
            links::encoded_path(path)
        )
    };
    let page = DatasetPage {
        header: Header::from(&user),
        versions: versions.iter().map(|v| version_line(&name, v, chosen_number)).collect(),
        chosen: chosen.map(|v| version_line(&name, v, chosen_number)),
        more_files: chosen.map_or(0, |v| usize::try_from(v.file_count).unwrap_or(0).saturating_sub(files.len())),
        files: files
            .into_iter()
            .map(|f| FileLine {
                url: file_name(&f.path),
                size: size(f.size),
                exact_bytes: f.size,
                path: f.path,
                sha256: f.sha256,
            })
            .collect(),
        schemas: chosen.map(|v| schemas(&v.schema.0)).unwrap_or_default(),
        runs: runs
            .into_iter()
            .map(|r| RunLine {
                url: links::run(&r.run_uuid),
                id: r.run_uuid.simple().to_string(),
                name: r.run_name,
                context: r.context,
            })
            .collect(),
        diff_url: chosen.filter(|v| v.version > 1).map(|v| {
            let (from, to) = ((v.version - 1).to_string(), v.version.to_string());
            links::url(&format!("/datasets/{}/diff", links::encoded_path(&name)), &[("from", &from), ("to", &to)])
        }),
        name: dataset.name,
        description: dataset.description,
    };
    Ok(render(&page)?.into_response())
}

/// The recorded profiles (`{"files": {path: {columns: [{name, type}], rows}}}`), by path.
fn schemas(schema: &Value) -> Vec<TableSchemaLine> {
    let Some(files) = schema.get("files").and_then(Value::as_object) else { return Vec::new() };
    files
        .iter()
        .map(|(path, profile)| TableSchemaLine {
            path: path.clone(),
            rows: profile.get("rows").map(|r| r.to_string()).unwrap_or_else(|| "—".into()),
            columns: profile
                .get("columns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| ColumnLine {
                    name: c.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                    kind: c.get("type").and_then(Value::as_str).unwrap_or("").to_owned(),
                })
                .collect(),
        })
        .collect()
}

#[derive(Deserialize, Default)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Added, removed or changed paths (the first [`FILES_SHOWN`]).
struct DiffSection {
    title: &'static str,
    id: &'static str,
    count: usize,
    paths: Vec<String>,
}

impl DiffSection {
    fn new(title: &'static str, id: &'static str, mut paths: Vec<String>) -> Self {
        let count = paths.len();
        paths.truncate(FILES_SHOWN);
        DiffSection { title, id, count, paths }
    }
}

#[derive(Template)]
#[template(path = "dataset_diff.html")]
struct DiffPage {
    header: Header,
    name: String,
    url: String,
    action: String,
    /// Every version number, newest first, for the form.
    numbers: Vec<i32>,
    from: i32,
    to: i32,
    from_url: String,
    to_url: String,
    sections: Vec<DiffSection>,
    unchanged: usize,
}

pub async fn diff(
    State(state): State<AppState>,
    user: SessionUser,
    Path(name): Path<String>,
    Query(query): Query<DiffQuery>,
) -> Result<Response, HtmlError> {
    let (dataset, versions) = datasets::get_dataset(&state.db, &name).await?;
    let latest = versions
        .first()
        .map(|v| v.version)
        .ok_or_else(|| HtmlError::page(StatusCode::NOT_FOUND, format!("Dataset {name} has no versions to compare.")))?;
    let to = version_param(&name, query.to.as_deref())?.unwrap_or(latest);
    let from = version_param(&name, query.from.as_deref())?.unwrap_or((to - 1).max(1));
    let reference = |version| DatasetRef { name: name.clone(), version: Some(version) };
    let (old_ref, new_ref) = (reference(from), reference(to));
    let ((_, old), (_, new)) =
        tokio::try_join!(datasets::get_version(&state.db, &old_ref), datasets::get_version(&state.db, &new_ref))?;
    let pool = &state.db.pool;
    let (before, after) = tokio::try_join!(repo::files(pool, old.id), repo::files(pool, new.id))?;
    let changes = datasets::diff(&before, &after);
    let page = DiffPage {
        header: Header::from(&user),
        url: links::dataset(&dataset.name, None),
        action: format!("/datasets/{}/diff", links::encoded_path(&dataset.name)),
        numbers: versions.iter().map(|v| v.version).collect(),
        from,
        to,
        from_url: links::dataset(&dataset.name, Some(from)),
        to_url: links::dataset(&dataset.name, Some(to)),
        sections: vec![
            DiffSection::new("Added", "added", changes.added),
            DiffSection::new("Removed", "removed", changes.removed),
            DiffSection::new("Changed", "changed", changes.changed),
        ],
        unchanged: changes.unchanged,
        name: dataset.name,
    };
    Ok(render(&page)?.into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schemas_read_the_recorded_profiles_and_tolerate_odd_ones() {
        let schema = json!({"files": {
            "a.csv": {"rows": 3, "columns": [{"name": "id", "type": "integer"}, {"name": "label", "type": "string"}]},
            "b.csv": {"columns": "not a list"},
        }});
        let lines = schemas(&schema);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].path.as_str(), lines[0].rows.as_str(), lines[0].columns.len()), ("a.csv", "3", 2));
        assert_eq!((lines[0].columns[1].name.as_str(), lines[0].columns[1].kind.as_str()), ("label", "string"));
        assert_eq!((lines[1].rows.as_str(), lines[1].columns.len()), ("—", 0));
        assert!(schemas(&json!({})).is_empty());
    }

    #[test]
    fn version_parameters_are_positive_numbers_or_absent() {
        assert_eq!(version_param("d", None).ok(), Some(None));
        assert_eq!(version_param("d", Some(" ")).ok(), Some(None));
        assert_eq!(version_param("d", Some("3")).ok(), Some(Some(3)));
        for bad in ["0", "-1", "x", "1.5"] {
            assert!(version_param("d", Some(bad)).is_err(), "{bad}");
        }
    }
}
