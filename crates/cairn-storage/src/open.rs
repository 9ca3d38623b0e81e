//! Opening a store: from a URL, as `cairn serve` does (S3 credentials and endpoint from the
//! standard `AWS_*` variables), or from explicit settings ([`S3Config`]), which is what the
//! tests use so that nothing depends on process-global environment variables.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::chunked::ChunkedStore;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use crate::{LocalRoot, Storage, StorageError};

/// How long the readiness probe may take, connection included. It never retries: a store
/// that does not answer now is not ready now.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one S3 request may run. Generous because a GET's body is streamed to a
/// client at the client's pace; should it still expire, `object_store` resumes the body
/// with a range request.
const S3_REQUEST_TIMEOUT: &str = "10m";
const S3_CONNECT_TIMEOUT: &str = "5s";

/// The size of the pieces a local download is read in.
const LOCAL_READ_CHUNK: usize = 256 * 1024;

/// Explicit settings for an S3 or S3-compatible store.
#[derive(Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end; empty for none.
    pub prefix: String,
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`); `None` for AWS.
    /// Requests use path-style addressing when it is set.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local test servers).
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl Storage {
    /// Opens the store named by `url`: `file:///absolute/dir` (created when missing) or
    /// `s3://bucket/prefix` (AWS settings from the environment, including
    /// `AWS_ENDPOINT_URL`; region `us-east-1` unless one is set).
    pub fn from_url(url: &str) -> Result<Storage, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let parsed = Url::parse(url)
            .map_err(|e| invalid(&format!("{e}; expected file:///absolute/dir or s3://bucket/prefix")))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| invalid("a file:// URL needs an absolute path"))?;
                Storage::local(&dir)
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("an s3:// URL needs a bucket"))?;
                let config = s3_config_from_env(bucket, parsed.path());
                open_s3(AmazonS3Builder::from_env(), &config)
            }
            other => Err(invalid(&format!("unsupported scheme {other:?}; use file:// or s3://"))),
        }
    }

    /// A store in a local directory, created when missing.
    pub fn local(dir: &Path) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir)?;
        let root = std::fs::canonicalize(dir)?;
        // Cleanup removes directories that deleting their last file leaves empty, so the
        // local store lists like S3, where a "directory" exists only through its objects.
        let fs = Arc::new(LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true));
        // Reads in chunks of LOCAL_READ_CHUNK rather than object_store's 8 KiB, each of
        // which costs a trip to the blocking pool: downloads run several times faster.
        let store: Arc<dyn ObjectStore> = Arc::new(ChunkedStore::new(fs.clone(), LOCAL_READ_CHUNK));
        Ok(Storage {
            probe: store.clone(),
            store,
            url: format!("file://{}", dir.display()),
            local: Some(LocalRoot { fs, root }),
        })
    }

    /// An S3 store from explicit settings; reads no environment variable.
    pub fn s3(config: &S3Config) -> Result<Storage, StorageError> {
        open_s3(AmazonS3Builder::new(), config)
    }
}

/// `from_url`'s settings: what the URL names, plus what the AWS tools read and
/// `object_store`'s `from_env` does not (`AWS_ENDPOINT_URL`) or defaults differently.
fn s3_config_from_env(bucket: &str, path: &str) -> S3Config {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let region_set = std::env::var_os("AWS_REGION").is_some() || std::env::var_os("AWS_DEFAULT_REGION").is_some();
    S3Config {
        bucket: bucket.to_owned(),
        prefix: path.trim_matches('/').to_owned(),
        allow_http: endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
        endpoint,
        region: (!region_set).then(|| "us-east-1".to_owned()),
        access_key_id: None,
        secret_access_key: None,
    }
}

fn open_s3(base: AmazonS3Builder, config: &S3Config) -> Result<Storage, StorageError> {
    let builder = apply(base, config);
    let store = with_prefix(
        Arc::new(
            builder
                .clone()
                .with_config(client(ClientConfigKey::Timeout), S3_REQUEST_TIMEOUT)
                .with_config(client(ClientConfigKey::ConnectTimeout), S3_CONNECT_TIMEOUT)
                .build()?,
        ),
        &config.prefix,
    );
    let probe_timeout = format!("{}s", PROBE_TIMEOUT.as_secs());
    let probe = with_prefix(
        Arc::new(
            builder
                .with_config(client(ClientConfigKey::Timeout), &probe_timeout)
                .with_config(client(ClientConfigKey::ConnectTimeout), &probe_timeout)
                .with_retry(RetryConfig { max_retries: 0, ..RetryConfig::default() })
                .build()?,
        ),
        &config.prefix,
    );
    let url = match config.prefix.as_str() {
        "" => format!("s3://{}", config.bucket),
        prefix => format!("s3://{}/{prefix}", config.bucket),
    };
    Ok(Storage { store, probe, url, local: None })
}

fn apply(mut builder: AmazonS3Builder, config: &S3Config) -> AmazonS3Builder {
    builder = builder.with_bucket_name(&config.bucket).with_conditional_put(S3ConditionalPut::ETagMatch);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    // Only ever switched on: `from_env` may have switched it on already (AWS_ALLOW_HTTP).
    if config.allow_http {
        builder = builder.with_allow_http(true);
    }
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &config.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &config.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    builder
}

fn client(key: ClientConfigKey) -> AmazonS3ConfigKey {
    AmazonS3ConfigKey::Client(key)
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) }
}
