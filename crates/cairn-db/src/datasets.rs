//! Datasets, their immutable versions (manifests of files), the content-addressed blobs the
//! files point at, and which runs used which version.

use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct DatasetRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub project_id: i64,
}

/// A dataset with its latest version, for lists.
#[derive(Debug, Clone, FromRow)]
pub struct DatasetSummary {
    pub name: String,
    pub description: String,
    pub last_update_time: i64,
    pub latest_version: Option<i32>,
    pub file_count: Option<i32>,
    pub total_bytes: Option<i64>,
    pub project_id: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub id: i64,
    pub version: i32,
    pub digest: String,
    pub file_count: i32,
    pub total_bytes: i64,
    pub message: String,
    pub schema: Json<serde_json::Value>,
    pub creation_time: i64,
    /// The account that pushed it.
    pub created_by: Option<String>,
}

const VERSION_COLUMNS: &str = "v.id, v.version, v.digest, v.file_count, v.total_bytes, v.message, v.schema, \
                               v.creation_time, u.username AS created_by";

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct FileRow {
    pub path: String,
    pub size: i64,
    pub sha256: String,
}

/// A run that used a dataset version.
#[derive(Debug, Clone, FromRow)]
pub struct RunUse {
    pub version_id: i64,
    pub run_uuid: Uuid,
    pub run_name: String,
    pub experiment_id: i64,
    pub context: String,
}

/// A dataset version a run used.
#[derive(Debug, Clone, FromRow)]
pub struct UsedVersion {
    pub dataset: String,
    pub version: i32,
    pub digest: String,
    pub context: String,
}

/// Every dataset in `projects` (None: every project) with its latest version, by name.
pub async fn list(db: impl PgExecutor<'_>, projects: Option<&[i64]>) -> Result<Vec<DatasetSummary>, DbError> {
    Ok(sqlx::query_as(
        "SELECT d.name, d.description, d.last_update_time, v.version AS latest_version, v.file_count, v.total_bytes, \
         d.project_id FROM datasets d LEFT JOIN LATERAL (SELECT version, file_count, total_bytes FROM dataset_versions \
         WHERE dataset_id = d.id ORDER BY version DESC LIMIT 1) v ON true \
         WHERE $1::bigint[] IS NULL OR d.project_id = ANY($1) ORDER BY d.name",
    )
    .bind(projects)
    .fetch_all(db)
    .await?)
}

pub async fn get_by_name(db: impl PgExecutor<'_>, name: &str) -> Result<Option<DatasetRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, name, description, creation_time, last_update_time, project_id FROM datasets WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// The dataset named `name`, created if it does not exist, its row locked until the
/// transaction ends so that versions are numbered one at a time.
pub async fn lock_or_create(
    conn: &mut PgConnection,
    name: &str,
    project_id: i64,
    created_by: Option<i64>,
    now: i64,
) -> Result<(DatasetRow, bool), DbError> {
    let created: Option<DatasetRow> = sqlx::query_as(
        "INSERT INTO datasets (name, creation_time, last_update_time, created_by, project_id) VALUES ($1, $2, $2, $3, $4) \
         ON CONFLICT (name) DO NOTHING RETURNING id, name, description, creation_time, last_update_time, project_id",
    )
    .bind(name)
    .bind(now)
    .bind(created_by)
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = created {
        return Ok((row, true));
    }
    let row = sqlx::query_as(
        "SELECT id, name, description, creation_time, last_update_time, project_id FROM datasets WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row, false))
}

pub async fn versions(db: impl PgExecutor<'_>, dataset_id: i64) -> Result<Vec<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM dataset_versions v LEFT JOIN users u ON u.id = v.created_by \
         WHERE v.dataset_id = $1 ORDER BY v.version DESC"
    )))
    .bind(dataset_id)
    .fetch_all(db)
    .await?)
}

/// Version `version` of the dataset, or its latest for `None`.
pub async fn version(
    db: impl PgExecutor<'_>,
    dataset_id: i64,
    version: Option<i32>,
) -> Result<Option<VersionRow>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM dataset_versions v LEFT JOIN users u ON u.id = v.created_by \
         WHERE v.dataset_id = $1 AND ($2::int IS NULL OR v.version = $2) ORDER BY v.version DESC LIMIT 1"
    )))
    .bind(dataset_id)
    .bind(version)
    .fetch_optional(db)
    .await?)
}

pub async fn files(db: impl PgExecutor<'_>, version_id: i64) -> Result<Vec<FileRow>, DbError> {
    Ok(sqlx::query_as("SELECT path, size, sha256 FROM dataset_files WHERE version_id = $1 ORDER BY path")
        .bind(version_id)
        .fetch_all(db)
        .await?)
}

/// One file of a version.
pub async fn file(db: impl PgExecutor<'_>, version_id: i64, path: &str) -> Result<Option<FileRow>, DbError> {
    Ok(sqlx::query_as("SELECT path, size, sha256 FROM dataset_files WHERE version_id = $1 AND path = $2")
        .bind(version_id)
        .bind(path)
        .fetch_optional(db)
        .await?)
}

/// The digests among `digests` that no stored blob has.
pub async fn missing_blobs(db: impl PgExecutor<'_>, digests: &[String]) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT d FROM UNNEST($1::text[]) AS d WHERE NOT EXISTS (SELECT 1 FROM dataset_blobs b WHERE b.sha256 = d) \
         ORDER BY d",
    )
    .bind(digests)
    .fetch_all(db)
    .await?)
}

/// Records a blob that is now in storage.
pub async fn record_blob(db: impl PgExecutor<'_>, sha256: &str, size: i64, now: i64) -> Result<(), DbError> {
    sqlx::query("INSERT INTO dataset_blobs (sha256, size, creation_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(sha256)
        .bind(size)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// The stored size of each of `digests` that is stored.
pub async fn blob_sizes(db: impl PgExecutor<'_>, digests: &[String]) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as("SELECT sha256, size FROM dataset_blobs WHERE sha256 = ANY($1)")
        .bind(digests)
        .fetch_all(db)
        .await?)
}

pub struct NewVersion<'a> {
    pub dataset_id: i64,
    pub digest: &'a str,
    pub message: &'a str,
    pub schema: &'a serde_json::Value,
    pub files: &'a [FileRow],
    pub created_by: Option<i64>,
    pub now: i64,
}

/// Adds the next version of a dataset locked by [`lock_or_create`], with its files.
pub async fn insert_version(conn: &mut PgConnection, new: &NewVersion<'_>) -> Result<i32, DbError> {
    let total: i64 = new.files.iter().map(|f| f.size).sum();
    let (id, version): (i64, i32) = sqlx::query_as(
        "INSERT INTO dataset_versions (dataset_id, version, digest, file_count, total_bytes, message, schema, creation_time, created_by) \
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8 FROM dataset_versions WHERE dataset_id = $1 \
         RETURNING id, version",
    )
    .bind(new.dataset_id)
    .bind(new.digest)
    .bind(i32::try_from(new.files.len()).unwrap_or(i32::MAX))
    .bind(total)
    .bind(new.message)
    .bind(Json(new.schema))
    .bind(new.now)
    .bind(new.created_by)
    .fetch_one(&mut *conn)
    .await?;
    let paths: Vec<&str> = new.files.iter().map(|f| f.path.as_str()).collect();
    let sizes: Vec<i64> = new.files.iter().map(|f| f.size).collect();
    let digests: Vec<&str> = new.files.iter().map(|f| f.sha256.as_str()).collect();
    sqlx::query(
        "INSERT INTO dataset_files (version_id, path, size, sha256) SELECT $1, p, s, d FROM UNNEST($2::text[], $3::bigint[], $4::text[]) AS t(p, s, d)",
    )
    .bind(id)
    .bind(&paths)
    .bind(&sizes)
    .bind(&digests)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE datasets SET last_update_time = $2 WHERE id = $1")
        .bind(new.dataset_id)
        .bind(new.now)
        .execute(conn)
        .await?;
    Ok(version)
}

/// The runs in `projects` (None: every project) that used any of the versions, newest first.
pub async fn runs_using(
    db: impl PgExecutor<'_>,
    version_ids: &[i64],
    projects: Option<&[i64]>,
) -> Result<Vec<RunUse>, DbError> {
    Ok(sqlx::query_as(
        "SELECT l.version_id, r.run_uuid, r.name AS run_name, r.experiment_id, l.context FROM run_dataset_versions l \
         JOIN runs r ON r.id = l.run_id WHERE l.version_id = ANY($1) \
         AND ($2::bigint[] IS NULL OR r.experiment_id IN (SELECT id FROM experiments WHERE project_id = ANY($2))) \
         ORDER BY r.start_time DESC NULLS LAST, r.id DESC",
    )
    .bind(version_ids)
    .bind(projects)
    .fetch_all(db)
    .await?)
}

/// The versions of datasets in `projects` (None: every project) that a run used.
pub async fn used_by_run(
    db: impl PgExecutor<'_>,
    run_id: i64,
    projects: Option<&[i64]>,
) -> Result<Vec<UsedVersion>, DbError> {
    Ok(sqlx::query_as(
        "SELECT d.name AS dataset, v.version, v.digest, l.context FROM run_dataset_versions l \
         JOIN dataset_versions v ON v.id = l.version_id JOIN datasets d ON d.id = v.dataset_id \
         WHERE l.run_id = $1 AND ($2::bigint[] IS NULL OR d.project_id = ANY($2)) ORDER BY d.name, v.version",
    )
    .bind(run_id)
    .bind(projects)
    .fetch_all(db)
    .await?)
}

/// Records that a run used a version (again: the context is updated).
pub async fn link_run(db: impl PgExecutor<'_>, run_id: i64, version_id: i64, context: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO run_dataset_versions (run_id, version_id, context) VALUES ($1, $2, $3) \
         ON CONFLICT (run_id, version_id) DO UPDATE SET context = EXCLUDED.context",
    )
    .bind(run_id)
    .bind(version_id)
    .bind(context)
    .execute(db)
    .await?;
    Ok(())
}

/// Links a run to the dataset versions whose manifest digest is one of the inputs' (what
/// the MLflow client logged), each with its input's context, and returns the links made or
/// updated. Equal digests mean equal content: where one dataset holds that content in
/// several versions, the newest is linked. Give each digest once.
pub async fn link_run_by_digests(
    conn: &mut PgConnection,
    run_id: i64,
    digests: &[String],
    contexts: &[String],
) -> Result<Vec<UsedVersion>, DbError> {
    Ok(sqlx::query_as(
        "WITH linked AS (INSERT INTO run_dataset_versions (run_id, version_id, context) \
           SELECT DISTINCT ON (i.digest, v.dataset_id) $1, v.id, i.context \
           FROM UNNEST($2::text[], $3::text[]) AS i(digest, context) JOIN dataset_versions v ON v.digest = i.digest \
           ORDER BY i.digest, v.dataset_id, v.version DESC \
           ON CONFLICT (run_id, version_id) DO UPDATE SET context = EXCLUDED.context RETURNING version_id, context) \
         SELECT d.name AS dataset, v.version, v.digest, l.context FROM linked l \
         JOIN dataset_versions v ON v.id = l.version_id JOIN datasets d ON d.id = v.dataset_id ORDER BY d.name, v.version",
    )
    .bind(run_id)
    .bind(digests)
    .bind(contexts)
    .fetch_all(conn)
    .await?)
}

/// The first `limit` files of a version, by path (what a page shows of a large version).
pub async fn first_files(db: impl PgExecutor<'_>, version_id: i64, limit: i64) -> Result<Vec<FileRow>, DbError> {
    Ok(sqlx::query_as("SELECT path, size, sha256 FROM dataset_files WHERE version_id = $1 ORDER BY path LIMIT $2")
        .bind(version_id)
        .bind(limit)
        .fetch_all(db)
        .await?)
}
