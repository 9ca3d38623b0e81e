//! Streaming upload ([`Storage::put_stream`]) and download ([`Storage::get_stream`]).
//!
//! An upload buffers at most one part. A body that ends within it is written with one
//! atomic PUT; a longer one becomes a multipart upload with a bounded number of parts in
//! flight, so memory per upload stays under `(PARTS_IN_FLIGHT + 1) * PART_SIZE` however
//! large the body. A multipart upload only becomes visible when it completes; on any error
//! (the body failing because the client went away, the size limit, the backend) or when
//! the upload future is dropped (a timeout, shutdown) it is aborted instead.

use std::ops::Range;
use std::pin::pin;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::write_error;
use crate::{ArtifactPath, BodyError, LocalRoot, Storage, StorageError};

/// One multipart part, and the most a small upload buffers before it becomes a multipart
/// upload. S3 wants at least 5 MiB per part but the last, and at most 10,000 parts: 8 MiB
/// parts allow objects of up to 78 GiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploading at once, per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// An object's bytes, or the requested range of them, as a stream.
pub struct Download {
    /// Size of the whole object.
    pub size: u64,
    /// The bytes the stream yields: `0..size` unless a range was asked for.
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, StorageError>>,
}

/// A byte range as HTTP `Range` names them (positions inclusive, as in `bytes=0-99`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`
    Bounded { first: u64, last: u64 },
    /// `first-`: to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range this names in an object of `size` bytes; `None` when no byte of
    /// it is inside the object (HTTP's "unsatisfiable"). A range running past the end is
    /// cut at the end, as HTTP says.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        let range = match self {
            ByteRange::Bounded { first, last } if first <= last => first..last.saturating_add(1),
            ByteRange::Bounded { .. } => return None,
            ByteRange::From(first) => first..size,
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        (range.start < size && range.start < range.end).then(|| range.start..range.end.min(size))
    }
}

impl Storage {
    /// Writes `body` to `path`, replacing what was there, and returns its size. Fails with
    /// [`StorageError::TooLarge`] as soon as the body passes `limit` bytes, and with
    /// [`StorageError::Body`] when the body itself fails; nothing is written then.
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, body: S, limit: u64) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BodyError>,
    {
        let key = path.to_object_path();
        if self.is_local_dir(&key).await {
            // Checked first: the local store would only find out when publishing the
            // upload, and then leave its staging file behind.
            return Err(StorageError::FileDirConflict);
        }
        let mut body = pin!(body.map_err(|e| StorageError::Body(e.into())));
        let mut head = Vec::new();
        let mut size = 0;
        while size < PART_SIZE as u64 {
            let Some(chunk) = body.try_next().await? else {
                self.store.put(&key, PutPayload::from_iter(head)).await.map_err(write_error)?;
                return Ok(size);
            };
            size = grown(size, &chunk, limit)?;
            head.push(chunk);
        }
        let mut upload = Upload {
            writer: Some(WriteMultipart::new_with_chunk_size(
                self.store.put_multipart(&key).await.map_err(write_error)?,
                PART_SIZE,
            )),
            local: self.local.clone(),
            key,
        };
        let written = async {
            for chunk in head {
                upload.put(chunk).await?;
            }
            while let Some(chunk) = body.try_next().await? {
                size = grown(size, &chunk, limit)?;
                upload.put(chunk).await?;
            }
            Ok(size)
        }
        .await;
        match written {
            Ok(size) => upload.finish().await.map(|()| size),
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// The object at `path` as a stream; with `range`, only those bytes (a range outside
    /// the object is [`StorageError::RangeNotSatisfiable`]). A missing object, or a
    /// "directory", is [`StorageError::NotFound`].
    pub async fn get_stream(&self, path: &ArtifactPath, range: Option<ByteRange>) -> Result<Download, StorageError> {
        let key = path.to_object_path();
        let mut options = GetOptions::default();
        if let Some(range) = range {
            // The size is needed to resolve suffix and open ranges the same way on every
            // backend, and to answer "unsatisfiable" rather than a backend error.
            let size = self.store.head(&key).await?.size;
            let resolved = range.resolve(size).ok_or(StorageError::RangeNotSatisfiable { size })?;
            options.range = Some(GetRange::Bounded(resolved));
        }
        let result = self.store.get_opts(&key, options).await?;
        Ok(Download {
            size: result.meta.size,
            range: result.range.clone(),
            stream: result.into_stream().map_err(StorageError::from).boxed(),
        })
    }
}

impl Storage {
    /// Whether `key` is a directory of the local store.
    async fn is_local_dir(&self, key: &ObjectPath) -> bool {
        let Some(file) = self.local.as_ref().and_then(|local| local.fs.path_to_filesystem(key).ok()) else {
            return false;
        };
        tokio::fs::metadata(file).await.is_ok_and(|meta| meta.is_dir())
    }
}

/// `size` plus the chunk, unless that passes `limit`.
fn grown(size: u64, chunk: &Bytes, limit: u64) -> Result<u64, StorageError> {
    let size = size.saturating_add(chunk.len() as u64);
    if size > limit {
        return Err(StorageError::TooLarge { limit });
    }
    Ok(size)
}

/// A multipart upload in progress: completed by [`Upload::finish`], aborted when dropped
/// before that, whether by an error return or by the caller's future being dropped.
struct Upload {
    writer: Option<WriteMultipart>,
    local: Option<LocalRoot>,
    key: ObjectPath,
}

impl Upload {
    async fn put(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(write_error)?;
            writer.put(chunk);
        }
        Ok(())
    }

    async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            abort(writer, self.local.take(), self.key.clone()).await;
        }
    }

    async fn finish(mut self) -> Result<(), StorageError> {
        if let Some(writer) = self.writer.take() {
            // `finish` aborts the upload itself when completing it fails.
            if let Err(e) = writer.finish().await {
                tidy_local(self.local.take(), self.key.clone()).await;
                return Err(write_error(e));
            }
        }
        Ok(())
    }
}

async fn abort(writer: WriteMultipart, local: Option<LocalRoot>, key: ObjectPath) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, key = %key, "could not abort a multipart upload");
    }
    tidy_local(local, key).await;
}

impl Drop for Upload {
    fn drop(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let abort = abort(writer, self.local.take(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(abort)),
            Err(_) => tracing::warn!(key = %self.key, "no runtime to abort a multipart upload"),
        }
    }
}

/// The local store creates an upload's directories when it starts; once it is aborted,
/// remove those left empty so the failed upload leaves no trace in listings.
async fn tidy_local(local: Option<LocalRoot>, key: ObjectPath) {
    let Some(LocalRoot { fs, root }) = local else {
        return;
    };
    let Ok(file) = fs.path_to_filesystem(&key) else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| *d != root && d.starts_with(&root)) {
            // Fails, and so stops, at the first directory that is not empty.
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::ByteRange::{self, *};
    use super::*;
    use crate::Entry;

    fn path(p: &str) -> ArtifactPath {
        ArtifactPath::parse(p).expect("valid path")
    }

    fn local() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path()).expect("local store");
        (dir, storage)
    }

    /// `len` bytes of a pattern that does not repeat at part boundaries, in uneven chunks.
    fn body(len: usize) -> (Vec<u8>, Vec<Result<Bytes, std::io::Error>>) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let chunks = data.chunks(100_003).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        (data, chunks)
    }

    async fn read_all(storage: &Storage, p: &str, range: Option<ByteRange>) -> Vec<u8> {
        let download = storage.get_stream(&path(p), range).await.expect("get");
        let chunks: Vec<Bytes> = download.stream.try_collect().await.expect("stream");
        chunks.concat()
    }

    #[tokio::test]
    async fn small_and_multipart_uploads_round_trip() {
        let (_dir, storage) = local();
        for len in [0, 10, PART_SIZE, 2 * PART_SIZE + 12_345] {
            let (data, chunks) = body(len);
            let name = format!("d/{len}.bin");
            let size = storage.put_stream(&path(&name), stream::iter(chunks), u64::MAX).await.expect("put");
            assert_eq!(size, len as u64);
            assert!(read_all(&storage, &name, None).await == data, "{len} bytes");
        }
    }

    #[tokio::test]
    async fn ranges_read_the_right_bytes() {
        let (_dir, storage) = local();
        let (data, chunks) = body(1000);
        storage.put_stream(&path("f"), stream::iter(chunks), u64::MAX).await.expect("put");
        let part = read_all(&storage, "f", Some(Bounded { first: 10, last: 19 })).await;
        assert_eq!(part, data[10..20]);
        assert_eq!(read_all(&storage, "f", Some(Suffix(5))).await, data[995..]);
        let download = storage.get_stream(&path("f"), Some(From(990))).await.expect("get");
        assert_eq!((download.size, download.range), (1000, 990..1000));
        let err = storage.get_stream(&path("f"), Some(From(1000))).await;
        assert!(matches!(err, Err(StorageError::RangeNotSatisfiable { size: 1000 })));
    }

    #[tokio::test]
    async fn missing_objects_and_directories_are_not_found() {
        let (_dir, storage) = local();
        let (_, chunks) = body(3);
        storage.put_stream(&path("a/b/c"), stream::iter(chunks), u64::MAX).await.expect("put");
        for p in ["nope", "a/b", "a/b/c/d"] {
            let err = storage.get_stream(&path(p), None).await.err();
            assert!(matches!(err, Some(StorageError::NotFound { .. })), "{p}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_file_and_a_directory_cannot_share_a_path() {
        let (dir, storage) = local();
        let put = |p: &'static str, len: usize| {
            let storage = storage.clone();
            async move {
                let (_, chunks) = body(len);
                storage.put_stream(&path(p), stream::iter(chunks), u64::MAX).await
            }
        };
        put("a/b", 3).await.expect("file a/b");
        put("c/d/e", 3).await.expect("file c/d/e");
        let before = std::fs::read_dir(dir.path().join("c")).expect("c").count();
        for (p, len) in [("a/b/c", 3), ("c/d", 3), ("c/d", PART_SIZE + 1)] {
            let err = put(p, len).await;
            assert!(matches!(err, Err(StorageError::FileDirConflict)), "{p}: {err:?}");
        }
        let after = std::fs::read_dir(dir.path().join("c")).expect("c").count();
        assert_eq!(before, after, "no staging file left behind");
    }

    async fn assert_nothing_at(storage: &Storage, p: &str) {
        let err = storage.get_stream(&path(p), None).await.err();
        assert!(matches!(err, Some(StorageError::NotFound { .. })), "{err:?}");
        let listed: Vec<Entry> = storage.list(None).await.expect("list");
        assert_eq!(listed, [], "the failed upload left something behind");
    }

    #[tokio::test]
    async fn failed_uploads_leave_nothing_behind() {
        let (dir, storage) = local();
        let (_, mut chunks) = body(3 * PART_SIZE);
        chunks.push(Err(std::io::Error::other("client went away")));
        let err = storage.put_stream(&path("x/y/big.bin"), stream::iter(chunks), u64::MAX).await;
        assert!(matches!(err, Err(StorageError::Body(_))), "{err:?}");
        assert_nothing_at(&storage, "x/y/big.bin").await;

        let (_, chunks) = body(2 * PART_SIZE);
        let err = storage.put_stream(&path("x/y/big.bin"), stream::iter(chunks), PART_SIZE as u64 + 500_000).await;
        assert!(matches!(err, Err(StorageError::TooLarge { .. })), "{err:?}");
        assert_nothing_at(&storage, "x/y/big.bin").await;
        let leftovers = std::fs::read_dir(dir.path()).expect("read dir").count();
        assert_eq!(leftovers, 0, "no staging files or directories remain");
    }

    #[tokio::test]
    async fn an_upload_dropped_halfway_is_aborted() {
        let (dir, storage) = local();
        let (_, chunks) = body(2 * PART_SIZE);
        // A body that never ends, as from a client that stalls: the upload future is
        // dropped from outside, as a timeout would.
        let stalled = stream::iter(chunks).chain(stream::pending());
        let key = path("s/t.bin");
        let upload = storage.put_stream(&key, stalled, u64::MAX);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(500), upload).await;
        assert!(timed_out.is_err());
        // The abort runs on a spawned task.
        for _ in 0..50 {
            if std::fs::read_dir(dir.path()).expect("read dir").count() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_nothing_at(&storage, "s/t.bin").await;
        assert_eq!(std::fs::read_dir(dir.path()).expect("read dir").count(), 0);
    }

    #[test]
    fn ranges_resolve_as_http_says() {
        let cases: [(ByteRange, Option<std::ops::Range<u64>>); 9] = [
            (Bounded { first: 0, last: 9 }, Some(0..10)),
            (Bounded { first: 5, last: 500 }, Some(5..100)),
            (Bounded { first: 100, last: 200 }, None),
            (Bounded { first: 9, last: 3 }, None),
            (From(90), Some(90..100)),
            (From(100), None),
            (Suffix(10), Some(90..100)),
            (Suffix(1000), Some(0..100)),
            (Suffix(0), None),
        ];
        for (range, expected) in cases {
            assert_eq!(range.resolve(100), expected, "{range:?}");
        }
        assert_eq!(From(0).resolve(0), None);
    }
}
