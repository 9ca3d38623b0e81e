//! Client commands: they talk to a Cairn server over its API with `CAIRN_URL` and
//! `CAIRN_TOKEN`, print human-readable output (or JSON with `--json`), and report errors on
//! stderr with a non-zero exit.

pub mod dataset;
pub mod deploy;
pub mod job;
mod progress;
pub mod project;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// Where the server is and who is calling.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The Cairn server's base URL
    #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API token (create one on the dashboard's Tokens page or with `cairn token create`)
    #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// An authenticated connection to the API under `<url>/api/v1`.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Api> {
        let Some(token) = args.token.clone().filter(|t| !t.is_empty()) else {
            bail!(
                "no API token: set CAIRN_TOKEN (create one on the dashboard's Tokens page or with `cairn token create`)"
            );
        };
        let url = url::Url::parse(&args.url).with_context(|| format!("CAIRN_URL {:?} is not a URL", args.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("CAIRN_URL {:?} must start with http:// or https://", args.url);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("cairn-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Api { http, base: format!("{}/api/v1", args.url.trim_end_matches('/')), token })
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// Sends a request and decodes a JSON answer; an error status becomes an error carrying
    /// the server's explanation.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        response.json().await.context("decoding the server's answer")
    }

    /// Sends a request; an error status becomes an error carrying the server's explanation.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response =
            request.send().await.with_context(|| format!("cannot reach the Cairn server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or(body);
        match status {
            StatusCode::UNAUTHORIZED => bail!("the server refused the token (HTTP 401): {detail}"),
            _ => bail!("{detail} (HTTP {})", status.as_u16()),
        }
    }
}

/// `12.3 MB`: sizes for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
