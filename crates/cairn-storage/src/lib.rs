//! Artifact and dataset storage over `object_store`: a local directory by default
//! (`file:///abs/path`), or S3 and S3-compatible servers (`s3://bucket/prefix`, configured
//! with the standard `AWS_*` variables and `AWS_ENDPOINT_URL`).

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("storage error: {0}")]
    Backend(#[from] object_store::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where artifacts live. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Storage {
    /// Opens the store named by `url`. Local directories are created when missing.
    pub fn from_url(url: &str) -> Result<Storage, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = Url::parse(url).map_err(|e| {
            invalid(&format!(
                "{e}; expected file:///absolute/dir or s3://bucket/prefix"
            ))
        })?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid("a file:// URL needs an absolute path"))?;
                std::fs::create_dir_all(&dir)?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("an s3:// URL needs a bucket"))?;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch);
                // object_store reads AWS_ENDPOINT but the AWS tools' name is AWS_ENDPOINT_URL.
                if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                    builder = builder
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    builder = builder.with_region("us-east-1");
                }
                let s3 = Arc::new(builder.build()?);
                let prefix = parsed.path().trim_matches('/');
                if prefix.is_empty() {
                    s3
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                }
            }
            other => {
                return Err(invalid(&format!(
                    "unsupported scheme {other:?}; use file:// or s3://"
                )));
            }
        };
        Ok(Storage {
            store,
            url: url.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Checks that the store answers: a HEAD of a key that need not exist. "Not found" is
    /// an answer; a network or permission error is not.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self
            .store
            .head(&ObjectPath::from(".cairn-readiness-probe"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
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
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        for (url, needle) in [
            ("ftp://x/y", "unsupported scheme"),
            ("not a url", "expected file://"),
            ("s3:///x", "bucket"),
        ] {
            let err = Storage::from_url(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
