//! Content-addressed blobs for dataset versions: a file's bytes are stored once, under
//! `datasets/blobs/sha256/<first two hex digits>/<digest>`, however many datasets and
//! versions hold them. An upload is written to a staging key while it is hashed and only
//! moved to its final key when the bytes hash to the digest it claims, so a stored blob's
//! content always matches its name.

use std::fmt;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};

use crate::{ArtifactPath, BodyError, ByteRange, Download, Storage, StorageError};

/// Where dataset blobs live in the store (beside `mlflow-artifacts/`).
const BLOBS_PREFIX: &str = "datasets/blobs/sha256";
const STAGING_PREFIX: &str = "datasets/staging";

/// A SHA-256 digest as 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobDigest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest (64 lowercase hex digits)")]
pub struct BadDigest(pub String);

impl BlobDigest {
    pub fn parse(s: &str) -> Result<BlobDigest, BadDigest> {
        let valid = s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid { Ok(BlobDigest(s.to_owned())) } else { Err(BadDigest(s.to_owned())) }
    }

    /// The digest of what `hasher` has seen.
    pub fn of(hasher: Sha256) -> BlobDigest {
        BlobDigest(hex::encode(hasher.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self) -> ArtifactPath {
        ArtifactPath::parse(&format!("{BLOBS_PREFIX}/{}/{}", &self.0[..2], self.0))
            .expect("a digest makes a valid path")
    }
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Storage {
    /// Stores `body` as the blob `digest` and returns its size. Fails with
    /// [`StorageError::DigestMismatch`] when the bytes hash to something else, and as
    /// [`Storage::put_stream`] does otherwise; in every failure the blob is left as it was.
    pub async fn put_blob<S, E>(&self, digest: &BlobDigest, body: S, limit: u64) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BodyError>,
    {
        // Staging keys differ per upload, so two uploads of the same blob never share one.
        let staging = ArtifactPath::parse(&format!("{STAGING_PREFIX}/{digest}.{:016x}", rand::random::<u64>()))
            .expect("a digest makes a valid path");
        let mut hasher = Sha256::new();
        let hashed = body.map_err(Into::into).inspect_ok(|chunk: &Bytes| hasher.update(chunk));
        let size = self.put_stream(&staging, hashed, limit).await?;
        let actual = BlobDigest::of(hasher);
        if &actual != digest {
            self.delete(&staging).await?;
            return Err(StorageError::DigestMismatch { expected: digest.to_string(), actual: actual.to_string() });
        }
        // Same content under the same name: replacing an existing blob changes nothing.
        self.store.rename(&staging.to_object_path(), &digest.path().to_object_path()).await?;
        Ok(size)
    }

    /// The blob's bytes as a stream; with `range`, only those bytes.
    pub async fn get_blob(&self, digest: &BlobDigest) -> Result<Download, StorageError> {
        self.get_stream(&digest.path(), None).await
    }

    /// Some of the blob's bytes, read whole (for small ranges, such as a file's footer).
    pub async fn read_blob_range(&self, digest: &BlobDigest, range: ByteRange) -> Result<Vec<u8>, StorageError> {
        let download = self.get_stream(&digest.path(), Some(range)).await?;
        let chunks: Vec<Bytes> = download.stream.try_collect().await?;
        Ok(chunks.concat())
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn chunks(data: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + use<> {
        let parts: Vec<_> = data.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        stream::iter(parts)
    }

    fn digest_of(data: &[u8]) -> BlobDigest {
        BlobDigest::of(Sha256::new_with_prefix(data))
    }

    #[tokio::test]
    async fn a_blob_is_stored_under_its_digest_only_when_the_bytes_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path()).expect("local store");
        let data = b"hello, datasets".repeat(10);
        let digest = digest_of(&data);
        assert_eq!(storage.put_blob(&digest, chunks(&data), u64::MAX).await.expect("put"), data.len() as u64);
        let stored: Vec<Bytes> =
            storage.get_blob(&digest).await.expect("get").stream.try_collect().await.expect("read");
        assert_eq!(stored.concat(), data);

        let other = digest_of(b"something else");
        let err = storage.put_blob(&other, chunks(&data), u64::MAX).await;
        assert!(matches!(err, Err(StorageError::DigestMismatch { .. })), "{err:?}");
        assert!(matches!(storage.get_blob(&other).await.err(), Some(StorageError::NotFound { .. })));
        let staged = std::fs::read_dir(dir.path().join("datasets/staging")).map_or(0, |d| d.count());
        assert_eq!(staged, 0, "no staging object left behind");
    }

    #[test]
    fn digests_are_64_lowercase_hex_digits() {
        assert!(BlobDigest::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"a".repeat(65), "../../etc/passwd"] {
            assert!(BlobDigest::parse(bad).is_err(), "{bad}");
        }
    }
}
