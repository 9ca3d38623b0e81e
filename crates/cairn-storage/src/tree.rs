//! The store seen as a tree: listing a directory's immediate children, deleting a file or
//! a whole directory. Object stores have no directories, only keys with `/` in them; a
//! "directory" is a prefix that some key starts with, on the local store as on S3 (the
//! local store removes directories that its deletes leave empty).

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use percent_encoding::percent_decode_str;

use crate::{ArtifactPath, Storage, StorageError};

/// One child of a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The child's name, relative to the listed directory (one segment).
    pub name: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File { size: u64 },
    Dir,
}

impl Storage {
    /// The immediate children of `dir` (of the root when `None`), sorted by name. A
    /// directory that does not exist, or a file, has none.
    pub async fn list(&self, dir: Option<&ArtifactPath>) -> Result<Vec<Entry>, StorageError> {
        let prefix = dir.map(ArtifactPath::to_object_path);
        let listing = match self.store.list_with_delimiter(prefix.as_ref()).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            other => other?,
        };
        let dirs =
            listing.common_prefixes.iter().filter_map(|p| Some((child_name(prefix.as_ref(), p)?, EntryKind::Dir)));
        let files = listing.objects.iter().filter_map(|meta| {
            let name = child_name(prefix.as_ref(), &meta.location)?;
            Some((name, EntryKind::File { size: meta.size }))
        });
        let mut entries: Vec<Entry> = dirs.chain(files).map(|(name, kind)| Entry { name, kind }).collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Deletes the file at `path`; `false` when there was none. A directory is not a file:
    /// see [`Storage::delete_prefix`].
    pub async fn delete(&self, path: &ArtifactPath) -> Result<bool, StorageError> {
        let key = path.to_object_path();
        // S3 answers a DELETE of a missing key with success, so ask first; the local
        // store also needs it, as it refuses to delete a directory as a file.
        match self.store.head(&key).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            other => other?,
        };
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object under the directory `path` (not an object named `path`
    /// itself, nor `path-other`); returns how many there were.
    pub async fn delete_prefix(&self, path: &ArtifactPath) -> Result<u64, StorageError> {
        let prefix = path.to_object_path();
        let locations = self.store.list(Some(&prefix)).map_ok(|meta| meta.location).boxed();
        let mut deleted = self.store.delete_stream(locations);
        let mut count = 0;
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) => count += 1,
                // Deleted by someone else meanwhile: the outcome we want.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(count)
    }

    /// Deletes `path` whether it is a file or a directory; returns how many objects went.
    ///
    /// A path with objects below it is taken for a directory and its objects are deleted;
    /// only a path without any is deleted as a file. (S3 could hold a file `a` beside
    /// `a/b`, which nothing here creates and the local store cannot hold; and S3-compatible
    /// servers that keep objects as files, like s3s-fs, fail a HEAD or DELETE of a key that
    /// is one of their directories.)
    pub async fn delete_tree(&self, path: &ArtifactPath) -> Result<u64, StorageError> {
        let children = self.delete_prefix(path).await?;
        if children > 0 {
            return Ok(children);
        }
        Ok(u64::from(self.delete(path).await?))
    }
}

/// The first segment of `child` below `parent`, decoded back to the name it was stored
/// under (keys are percent-encoded, see `ArtifactPath::to_object_path`).
fn child_name(parent: Option<&ObjectPath>, child: &ObjectPath) -> Option<String> {
    let first = match parent {
        Some(parent) => child.prefix_match(parent)?.next()?,
        None => child.parts().next()?,
    };
    let name = percent_decode_str(first.as_ref()).decode_utf8().ok()?;
    Some(name.into_owned())
}

#[cfg(test)]
mod tests {
    //! The local store only; the integration tests run the same operations against S3.

    use bytes::Bytes;
    use futures::stream;

    use super::*;

    fn path(p: &str) -> ArtifactPath {
        ArtifactPath::parse(p).expect("valid path")
    }

    async fn put(storage: &Storage, p: &str, body: &'static [u8]) {
        let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(body))]);
        storage.put_stream(&path(p), body, u64::MAX).await.expect("put");
    }

    fn local() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path()).expect("local store");
        (dir, storage)
    }

    fn file(name: &str, size: u64) -> Entry {
        Entry { name: name.into(), kind: EntryKind::File { size } }
    }

    fn dir(name: &str) -> Entry {
        Entry { name: name.into(), kind: EntryKind::Dir }
    }

    #[tokio::test]
    async fn listing_gives_immediate_children_with_decoded_names() {
        let (_dir, storage) = local();
        put(&storage, "run/artifacts/b.txt", b"bb").await;
        put(&storage, "run/artifacts/a 100%#1.txt", b"a").await;
        put(&storage, "run/artifacts/sub/deep/x", b"x").await;
        put(&storage, "run/artifacts-other/y", b"y").await;
        let listed = storage.list(Some(&path("run/artifacts"))).await.expect("list");
        assert_eq!(listed, [file("a 100%#1.txt", 1), file("b.txt", 2), dir("sub")]);
        let root = storage.list(None).await.expect("list root");
        assert_eq!(root, [dir("run")]);
    }

    #[tokio::test]
    async fn missing_dirs_and_files_list_as_empty() {
        let (_dir, storage) = local();
        put(&storage, "run/f", b"f").await;
        for p in ["nothing/here", "run/f", "ru"] {
            assert_eq!(storage.list(Some(&path(p))).await.expect(p), [], "{p}");
        }
    }

    #[tokio::test]
    async fn delete_tree_removes_a_directory_and_leaves_its_neighbours() {
        let (_dir, storage) = local();
        put(&storage, "r/sub/a", b"a").await;
        put(&storage, "r/sub/deep/b", b"b").await;
        put(&storage, "r/sub-other", b"c").await;
        assert_eq!(storage.delete_tree(&path("r/sub")).await.expect("delete"), 2);
        assert_eq!(storage.list(Some(&path("r"))).await.expect("list"), [file("sub-other", 1)]);
        assert_eq!(storage.delete_tree(&path("r/sub-other")).await.expect("delete"), 1);
        assert_eq!(storage.delete_tree(&path("r/none")).await.expect("delete"), 0);
        assert!(!storage.delete(&path("r")).await.expect("not a file"));
        assert_eq!(storage.list(None).await.expect("list"), []);
    }
}
