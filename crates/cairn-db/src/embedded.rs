//! Embedded PostgreSQL: a private cluster run from the system's PostgreSQL
//! binaries, so that `cairn server` works without a database to set up.
//!
//! The cluster listens only on a Unix socket inside a 0700 directory owned by
//! the cluster's user, which is what makes `trust` authentication acceptable:
//! nobody else can reach the socket. When Cairn runs as root the cluster runs
//! as the `postgres` system user (initdb and postgres refuse root), and is
//! moved under `/var/lib/cairn` when that user cannot reach the data directory
//! (the usual `/root/...` case).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

/// The cluster's superuser, created by initdb.
const SUPERUSER: &str = "cairn";
/// The database Cairn keeps its tables in.
const CAIRN_DATABASE: &str = "cairn";
/// Fixed: the socket's directory, not the port, keeps clusters apart.
const PORT: u16 = 5432;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Where root keeps clusters the `postgres` user cannot reach in place.
const RELOCATION_ROOT: &str = "/var/lib/cairn";
/// Names the relocated data directory, inside the requested cluster dir.
const RELOCATED_FILE: &str = "RELOCATED";
const LOG_FILE: &str = "postgres.log";
/// `sun_path` holds 108 bytes; PostgreSQL fails above that, keep a margin.
const MAX_SOCKET_PATH: usize = 100;

/// How to run the embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Where the cluster lives (Cairn passes `<data-dir>/pg`).
    pub cluster_dir: PathBuf,
    /// Test clusters: fsync=off, synchronous_commit=off, full_page_writes=off.
    pub ephemeral: bool,
    /// Have the kernel send the postmaster SIGINT (fast shutdown) when this
    /// process dies, however it dies (`prctl(PR_SET_PDEATHSIG)`).
    pub stop_with_parent: bool,
}

/// Errors starting, finding or stopping the embedded cluster.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found; install them \
         (Debian/Ubuntu: apt-get install postgresql), set CAIRN_PG_BINDIR to the directory \
         holding them, or set DATABASE_URL to use an external PostgreSQL server"
    )]
    BinariesNotFound,
    #[error("CAIRN_PG_BINDIR={} does not contain both initdb and postgres", .0.display())]
    BadBinDir(PathBuf),
    #[error(
        "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
         system user to run it as; create one (useradd --system --user-group postgres) or \
         install the postgresql package"
    )]
    NoPostgresUser,
    #[error("could not look up the `postgres` system user: {0}")]
    UserLookup(#[source] io::Error),
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing to use {} for the PostgreSQL socket: {reason}", .path.display())]
    UnsafeSocketDir { path: PathBuf, reason: &'static str },
    #[error("initdb failed for {}:\n{output}", .dir.display())]
    Initdb { dir: PathBuf, output: String },
    #[error("a PostgreSQL server is already running on {} (pid {pid})", .dir.display())]
    AlreadyRunning { dir: PathBuf, pid: i32 },
    #[error(
        "PostgreSQL on {} exited during start-up ({status}); last lines of {}:\n{tail}",
        .dir.display(), .log.display()
    )]
    ExitedEarly { dir: PathBuf, status: ExitStatus, log: PathBuf, tail: String },
    #[error(
        "PostgreSQL on {} did not accept connections within {} s ({last_error}); last lines of {}:\n{tail}",
        .dir.display(), START_TIMEOUT.as_secs(), .log.display()
    )]
    StartTimeout { dir: PathBuf, last_error: String, log: PathBuf, tail: String },
    #[error("could not create database `{database}`: {source}")]
    CreateDatabase {
        database: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("invalid {}: {reason}", .path.display())]
    BadPidFile { path: PathBuf, reason: &'static str },
    #[error(
        "PostgreSQL (pid {pid}) did not shut down within {} s, even after SIGQUIT, and was killed",
        (STOP_TIMEOUT + QUIT_TIMEOUT).as_secs()
    )]
    StopTimeout { pid: u32 },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_owned();
    move |source| EmbeddedError::Io { action, path, source }
}

/// A running cluster: started (and owned) by this process, or attached to.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// `Some` when this process started the postmaster and must stop it.
    child: Option<Child>,
}

impl EmbeddedPostgres {
    /// Finds the binaries, runs initdb on first use, starts the postmaster,
    /// waits until it accepts connections and creates the `cairn` database
    /// if missing.
    pub async fn start(opts: EmbeddedOptions) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bins = find_binaries().await?;
        let run_as = cluster_user()?;
        let data_dir = prepare_data_dir(&opts.cluster_dir, run_as)?;
        // A stale postmaster.pid is PostgreSQL's business (it checks more
        // than we can); only a live one gets the clearer message.
        if let Ok(Some(pid_file)) = read_pid_file(&data_dir)
            && postgres_is_running(pid_file.pid)
        {
            return Err(EmbeddedError::AlreadyRunning { dir: data_dir, pid: pid_file.pid });
        }
        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bins, &data_dir, run_as).await?;
        }
        let socket_dir = prepare_socket_dir(&data_dir, run_as)?;
        let log_path = data_dir.join(LOG_FILE);
        let log = open_log(&log_path, run_as)?;
        // Errors quote only what this start wrote, not earlier runs.
        let log = LogTail { path: log_path, from: log.metadata().map_or(0, |m| m.len()), file: log };
        let cmd = postmaster_command(&bins, &data_dir, &socket_dir, &opts, run_as, &log.file)
            .map_err(io_err("open", &log.path))?;
        let child = spawn_postmaster(cmd, opts.stop_with_parent).await.map_err(io_err("start", &bins.postgres))?;
        let mut pg = EmbeddedPostgres { data_dir, socket_dir, port: PORT, child: Some(child) };
        // From here on, an error drops `pg`, which stops the postmaster.
        let mut conn = pg.wait_until_ready(&log).await?;
        ensure_database(&mut conn, CAIRN_DATABASE).await?;
        let _ = conn.close().await;
        tracing::info!(
            data_dir = %pg.data_dir.display(),
            socket_dir = %pg.socket_dir.display(),
            "embedded PostgreSQL started"
        );
        Ok(pg)
    }

    /// Connects to a cluster already running in `cluster_dir`, without
    /// owning it; `Ok(None)` when none is running.
    pub async fn attach(cluster_dir: &Path) -> Result<Option<EmbeddedPostgres>, EmbeddedError> {
        let data_dir = match read_relocation(cluster_dir)? {
            Some(dir) => dir,
            None => fs::canonicalize(cluster_dir).unwrap_or_else(|_| cluster_dir.to_owned()),
        };
        let Some(pid_file) = read_pid_file(&data_dir)? else {
            return Ok(None);
        };
        if !postgres_is_running(pid_file.pid) {
            return Ok(None);
        }
        let socket_dir = pid_file.socket_dir.ok_or_else(|| EmbeddedError::BadPidFile {
            path: data_dir.join("postmaster.pid"),
            reason: "no Unix socket directory (the server is starting, or listens only on TCP)",
        })?;
        Ok(Some(EmbeddedPostgres { data_dir, socket_dir, port: pid_file.port, child: None }))
    }

    /// Options for database `database`, as user `cairn`, via the Unix socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.socket_dir)
            .port(self.port)
            .username(SUPERUSER)
            .database(database)
            // No TLS over a Unix socket, whatever PGSSLMODE says.
            .ssl_mode(PgSslMode::Disable)
    }

    /// A URL for database `database`, for logs and child processes.
    pub fn database_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{}/{}?host={}",
            self.port,
            percent_encode(database.as_bytes()),
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
        )
    }

    /// Where the cluster's data lives (differs from the requested cluster
    /// directory when it had to be relocated).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Fast shutdown (SIGINT), waiting for the postmaster to exit; SIGQUIT
    /// after 30 s. A no-op for an attached cluster.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        if !signal_unless_exited(&mut child, libc::SIGINT) || wait_for_exit(&mut child, STOP_TIMEOUT).await? {
            return Ok(());
        }
        tracing::warn!(pid, "PostgreSQL did not shut down in time; sending SIGQUIT");
        if !signal_unless_exited(&mut child, libc::SIGQUIT) || wait_for_exit(&mut child, QUIT_TIMEOUT).await? {
            return Ok(());
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(EmbeddedError::StopTimeout { pid })
    }

    /// Polls until the server accepts a connection to `postgres`.
    async fn wait_until_ready(&mut self, log: &LogTail) -> Result<PgConnection, EmbeddedError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let opts = self.connect_options("postgres");
        loop {
            if let Some(child) = &mut self.child {
                let status = child.try_wait().map_err(io_err("wait for", &self.data_dir))?;
                if let Some(status) = status {
                    return Err(EmbeddedError::ExitedEarly {
                        dir: self.data_dir.clone(),
                        status,
                        log: log.path.clone(),
                        tail: log.read(),
                    });
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let last_error = match tokio::time::timeout(remaining, PgConnection::connect_with(&opts)).await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "connection attempt timed out".to_owned(),
            };
            if Instant::now() >= deadline {
                return Err(EmbeddedError::StartTimeout {
                    dir: self.data_dir.clone(),
                    last_error,
                    log: log.path.clone(),
                    tail: log.read(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for EmbeddedPostgres {
    /// Best effort for an owned cluster that was not stopped: ask for a fast
    /// shutdown and reap the process in the background.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && signal_unless_exited(&mut child, libc::SIGINT)
        {
            let _ = std::thread::Builder::new().name("cairn-pg-reaper".into()).spawn(move || child.wait());
        }
    }
}

/// Polls `child` until it exits (reaping it) or `timeout` passes.
async fn wait_for_exit(child: &mut Child, timeout: Duration) -> Result<bool, EmbeddedError> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(true),
            Ok(None) if Instant::now() >= deadline => return Ok(false),
            Ok(None) => tokio::time::sleep(POLL_INTERVAL).await,
            Err(source) => {
                return Err(EmbeddedError::Io {
                    action: "wait for PostgreSQL",
                    path: PathBuf::from(format!("pid {}", child.id())),
                    source,
                });
            }
        }
    }
}

/// Signals `child` unless it has exited; `false` when it has. Once reaped,
/// its pid may belong to another process, so never signal it blindly.
fn signal_unless_exited(child: &mut Child, signal: libc::c_int) -> bool {
    if !matches!(child.try_wait(), Ok(None)) {
        return false;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped yet, so the pid is still its own.
        unsafe { libc::kill(pid, signal) };
    }
    true
}

/// Whether `pid` is a live PostgreSQL process.
fn postgres_is_running(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A stale postmaster.pid may name a pid since reused by an unrelated
    // process (containers restart with small pids): check the name too.
    alive && fs::read(format!("/proc/{pid}/comm")).map_or(true, |comm| comm.starts_with(b"postgres"))
}

// ---------------------------------------------------------------------------
// Binaries

#[derive(Debug)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

impl Binaries {
    fn in_dir(dir: &Path) -> Option<Binaries> {
        let is_executable =
            |p: &Path| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        let (initdb, postgres) = (dir.join("initdb"), dir.join("postgres"));
        (is_executable(&initdb) && is_executable(&postgres)).then_some(Binaries { initdb, postgres })
    }
}

/// `CAIRN_PG_BINDIR`, `pg_config --bindir`, the newest
/// `/usr/lib/postgresql/*/bin`, the newest `/usr/pgsql-*/bin`, then `PATH`.
async fn find_binaries() -> Result<Binaries, EmbeddedError> {
    if let Some(dir) = std::env::var_os("CAIRN_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return Binaries::in_dir(&dir).ok_or(EmbeddedError::BadBinDir(dir));
    }
    let pg_config = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        // Also where a PATH symlink to initdb points (/usr/local/bin/initdb
        // -> /usr/lib/postgresql/15/bin/initdb).
        .flat_map(|dir| {
            let target = fs::canonicalize(dir.join("initdb")).ok().and_then(|p| p.parent().map(Path::to_owned));
            std::iter::once(dir).chain(target)
        });
    pg_config
        .into_iter()
        .chain(versioned_dirs(Path::new("/usr/lib/postgresql"), ""))
        .chain(versioned_dirs(Path::new("/usr"), "pgsql-"))
        .chain(path_dirs)
        .find_map(|dir| Binaries::in_dir(&dir))
        .ok_or(EmbeddedError::BinariesNotFound)
}

/// `<parent>/<prefix><version>/bin`, newest version first.
fn versioned_dirs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name.to_str()?.strip_prefix(prefix)?;
            let key = version.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

// ---------------------------------------------------------------------------
// Users, directories, files

/// The user the cluster runs as when it is not this process's user.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// `None` (run as ourselves) unless we are root: then the `postgres` user.
fn cluster_user() -> Result<Option<RunAs>, EmbeddedError> {
    // SAFETY: geteuid cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    match lookup_user(c"postgres") {
        Ok(Some(user)) => Ok(Some(user)),
        Ok(None) => Err(EmbeddedError::NoPostgresUser),
        Err(e) => Err(EmbeddedError::UserLookup(e)),
    }
}

fn lookup_user(name: &std::ffi::CStr) -> io::Result<Option<RunAs>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd (null pointers, zero ids) is valid.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the
        // buffer's real size; the strings in `pwd` point into `buf`, unused.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => {
                return Ok(Some(RunAs { uid: pwd.pw_uid, gid: pwd.pw_gid }));
            }
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            _ => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// Creates the cluster's data directory (0700, owned by the cluster user)
/// and returns it: `cluster_dir` itself, or where it was relocated to.
fn prepare_data_dir(cluster_dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf, EmbeddedError> {
    // Default mode: parents we create must stay traversable.
    fs::create_dir_all(cluster_dir).map_err(io_err("create", cluster_dir))?;
    if let Some(relocated) = read_relocation(cluster_dir)? {
        tracing::info!(data_dir = %relocated.display(), "embedded PostgreSQL cluster is relocated");
        make_private_dir(&relocated, run_as)?;
        return Ok(relocated);
    }
    let cluster_dir = fs::canonicalize(cluster_dir).map_err(io_err("resolve", cluster_dir))?;
    // An existing cluster stays where it is, even if unreachable now:
    // relocating it would silently start an empty one.
    if let Some(user) = run_as
        && !can_reach(&cluster_dir, user)
        && !cluster_dir.join("PG_VERSION").exists()
    {
        let relocated = relocation_target(&cluster_dir);
        let root = Path::new(RELOCATION_ROOT);
        fs::create_dir_all(root).map_err(io_err("create", root))?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).map_err(io_err("set permissions on", root))?;
        make_private_dir(&relocated, run_as)?;
        let marker = cluster_dir.join(RELOCATED_FILE);
        fs::write(&marker, format!("{}\n", relocated.display())).map_err(io_err("write", &marker))?;
        tracing::info!(
            cluster_dir = %cluster_dir.display(),
            data_dir = %relocated.display(),
            "the postgres user cannot reach the cluster directory; keeping the cluster elsewhere"
        );
        return Ok(relocated);
    }
    make_private_dir(&cluster_dir, run_as)?;
    Ok(cluster_dir)
}

/// The relocated data directory recorded in `cluster_dir`, if any.
fn read_relocation(cluster_dir: &Path) -> Result<Option<PathBuf>, EmbeddedError> {
    let marker = cluster_dir.join(RELOCATED_FILE);
    match fs::read_to_string(&marker) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(PathBuf::from(text.trim()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &marker)(e)),
    }
}

fn relocation_target(canonical_cluster_dir: &Path) -> PathBuf {
    Path::new(RELOCATION_ROOT).join(format!("pg-{}", short_hash(canonical_cluster_dir)))
}

/// The first 16 hex digits of the SHA-256 of `path`.
fn short_hash(path: &Path) -> String {
    hex::encode(&Sha256::digest(path.as_os_str().as_bytes())[..8])
}

/// Whether `user` may traverse every directory above `dir` (ACLs aside; the
/// spawned process has no supplementary groups, std drops them).
fn can_reach(dir: &Path, user: RunAs) -> bool {
    dir.ancestors().skip(1).all(|parent| {
        fs::metadata(parent).is_ok_and(|meta| {
            let bit = if meta.uid() == user.uid {
                0o100
            } else if meta.gid() == user.gid {
                0o010
            } else {
                0o001
            };
            meta.mode() & bit != 0
        })
    })
}

/// Creates `dir` if missing, gives it to `run_as`, and sets mode 0700.
fn make_private_dir(dir: &Path, run_as: Option<RunAs>) -> Result<(), EmbeddedError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", dir)(e)),
    }
    if let Some(user) = run_as {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).map_err(io_err("change the owner of", dir))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err("set permissions on", dir))
}

/// The data directory itself, unless the socket path would be too long:
/// then `/tmp/cairn-pg-<hash>`, which must be ours (or made ours, as root).
fn prepare_socket_dir(data_dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf, EmbeddedError> {
    let socket_name = format!("/.s.PGSQL.{PORT}");
    if data_dir.as_os_str().len() + socket_name.len() <= MAX_SOCKET_PATH {
        return Ok(data_dir.to_owned());
    }
    let dir = PathBuf::from(format!("/tmp/cairn-pg-{}", short_hash(data_dir)));
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", &dir)(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(io_err("inspect", &dir))?;
    if !meta.is_dir() {
        return Err(EmbeddedError::UnsafeSocketDir { path: dir, reason: "it is not a directory" });
    }
    // SAFETY: geteuid cannot fail and has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let owner = run_as.map_or(euid, |user| user.uid);
    if meta.uid() != owner && euid != 0 {
        return Err(EmbeddedError::UnsafeSocketDir { path: dir, reason: "it belongs to another user" });
    }
    // As root this also takes back a directory someone else planted.
    make_private_dir(&dir, run_as)?;
    Ok(dir)
}

fn open_log(path: &Path, run_as: Option<RunAs>) -> Result<File, EmbeddedError> {
    let log = OpenOptions::new().create(true).append(true).open(path).map_err(io_err("open", path))?;
    if let Some(user) = run_as {
        std::os::unix::fs::fchown(&log, Some(user.uid), Some(user.gid)).map_err(io_err("change the owner of", path))?;
    }
    Ok(log)
}

/// The server log, and where this start's output begins in it.
struct LogTail {
    path: PathBuf,
    from: u64,
    file: File,
}

impl LogTail {
    /// The last lines this start wrote, for error messages.
    fn read(&self) -> String {
        const MAX_BYTES: u64 = 4096;
        const MAX_LINES: usize = 20;
        let read = || -> io::Result<String> {
            let mut file = File::open(&self.path)?;
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(self.from.max(len.saturating_sub(MAX_BYTES))))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        match read() {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(MAX_LINES)..].join("\n")
            }
            Err(e) => format!("(could not read the log: {e})"),
        }
    }
}

/// `postmaster.pid`: line 1 the pid, line 4 the port, line 5 the first
/// socket directory.
#[derive(Debug, PartialEq)]
struct PidFile {
    pid: i32,
    port: u16,
    socket_dir: Option<PathBuf>,
}

fn read_pid_file(data_dir: &Path) -> Result<Option<PidFile>, EmbeddedError> {
    let path = data_dir.join("postmaster.pid");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    parse_pid_file(&text).map(Some).map_err(|reason| EmbeddedError::BadPidFile { path, reason })
}

fn parse_pid_file(text: &str) -> Result<PidFile, &'static str> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pid = lines.first().and_then(|l| l.parse().ok()).ok_or("line 1 is not a pid")?;
    let port = lines.get(3).and_then(|l| l.parse().ok()).ok_or("line 4 is not a port")?;
    let socket_dir = lines.get(4).filter(|l| !l.is_empty()).map(PathBuf::from);
    Ok(PidFile { pid, port, socket_dir })
}

/// Percent-encodes everything but unreserved characters and `/`, so socket
/// paths stay readable in URLs.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Processes

async fn initdb(bins: &Binaries, data_dir: &Path, run_as: Option<RunAs>) -> Result<(), EmbeddedError> {
    let mut output = String::new();
    // C.UTF-8 sorts and classifies like C but knows UTF-8; not every system
    // has it. A failed initdb empties the directory, so retrying is safe.
    for locale in ["C.UTF-8", "C"] {
        let mut cmd = tokio::process::Command::new(&bins.initdb);
        cmd.arg("-D")
            .arg(data_dir)
            .args(["--no-sync", "-A", "trust", "-U", SUPERUSER, "-E", "UTF8"])
            .arg(format!("--locale={locale}"))
            .current_dir("/")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(user) = run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        let out = cmd.output().await.map_err(io_err("run", &bins.initdb))?;
        if out.status.success() {
            return Ok(());
        }
        output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        tracing::debug!(locale, %output, "initdb failed");
    }
    Err(EmbeddedError::Initdb { dir: data_dir.to_owned(), output: output.trim().to_owned() })
}

fn postmaster_command(
    bins: &Binaries,
    data_dir: &Path,
    socket_dir: &Path,
    opts: &EmbeddedOptions,
    run_as: Option<RunAs>,
    log: &File,
) -> io::Result<Command> {
    // The setting is a comma-separated list: quote the path, doubling quotes.
    let mut sockets = b"unix_socket_directories=\"".to_vec();
    for &b in socket_dir.as_os_str().as_bytes() {
        if b == b'"' {
            sockets.push(b'"');
        }
        sockets.push(b);
    }
    sockets.push(b'"');
    let mut cmd = Command::new(&bins.postgres);
    cmd.arg("-D")
        .arg(data_dir)
        // Explicit, or PGPORT in our environment would change it.
        .args(["-c", "listen_addresses=", "-c", &format!("port={PORT}"), "-c"])
        .arg(OsString::from_vec(sockets));
    if opts.ephemeral {
        cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .current_dir("/")
        // Its own process group: a Ctrl-C in the terminal reaches Cairn only,
        // which then shuts the cluster down after draining its own work.
        .process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    if opts.stop_with_parent {
        let parent = std::process::id();
        // SAFETY: the closure only makes async-signal-safe calls (prctl,
        // getppid) and allocates nothing. It runs after setuid, which would
        // otherwise clear the death signal.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    Ok(cmd)
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Spawns the postmaster. With a parent-death signal, the kernel signals
/// when the *thread* that forked exits, not the process: tokio's blocking
/// threads come and go, so such children are forked from one dedicated
/// thread that lives as long as the process.
async fn spawn_postmaster(mut cmd: Command, stop_with_parent: bool) -> io::Result<Child> {
    if !stop_with_parent {
        return cmd.spawn();
    }
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let gone = || io::Error::other("the thread that spawns PostgreSQL is not running");
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("cairn-pg-spawner".into())
            .spawn(move || {
                // The sender is static, so this loop never ends; parking
                // keeps the thread alive should it ever do.
                for job in rx {
                    job();
                }
                loop {
                    std::thread::park();
                }
            })
            .ok()
            .map(|_| tx)
    });
    let spawner = spawner.as_ref().ok_or_else(gone)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawner
        .send(Box::new(move || {
            let _ = tx.send(cmd.spawn());
        }))
        .map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

async fn ensure_database(conn: &mut PgConnection, database: &'static str) -> Result<(), EmbeddedError> {
    let err = |source| EmbeddedError::CreateDatabase { database, source };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if exists {
        return Ok(());
    }
    // Identifiers cannot be bound; `database` is one of our constants.
    let sql = format!("CREATE DATABASE \"{database}\"");
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await {
        Ok(_) => Ok(()),
        // duplicate_database: another process created it meanwhile.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cluster_dir: &Path, stop_with_parent: bool) -> EmbeddedOptions {
        EmbeddedOptions { cluster_dir: cluster_dir.to_owned(), ephemeral: true, stop_with_parent }
    }

    /// Removes what a test leaves outside its tempdir (socket dir, relocated cluster).
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    async fn connect(pg: &EmbeddedPostgres) -> PgConnection {
        PgConnection::connect_with(&pg.connect_options(CAIRN_DATABASE)).await.unwrap()
    }

    #[tokio::test]
    async fn cluster_keeps_its_data_across_restarts_and_refuses_a_second_start() {
        let tmp = tempfile::tempdir().unwrap();
        // Long enough that the socket has to live under /tmp instead.
        let cluster_dir = tmp.path().join("c".repeat(90));
        let pg = EmbeddedPostgres::start(options(&cluster_dir, true)).await.unwrap();
        assert!(pg.socket_dir.to_string_lossy().starts_with("/tmp/cairn-pg-"));
        let _cleanup = RemoveOnDrop(pg.socket_dir.clone());

        let mut conn = connect(&pg).await;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1);
        sqlx::raw_sql("CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (42)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();

        // Attaching finds it, through the URL as well; stopping an attached
        // handle leaves the server running.
        let attached = EmbeddedPostgres::attach(&cluster_dir).await.unwrap().unwrap();
        assert_eq!(attached.data_dir(), pg.data_dir());
        let url = attached.database_url(CAIRN_DATABASE);
        let opts: PgConnectOptions = url.parse().unwrap();
        let conn = PgConnection::connect_with(&opts).await.unwrap();
        conn.close().await.unwrap();
        attached.stop().await.unwrap();

        let err = EmbeddedPostgres::start(options(&cluster_dir, false)).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("a PostgreSQL server is already running on {}", pg.data_dir().display())),
            "{err}"
        );

        pg.stop().await.unwrap();
        assert!(EmbeddedPostgres::attach(&cluster_dir).await.unwrap().is_none());

        let pg = EmbeddedPostgres::start(options(&cluster_dir, false)).await.unwrap();
        let mut conn = connect(&pg).await;
        let id: i32 = sqlx::query_scalar("SELECT id FROM survivor").fetch_one(&mut conn).await.unwrap();
        assert_eq!(id, 42);
        conn.close().await.unwrap();
        pg.stop().await.unwrap();
    }

    #[tokio::test]
    async fn root_relocates_a_cluster_the_postgres_user_cannot_reach() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root relocates
        }
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("private");
        fs::DirBuilder::new().mode(0o700).create(&private).unwrap();
        let cluster_dir = private.join("pg");
        let expected = relocation_target(&fs::canonicalize(tmp.path()).unwrap().join("private/pg"));
        let _cleanup = RemoveOnDrop(expected.clone());

        let pg = EmbeddedPostgres::start(options(&cluster_dir, false)).await.unwrap();
        assert_eq!(pg.data_dir(), expected);
        assert_eq!(pg.socket_dir, expected);
        let marker = fs::read_to_string(cluster_dir.join(RELOCATED_FILE)).unwrap();
        assert_eq!(marker.trim(), expected.to_str().unwrap());
        let mode = fs::metadata(RELOCATION_ROOT).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);

        let mut conn = connect(&pg).await;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1);
        conn.close().await.unwrap();
        let attached = EmbeddedPostgres::attach(&cluster_dir).await.unwrap().unwrap();
        assert_eq!(attached.data_dir(), expected);
        pg.stop().await.unwrap();
    }

    #[test]
    fn can_reach_needs_search_permission_on_every_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("private");
        fs::DirBuilder::new().mode(0o700).create(&private).unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let stranger = RunAs { uid: 54321, gid: 54321 };
        assert!(can_reach(&tmp.path().join("pg"), stranger));
        assert!(!can_reach(&private.join("pg"), stranger));
    }

    #[test]
    fn pid_file_gives_pid_port_and_socket_dir() {
        let text = "4242\n/data/pg\n1700000000\n5432\n/data/pg\n\n  1234567    98304\nready   \n";
        let parsed = parse_pid_file(text).unwrap();
        assert_eq!(parsed, PidFile { pid: 4242, port: 5432, socket_dir: Some(PathBuf::from("/data/pg")) });
        assert!(parse_pid_file("4242\n/data/pg\n").is_err());
    }

    #[test]
    fn database_url_encodes_the_socket_path() {
        let pg = EmbeddedPostgres {
            data_dir: PathBuf::from("/d"),
            socket_dir: PathBuf::from("/tmp/my dir"),
            port: PORT,
            child: None,
        };
        assert_eq!(pg.database_url("cairn"), "postgres://cairn@localhost:5432/cairn?host=/tmp/my%20dir");
    }
}
