//! The server's settings, already validated. Parsing flags, env vars and `cairn.toml`
//! happens in the `cairn` binary; the server only ever sees valid values.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A secret value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The URL users reach Cairn at (for links and the Secure cookie flag); defaults to
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest request body accepted by JSON endpoints.
    pub max_body_bytes: usize,
    /// Requests that take longer are answered 408 (streaming routes have their own limits).
    pub request_timeout: Duration,
    /// Key that signs API tokens. When absent, one is generated and kept in the database.
    pub jwt_secret: Option<Secret>,
    /// How long a dashboard login lasts.
    pub session_ttl: Duration,
    /// Where jobs' working directories and live logs are kept; no executor runs without it.
    pub jobs_dir: Option<std::path::PathBuf>,
    /// Run jobs as Kubernetes pods with these settings instead of as local processes.
    pub kubernetes: Option<KubernetesConfig>,
    /// Model serving (deployments).
    pub serving: ServingConfig,
}

/// How deployments are served.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// Where local serving processes keep their model files and logs; local deployments are
    /// not served without it.
    pub dir: Option<std::path::PathBuf>,
    /// The Python interpreter with `mlflow` installed that runs local serving processes.
    pub python: std::path::PathBuf,
    /// The image of serving pods on Kubernetes (MLflow with the model's dependencies).
    pub image: String,
    /// Largest request body the gateway passes to a model.
    pub max_body_bytes: usize,
    /// How long the gateway waits for a model's answer.
    pub timeout: Duration,
    /// How long a new serving process may take to answer `/ping`.
    pub ready_timeout: Duration,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            dir: None,
            python: "python3".into(),
            image: DEFAULT_SERVING_IMAGE.into(),
            max_body_bytes: 16 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(180),
        }
    }
}

/// The serving image used when none is configured: MLflow's own, at the pinned version.
pub const DEFAULT_SERVING_IMAGE: &str = "ghcr.io/mlflow/mlflow:v3.17.2";

/// The Kubernetes executor's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The API server; `None`: in-cluster (service account) or `KUBECONFIG`.
    pub api_url: Option<String>,
    /// Where jobs' pods and secrets are created.
    pub namespace: String,
    /// Cairn's own image, run as init containers that pull jobs' dataset inputs.
    pub cairn_image: String,
    /// The service account jobs' pods run as; without one, pods get no API credentials.
    pub service_account: Option<String>,
    pub node_selector: std::collections::BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub image_pull_secrets: Vec<String>,
    /// How long finished pods are kept (for `kubectl describe`) before they are deleted.
    pub pod_retention: Duration,
    /// The URL pods reach Cairn at (an in-cluster service); `None`: the public URL.
    pub cairn_url: Option<String>,
}

impl KubernetesConfig {
    pub fn new(namespace: impl Into<String>, cairn_image: impl Into<String>) -> KubernetesConfig {
        KubernetesConfig {
            api_url: None,
            namespace: namespace.into(),
            cairn_image: cairn_image.into(),
            service_account: None,
            node_selector: Default::default(),
            tolerations: Vec::new(),
            image_pull_secrets: Vec::new(),
            pod_retention: Duration::from_secs(3600),
            cairn_url: None,
        }
    }
}

/// A toleration for node taints, written as kubectl writes taints: `KEY[=VALUE][:EFFECT]`
/// (`Equal` with a value, `Exists` without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub value: Option<String>,
    pub effect: Option<String>,
}

impl Toleration {
    pub fn parse(text: &str) -> Result<Toleration, String> {
        let (rest, effect) = match text.rsplit_once(':') {
            Some((rest, effect)) => (rest, Some(effect)),
            None => (text, None),
        };
        if let Some(effect) = effect
            && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            return Err(format!("{text:?}: the effect after ':' is NoSchedule, PreferNoSchedule or NoExecute"));
        }
        let (key, value) = match rest.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (rest, None),
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || "-._/".contains(c);
        if key.is_empty() || !key.chars().all(name_char) || value.is_some_and(|v| !v.chars().all(name_char)) {
            return Err(format!("{text:?}: expected KEY[=VALUE][:EFFECT], e.g. nvidia.com/gpu=present:NoSchedule"));
        }
        Ok(Toleration { key: key.into(), value: value.map(Into::into), effect: effect.map(Into::into) })
    }
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            public_url: None,
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            jwt_secret: None,
            session_ttl: Duration::from_secs(12 * 3600),
            jobs_dir: None,
            kubernetes: None,
            serving: ServingConfig::default(),
        }
    }

    /// Cookies get the Secure flag when Cairn is served over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}
