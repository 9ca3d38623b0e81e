//! Datasets: each version is an immutable manifest of files (path, size, SHA-256) whose
//! bytes are content-addressed blobs in object storage. A push uploads the blobs that are
//! not stored yet, then creates the version from its manifest; a version whose manifest
//! equals the latest one is not created again. Versions record the schema and row count of
//! their CSV files, and which runs used them.

use std::collections::HashMap;

use bytes::Bytes;
use cairn_core::dataset::{DatasetRef, validate_dataset_name};
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::datasets::{self as repo, DatasetRow, FileRow, NewVersion, VersionRow};
use cairn_db::tracking::now_millis;
use cairn_db::tracking::runs::RunRow;
use cairn_storage::{ArtifactPath, BlobDigest, BodyError, Storage, StorageError};
use futures::Stream;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

mod profile;

use crate::audit::Actor;
use crate::service_error::{ServiceError, invalid};
use crate::tracking::TrackingError;

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Most files in one version.
pub const MAX_FILES: usize = 100_000;

/// A file of a manifest as a client sends it, checked by [`create_version`].
pub struct ManifestFile {
    pub path: String,
    pub size: i64,
    pub sha256: String,
}

pub struct CreatedVersion {
    pub dataset: DatasetRow,
    pub version: VersionRow,
    /// False when the manifest equalled the latest version's, which is returned instead.
    pub created: bool,
}

/// The digests among `digests` whose blobs are not stored yet.
pub async fn missing_blobs(db: &Db, digests: &[String]) -> Result<Vec<String>> {
    for digest in digests {
        BlobDigest::parse(digest).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(repo::missing_blobs(&db.pool, digests).await?)
}

/// Stores a blob streamed by a client, checking that its bytes hash to `digest`.
pub async fn store_blob<S, E>(db: &Db, storage: &Storage, digest: &BlobDigest, body: S, limit: u64) -> Result<u64>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BodyError>,
{
    let size = storage.put_blob(digest, body, limit).await?;
    let stored = i64::try_from(size).map_err(|_| StorageError::TooLarge { limit })?;
    repo::record_blob(&db.pool, digest.as_str(), stored, now_millis()).await?;
    Ok(size)
}

/// Creates the next version of dataset `name` (creating the dataset on its first push)
/// from a manifest whose blobs are all stored.
/// A version to add: the dataset's name, its files and message, and the project the dataset
/// goes to when this version creates it.
pub struct NewDatasetVersion<'a> {
    pub name: &'a str,
    pub files: Vec<ManifestFile>,
    pub message: &'a str,
    pub project_id: i64,
}

pub async fn create_version(
    db: &Db,
    storage: &Storage,
    actor: &Actor,
    new: NewDatasetVersion<'_>,
) -> Result<CreatedVersion> {
    let NewDatasetVersion { name, files, message, project_id } = new;
    validate_dataset_name(name)?;
    let files = checked_manifest(files)?;
    let digests: Vec<String> = files.iter().map(|f| f.sha256.clone()).collect();
    let stored: HashMap<String, i64> = repo::blob_sizes(&db.pool, &digests).await?.into_iter().collect();
    let mut missing = Vec::new();
    for file in &files {
        match stored.get(&file.sha256) {
            None => missing.push(file.path.as_str()),
            Some(&size) if size != file.size => {
                return Err(invalid(format!(
                    "{}: the manifest says {} bytes, but the stored content with SHA-256 {} has {size}",
                    file.path, file.size, file.sha256
                )));
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(invalid(format!(
            "the contents of {} file(s) are not uploaded yet (PUT /api/v1/blobs/SHA256 first), e.g. {}",
            missing.len(),
            missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let digest = manifest_digest(&files);
    let existing = repo::get_by_name(&db.pool, name).await?;
    let latest = match &existing {
        Some(dataset) => repo::version(&db.pool, dataset.id, None).await?,
        None => None,
    };
    if let (Some(dataset), Some(latest)) = (&existing, &latest)
        && latest.digest == digest
    {
        return Ok(CreatedVersion { dataset: dataset.clone(), version: latest.clone(), created: false });
    }
    let schema = profile::profile(storage, &files, latest.as_ref()).await?;

    let now = now_millis();
    let mut tx = db.pool.begin().await?;
    let (dataset, created_dataset) = repo::lock_or_create(&mut tx, name, project_id, actor.user_id, now).await?;
    let new = NewVersion {
        dataset_id: dataset.id,
        digest: &digest,
        message,
        schema: &schema,
        files: &files,
        created_by: actor.user_id,
        now,
    };
    let number = repo::insert_version(&mut tx, &new).await?;
    let total: i64 = files.iter().map(|f| f.size).sum();
    let details = json!({"files": files.len(), "bytes": total, "digest": digest, "new_dataset": created_dataset});
    audit::append_in(&mut tx, actor.event("dataset.version.create", format!("dataset:{name}@{number}"), details))
        .await?;
    tx.commit().await?;
    let version = repo::version(&db.pool, dataset.id, Some(number))
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("dataset {name}@{number} vanished")))?;
    Ok(CreatedVersion { dataset, version, created: true })
}

/// Paths valid and unique (no file also a directory of another), digests well-formed.
fn checked_manifest(files: Vec<ManifestFile>) -> Result<Vec<FileRow>> {
    if files.is_empty() {
        return Err(invalid("a dataset version needs at least one file"));
    }
    if files.len() > MAX_FILES {
        return Err(invalid(format!("a version holds at most {MAX_FILES} files, not {}", files.len())));
    }
    let mut checked = Vec::with_capacity(files.len());
    for file in files {
        let path =
            ArtifactPath::parse(&file.path).map_err(|e| invalid(format!("invalid file path {:?}: {e}", file.path)))?;
        let digest = BlobDigest::parse(&file.sha256).map_err(|e| invalid(format!("{}: {e}", file.path)))?;
        if file.size < 0 {
            return Err(invalid(format!("{}: a size cannot be negative", file.path)));
        }
        checked.push(FileRow { path: path.to_string(), size: file.size, sha256: digest.to_string() });
    }
    checked.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in checked.windows(2) {
        let (a, b) = (&pair[0].path, &pair[1].path);
        if a == b {
            return Err(invalid(format!("the manifest lists {a} twice")));
        }
        if b.starts_with(a.as_str()) && b.as_bytes().get(a.len()) == Some(&b'/') {
            return Err(invalid(format!("{a} cannot be both a file and the directory of {b}")));
        }
    }
    Ok(checked)
}

/// SHA-256 over `path \t size \t sha256 \n` per file in path order: equal for equal content.
pub fn manifest_digest(files: &[FileRow]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(format!("{}\t{}\t{}\n", file.path, file.size, file.sha256));
    }
    hex::encode(hasher.finalize())
}

pub async fn get_dataset(db: &Db, name: &str) -> Result<(DatasetRow, Vec<VersionRow>)> {
    let dataset = require(db, name).await?;
    let versions = repo::versions(&db.pool, dataset.id).await?;
    Ok((dataset, versions))
}

async fn require(db: &Db, name: &str) -> Result<DatasetRow> {
    let found = repo::get_by_name(&db.pool, name).await?;
    Ok(found.ok_or_else(|| TrackingError::NotFound(format!("no dataset named {name:?}")))?)
}

/// A version (the latest for `None`) with its dataset.
pub async fn get_version(db: &Db, reference: &DatasetRef) -> Result<(DatasetRow, VersionRow)> {
    let dataset = require(db, &reference.name).await?;
    let version = repo::version(&db.pool, dataset.id, reference.version)
        .await?
        .ok_or_else(|| TrackingError::NotFound(format!("dataset {reference} has no such version")))?;
    Ok((dataset, version))
}

/// What changed from one version to another, by path.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct VersionDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
}

pub fn diff(from: &[FileRow], to: &[FileRow]) -> VersionDiff {
    let before: HashMap<&str, &FileRow> = from.iter().map(|f| (f.path.as_str(), f)).collect();
    let after: HashMap<&str, &FileRow> = to.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut diff = VersionDiff::default();
    for file in to {
        match before.get(file.path.as_str()) {
            None => diff.added.push(file.path.clone()),
            Some(old) if old.sha256 != file.sha256 => diff.changed.push(file.path.clone()),
            Some(_) => diff.unchanged += 1,
        }
    }
    diff.removed = from.iter().filter(|f| !after.contains_key(f.path.as_str())).map(|f| f.path.clone()).collect();
    diff
}

/// Records that run `run` used a dataset version (its latest when none is named).
pub async fn link_run(db: &Db, actor: &Actor, run: Uuid, reference: &DatasetRef, context: &str) -> Result<VersionRow> {
    let record = crate::tracking::get_run(db, run).await?;
    let (dataset, version) = get_version(db, reference).await?;
    let mut tx = db.pool.begin().await?;
    link_run_in(&mut tx, actor, &record.run, &dataset, &version, context).await?;
    tx.commit().await?;
    Ok(version)
}

/// Records that `run` used `version` of `dataset`, audited, in the caller's transaction.
pub async fn link_run_in(
    tx: &mut PgConnection,
    actor: &Actor,
    run: &RunRow,
    dataset: &DatasetRow,
    version: &VersionRow,
    context: &str,
) -> Result<()> {
    repo::link_run(&mut *tx, run.id, version.id, context).await?;
    let target = format!("run:{}", run.run_uuid.simple());
    let details = json!({"dataset": dataset.name, "version": version.version, "context": context});
    audit::append_in(tx, actor.event("run.dataset.link", target, details)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, sha: char) -> ManifestFile {
        ManifestFile { path: path.into(), size: 1, sha256: sha.to_string().repeat(64) }
    }

    #[test]
    fn manifests_are_checked_and_sorted() {
        let ok = checked_manifest(vec![file("b/c.csv", 'a'), file("a.txt", 'b')]).expect("valid");
        assert_eq!(ok.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a.txt", "b/c.csv"]);
        for (bad, why) in [
            (vec![], "at least one"),
            (vec![file("x", 'a'), file("x", 'b')], "twice"),
            (vec![file("x", 'a'), file("x/y", 'b')], "both a file and the directory"),
            (vec![file("../x", 'a')], "invalid file path"),
            (vec![file("/etc/passwd", 'a')], "invalid file path"),
            (vec![file("x", 'Z')], "SHA-256"),
        ] {
            let err = checked_manifest(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
        assert!(checked_manifest(vec![file("x", 'a'), file("x.y/z", 'b'), file("xy", 'c')]).is_ok());
    }

    #[test]
    fn the_manifest_digest_depends_on_content_not_order() {
        let a = checked_manifest(vec![file("p", 'a'), file("q", 'b')]).expect("valid");
        let b = checked_manifest(vec![file("q", 'b'), file("p", 'a')]).expect("valid");
        let c = checked_manifest(vec![file("q", 'a'), file("p", 'b')]).expect("valid");
        assert_eq!(manifest_digest(&a), manifest_digest(&b));
        assert_ne!(manifest_digest(&a), manifest_digest(&c));
    }

    #[test]
    fn diffs_name_added_removed_and_changed_paths() {
        let row = |p: &str, s: char| FileRow { path: p.into(), size: 1, sha256: s.to_string().repeat(64) };
        let d = diff(&[row("a", '1'), row("b", '2'), row("c", '3')], &[row("a", '1'), row("b", '9'), row("d", '4')]);
        assert_eq!(
            (d.added, d.removed, d.changed, d.unchanged),
            (vec!["d".into()], vec!["c".into()], vec!["b".into()], 1)
        );
    }
}
