//! Artifact and dataset storage over `object_store`: a local directory by default
//! (`file:///abs/path`), or S3 and S3-compatible servers (`s3://bucket/prefix`).
//!
//! Objects are named by [`ArtifactPath`], parsed at the boundary, so no function here sees
//! a traversal or an absolute path. Bodies stream both ways: uploads go through multipart
//! uploads once they outgrow one part, so a multi-gigabyte body is never held in memory,
//! and an upload that fails or is dropped halfway is aborted and never becomes visible.
//! Modules: [`path`] (keys), [`open`] (constructors), `transfer` (upload and download),
//! `tree` (listing and deletion).

mod blobs;
mod error;
mod open;
pub mod path;
mod transfer;
mod tree;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

pub use blobs::{BadDigest, BlobDigest};
pub use error::{BodyError, StorageError};
pub use open::S3Config;
pub use path::{ArtifactPath, ArtifactPathError};
pub use transfer::{ByteRange, Download};
pub use tree::{Entry, EntryKind};

/// Where artifacts live. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The same store, configured to fail fast (no retries, short timeouts) for `check`.
    probe: Arc<dyn ObjectStore>,
    url: String,
    /// Set for the local store, which needs tidying that S3 does not.
    local: Option<LocalRoot>,
}

#[derive(Clone, Debug)]
struct LocalRoot {
    fs: Arc<LocalFileSystem>,
    /// Canonical path of the store's directory.
    root: PathBuf,
}

impl Storage {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Checks that the store answers: a HEAD of a key that need not exist. "Not found" is
    /// an answer; a network or permission error is not. Gives up after a few seconds.
    pub async fn check(&self) -> Result<(), StorageError> {
        let key = ObjectPath::from(".cairn-readiness-probe");
        let probe = self.probe.head(&key);
        // The probe store has its own timeouts; this one also bounds DNS and anything else.
        let limit = open::PROBE_TIMEOUT + std::time::Duration::from_secs(1);
        match tokio::time::timeout(limit, probe).await {
            Ok(Ok(_) | Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StorageError::Timeout(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_is_created_and_ready() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("artifacts");
        let url = format!("file://{}", root.display());
        let storage = Storage::from_url(&url).expect("opens");
        storage.check().await.expect("ready");
        assert!(root.is_dir());
        assert_eq!(storage.url(), url);
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        for (url, needle) in
            [("ftp://x/y", "unsupported scheme"), ("not a url", "expected file://"), ("s3:///x", "bucket")]
        {
            let err = Storage::from_url(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_s3_endpoint_fails_the_check_quickly() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let storage = Storage::s3(&S3Config {
            bucket: "b".into(),
            prefix: "p".into(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: true,
        })
        .expect("builds without connecting");
        assert_eq!(storage.url(), "s3://b/p");
        let started = std::time::Instant::now();
        storage.check().await.expect_err("nothing listens there");
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }

    #[test]
    fn s3_config_debug_hides_the_secret() {
        let config = S3Config { secret_access_key: Some("hunter2".into()), ..S3Config::default() };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
