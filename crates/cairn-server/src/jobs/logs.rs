//! Job logs: while a job runs, its output lines go (timestamped, with the stream's name) to
//! a file in its working directory; when it ends the file is copied to object storage,
//! where it stays.

use std::path::{Path, PathBuf};

use cairn_storage::ArtifactPath;
use uuid::Uuid;

use crate::state::AppState;

/// The log file of a job run by this server's local executor.
pub fn local_log_path(jobs_dir: &Path, id: Uuid) -> PathBuf {
    jobs_dir.join(id.simple().to_string()).join("output.log")
}

/// Where a finished job's log is kept in storage.
pub fn stored_log_key(id: Uuid) -> ArtifactPath {
    ArtifactPath::parse(&format!("jobs/{}/output.log", id.simple())).expect("a job id makes a valid path")
}

/// Where to read a job's log from now.
pub enum LogSource {
    /// The live file (the job is running here).
    Local(PathBuf),
    /// Object storage (the job has ended).
    Stored(ArtifactPath),
    /// No output yet.
    Nothing,
}

pub async fn log_source(state: &AppState, id: Uuid, finished: bool) -> LogSource {
    if finished {
        return LogSource::Stored(stored_log_key(id));
    }
    match &state.config.jobs_dir {
        Some(dir) if tokio::fs::try_exists(local_log_path(dir, id)).await.unwrap_or(false) => {
            LogSource::Local(local_log_path(dir, id))
        }
        _ => LogSource::Nothing,
    }
}
