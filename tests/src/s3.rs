//! A real S3-compatible server for the tests: `s3s-fs`, which checks SigV4 signatures and
//! keeps objects as files. One server per test process, started on first use on a free
//! port with its data in a temp dir, and killed when the process exits however it exits
//! (`PR_SET_PDEATHSIG`); each test gets a bucket of its own, which for `s3s-fs` is a
//! directory under its root.
//!
//! The binary is found at `CAIRN_S3S_FS`, `~/.cargo/bin/s3s-fs` or on `PATH`. When it is
//! missing the tests fail (they do not skip) and say how to install it; `scripts/test`
//! installs it.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cairn_storage::{S3Config, Storage};

/// How to install the version `scripts/lib.sh` installs (0.15 and later need a newer rustc).
const INSTALL_HINT: &str = "cargo install s3s-fs@0.14.1 --locked --features binary";
const ACCESS_KEY: &str = "cairn-test-access";
const SECRET_KEY: &str = "cairn-test-secret";
const DIR_PREFIX: &str = "cairn-test-s3-";

/// The running server.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// Buckets are directories here.
    root: PathBuf,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();

/// The test process's S3 server, started on first use. Panics, saying how to install
/// `s3s-fs`, when it is not installed.
pub fn s3_server() -> &'static S3Server {
    SERVER.get_or_init(|| {
        let binary = find_binary().unwrap_or_else(|| {
            panic!(
                "s3s-fs is not installed, and the S3 tests need it: run `{INSTALL_HINT}` \
                 (scripts/test does), or set CAIRN_S3S_FS to the binary"
            )
        });
        start(&binary).unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()))
    })
}

impl S3Server {
    /// Creates a bucket that no other test uses and returns its name.
    pub fn fresh_bucket(&self) -> String {
        let name = format!("t-{}", uuid::Uuid::new_v4().simple());
        std::fs::create_dir(self.root.join(&name)).expect("create a bucket directory");
        name
    }

    /// Settings for `bucket` on this server, under the key prefix `cairn`.
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            prefix: "cairn".to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some(ACCESS_KEY.to_owned()),
            secret_access_key: Some(SECRET_KEY.to_owned()),
            allow_http: true,
        }
    }

    /// A store on a fresh bucket of this server.
    pub fn fresh_storage(&self) -> Storage {
        Storage::s3(&self.config(&self.fresh_bucket())).expect("S3 storage")
    }
}

/// Settings for an S3 server that is not there (a port nothing listens on).
pub fn unreachable_s3_config() -> S3Config {
    let port = free_port().expect("a free port");
    S3Config {
        bucket: "nowhere".to_owned(),
        prefix: String::new(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
        allow_http: true,
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CAIRN_S3S_FS") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = cargo_home.map(|home| home.join("bin")).into_iter().chain(std::env::split_paths(&path));
    candidates.map(|dir| dir.join("s3s-fs")).find(|path| path.is_file())
}

fn start(binary: &Path) -> io::Result<S3Server> {
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("data");
    std::fs::create_dir_all(&root)?;
    let mut last_error = io::Error::other("no attempt made");
    // Another process may take the free port between our probe and the server's bind.
    for _ in 0..3 {
        let port = free_port()?;
        match spawn_and_wait(command(binary, &root, &dir, port)?, port) {
            Ok(()) => {
                return Ok(S3Server { endpoint: format!("http://127.0.0.1:{port}"), root });
            }
            Err(e) => last_error = e,
        }
    }
    let log = std::fs::read_to_string(dir.join("s3s-fs.log")).unwrap_or_default();
    Err(io::Error::other(format!("{last_error}; its log:\n{log}")))
}

fn command(binary: &Path, root: &Path, dir: &Path, port: u16) -> io::Result<Command> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("s3s-fs.log"))?;
    let mut cmd = Command::new(binary);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let parent = std::process::id();
    // SAFETY: the closure only makes async-signal-safe calls (prctl, getppid) and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Spawns the server and waits until it accepts connections. The parent-death signal
/// fires when the *thread* that forked exits, so the child is forked from a thread that
/// then lives as long as the process.
fn spawn_and_wait(mut cmd: Command, port: u16) -> io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("cairn-s3s-fs".into()).spawn(move || {
        let result = cmd.spawn().and_then(|mut child| wait_until_ready(&mut child, port).map(|()| child));
        let started = result.is_ok();
        let _ = tx.send(result.map(|_child| ()));
        if started {
            loop {
                std::thread::park();
            }
        }
    })?;
    rx.recv().map_err(|_| io::Error::other("the s3s-fs launcher thread died"))?
}

fn wait_until_ready(child: &mut Child, port: u16) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("s3s-fs exited at start: {status}")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    Err(io::Error::other("s3s-fs did not listen within 10 s"))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Removes data left by test processes that no longer run.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
