//! Child processes of this server, as the local job executor and local model serving run
//! them: one process group each (so a stop reaches the whole tree), dying with the server
//! (PR_SET_PDEATHSIG), with a scrubbed environment, and their output copied line by line to
//! a log file.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Between SIGTERM and SIGKILL when a process is stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Environment variables passed from the server to its children; everything else (database
/// URLs, storage keys, secrets) is withheld.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// A command for `program` in a process group of its own, killed with the server, with
/// only [`INHERITED_ENV`] from the server's environment, no stdin, and stdout and stderr
/// piped (for [`spawn_log_writer`]).
pub(crate) fn isolated(program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut child = tokio::process::Command::new(program);
    child.env_clear().kill_on_drop(true);
    for name in INHERITED_ENV {
        if let Ok(value) = std::env::var(name) {
            child.env(name, value);
        }
    }
    child.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
    unsafe {
        child.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    child
}

/// SIGTERM to the process group, then SIGKILL if it is still there after the grace.
pub(crate) async fn stop_group(pid: i32, process: &mut tokio::process::Child) {
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, process.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = process.wait().await;
    }
}

pub(crate) fn signal_group(pid: i32, signal: i32) {
    // SAFETY: killpg(2) with a process group id we created (the child's pid).
    unsafe {
        libc::killpg(pid, signal);
    }
}

/// Copies the child's output, line by line with a timestamp and the stream's name, to the
/// log file. The returned task ends when both streams have closed.
pub(crate) async fn spawn_log_writer(
    path: PathBuf,
    process: &mut tokio::process::Child,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
    let (tx, mut rx) = mpsc::channel::<(&'static str, Vec<u8>)>(1024);
    if let Some(out) = process.stdout.take() {
        tokio::spawn(forward_lines(out, "stdout", tx.clone()));
    }
    if let Some(err) = process.stderr.take() {
        tokio::spawn(forward_lines(err, "stderr", tx.clone()));
    }
    drop(tx);
    Ok(tokio::spawn(async move {
        while let Some((stream, line)) = rx.recv().await {
            let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let text = String::from_utf8_lossy(&line);
            let entry = format!("{stamp} {stream} {}\n", text.trim_end_matches(['\n', '\r']));
            if let Err(e) = file.write_all(entry.as_bytes()).await {
                tracing::warn!(error = %e, "could not write a log line");
            }
        }
        let _ = file.flush().await;
    }))
}

async fn forward_lines(stream: impl AsyncRead + Unpin, name: &'static str, tx: mpsc::Sender<(&'static str, Vec<u8>)>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send((name, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}
