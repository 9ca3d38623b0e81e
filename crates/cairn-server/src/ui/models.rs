//! The model registry pages: the models list, a model's page (versions with their source run
//! and its latest metrics, aliases, stages; for members the forms to set or remove an alias
//! and edit the description) and a version's page. Forms check the session's CSRF token and
//! the role, call the registry service and return to the model's page; a refusal (a reserved
//! alias, an unknown version) shows on that page.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::display::{When, metric};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::audit::{Actor, Audited};
use crate::registry::{self, ModelVersion, RegisteredModel};
use crate::state::AppState;
use crate::tracking::TrackingError;
use crate::visibility::Visible;

const PAGE_SIZE: i64 = 50;
/// Versions shown on a model's page (newest first); older ones are a page further.
const VERSIONS_SHOWN: i64 = 100;

/// The path of a model's page.
fn model_url(name: &str) -> String {
    format!("/models/{}", links::encoded_path(name))
}

fn version_url(name: &str, version: i64) -> String {
    format!("{}/versions/{version}", model_url(name))
}

struct ModelLine {
    name: String,
    url: String,
    /// The name of its project.
    project: String,
    description: String,
    latest_version: Option<i64>,
    aliases: Vec<(String, i64)>,
    updated: Option<When>,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    header: Header,
    q: String,
    models: Vec<ModelLine>,
    next_url: Option<String>,
    first_url: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: SessionUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let q = query.q.trim();
    let pattern = (!q.is_empty()).then(|| {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    let visible = user.visible();
    let (models, next) =
        registry::list_models(&state.db, visible.projects(), pattern.as_deref(), after, PAGE_SIZE).await?;
    let models = models
        .into_iter()
        .map(|m: RegisteredModel| ModelLine {
            url: model_url(&m.row.name),
            project: visible.project_name(m.row.project_id).to_owned(),
            latest_version: m.latest_versions.iter().map(|v| v.row.version).max(),
            description: m.row.description.unwrap_or_default(),
            aliases: m.aliases,
            updated: When::from_millis(m.row.last_updated_time),
            name: m.row.name,
        })
        .collect();
    let page = ModelsPage {
        header: Header::from(&user),
        q: q.to_owned(),
        models,
        next_url: next.map(|n| links::url("/models", &[("q", q), ("after", &n)])),
        first_url: after.map(|_| links::url("/models", &[("q", q)])),
    };
    Ok(render(&page)?.into_response())
}

struct Metric {
    key: String,
    value: String,
}

struct VersionLine {
    version: i64,
    url: String,
    stage: String,
    status: String,
    aliases: Vec<String>,
    /// The source run's page, and its id as shown (None also when it is hidden).
    run: Option<(String, String)>,
    /// The source run is in a project the user cannot read: neither it nor its metrics
    /// are shown.
    run_hidden: bool,
    metrics: Vec<Metric>,
    source: String,
    storage_location: String,
    description: String,
    created_by: String,
    created: Option<When>,
    tags: Vec<(String, String)>,
}

fn version_line(v: ModelVersion, metrics: &mut Vec<(i64, String, f64)>, visible: &Visible) -> VersionLine {
    let id = v.row.id;
    let run_hidden = v.row.run_project_id.is_some_and(|p| !visible.can_read(p));
    let mut own_metrics: Vec<Metric> = metrics
        .extract_if(.., |(owner, _, _)| *owner == id)
        .map(|(_, key, value)| Metric { key, value: metric(value) })
        .collect();
    if run_hidden {
        own_metrics.clear();
    }
    VersionLine {
        run_hidden,
        version: v.row.version,
        url: version_url(&v.row.model_name, v.row.version),
        stage: v.row.current_stage,
        status: v.row.status,
        aliases: v.aliases,
        run: v.row.run_uuid.filter(|_| !run_hidden).map(|run| (links::run(&run), run.simple().to_string())),
        metrics: own_metrics,
        source: v.row.source,
        storage_location: v.row.storage_location,
        description: v.row.description.unwrap_or_default(),
        created_by: v.row.user_id,
        created: When::from_millis(v.row.creation_time),
        tags: v.tags.into_iter().filter(|t| !t.key.starts_with("mlflow.")).map(|t| (t.key, t.value)).collect(),
    }
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    header: Header,
    can_write: bool,
    name: String,
    url: String,
    description: String,
    created_by: String,
    created: Option<When>,
    updated: Option<When>,
    tags: Vec<(String, String)>,
    aliases: Vec<(String, i64)>,
    versions: Vec<VersionLine>,
    more_versions: bool,
    error: Option<String>,
    /// What the alias form held when it was refused.
    alias_input: String,
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(name): Path<String>,
) -> Result<Response, HtmlError> {
    render_model(&state, &user, &name, None, String::new()).await
}

async fn render_model(
    state: &AppState,
    user: &SessionUser,
    name: &str,
    error: Option<(StatusCode, String)>,
    alias_input: String,
) -> Result<Response, HtmlError> {
    let visible = user.visible();
    let model = registry::get_model(&state.db, name).await?;
    let (versions, next) = registry::list_versions(&state.db, name, None, VERSIONS_SHOWN).await?;
    let mut metrics = registry::source_run_metrics(&state.db, &versions).await?;
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = ModelPage {
        header: Header::from(user),
        can_write: user.can_write(),
        url: model_url(&model.row.name),
        description: model.row.description.unwrap_or_default(),
        created_by: model.row.created_by.unwrap_or_default(),
        created: When::from_millis(model.row.creation_time),
        updated: When::from_millis(model.row.last_updated_time),
        tags: model.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        aliases: model.aliases,
        versions: versions.into_iter().map(|v| version_line(v, &mut metrics, &visible)).collect(),
        more_versions: next.is_some(),
        name: model.row.name,
        error,
        alias_input,
    };
    Ok((status, render(&page)?).into_response())
}

#[derive(Template)]
#[template(path = "model_version.html")]
struct VersionPage {
    header: Header,
    model: String,
    model_url: String,
    v: VersionLine,
    /// Retrain the job that produced the source run, for members, when a job did.
    retrain_url: Option<String>,
    /// Members see the Deploy form.
    can_write: bool,
    /// A suggested deployment name.
    deploy_name: String,
    /// The model's deployments: name, page, version served.
    deployments: Vec<(String, String, String)>,
}

/// A version number from a page's path; anything else names no version.
pub(super) fn version_number(name: &str, raw: &str) -> Result<i64, HtmlError> {
    cairn_core::registry::parse_version(raw)
        .map_err(|_| HtmlError::page(StatusCode::NOT_FOUND, format!("Model {name} has no version {raw}.")))
}

pub async fn version_page(
    State(state): State<AppState>,
    user: SessionUser,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, HtmlError> {
    let number = version_number(&name, &version)?;
    let found = registry::get_version(&state.db, &name, number).await?;
    let visible = user.visible();
    let mut metrics = registry::source_run_metrics(&state.db, std::slice::from_ref(&found)).await?;
    let run_readable = found.row.run_project_id.is_none_or(|p| visible.can_read(p));
    let retrain_url = match found.row.run_uuid {
        Some(run)
            if run_readable && user.can_write() && cairn_db::jobs::by_run(&state.db.pool, run).await?.is_some() =>
        {
            Some(format!("{}/retrain", links::run(&run)))
        }
        _ => None,
    };
    let deployed = cairn_db::deployments::of_model(&state.db.pool, found.row.model_id).await?;
    let page = VersionPage {
        retrain_url,
        can_write: user.can_write(),
        deploy_name: suggested_deployment_name(&name),
        deployments: deployed
            .into_iter()
            .filter(|d| visible.can_read(d.project_id))
            .map(|d| {
                let version = d.version.map_or_else(|| "—".into(), |v| v.to_string());
                (d.name.clone(), super::deployments::deployment_url(&d.name), version)
            })
            .collect(),
        header: Header::from(&user),
        model_url: model_url(&name),
        model: name,
        v: version_line(found, &mut metrics, &visible),
    };
    Ok(render(&page)?.into_response())
}

/// A deployment name made from a model name: lowercase letters, digits and '-'.
fn suggested_deployment_name(model: &str) -> String {
    let mut name: String = model
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .skip_while(|c| !c.is_ascii_lowercase())
        .take(crate::deployments::MAX_NAME_LEN)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() { "model".into() } else { name }
}

/// Shows a service's refusal on the model's page; database failures are errors.
async fn refused(
    state: &AppState,
    user: &SessionUser,
    name: &str,
    e: TrackingError,
    alias_input: String,
) -> Result<Response, HtmlError> {
    let status = match &e {
        TrackingError::Invalid(_) | TrackingError::AlreadyExists(_) => StatusCode::UNPROCESSABLE_ENTITY,
        TrackingError::NotFound(_) => StatusCode::NOT_FOUND,
        TrackingError::Db(_) => return Err(e.into()),
    };
    render_model(state, user, name, Some((status, e.to_string())), alias_input).await
}

fn back_to(name: &str, section: &str) -> Response {
    (Extension(Audited), Redirect::to(&format!("{}#{section}", model_url(name)))).into_response()
}

#[derive(Deserialize)]
pub struct AliasForm {
    csrf_token: String,
    alias: String,
    #[serde(default)]
    version: String,
}

pub async fn set_alias(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<AliasForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    let alias = form.alias.trim();
    let result = match cairn_core::registry::parse_version(&form.version) {
        Ok(version) => registry::set_alias(&state.db, &actor, &name, alias, version).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => Ok(back_to(&name, "aliases")),
        Err(e) => refused(&state, &user, &name, e, alias.to_owned()).await,
    }
}

pub async fn delete_alias(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<AliasForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    match registry::delete_alias(&state.db, &actor, &name, &form.alias).await {
        Ok(()) => Ok(back_to(&name, "aliases")),
        Err(e) => refused(&state, &user, &name, e, String::new()).await,
    }
}

#[derive(Deserialize)]
pub struct DescriptionForm {
    csrf_token: String,
    #[serde(default)]
    description: String,
}

pub async fn save_description(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    Path(name): Path<String>,
    Form(form): Form<DescriptionForm>,
) -> Result<Response, HtmlError> {
    user.check_change(&form.csrf_token)?;
    // Browsers send CRLF line ends; store what was typed.
    let text = form.description.replace("\r\n", "\n");
    match registry::update_model_description(&state.db, &actor, &name, text.trim_end()).await {
        Ok(_) => Ok(back_to(&name, "description")),
        Err(e) => refused(&state, &user, &name, e, String::new()).await,
    }
}
