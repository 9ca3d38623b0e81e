//! [`StorageError`]: what can go wrong in this crate. "Not found" is its own variant, so
//! callers answer 404 without looking inside backend errors.

use std::time::Duration;

/// An error from the body a caller streams in (a client that went away, say).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("no object at {path}")]
    NotFound { path: String },
    #[error("the requested range is outside the object ({size} bytes)")]
    RangeNotSatisfiable { size: u64 },
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("a file and a directory would have the same path")]
    FileDirConflict,
    #[error("the content's SHA-256 is {actual}, not {expected} as claimed")]
    DigestMismatch { expected: String, actual: String },
    #[error("the upload's body failed: {0}")]
    Body(#[source] BodyError),
    #[error("storage did not answer within {0:?}")]
    Timeout(Duration),
    #[error("storage error: {0}")]
    Backend(object_store::Error),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => StorageError::NotFound { path },
            other if under_a_file(&other) => StorageError::NotFound { path: "a path below a file".to_owned() },
            other => StorageError::Backend(other),
        }
    }
}

/// The local store reports `a/b/c` where `a/b` is a file as an I/O error ("not a
/// directory"); on S3 it is simply a key that does not exist.
fn under_a_file(e: &object_store::Error) -> bool {
    io_kind(e) == Some(std::io::ErrorKind::NotADirectory)
}

/// An error from a write. The local store cannot have a file and a directory of the same
/// name (S3 can): it says so in I/O errors, which become [`StorageError::FileDirConflict`].
pub(crate) fn write_error(e: object_store::Error) -> StorageError {
    use std::io::ErrorKind::{AlreadyExists, IsADirectory, NotADirectory};
    match io_kind(&e) {
        Some(NotADirectory | IsADirectory | AlreadyExists) => StorageError::FileDirConflict,
        _ => e.into(),
    }
}

/// The kind of the first I/O error in `e`'s chain of sources.
fn io_kind(e: &object_store::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = error.source();
    }
    None
}
