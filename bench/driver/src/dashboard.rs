//! (d) The dashboard, Cairn only (the peers' UIs are single-page apps, not comparable page
//! for page): server time of the pages a person opens on the seeded data, as a browser
//! without a cache asks for them, and the HTML + JS + CSS each page transfers.
//!
//! Logs in through the login form (its CSRF field and cookie, then the session cookie), then
//! for each page: one untimed request, `reps` timed ones one after the other; the median and
//! p95 are reported. Pages: the runs table of the search experiment (first page; a page deep
//! in the list reached by following the keyset `rel="next"` links; the same with a filter
//! and a sort), the run page of the history run and its chart's series (downsampled on the
//! server from the whole history). Bytes: the page's body plus every script and stylesheet
//! it links (each fetched once); the series is data, reported apart.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderValue, LOCATION, SET_COOKIE};
use serde::{Deserialize, Serialize};

use crate::api::urlencode;
use crate::{data, latency, say};

/// Keyset pages followed to reach the deep page of the unfiltered table (50 runs a page).
const DEEP_PAGES: usize = 20;
/// The same for the filtered and sorted table, which has about 5 % of the runs.
const DEEP_FILTERED_PAGES: usize = 5;
/// What the run page's chart asks for (`MAX_POINTS` in web/static/charts.js).
const CHART_POINTS: usize = 1000;

/// One page's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PageFigure {
    pub label: String,
    pub path: String,
    pub error: Option<String>,
    pub samples_ms: Vec<f64>,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// The body of the page itself.
    pub body_bytes: u64,
    /// Scripts and stylesheets the page links, each counted once.
    pub asset_bytes: u64,
    /// Whether this is a page (HTML, with the 300 KB target) rather than data.
    pub html: bool,
}

/// A logged-in browser session: its own client (no redirects followed) and cookies.
struct Session {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Session {
    fn new(base: &str) -> Result<Session> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Session { client, base: base.trim_end_matches('/').to_owned(), cookies: Vec::new() })
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let Some((name, rest)) = value.to_str().ok().and_then(|v| v.split_once('=')) else { continue };
            let value = rest.split(';').next().unwrap_or_default().to_owned();
            self.cookies.retain(|(n, _)| n != name);
            self.cookies.push((name.to_owned(), value));
        }
    }

    fn cookie_header(&self) -> Option<HeaderValue> {
        let joined: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        HeaderValue::from_str(&joined.join("; ")).ok().filter(|_| !joined.is_empty())
    }

    /// GET `path`: status and body.
    async fn get(&self, path: &str) -> Result<(u16, bytes::Bytes)> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = self.cookie_header() {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.with_context(|| format!("GET {path}"))?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await.with_context(|| format!("GET {path}: body"))?))
    }

    async fn get_ok(&self, path: &str) -> Result<bytes::Bytes> {
        let (status, body) = self.get(path).await?;
        ensure!(status == 200, "GET {path}: HTTP {status} {}", crate::api::excerpt(&body));
        Ok(body)
    }

    /// Logs in through the form, as a person does.
    async fn log_in(&mut self, user: &str, password: &str) -> Result<()> {
        let response = self.client.get(format!("{}/login", self.base)).send().await.context("GET /login")?;
        self.remember(&response);
        let form = response.text().await.context("GET /login: body")?;
        let csrf = attribute_after(&form, "name=\"csrf_token\" value=\"").context("no CSRF field on /login")?;
        let body =
            format!("username={}&password={}&csrf_token={}", urlencode(user), urlencode(password), urlencode(&csrf));
        let mut request = self
            .client
            .post(format!("{}/login", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = self.cookie_header() {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.context("POST /login")?;
        let status = response.status().as_u16();
        ensure!(status == 303, "POST /login: HTTP {status} (wrong password?)");
        ensure!(response.headers().contains_key(LOCATION), "POST /login: no redirect");
        self.remember(&response);
        Ok(())
    }
}

/// The text up to the next `"` after `marker`, with the HTML escapes askama writes undone.
fn attribute_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let value = &html[start..start + html[start..].find('"')?];
    Some(value.replace("&#38;", "&").replace("&amp;", "&").replace("&#39;", "'").replace("&#34;", "\""))
}

/// The `href` of the link with `rel="next"`.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\"")?;
    let tag_start = html[..at].rfind('<')?;
    attribute_after(&html[tag_start..], "href=\"")
}

/// The scripts and stylesheets a page links (same-origin paths).
fn assets(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (tag, attr) in [("<script", "src=\""), ("<link", "href=\"")] {
        for piece in html.split(tag).skip(1) {
            let Some(tag_text) = piece.split('>').next() else { continue };
            if tag == "<link" && !tag_text.contains("stylesheet") {
                continue;
            }
            if let Some(path) = attribute_after(tag_text, attr).filter(|p| p.starts_with('/') && !out.contains(p)) {
                out.push(path);
            }
        }
    }
    out
}

/// Follows `pages - 1` next links from `path`; the URL of page `pages`.
async fn walk(session: &Session, path: &str, pages: usize) -> Result<String> {
    let mut url = path.to_owned();
    for page in 1..pages {
        let body = session.get_ok(&url).await?;
        let html = String::from_utf8_lossy(&body);
        url = next_link(&html).ok_or_else(|| anyhow!("page {page} of {path} has no next link"))?;
    }
    Ok(url)
}

async fn measure_page(session: &Session, label: &str, path: &str, reps: usize, html: bool) -> PageFigure {
    let mut figure = PageFigure { label: label.to_owned(), path: path.to_owned(), html, ..PageFigure::default() };
    let outcome: Result<()> = async {
        let first = session.get_ok(path).await?;
        figure.body_bytes = first.len() as u64;
        if html {
            for asset in assets(&String::from_utf8_lossy(&first)) {
                figure.asset_bytes += session.get_ok(&asset).await?.len() as u64;
            }
        }
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            let (status, _) = session.get(path).await?;
            if status != 200 {
                bail!("GET {path}: HTTP {status}");
            }
            samples.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let l = latency(samples);
        (figure.samples_ms, figure.median_ms, figure.p95_ms) = (l.samples_ms, l.median_ms, l.p95_ms);
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        figure.error = Some(format!("{e:#}"));
    }
    figure
}

/// What the dashboard phase measures.
pub struct Plan<'a> {
    pub base: &'a str,
    pub name: &'a str,
    /// The admin password, for the login form.
    pub password: &'a str,
    /// The search experiment's id.
    pub experiment: &'a str,
    /// The history run's id and its number of points.
    pub history_run: Option<(&'a str, usize)>,
    pub reps: usize,
}

/// The dashboard phase: every page's figures, or one figure carrying the error that
/// stopped it before any page (login, the deep-page walk).
pub async fn measure(plan: Plan<'_>) -> Vec<PageFigure> {
    say(plan.name, format!("(d) dashboard: {} x each page, after one untimed request", plan.reps));
    match pages(&plan).await {
        Ok(figures) => figures,
        Err(e) => {
            vec![PageFigure { label: "dashboard".into(), error: Some(format!("{e:#}")), ..PageFigure::default() }]
        }
    }
}

async fn pages(plan: &Plan<'_>) -> Result<Vec<PageFigure>> {
    let Plan { base, name, password, experiment, history_run, reps } = *plan;
    let mut session = Session::new(base)?;
    session.log_in("admin", password).await?;
    let table = format!("/experiments/{experiment}");
    let filtered =
        format!("{table}?filter={}&order_by={}", urlencode(&data::search_filter(3)), urlencode(data::SEARCH_ORDER));
    let deep = walk(&session, &table, DEEP_PAGES).await?;
    let deep_filtered = walk(&session, &filtered, DEEP_FILTERED_PAGES).await?;
    let mut cases = vec![
        ("runs table, first page".to_owned(), table.clone(), true),
        (format!("runs table, page {DEEP_PAGES} (keyset)"), deep, true),
        ("runs table, filter + sort, first page".to_owned(), filtered, true),
        (format!("runs table, filter + sort, page {DEEP_FILTERED_PAGES} (keyset)"), deep_filtered, true),
    ];
    if let Some((run, points)) = history_run {
        cases.push((format!("run page, {points}-point run"), format!("/runs/{run}"), true));
        cases.push((
            format!("chart series, whole history -> {CHART_POINTS} points"),
            format!("/runs/{run}/metrics/loss.json?max_points={CHART_POINTS}"),
            false,
        ));
    }
    let mut figures = Vec::new();
    for (label, path, html) in cases {
        let figure = measure_page(&session, &label, &path, reps, html).await;
        let bytes = (figure.body_bytes + figure.asset_bytes) as f64 / 1e3;
        match &figure.error {
            Some(e) => say(name, format!("(d) {label}: {e}")),
            None => say(
                name,
                format!("(d) {label}: median {:.1} ms, p95 {:.1} ms, {bytes:.0} KB", figure.median_ms, figure.p95_ms),
            ),
        }
        figures.push(figure);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_assets_are_read_from_the_markup() {
        let html = r#"<link rel="stylesheet" href="/static/cairn.css"><link rel="icon" href="/favicon.ico">
            <script defer src="/static/vendor/uPlot.iife.min.js"></script><script type="module" src="/static/time.js"></script>
            <script type="module" src="/static/time.js"></script><script src="https://cdn.example/x.js"></script>
            <a class="next" href="/experiments/1?after=v1%3A2&#38;filter=x" rel="next">Next</a>"#;
        assert_eq!(assets(html), ["/static/vendor/uPlot.iife.min.js", "/static/time.js", "/static/cairn.css"]);
        assert_eq!(next_link(html).as_deref(), Some("/experiments/1?after=v1%3A2&filter=x"));
        assert_eq!(attribute_after(r#"name="csrf_token" value="a&#38;b""#, "value=\"").as_deref(), Some("a&b"));
    }
}
