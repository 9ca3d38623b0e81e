//! A thin MLflow REST client: raw bodies in, raw bytes out, errors carrying the status and
//! the start of the body. No retries: a failed request is counted, not hidden.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
}

/// What a request got back.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn ok(self, what: &str) -> Result<Bytes> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(anyhow!("{what}: HTTP {} {}", self.status, excerpt(&self.body)))
        }
    }
}

/// The first 300 characters of a body, on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Api {
    pub fn new(base: &str, token: Option<&str>) -> Result<Api> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(900))
            .build()?;
        let auth = token
            .filter(|t| !t.is_empty())
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .context("bad token")?;
        Ok(Api { client, base: base.trim_end_matches('/').to_owned(), auth })
    }

    /// A fresh client (own connection pool) to the same server: one per simulated client.
    pub fn fork(&self) -> Result<Api> {
        let mut api = Api::new(&self.base, None)?;
        api.auth = self.auth.clone();
        Ok(api)
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Reply> {
        let mut req =
            self.client.post(format!("{}{path}", self.base)).header(CONTENT_TYPE, "application/json").body(body.into());
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.with_context(|| format!("reading POST {path}"))?;
        Ok(Reply { status, body })
    }

    pub async fn get(&self, path_and_query: &str) -> Result<Reply> {
        let mut req = self.client.get(format!("{}{path_and_query}", self.base));
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let path = path_and_query.split('?').next().unwrap_or_default();
        let resp = req.send().await.with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.with_context(|| format!("reading GET {path}"))?;
        Ok(Reply { status, body })
    }

    /// The id of experiment `name`, created when missing.
    pub async fn experiment(&self, name: &str) -> Result<String> {
        let body = serde_json::json!({ "name": name }).to_string();
        let reply = self.post("/api/2.0/mlflow/experiments/create", body).await?;
        let body = if reply.status == 200 {
            reply.body
        } else {
            let created = excerpt(&reply.body);
            let q = format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={}", urlencode(name));
            let found = self.get(&q).await?;
            if found.status != 200 {
                bail!("experiments/create {name:?}: HTTP {} {created}", reply.status);
            }
            found.body
        };
        let v: serde_json::Value = serde_json::from_slice(&body).context("experiment reply is not JSON")?;
        let id = v.get("experiment_id").or_else(|| v.pointer("/experiment/experiment_id"));
        match id {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            _ => bail!("no experiment_id in {}", excerpt(&body)),
        }
    }

    /// Creates a run and returns its id.
    pub async fn create_run(&self, body: String) -> Result<String> {
        let body = self.post("/api/2.0/mlflow/runs/create", body).await?.ok("runs/create")?;
        run_id_of(&body)
    }
}

pub fn run_id_of(body: &[u8]) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Info {
        run_id: Option<String>,
        run_uuid: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Run {
        info: Info,
    }
    #[derive(serde::Deserialize)]
    struct Created {
        run: Run,
    }
    let created: Created =
        serde_json::from_slice(body).with_context(|| format!("runs/create reply: {}", excerpt(body)))?;
    created.run.info.run_id.or(created.run.info.run_uuid).ok_or_else(|| anyhow!("runs/create reply has no run id"))
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of the last `"next_page_token"` in a JSON body, found without parsing the
/// (possibly 100 MB) body. `None` when absent or empty.
pub fn next_page_token(body: &[u8]) -> Option<String> {
    let at = memchr::memmem::rfind(body, b"\"next_page_token\"")?;
    let rest = &body[at + b"\"next_page_token\"".len()..];
    let rest = rest.trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    let token = std::str::from_utf8(&rest[..end]).ok()?;
    (!token.is_empty()).then(|| token.replace("\\/", "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_page_token_at_either_end() {
        assert_eq!(next_page_token(br#"{"metrics":[1,2],"next_page_token": "YWI=" }"#).as_deref(), Some("YWI="));
        assert_eq!(next_page_token(br#"{"next_page_token":"x","metrics":[]}"#).as_deref(), Some("x"));
        assert_eq!(next_page_token(br#"{"metrics":[]}"#), None);
        assert_eq!(next_page_token(br#"{"next_page_token":""}"#), None);
    }
}
