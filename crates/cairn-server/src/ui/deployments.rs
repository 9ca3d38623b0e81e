//! Deployment pages: the list, and one deployment's page (status, current and past
//! revisions, its endpoint with a `curl` example, gateway metrics, the serving log). Members
//! deploy from a model version's page and roll back to a past revision; CSRF-checked forms,
//! audited by the service functions.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use cairn_db::deployments::DeploymentRow;
use serde::Deserialize;

use super::display::When;
use super::jobs::when;
use super::{Header, HtmlError, SessionUser, links, render};
use crate::audit::{Actor, Audited};
use crate::deployments::gateway::MetricsSnapshot;
use crate::deployments::{self, Changes, NewDeployment, Serves};
use crate::state::AppState;

/// Log lines the page shows.
const LOG_LINES: usize = 200;

pub fn deployment_url(name: &str) -> String {
    format!("/deployments/{name}")
}

/// A status as the `status` macro shows it: label and class.
fn badge(status: &str) -> (String, &'static str) {
    let class = match status {
        "ready" => "finished",
        "failed" => "failed",
        "stopped" => "killed",
        _ => "running",
    };
    (super::display::status_label(status), class)
}

struct Line {
    name: String,
    url: String,
    model: String,
    version: String,
    version_url: Option<String>,
    alias: Option<String>,
    revision: i32,
    status_label: String,
    status_class: &'static str,
    status_message: String,
    target: String,
    updated: When,
}

impl Line {
    fn new(d: &DeploymentRow) -> Line {
        let (status_label, status_class) = badge(&d.status);
        Line {
            url: deployment_url(&d.name),
            name: d.name.clone(),
            model: d.model_name.clone(),
            version: d.version.map_or_else(|| "—".into(), |v| v.to_string()),
            version_url: d.version.map(|v| links::model_version(&d.model_name, v)),
            alias: d.settings.alias.clone(),
            revision: d.current_revision,
            status_label,
            status_class,
            status_message: d.status_message.clone(),
            target: d.settings.target.clone(),
            updated: when(d.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct ListPage {
    header: Header,
    deployments: Vec<Line>,
}

pub async fn list(State(state): State<AppState>, user: SessionUser) -> Result<Response, HtmlError> {
    let rows = deployments::list(&state.db, user.visible().projects()).await?;
    let page = ListPage { header: Header::from(&user), deployments: rows.iter().map(Line::new).collect() };
    Ok(render(&page)?.into_response())
}

struct RevisionLine {
    revision: i32,
    version: i64,
    version_url: String,
    reason: String,
    by: String,
    at: When,
    current: bool,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    header: Header,
    can_write: bool,
    d: Line,
    replicas: i32,
    gpus: i32,
    cpu: String,
    memory: String,
    endpoint: String,
    curl: String,
    metrics: MetricsSnapshot,
    revisions: Vec<RevisionLine>,
    log: String,
}

fn ms(value: &Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v:.1} ms"))
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(name): Path<String>,
) -> Result<Response, HtmlError> {
    let (d, revisions) = deployments::revisions(&state.db, &name).await?;
    let endpoint = deployments::endpoint_url(&state, &d.name);
    let curl = format!(
        "curl -X POST {endpoint}/invocations \\\n  -H \"Authorization: Bearer $CAIRN_TOKEN\" \\\n  \
         -H \"Content-Type: application/json\" \\\n  -d '{{\"dataframe_split\": {{\"columns\": [\"x\"], \"data\": [[1.0]]}}}}'"
    );
    let log = deployments::logs(&state, &d.name, LOG_LINES).await.unwrap_or_default();
    let page = DeploymentPage {
        header: Header::from(&user),
        can_write: user.can_write(),
        replicas: d.settings.replicas,
        gpus: d.settings.gpus,
        cpu: d.settings.cpu.clone().unwrap_or_else(|| "—".into()),
        memory: d.settings.memory.clone().unwrap_or_else(|| "—".into()),
        metrics: state.serving.metrics.snapshot(&d.name),
        revisions: revisions
            .into_iter()
            .map(|r| RevisionLine {
                current: r.revision == d.current_revision,
                revision: r.revision,
                version: r.version,
                version_url: links::model_version(&d.model_name, r.version),
                reason: r.reason,
                by: r.actor_name,
                at: when(r.created_at),
            })
            .collect(),
        d: Line::new(&d),
        endpoint,
        curl,
        log,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct DeployForm {
    csrf_token: String,
    name: String,
    model: String,
    /// A version number, or `@alias` to follow an alias.
    serves: String,
    #[serde(default)]
    target: String,
}

/// The Deploy form of a model version's page.
pub async fn create(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Form(form): Form<DeployForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let serves = match form.serves.trim().strip_prefix('@') {
        Some(alias) => Serves::Alias(alias.to_owned()),
        None => Serves::Version(
            cairn_core::registry::parse_version(form.serves.trim())
                .map_err(|e| HtmlError::page(axum::http::StatusCode::BAD_REQUEST, format!("Cannot deploy: {}", e.0)))?,
        ),
    };
    let new = NewDeployment {
        name: form.name.trim().to_owned(),
        model: form.model,
        target: Some(form.target).filter(|t| !t.is_empty()),
        changes: Changes { serves: Some(serves), ..Changes::default() },
    };
    let created = deployments::create(&state, &actor, new).await?;
    Ok((Extension(Audited), Redirect::to(&deployment_url(&created.name))).into_response())
}

#[derive(Deserialize)]
pub struct RollbackForm {
    csrf_token: String,
    revision: i32,
}

pub async fn rollback(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    deployments::rollback(&state, &actor, &name, Some(form.revision)).await?;
    Ok((Extension(Audited), Redirect::to(&deployment_url(&name))).into_response())
}
