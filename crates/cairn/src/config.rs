//! Settings for `cairn serve` and the admin commands, from flags, environment variables and
//! an optional `cairn.toml`, in that order of precedence, then defaults. Each wrong value
//! is reported in one line naming the setting, where it can be set, and what is accepted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_server::{Secret, ServerConfig};
use clap::Args;
use serde::Deserialize;

/// Where to find the data: shared by `serve` and the admin commands.
#[derive(Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Configuration file [default: ./cairn.toml when present]
    #[arg(long, env = "CAIRN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory: embedded PostgreSQL cluster, local artifacts, lock file [default: ./cairn-data]
    #[arg(long, env = "CAIRN_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// External PostgreSQL URL; when absent, Cairn runs its own cluster in <data-dir>/pg
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "CAIRN_LISTEN")]
    pub listen: Option<String>,
    /// Artifact store: file:///abs/dir or s3://bucket/prefix [default: file://<data-dir>/artifacts]
    #[arg(long, env = "CAIRN_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Where jobs run: local or kubernetes [default: local]
    #[arg(long, env = "CAIRN_EXECUTOR")]
    pub executor: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "CAIRN_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// URL users reach Cairn at, e.g. https://cairn.example.com [default: http://<listen>]
    #[arg(long, env = "CAIRN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest accepted request body for API calls, in bytes [default: 16777216]
    #[arg(long, env = "CAIRN_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<String>,
    /// Request timeout in seconds [default: 60]
    #[arg(long, env = "CAIRN_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<String>,
}

/// The optional configuration file. Secrets are not read from it: use the environment
/// (or `*_FILE` variables pointing at mounted secrets).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    storage_url: Option<String>,
    executor: Option<String>,
    log_format: Option<String>,
    public_url: Option<String>,
    max_body_bytes: Option<u64>,
    request_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Kubernetes,
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum Database {
    External(Secret),
    Embedded { cluster_dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct DataConfig {
    pub data_dir: PathBuf,
    pub database: Database,
}

#[derive(Debug)]
pub struct ResolvedServe {
    pub data: DataConfig,
    pub server: ServerConfig,
    pub storage_url: String,
    pub executor: ExecutorKind,
    pub log_format: LogFormat,
    pub admin_password: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn invalid(setting: &str, flag: &str, env: &str, value: &str, accepted: &str) -> ConfigError {
    ConfigError(format!(
        "invalid value {value:?} for setting `{setting}` (--{flag}, {env} or `{setting}` in cairn.toml): {accepted}"
    ))
}

fn load_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("cairn.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(ConfigError(format!("cannot read configuration file {}: {e}", path.display())));
        }
    };
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_owned();
        ConfigError(format!("configuration file {}: {}", path.display(), msg.lines().next().unwrap_or("invalid TOML")))
    })
}

/// A secret from `NAME`, or from the file named by `NAME_FILE` (Kubernetes secrets).
pub fn secret_from_env(name: &str) -> Result<Option<Secret>, ConfigError> {
    if let Ok(value) = std::env::var(name) {
        return Ok((!value.is_empty()).then(|| Secret::new(value)));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var_os(&file_var) {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(Secret::new(s.trim_end_matches(['\n', '\r']))))
            .map_err(|e| ConfigError(format!("cannot read {file_var} ({}): {e}", PathBuf::from(&path).display()))),
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, ConfigError> {
    std::path::absolute(&path).map_err(|e| ConfigError(format!("invalid data directory {}: {e}", path.display())))
}

fn resolve_data(args: &DataArgs, file: &FileConfig) -> Result<DataConfig, ConfigError> {
    let data_dir =
        absolute(args.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| "cairn-data".into()))?;
    let url = match args.database_url.clone().or_else(|| file.database_url.clone()) {
        Some(url) => Some(Secret::new(url)),
        None => secret_from_env("DATABASE_URL")?,
    };
    let database = match url {
        Some(url) => {
            if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
                return Err(ConfigError(
                    "invalid value for setting `database_url` (--database-url, DATABASE_URL or `database_url` in cairn.toml): expected postgres://user:password@host:port/database".into(),
                ));
            }
            Database::External(url)
        }
        None => Database::Embedded { cluster_dir: data_dir.join("pg") },
    };
    Ok(DataConfig { data_dir, database })
}

pub fn resolve_data_only(args: &DataArgs) -> Result<DataConfig, ConfigError> {
    let file = load_file(args.config.as_deref())?;
    resolve_data(args, &file)
}

pub fn resolve_serve(args: &ServeArgs) -> Result<ResolvedServe, ConfigError> {
    let file = load_file(args.data.config.as_deref())?;
    let data = resolve_data(&args.data, &file)?;

    let listen_raw = args.listen.clone().or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen_raw.parse().map_err(|_| {
        invalid(
            "listen",
            "listen",
            "CAIRN_LISTEN",
            &listen_raw,
            "expected an address and port like 127.0.0.1:8080 or 0.0.0.0:8080",
        )
    })?;

    let storage_url = match args.storage_url.clone().or(file.storage_url) {
        Some(url) => {
            if !(url.starts_with("file:///") || url.starts_with("s3://")) {
                return Err(invalid(
                    "storage_url",
                    "storage-url",
                    "CAIRN_STORAGE_URL",
                    &url,
                    "expected file:///absolute/dir or s3://bucket/prefix",
                ));
            }
            url
        }
        None => format!("file://{}", data.data_dir.join("artifacts").display()),
    };

    let executor_raw = args.executor.clone().or(file.executor).unwrap_or_else(|| "local".into());
    let executor = match executor_raw.as_str() {
        "local" => ExecutorKind::Local,
        "kubernetes" => ExecutorKind::Kubernetes,
        other => {
            return Err(invalid("executor", "executor", "CAIRN_EXECUTOR", other, "expected local or kubernetes"));
        }
    };

    let format_raw = args.log_format.clone().or(file.log_format).unwrap_or_else(|| "text".into());
    let log_format = match format_raw.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid("log_format", "log-format", "CAIRN_LOG_FORMAT", other, "expected text or json"));
        }
    };

    let public_url = args.public_url.clone().or(file.public_url);
    if let Some(url) = &public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(invalid(
            "public_url",
            "public-url",
            "CAIRN_PUBLIC_URL",
            url,
            "expected an http:// or https:// URL",
        ));
    }

    let max_body_bytes = number(
        args.max_body_bytes.as_deref(),
        file.max_body_bytes,
        16 * 1024 * 1024,
        |v| {
            (1024..=1 << 34).contains(&v).then_some(v).ok_or_else(|| {
                invalid(
                    "max_body_bytes",
                    "max-body-bytes",
                    "CAIRN_MAX_BODY_BYTES",
                    &v.to_string(),
                    "expected a number of bytes from 1024 to 17179869184",
                )
            })
        },
        |raw| invalid("max_body_bytes", "max-body-bytes", "CAIRN_MAX_BODY_BYTES", raw, "expected a number of bytes"),
    )?;
    let timeout = number(
        args.request_timeout_secs.as_deref(),
        file.request_timeout_secs,
        60,
        |v| {
            (1..=3600).contains(&v).then_some(v).ok_or_else(|| {
                invalid(
                    "request_timeout_secs",
                    "request-timeout-secs",
                    "CAIRN_REQUEST_TIMEOUT_SECS",
                    &v.to_string(),
                    "expected seconds from 1 to 3600",
                )
            })
        },
        |raw| {
            invalid(
                "request_timeout_secs",
                "request-timeout-secs",
                "CAIRN_REQUEST_TIMEOUT_SECS",
                raw,
                "expected a whole number of seconds",
            )
        },
    )?;

    let mut server = ServerConfig::new(listen);
    server.public_url = public_url;
    server.max_body_bytes = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
    server.request_timeout = Duration::from_secs(timeout);
    server.jwt_secret = secret_from_env("CAIRN_JWT_SECRET")?;
    if server.jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
        return Err(ConfigError("invalid CAIRN_JWT_SECRET: use at least 32 characters".into()));
    }
    let admin_password = secret_from_env("CAIRN_ADMIN_PASSWORD")?;
    if let Some(p) = &admin_password {
        cairn_core::Password::parse(p.expose())
            .map_err(|e| ConfigError(format!("invalid CAIRN_ADMIN_PASSWORD: {e}")))?;
    }
    if executor == ExecutorKind::Local {
        server.jobs_dir = Some(data.data_dir.join("jobs"));
    }
    Ok(ResolvedServe { data, server, storage_url, executor, log_format, admin_password })
}

/// A number from a flag/env string, else the file, else the default, checked by `check`.
fn number(
    raw: Option<&str>,
    from_file: Option<u64>,
    default: u64,
    check: impl Fn(u64) -> Result<u64, ConfigError>,
    unparsable: impl Fn(&str) -> ConfigError,
) -> Result<u64, ConfigError> {
    let value = match raw {
        Some(raw) => raw.trim().parse().map_err(|_| unparsable(raw))?,
        None => from_file.unwrap_or(default),
    };
    check(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: ServeArgs) -> Result<ResolvedServe, ConfigError> {
        resolve_serve(&args)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ServeArgs {
            data: DataArgs { data_dir: Some(dir.path().into()), ..Default::default() },
            ..Default::default()
        };
        let resolved = serve(args).expect("valid");
        assert_eq!(resolved.server.listen.to_string(), "127.0.0.1:8080");
        assert!(resolved.storage_url.starts_with("file:///") && resolved.storage_url.ends_with("/artifacts"));
        assert_eq!(resolved.executor, ExecutorKind::Local);
        assert!(matches!(resolved.data.database, Database::Embedded { .. }));
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cairn.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\n").expect("write");
        let data = DataArgs { config: Some(file), data_dir: Some(dir.path().into()), database_url: None };
        let args = ServeArgs { data, listen: Some("127.0.0.1:9100".into()), ..Default::default() };
        let resolved = serve(args).expect("valid");
        assert_eq!(resolved.server.listen.port(), 9100, "flag beats file");
        assert_eq!(resolved.log_format, LogFormat::Json, "file beats default");
    }

    #[test]
    fn wrong_values_name_the_setting_and_what_is_accepted() {
        let cases = [
            (ServeArgs { listen: Some("nowhere".into()), ..Default::default() }, "`listen`"),
            (ServeArgs { executor: Some("slurm".into()), ..Default::default() }, "expected local or kubernetes"),
            (ServeArgs { storage_url: Some("ftp://x".into()), ..Default::default() }, "`storage_url`"),
            (ServeArgs { max_body_bytes: Some("lots".into()), ..Default::default() }, "`max_body_bytes`"),
            (ServeArgs { log_format: Some("xml".into()), ..Default::default() }, "expected text or json"),
        ];
        for (args, needle) in cases {
            let err = serve(args).expect_err(needle).to_string();
            assert!(err.contains(needle), "{err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cairn.toml");
        std::fs::write(&file, "lisen = \"x\"\n").expect("write");
        let data = DataArgs { config: Some(file), ..Default::default() };
        let err = serve(ServeArgs { data, ..Default::default() }).expect_err("unknown key").to_string();
        assert!(err.contains("lisen"), "{err}");
    }
}
