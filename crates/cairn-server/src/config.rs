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
    /// Where the local executor runs jobs (a working directory and log per job); no local
    /// executor runs without it.
    pub jobs_dir: Option<std::path::PathBuf>,
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
        }
    }

    /// Cookies get the Secure flag when Cairn is served over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}
