//! Settings for `cairn serve` and the admin commands, from flags, environment variables and
//! an optional `cairn.toml`, in that order of precedence, then defaults. Each wrong value
//! is reported in one line naming the setting, where it can be set, and what is accepted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use cairn_server::{KubernetesConfig, Secret, ServerConfig, Toleration};
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
    /// The Python interpreter (with mlflow installed) that serves local deployments [default: python3]
    #[arg(long, env = "CAIRN_SERVING_PYTHON")]
    pub serving_python: Option<PathBuf>,
    /// The image of serving pods for Kubernetes deployments [default: ghcr.io/mlflow/mlflow:v3.17.2]
    #[arg(long, env = "CAIRN_SERVING_IMAGE")]
    pub serving_image: Option<String>,
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
}

/// Settings of the Kubernetes executor (`--executor kubernetes`).
#[derive(Args, Debug, Clone, Default)]
pub struct KubernetesArgs {
    /// Kubernetes API server URL [default: in-cluster service account, else KUBECONFIG]
    #[arg(long, env = "CAIRN_K8S_API_URL")]
    pub k8s_api_url: Option<String>,
    /// Namespace of jobs' pods and secrets [default: default]
    #[arg(long, env = "CAIRN_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    /// Cairn's own image, for the init containers that pull jobs' datasets (required with --executor kubernetes)
    #[arg(long, env = "CAIRN_K8S_CAIRN_IMAGE")]
    pub k8s_cairn_image: Option<String>,
    /// Service account jobs' pods run as [default: none, and no API credentials in the pod]
    #[arg(long, env = "CAIRN_K8S_SERVICE_ACCOUNT")]
    pub k8s_service_account: Option<String>,
    /// Node selector for jobs' pods: KEY=VALUE[,KEY=VALUE...]
    #[arg(long, env = "CAIRN_K8S_NODE_SELECTOR")]
    pub k8s_node_selector: Option<String>,
    /// Tolerations for jobs' pods: KEY[=VALUE][:EFFECT][,...], e.g. nvidia.com/gpu:NoSchedule
    #[arg(long, env = "CAIRN_K8S_TOLERATIONS")]
    pub k8s_tolerations: Option<String>,
    /// Image pull secrets for jobs' pods: NAME[,NAME...]
    #[arg(long, env = "CAIRN_K8S_IMAGE_PULL_SECRETS")]
    pub k8s_image_pull_secrets: Option<String>,
    /// Seconds finished pods are kept before they are deleted [default: 3600]
    #[arg(long, env = "CAIRN_K8S_POD_RETENTION_SECS")]
    pub k8s_pod_retention_secs: Option<String>,
    /// The URL jobs' pods reach Cairn at, e.g. the in-cluster service http://cairn.ml.svc:8080 [default: the public URL]
    #[arg(long, env = "CAIRN_K8S_CAIRN_URL")]
    pub k8s_cairn_url: Option<String>,
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
    #[serde(default)]
    kubernetes: FileKubernetes,
}

/// `[kubernetes]` in cairn.toml.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileKubernetes {
    api_url: Option<String>,
    namespace: Option<String>,
    cairn_image: Option<String>,
    service_account: Option<String>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    tolerations: Vec<String>,
    #[serde(default)]
    image_pull_secrets: Vec<String>,
    pod_retention_secs: Option<u64>,
    cairn_url: Option<String>,
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
    server.jobs_dir = Some(data.data_dir.join("jobs"));
    server.serving.dir = Some(data.data_dir.join("serving"));
    if let Some(python) = &args.serving_python {
        server.serving.python = python.clone();
    }
    if let Some(image) = &args.serving_image {
        if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
            return Err(invalid(
                "serving_image",
                "serving-image",
                "CAIRN_SERVING_IMAGE",
                image,
                "expected an image name",
            ));
        }
        server.serving.image = image.clone();
    }
    server.serving.max_body_bytes = server.max_body_bytes;
    if executor == ExecutorKind::Kubernetes {
        server.kubernetes = Some(resolve_kubernetes(&args.kubernetes, file.kubernetes)?);
    }
    Ok(ResolvedServe { data, server, storage_url, executor, log_format, admin_password })
}

/// A Kubernetes name (namespace, service account, secret): a DNS-1123 label or subdomain.
fn kubernetes_name(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// `a,b,,c` -> `[a, b, c]`.
fn list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn resolve_kubernetes(args: &KubernetesArgs, file: FileKubernetes) -> Result<KubernetesConfig, ConfigError> {
    let bad = |setting: &str, value: &str, accepted: &str| {
        let flag = format!("k8s-{}", setting.replace('_', "-"));
        let env = format!("CAIRN_K8S_{}", setting.to_uppercase());
        invalid(&format!("kubernetes.{setting}"), &flag, &env, value, accepted)
    };
    let namespace = args.k8s_namespace.clone().or(file.namespace).unwrap_or_else(|| "default".into());
    if !kubernetes_name(&namespace, 63) || namespace.contains('.') {
        return Err(bad("namespace", &namespace, "expected a namespace name: lowercase letters, digits and '-'"));
    }
    let cairn_image = args.k8s_cairn_image.clone().or(file.cairn_image).unwrap_or_default();
    if cairn_image.trim().is_empty() || cairn_image.chars().any(char::is_whitespace) {
        return Err(bad(
            "cairn_image",
            &cairn_image,
            "expected Cairn's image (e.g. registry.example.com/cairn:0.1.0): jobs' datasets are pulled with it",
        ));
    }
    let mut config = KubernetesConfig::new(namespace, cairn_image);
    config.api_url = args.k8s_api_url.clone().or(file.api_url);
    if let Some(url) = &config.api_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(bad("api_url", url, "expected an http:// or https:// URL of the API server"));
    }
    config.cairn_url = args.k8s_cairn_url.clone().or(file.cairn_url);
    if let Some(url) = &config.cairn_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(bad("cairn_url", url, "expected the http:// or https:// URL that pods reach Cairn at"));
    }
    config.service_account = args.k8s_service_account.clone().or(file.service_account);
    if let Some(account) = &config.service_account
        && !kubernetes_name(account, 253)
    {
        return Err(bad("service_account", account, "expected a service account name"));
    }
    config.node_selector = match &args.k8s_node_selector {
        Some(raw) => list(raw)
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(bad("node_selector", raw, "expected KEY=VALUE[,KEY=VALUE...]")),
            })
            .collect::<Result<_, _>>()?,
        None => file.node_selector,
    };
    let tolerations = match &args.k8s_tolerations {
        Some(raw) => list(raw),
        None => file.tolerations,
    };
    config.tolerations = tolerations
        .iter()
        .map(|t| Toleration::parse(t).map_err(|e| bad("tolerations", t, &e)))
        .collect::<Result<_, _>>()?;
    config.image_pull_secrets = match &args.k8s_image_pull_secrets {
        Some(raw) => list(raw),
        None => file.image_pull_secrets,
    };
    if let Some(name) = config.image_pull_secrets.iter().find(|n| !kubernetes_name(n, 253)) {
        return Err(bad("image_pull_secrets", name, "expected secret names separated by ','"));
    }
    let retention = number(
        args.k8s_pod_retention_secs.as_deref(),
        file.pod_retention_secs,
        3600,
        |v| {
            (v <= 30 * 24 * 3600)
                .then_some(v)
                .ok_or_else(|| bad("pod_retention_secs", &v.to_string(), "expected seconds from 0 to 2592000"))
        },
        |raw| bad("pod_retention_secs", raw, "expected a whole number of seconds"),
    )?;
    config.pod_retention = Duration::from_secs(retention);
    Ok(config)
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

    fn kubernetes(k8s: KubernetesArgs) -> Result<ResolvedServe, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataArgs { data_dir: Some(dir.path().into()), ..Default::default() };
        serve(ServeArgs { data, executor: Some("kubernetes".into()), kubernetes: k8s, ..Default::default() })
    }

    #[test]
    fn kubernetes_settings_come_from_flags_or_the_file() {
        let k8s = KubernetesArgs {
            k8s_cairn_image: Some("registry.example.com/cairn:1".into()),
            k8s_namespace: Some("ml-jobs".into()),
            k8s_node_selector: Some("pool=gpu,zone=a".into()),
            k8s_tolerations: Some("nvidia.com/gpu:NoSchedule,dedicated=ml".into()),
            k8s_image_pull_secrets: Some("regcred".into()),
            k8s_pod_retention_secs: Some("60".into()),
            k8s_cairn_url: Some("http://cairn.ml.svc:8080".into()),
            ..Default::default()
        };
        let resolved = kubernetes(k8s).expect("valid");
        let config = resolved.server.kubernetes.expect("kubernetes settings");
        assert_eq!(config.namespace, "ml-jobs");
        assert_eq!(config.node_selector.len(), 2);
        assert_eq!(config.tolerations[0], Toleration::parse("nvidia.com/gpu:NoSchedule").expect("valid"));
        assert_eq!(config.tolerations[1].value.as_deref(), Some("ml"));
        assert_eq!(config.image_pull_secrets, ["regcred"]);
        assert_eq!(config.pod_retention, Duration::from_secs(60));
        assert_eq!(config.api_url, None, "in-cluster or KUBECONFIG by default");
        assert_eq!(config.cairn_url.as_deref(), Some("http://cairn.ml.svc:8080"));
        assert!(resolved.server.jobs_dir.is_some(), "logs are kept in the data dir");

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cairn.toml");
        std::fs::write(
            &file,
            "executor = \"kubernetes\"\n[kubernetes]\ncairn_image = \"cairn:1\"\nnamespace = \"jobs\"\n\
             tolerations = [\"gpu:NoExecute\"]\n[kubernetes.node_selector]\npool = \"gpu\"\n",
        )
        .expect("write");
        let data = DataArgs { config: Some(file), data_dir: Some(dir.path().into()), database_url: None };
        let config = serve(ServeArgs { data, ..Default::default() }).expect("valid").server.kubernetes.expect("k8s");
        assert_eq!((config.namespace.as_str(), config.node_selector["pool"].as_str()), ("jobs", "gpu"));
        assert_eq!(config.tolerations[0].effect.as_deref(), Some("NoExecute"));
    }

    #[test]
    fn wrong_kubernetes_settings_name_the_setting() {
        let image = || Some("cairn:1".to_owned());
        let cases = [
            (KubernetesArgs::default(), "`kubernetes.cairn_image`"),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_namespace: Some("ML_Jobs".into()),
                    ..Default::default()
                },
                "CAIRN_K8S_NAMESPACE",
            ),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_node_selector: Some("pool".into()),
                    ..Default::default()
                },
                "KEY=VALUE",
            ),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_tolerations: Some("gpu:Sometimes".into()),
                    ..Default::default()
                },
                "NoSchedule",
            ),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_api_url: Some("localhost:6443".into()),
                    ..Default::default()
                },
                "--k8s-api-url",
            ),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_cairn_url: Some("cairn:8080".into()),
                    ..Default::default()
                },
                "CAIRN_K8S_CAIRN_URL",
            ),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_pod_retention_secs: Some("soon".into()),
                    ..Default::default()
                },
                "`kubernetes.pod_retention_secs`",
            ),
            (
                KubernetesArgs {
                    k8s_cairn_image: image(),
                    k8s_image_pull_secrets: Some("Bad Name".into()),
                    ..Default::default()
                },
                "image_pull_secrets",
            ),
        ];
        for (args, needle) in cases {
            let err = kubernetes(args).expect_err(needle).to_string();
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
