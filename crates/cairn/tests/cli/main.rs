//! Tests of the `cairn` program as a user runs it: real processes, the embedded PostgreSQL
//! cluster started by `cairn serve` itself (as root on CI, which exercises the drop to the
//! `postgres` user), signals and restarts.

mod admin;
mod audit;
mod dataset;
mod deploy;
mod job;
mod project;
mod serve;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// `cairn ARGS` with the data dir set, run to completion.
pub fn cairn(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("CAIRN_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("CAIRN_ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("run cairn")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `cairn SUBCOMMAND ARGS...` as a client of `server`, with `token`.
pub fn client(server: &Server, token: &str, subcommand: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg(subcommand)
        .args(args)
        .env("CAIRN_URL", &server.url)
        .env("CAIRN_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run cairn {subcommand}: {e}"))
}

/// A running `cairn serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Server {
    #[expect(clippy::zombie_processes, reason = "the child is owned by Server, whose Drop kills and reaps it")]
    pub fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("CAIRN_DATA_DIR", data_dir)
            .env_remove("DATABASE_URL")
            .env_remove("CAIRN_ADMIN_PASSWORD")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cairn serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("cairn serve printed its URL in time");
            if let Some(url) = line.strip_prefix("Cairn is listening on ") {
                return Server { child, url: url.trim().to_owned(), data_dir: data_dir.to_owned() };
            }
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "cairn serve exits 0 on SIGTERM, got {status}");
        let pid_file = self.data_dir.join("pg").join("postmaster.pid");
        assert!(!pid_file.exists(), "the embedded cluster was stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
