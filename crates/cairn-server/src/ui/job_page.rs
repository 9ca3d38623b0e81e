//! A job's page: its state and facts, the resolved spec, the events timeline, a link to its
//! run and its log. The page carries the log as it is now (a reload without JavaScript shows
//! more); `joblog.js` follows `/api/v1/jobs/{id}/logs?follow=true` while the job runs.
//! Members cancel a job that has not ended, retry one that has, and save a job's spec as a
//! job template (a new version when the name exists); CSRF-checked forms, audited by the
//! service functions.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_db::jobs::JobRow;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use super::display::When;
use super::jobs::{job_duration, job_url, state_badge, when};
use super::{Header, HtmlError, LifecycleForm, SessionUser, links, render};
use crate::access::NewObjectProject;
use crate::audit::{Actor, Audited};
use crate::jobs::{self, LogSource};
use crate::state::AppState;
use crate::tracking::{self, TrackingError};

/// The tail of the log the page carries; the API has all of it.
const LOG_SHOWN: u64 = 256 * 1024;

struct Fact {
    label: &'static str,
    value: String,
    url: Option<String>,
    code: bool,
    /// A moment, shown in the reader's time zone.
    time: Option<When>,
}

struct EventLine {
    at: When,
    from: String,
    to_label: String,
    to_class: &'static str,
    reason: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    header: Header,
    can_write: bool,
    id: String,
    short_id: String,
    state_label: String,
    state_class: &'static str,
    reason: String,
    finished: bool,
    facts: Vec<Fact>,
    command: String,
    image: Option<String>,
    params: Vec<(String, String)>,
    env: Vec<(String, String)>,
    datasets: Vec<(String, String)>,
    run_url: String,
    retrain_url: String,
    events: Vec<EventLine>,
    log: String,
    /// The log was longer than what the page carries.
    log_cut: bool,
    follow_url: String,
}

fn fact(label: &'static str, value: impl Into<String>) -> Fact {
    Fact { label, value: value.into(), url: None, code: false, time: None }
}

fn time_fact(label: &'static str, at: chrono::DateTime<chrono::Utc>) -> Fact {
    Fact { time: Some(when(at)), ..fact(label, "") }
}

fn link_fact(label: &'static str, value: String, url: String, code: bool) -> Fact {
    Fact { url: Some(url), code, ..fact(label, value) }
}

/// A job id from a page's path; anything else names no job.
fn parse_id(raw: &str) -> Result<Uuid, HtmlError> {
    Uuid::try_parse(raw).map_err(|_| HtmlError::page(StatusCode::NOT_FOUND, format!("There is no job {raw}.")))
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(id): Path<String>,
) -> Result<Response, HtmlError> {
    let id = parse_id(&id)?;
    let job = jobs::get(&state.db, id).await?;
    let events = cairn_db::jobs::events(&state.db.pool, id).await?;
    let template = cairn_db::job_templates::of_job(&state.db.pool, id).await?;
    let (experiment, _) = tracking::get_experiment(&state.db, job.experiment_id).await?;
    let (log, log_cut) = current_log(&state, &job).await;
    let (state_label, state_class) = state_badge(&job.state);
    let mut facts = vec![
        fact("Submitted by", job.created_by.clone().unwrap_or_else(|| "—".into())),
        time_fact("Submitted", job.created_at),
    ];
    if let Some(at) = job.started_at {
        facts.push(time_fact("Started", at));
    }
    if let Some(at) = job.finished_at {
        facts.push(time_fact("Ended", at));
    }
    if let Some(d) = job_duration(job.started_at, job.finished_at) {
        facts.push(fact("Duration", d));
    }
    if let Some(code) = job.exit_code {
        facts.push(fact("Exit code", code.to_string()));
    }
    facts.push(fact("GPUs", job.gpus.to_string()));
    facts.push(fact("CPU cores", job.spec.cpu.clone().unwrap_or_else(|| "1 (default)".into())));
    if let Some(memory) = &job.spec.memory {
        facts.push(fact("Memory", memory.clone()));
    }
    facts.push(fact("Priority", job.priority.to_string()));
    facts.push(fact("Timeout", format!("{} s", job.spec.timeout_secs)));
    facts.push(link_fact("Experiment", experiment.name, links::experiment(experiment.id), false));
    facts.push(link_fact("Run", job.run_uuid.simple().to_string(), links::run(&job.run_uuid), true));
    match template {
        Some((name, version, project)) if user.visible().can_read(project) => {
            let url = super::job_forms::template_url(&name);
            facts.push(link_fact("Template", format!("{name} v{version}"), url, false));
        }
        Some(_) => facts.push(fact("Template", crate::visibility::HIDDEN.to_owned())),
        None => {}
    }
    if let Some(origin) = job.origin_job_id {
        facts.push(link_fact("Repeats job", origin.simple().to_string()[..8].to_owned(), job_url(&origin), true));
    }
    if let Some(source) = &job.spec.source {
        facts.push(Fact { code: true, ..fact("Repository", source.repository.clone()) });
        facts.push(Fact { code: true, ..fact("Commit", source.commit.clone()) });
    }
    let spec = &job.spec.0;
    let page = JobPage {
        header: Header::from(&user),
        can_write: user.can_write(),
        id: id.simple().to_string(),
        short_id: id.simple().to_string()[..8].to_owned(),
        state_label,
        state_class,
        reason: job.reason.clone(),
        finished: job.state().is_final(),
        facts,
        command: spec.resolved_command().join(" "),
        image: spec.image.clone(),
        params: spec.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        datasets: spec.datasets.iter().map(|d| (dataset_url(d), d.clone())).collect(),
        run_url: links::run(&job.run_uuid),
        retrain_url: format!("{}/retrain", links::run(&job.run_uuid)),
        events: events
            .into_iter()
            .map(|e| {
                let (to_label, to_class) = state_badge(&e.to_state);
                EventLine {
                    at: when(e.at),
                    from: e.from_state.unwrap_or_default(),
                    to_label,
                    to_class,
                    reason: e.reason,
                }
            })
            .collect(),
        log,
        log_cut,
        follow_url: format!("/api/v1/jobs/{}/logs?follow=true", id.simple()),
    };
    Ok(render(&page)?.into_response())
}

/// The page of dataset input `NAME@VERSION`.
fn dataset_url(input: &str) -> String {
    match input.parse::<cairn_core::dataset::DatasetRef>() {
        Ok(r) => links::dataset(&r.name, r.version),
        Err(_) => "/datasets".into(),
    }
}

/// The last [`LOG_SHOWN`] bytes of the job's log as it is now, and whether it was cut.
/// A log that cannot be read is shown as empty (the failure goes to the server log).
async fn current_log(state: &AppState, job: &JobRow) -> (String, bool) {
    let bytes = match jobs::log_source(state, job.id, job.state().is_final()).await {
        LogSource::Local(path) => read_tail(&path).await,
        LogSource::Stored(key) => match read_stored_tail(state, &key).await {
            // Not in storage (yet: the executor copies it there just after the job ends):
            // the file it is copied from, when this server ran the job.
            Ok(None) => match jobs::log_source(state, job.id, false).await {
                LogSource::Local(path) => read_tail(&path).await,
                _ => Ok(Vec::new()),
            },
            Ok(Some(bytes)) => Ok(bytes),
            Err(e) => Err(e),
        },
        LogSource::Nothing => Ok(Vec::new()),
    };
    match bytes {
        Ok(bytes) => {
            let cut = bytes.len() as u64 > LOG_SHOWN;
            let start = if cut { bytes.len() - usize::try_from(LOG_SHOWN).unwrap_or(bytes.len()) } else { 0 };
            let text = String::from_utf8_lossy(&bytes[start..]);
            // Start at a whole line when the start was cut.
            let text =
                if cut { text.split_once('\n').map_or("", |(_, rest)| rest).to_owned() } else { text.into_owned() };
            (text, cut)
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "could not read the job's log for its page");
            (String::new(), false)
        }
    }
}

/// The end of the stored log; `None` when there is none.
async fn read_stored_tail(state: &AppState, key: &cairn_storage::ArtifactPath) -> Result<Option<Vec<u8>>, String> {
    use futures::TryStreamExt;
    let download = match state.storage.get_stream(key, Some(cairn_storage::ByteRange::Suffix(LOG_SHOWN + 1))).await {
        Ok(download) => download,
        Err(cairn_storage::StorageError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let chunks: Vec<bytes::Bytes> = download.stream.try_collect().await.map_err(|e| e.to_string())?;
    Ok(Some(chunks.concat()))
}

async fn read_tail(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let len = file.metadata().await.map_err(|e| e.to_string())?.len();
    // One byte more than shown, so the caller sees that it was cut.
    let start = len.saturating_sub(LOG_SHOWN + 1);
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    file.read_to_end(&mut buffer).await.map_err(|e| e.to_string())?;
    Ok(buffer)
}

/// A service refusal (the job has already ended) as a page that says why.
fn refusal(e: crate::service_error::ServiceError) -> HtmlError {
    match e {
        crate::service_error::ServiceError::Tracking(
            TrackingError::Invalid(message) | TrackingError::AlreadyExists(message),
        ) => HtmlError::page(StatusCode::UNPROCESSABLE_ENTITY, message),
        other => other.into(),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(id): Path<String>,
    Form(form): Form<LifecycleForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = parse_id(&id)?;
    jobs::cancel(&state.db, &actor, id).await.map_err(refusal)?;
    Ok((Extension(Audited), Redirect::to(&job_url(&id))).into_response())
}

pub async fn retry(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(id): Path<String>,
    Form(form): Form<LifecycleForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let id = parse_id(&id)?;
    let job = jobs::retry(&state, &actor, id).await.map_err(refusal)?;
    Ok((Extension(Audited), Redirect::to(&job_url(&job.id))).into_response())
}

#[derive(serde::Deserialize)]
pub struct SaveTemplateForm {
    csrf_token: String,
    name: String,
    #[serde(default)]
    description: String,
}

/// Saves the job's resolved spec as a version of the named template, for its experiment.
pub async fn save_template(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    NewObjectProject(project): NewObjectProject,
    Path(id): Path<String>,
    Form(form): Form<SaveTemplateForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let job = jobs::get(&state.db, parse_id(&id)?).await?;
    let name = crate::job_templates::TemplateName::parse(form.name.trim())?;
    let input = crate::job_templates::TemplateInput {
        name,
        description: form.description.replace("\r\n", "\n").trim_end().to_owned(),
        experiment_id: Some(job.experiment_id),
        spec: job.spec.0,
        project_id: project,
    };
    let saved = crate::job_templates::save(&state.db, &actor, input).await.map_err(refusal)?;
    let url = links::url(&super::job_forms::template_url(&saved.name), &[("version", &saved.version.to_string())]);
    Ok((Extension(Audited), Redirect::to(&url)).into_response())
}
