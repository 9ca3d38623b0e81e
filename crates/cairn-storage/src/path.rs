//! [`ArtifactPath`]: the only way a caller names an object. A path from a request is parsed
//! once at the boundary; past that point a traversal (`..`), an absolute path or a NUL
//! cannot exist, so no storage function has to think about them again.

use std::fmt;

use object_store::path::Path as ObjectPath;

/// Longest accepted path, in bytes. S3 keys may be 1,024 bytes; the rest is left for the
/// store's own prefix (`s3://bucket/prefix`) and the caller's namespace.
pub const MAX_PATH_BYTES: usize = 900;

/// A relative, `/`-separated object path whose segments are non-empty, never `.` or `..`,
/// and free of control characters (NUL included) and backslashes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactPath(String);

/// Why a string is not an [`ArtifactPath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactPathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is absolute; artifact paths are relative")]
    Absolute,
    #[error("the path has an empty segment (`//`, or a `/` at the end)")]
    EmptySegment,
    #[error("`.` and `..` segments are not allowed")]
    DotSegment,
    #[error("backslashes are not allowed")]
    Backslash,
    #[error("control characters (NUL included) are not allowed")]
    ControlCharacter,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
}

impl ArtifactPath {
    /// Parses a relative path. Nothing is normalised: a path that would need it (`a//b`,
    /// `a/./b`, `a/../b`) is refused rather than silently rewritten.
    pub fn parse(path: &str) -> Result<ArtifactPath, ArtifactPathError> {
        if path.is_empty() {
            return Err(ArtifactPathError::Empty);
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(ArtifactPathError::TooLong);
        }
        if path.starts_with('/') || has_drive_letter(path) {
            return Err(ArtifactPathError::Absolute);
        }
        if path.contains('\\') {
            return Err(ArtifactPathError::Backslash);
        }
        if path.chars().any(char::is_control) {
            return Err(ArtifactPathError::ControlCharacter);
        }
        for segment in path.split('/') {
            match segment {
                "" => return Err(ArtifactPathError::EmptySegment),
                "." | ".." => return Err(ArtifactPathError::DotSegment),
                _ => {}
            }
        }
        Ok(ArtifactPath(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment: a file's name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// `self/other`. Both halves are valid, so the result is too (it may exceed
    /// [`MAX_PATH_BYTES`], which only bounds what comes from outside).
    pub fn join(&self, other: &ArtifactPath) -> ArtifactPath {
        ArtifactPath(format!("{}/{}", self.0, other.0))
    }

    /// The object-store key. Every segment is percent-encoded by `object_store`'s own rules
    /// (`%`, `#`, non-ASCII, ...), on every backend alike, so any valid name round-trips and
    /// no name collides with the local store's staging files (`name#1`).
    pub(crate) fn to_object_path(&self) -> ObjectPath {
        ObjectPath::from_iter(self.segments())
    }
}

/// `C:` or `c:/...`: absolute on Windows, where a client may have built the path.
fn has_drive_letter(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && (bytes.len() == 2 || bytes[2] == b'/')
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for ArtifactPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_parse_unchanged() {
        for ok in [
            "a",
            "1/0123abcd/artifacts/model/MLmodel",
            "with space/100%.txt",
            "ünïcödé/模型.bin",
            "ckpt#1",
            "..hidden/a..b/.x",
            "C:x",
        ] {
            assert_eq!(ArtifactPath::parse(ok).expect(ok).as_str(), ok);
        }
    }

    #[test]
    fn traversal_and_odd_paths_are_refused() {
        use ArtifactPathError::*;
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        for (bad, why) in [
            ("", Empty),
            ("/etc/passwd", Absolute),
            ("C:/Windows", Absolute),
            ("c:", Absolute),
            ("a\\..\\b", Backslash),
            ("a/\0/b", ControlCharacter),
            ("a\nb", ControlCharacter),
            ("a//b", EmptySegment),
            ("a/", EmptySegment),
            ("..", DotSegment),
            ("a/../../b", DotSegment),
            ("./a", DotSegment),
            ("a/.", DotSegment),
            (long.as_str(), TooLong),
        ] {
            assert_eq!(ArtifactPath::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn join_and_file_name() {
        let base = ArtifactPath::parse("mlflow-artifacts").expect("valid");
        let rel = ArtifactPath::parse("1/run/artifacts/model.pkl").expect("valid");
        let joined = base.join(&rel);
        assert_eq!(joined.as_str(), "mlflow-artifacts/1/run/artifacts/model.pkl");
        assert_eq!(joined.file_name(), "model.pkl");
        assert_eq!(base.file_name(), "mlflow-artifacts");
    }

    #[test]
    fn object_keys_encode_what_object_store_reserves() {
        let path = ArtifactPath::parse("a b/100%/ckpt#1").expect("valid");
        assert_eq!(path.to_object_path().as_ref(), "a b/100%25/ckpt%231");
    }
}
