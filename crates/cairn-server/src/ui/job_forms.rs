//! Forms that start jobs, for members: *Retrain* (the job that produced a run, with its
//! params prefilled to change and its dataset inputs to move to another version) and
//! submitting from a job template (the templates list, a template's page with its spec and
//! versions, and the form with param overrides). Both submit through the job services,
//! which audit the submission, and go to the new job's page; a refusal shows on the form
//! with what was typed.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_core::dataset::DatasetRef;
use cairn_core::job::JobSpec;
use serde::Deserialize;

use super::display::When;
use super::jobs::{job_url, when};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::audit::{Actor, Audited};
use crate::datasets;
use crate::job_templates::{self, TemplateName, TemplateOverrides};
use crate::jobs::{self, Overrides};
use crate::service_error::ServiceError;
use crate::state::AppState;
use crate::tracking::{self, TrackingError};
use crate::visibility::Visible;

/// Form fields: `param.K` for param K, `dataset.NAME` for the input named NAME.
const PARAM: &str = "param.";
const DATASET: &str = "dataset.";

/// A template's page.
pub fn template_url(name: &str) -> String {
    format!("/job-templates/{}", links::encoded_path(name))
}

struct VersionOption {
    value: String,
    label: String,
    selected: bool,
}

struct DatasetChoice {
    name: String,
    field: String,
    options: Vec<VersionOption>,
}

/// The editable part of a job: params (prefilled), one new param, dataset versions.
struct OverridesForm {
    params: Vec<(String, String, String)>,
    new_key: String,
    new_value: String,
    datasets: Vec<DatasetChoice>,
}

/// What a posted form asks for.
#[derive(Default)]
struct Posted {
    csrf_token: String,
    params: BTreeMap<String, String>,
    new_key: String,
    new_value: String,
    datasets: Vec<String>,
    gpus: String,
}

fn parse_posted(pairs: Vec<(String, String)>) -> Posted {
    let mut posted = Posted::default();
    for (key, value) in pairs {
        if let Some(name) = key.strip_prefix(PARAM) {
            posted.params.insert(name.to_owned(), value.replace("\r\n", "\n"));
        } else if key.starts_with(DATASET) {
            if !value.is_empty() {
                posted.datasets.push(value);
            }
        } else {
            match key.as_str() {
                "csrf_token" => posted.csrf_token = value,
                "new_key" => posted.new_key = value.trim().to_owned(),
                "new_value" => posted.new_value = value,
                "gpus" => posted.gpus = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    posted
}

impl Posted {
    /// The params to submit: the form's, and the new one when it has a name.
    fn all_params(&self) -> BTreeMap<String, String> {
        let mut params = self.params.clone();
        if !self.new_key.is_empty() {
            params.insert(self.new_key.clone(), self.new_value.clone());
        }
        params
    }
}

/// The form for `spec`'s params and dataset inputs, holding `posted` values when a
/// submission was refused. `latest_option` offers "the latest version when submitted".
/// The versions of a dataset in a project the user cannot read are not offered (as for a
/// dataset that does not exist).
async fn overrides_form(
    state: &AppState,
    visible: &Visible,
    spec: &JobSpec,
    posted: Option<&Posted>,
    latest_option: bool,
) -> Result<OverridesForm, HtmlError> {
    let mut params: BTreeMap<String, String> = spec.params.clone();
    if let Some(posted) = posted {
        params.extend(posted.params.clone());
    }
    let mut datasets = Vec::new();
    for input in &spec.datasets {
        let Ok(reference) = input.parse::<DatasetRef>() else { continue };
        let chosen = posted
            .and_then(|p| p.datasets.iter().find(|d| d.parse::<DatasetRef>().is_ok_and(|r| r.name == reference.name)))
            .cloned()
            .unwrap_or_else(|| input.clone());
        let versions = match datasets::get_dataset(&state.db, &reference.name).await {
            Ok((dataset, versions)) if visible.can_read(dataset.project_id) => versions,
            Ok(_) => Vec::new(),
            Err(ServiceError::Tracking(TrackingError::NotFound(_))) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let newest = versions.first().map(|v| v.version);
        let mut options = Vec::new();
        if latest_option || versions.is_empty() {
            options.push(VersionOption {
                value: reference.name.clone(),
                label: "the latest version when submitted".into(),
                selected: chosen == reference.name,
            });
        }
        for v in &versions {
            let value = format!("{}@{}", reference.name, v.version);
            let mut label = format!("version {}", v.version);
            if Some(v.version) == newest {
                label.push_str(" (newest)");
            }
            if Some(v.version) == reference.version {
                label.push_str(" (used before)");
            }
            if !v.message.is_empty() {
                label = format!("{label}: {}", v.message.chars().take(60).collect::<String>());
            }
            options.push(VersionOption { selected: value == chosen, value, label });
        }
        datasets.push(DatasetChoice { field: format!("{DATASET}{}", reference.name), name: reference.name, options });
    }
    Ok(OverridesForm {
        params: params.into_iter().map(|(k, v)| (format!("{PARAM}{k}"), k, v)).collect(),
        new_key: posted.map(|p| p.new_key.clone()).unwrap_or_default(),
        new_value: posted.map(|p| p.new_value.clone()).unwrap_or_default(),
        datasets,
    })
}

/// A refusal to show on the form (invalid input, a missing dataset version); anything else
/// is an error page.
fn form_refusal(e: ServiceError) -> Result<String, HtmlError> {
    match e {
        ServiceError::Tracking(
            TrackingError::Invalid(m) | TrackingError::NotFound(m) | TrackingError::AlreadyExists(m),
        ) => Ok(m),
        other => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "job_retrain.html")]
struct RetrainPage {
    header: Header,
    run_id: String,
    run_url: String,
    run_name: String,
    job_url: String,
    job_short_id: String,
    command: String,
    form: OverridesForm,
    error: Option<String>,
}

async fn render_retrain(
    state: &AppState,
    user: &SessionUser,
    run_id: &str,
    posted: Option<&Posted>,
    error: Option<String>,
) -> Result<Response, HtmlError> {
    user.require_writer()?;
    let id = tracking::parse_run_id(run_id)?;
    let record = tracking::get_run(&state.db, id).await?;
    let job = cairn_db::jobs::by_run(&state.db.pool, id).await?.ok_or_else(|| {
        HtmlError::page(
            StatusCode::NOT_FOUND,
            format!("Run {} was not produced by a job, so there is nothing to retrain.", id.simple()),
        )
    })?;
    let page = RetrainPage {
        header: Header::from(user),
        run_id: id.simple().to_string(),
        run_url: links::run(&id),
        run_name: if record.run.name.is_empty() { id.simple().to_string() } else { record.run.name.clone() },
        job_url: job_url(&job.id),
        job_short_id: job.id.simple().to_string()[..8].to_owned(),
        command: job.spec.0.command.join(" "),
        form: overrides_form(state, &user.visible(), &job.spec.0, posted, false).await?,
        error,
    };
    let status = if page.error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, render(&page)?).into_response())
}

pub async fn retrain_form(
    State(state): State<AppState>,
    user: SessionUser,
    Path(run_id): Path<String>,
) -> Result<Response, HtmlError> {
    render_retrain(&state, &user, &run_id, None, None).await
}

pub async fn retrain(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(run_id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, HtmlError> {
    let posted = parse_posted(pairs);
    user.check_change(&posted.csrf_token)?;
    let id = tracking::parse_run_id(&run_id)?;
    let overrides = Overrides { params: posted.all_params(), datasets: posted.datasets.clone() };
    match jobs::retrain(&state, &actor, id, overrides).await {
        Ok(job) => Ok((Extension(Audited), Redirect::to(&job_url(&job.id))).into_response()),
        Err(e) => {
            let message = form_refusal(e)?;
            render_retrain(&state, &user, &run_id, Some(&posted), Some(message)).await
        }
    }
}

struct TemplateLine {
    name: String,
    url: String,
    version: i32,
    description: String,
    command: String,
    gpus: u32,
    created_by: String,
    updated: When,
}

#[derive(Template)]
#[template(path = "job_templates.html")]
struct TemplatesPage {
    header: Header,
    templates: Vec<TemplateLine>,
}

pub async fn templates(State(state): State<AppState>, user: SessionUser) -> Result<Response, HtmlError> {
    let rows = cairn_db::job_templates::list_latest(&state.db.pool, user.visible().projects()).await?;
    let templates = rows
        .into_iter()
        .map(|t| TemplateLine {
            url: template_url(&t.name),
            version: t.version,
            description: t.description,
            command: t.spec.0.command.join(" "),
            gpus: t.spec.0.gpus,
            created_by: t.created_by.unwrap_or_default(),
            updated: when(t.created_at),
            name: t.name,
        })
        .collect();
    Ok(render(&TemplatesPage { header: Header::from(&user), templates })?.into_response())
}

#[derive(Template)]
#[template(path = "job_template.html")]
struct TemplatePage {
    header: Header,
    can_write: bool,
    name: String,
    url: String,
    version: i32,
    latest: bool,
    versions: Vec<(i32, String, bool)>,
    description: String,
    created_by: String,
    created: When,
    command: String,
    image: Option<String>,
    gpus: String,
    timeout_secs: u64,
    /// The params' defaults and the dataset inputs, as the template has them.
    template_gpus: u32,
    spec_cpu: Option<String>,
    spec_memory: Option<String>,
    params: Vec<(String, String)>,
    datasets: Vec<String>,
    form: OverridesForm,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct TemplateQuery {
    version: Option<String>,
}

fn template_name(raw: &str) -> Result<TemplateName, HtmlError> {
    TemplateName::parse(raw)
        .map_err(|_| HtmlError::page(StatusCode::NOT_FOUND, format!("There is no job template {raw}.")))
}

fn template_version(raw: Option<&str>) -> Result<Option<i32>, HtmlError> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<i32>().ok().filter(|v| *v >= 1).map(Some).ok_or_else(|| {
            HtmlError::page(StatusCode::BAD_REQUEST, format!("{s:?} is not a template version: versions are 1, 2, ..."))
        }),
    }
}

async fn render_template(
    state: &AppState,
    user: &SessionUser,
    name: &str,
    version: Option<i32>,
    posted: Option<&Posted>,
    error: Option<String>,
) -> Result<Response, HtmlError> {
    let name = template_name(name)?;
    let template = job_templates::get(&state.db, &name, version).await?;
    let all = cairn_db::job_templates::versions(&state.db.pool, name.as_str()).await?;
    let latest = all.first().map(|t| t.version) == Some(template.version);
    let url = template_url(&template.name);
    let spec = &template.spec.0;
    let page = TemplatePage {
        header: Header::from(user),
        can_write: user.can_write(),
        versions: all
            .iter()
            .map(|t| {
                (t.version, links::url(&url, &[("version", &t.version.to_string())]), t.version == template.version)
            })
            .collect(),
        version: template.version,
        latest,
        description: template.description.clone(),
        created_by: template.created_by.clone().unwrap_or_default(),
        created: when(template.created_at),
        command: spec.command.join(" "),
        image: spec.image.clone(),
        gpus: posted.map_or_else(|| spec.gpus.to_string(), |p| p.gpus.clone()),
        timeout_secs: spec.timeout_secs,
        template_gpus: spec.gpus,
        spec_cpu: spec.cpu.clone(),
        spec_memory: spec.memory.clone(),
        params: spec.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        datasets: spec.datasets.clone(),
        form: overrides_form(state, &user.visible(), spec, posted, true).await?,
        name: template.name.clone(),
        url,
        error,
    };
    let status = if page.error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, render(&page)?).into_response())
}

pub async fn template_page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(name): Path<String>,
    Query(query): Query<TemplateQuery>,
) -> Result<Response, HtmlError> {
    let version = template_version(query.version.as_deref())?;
    render_template(&state, &user, &name, version, None, None).await
}

pub async fn submit_template(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Query(query): Query<TemplateQuery>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, HtmlError> {
    let posted = parse_posted(pairs);
    user.check_change(&posted.csrf_token)?;
    let version = template_version(query.version.as_deref())?;
    let template = template_name(&name)?;
    let gpus = match posted.gpus.as_str() {
        "" => Ok(None),
        raw => raw.parse::<u32>().map(Some).map_err(|_| format!("GPUs: {raw:?} is not a whole number 0, 1, 2, ...")),
    };
    let result = match gpus {
        Ok(gpus) => {
            let overrides = TemplateOverrides {
                params: posted.all_params(),
                gpus,
                datasets: posted.datasets.clone(),
                ..TemplateOverrides::default()
            };
            job_templates::submit(&state, &actor, &template, version, overrides).await.map_err(form_refusal)
        }
        Err(message) => Err(Ok(message)),
    };
    match result {
        Ok(job) => Ok((Extension(Audited), Redirect::to(&job_url(&job.id))).into_response()),
        Err(refusal) => {
            let message = refusal?;
            render_template(&state, &user, &name, version, Some(&posted), Some(message)).await
        }
    }
}
