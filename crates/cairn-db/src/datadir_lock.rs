//! The data directory lock: one Cairn process per `--data-dir`.
//!
//! Two servers on the same data directory would start two PostgreSQL clusters
//! on the same files (or one would attach to the other's) and write artifacts
//! side by side, so the server takes an exclusive `flock` on
//! `<data_dir>/cairn.lock` for as long as it runs. `flock` locks die with the
//! process (the kernel drops them when the file is closed), so a crash never
//! leaves a stale lock behind, unlike a pid file. The holder's pid is written
//! into the file only to make the error message useful.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "cairn.lock";

/// Errors taking the data directory lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another open of the lock file) holds the lock.
    #[error(
        "data directory {} is already in use by another cairn process ({}); stop it first or use another --data-dir",
        .dir.display(),
        .pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
    )]
    InUse { dir: PathBuf, pid: Option<u32> },
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An exclusive lock on a data directory, released when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock on `data_dir` (created if missing), failing with
    /// [`LockError::InUse`] when another process holds it. Never blocks.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        match Self::lock(data_dir)? {
            Ok(lock) => Ok(lock),
            Err(pid) => Err(LockError::InUse { dir: data_dir.to_owned(), pid }),
        }
    }

    /// Like [`DataDirLock::acquire`], but `Ok(None)` when the lock is held
    /// elsewhere: admin commands use it to tell whether a server is running.
    pub fn try_acquire(data_dir: &Path) -> Result<Option<DataDirLock>, LockError> {
        Ok(Self::lock(data_dir)?.ok())
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(Err(pid))` when the lock is held by someone else, with the pid
    /// written by the holder if it could be read.
    fn lock(data_dir: &Path) -> Result<Result<DataDirLock, Option<u32>>, LockError> {
        let io_err = |action, path: &Path| {
            let path = path.to_owned();
            move |source| LockError::Io { action, path, source }
        };
        fs::create_dir_all(data_dir).map_err(io_err("create data directory", data_dir))?;
        let path = data_dir.join(LOCK_FILE);
        // No truncation on open: until we hold the lock the pid in the file
        // belongs to the holder.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        // std's `try_lock` is `flock(LOCK_EX | LOCK_NB)` on Unix.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Best effort: the holder may not have written its pid yet.
                let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Ok(Err(pid));
            }
            Err(TryLockError::Error(source)) => {
                return Err(LockError::Io { action: "lock", path, source });
            }
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
            .map_err(io_err("write pid to lock file", &path))?;
        Ok(Ok(DataDirLock { file, path }))
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first makes the
        // intent explicit. The file itself stays: deleting a lock file races
        // with a process that has just opened it.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_creates_the_directory_and_records_the_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cairn-data");
        let lock = DataDirLock::acquire(&dir).unwrap();
        assert_eq!(lock.path(), dir.join(LOCK_FILE));
        let text = fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn second_lock_conflicts_until_the_first_is_dropped() {
        // flock locks belong to the open file description, so a second open in
        // the same process conflicts just like another process would.
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(tmp.path()).unwrap();

        let err = DataDirLock::acquire(tmp.path()).unwrap_err();
        let pid = std::process::id();
        assert!(matches!(err, LockError::InUse { pid: Some(p), .. } if p == pid));
        assert_eq!(
            err.to_string(),
            format!(
                "data directory {} is already in use by another cairn process (pid {pid}); \
                 stop it first or use another --data-dir",
                tmp.path().display()
            )
        );
        assert!(DataDirLock::try_acquire(tmp.path()).unwrap().is_none());

        drop(first);
        let again = DataDirLock::try_acquire(tmp.path()).unwrap();
        assert!(again.is_some());
    }
}
