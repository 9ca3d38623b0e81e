//! The dashboard: server-rendered pages (askama templates from `web/templates`) that work
//! without JavaScript. Pages need a session; forms carry the session's CSRF token.

mod admin_users;
mod artifact_preview;
mod artifacts;
mod audit;
mod compare;
mod compare_plots;
mod datasets;
mod deployments;
mod display;
mod error;
mod experiments;
mod job_forms;
mod job_page;
mod jobs;
pub(crate) mod links;
mod login;
mod models;
mod projects;
mod provenance;
mod run_forms;
mod run_page;
mod runs_table;
mod series;
mod session_user;
mod static_files;
mod tokens;

pub use error::HtmlError;
pub use session_user::SessionUser;

use askama::Template;
use axum::Router;
use axum::response::Html;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    pages()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), session_user::guard))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/static/{*file}", get(static_files::serve))
        .fallback(error::not_found)
}

/// Every page and form that needs a session (and the route table's permission).
fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(experiments::page))
        .route("/experiments", post(experiments::create))
        .route("/experiments/{id}", get(runs_table::page))
        .route("/experiments/{id}/rename", post(experiments::rename))
        .route("/experiments/{id}/delete", post(experiments::delete))
        .route("/experiments/{id}/restore", post(experiments::restore))
        .route("/runs/{run_id}", get(run_page::page))
        .route("/runs/{run_id}/delete", post(run_forms::delete))
        .route("/runs/{run_id}/restore", post(run_forms::restore))
        .route("/runs/{run_id}/tags", post(run_forms::save_tag))
        .route("/runs/{run_id}/tags/delete", post(run_forms::delete_tag))
        .route("/runs/{run_id}/description", post(run_forms::save_description))
        .route("/runs/{run_id}/metrics/{*key}", get(series::run_series))
        .route("/runs/{run_id}/artifacts", get(artifacts::root))
        .route("/runs/{run_id}/artifacts/{*path}", get(artifacts::page))
        .route("/runs/{run_id}/files/{*path}", get(artifacts::file))
        .route("/compare", get(compare::page))
        .route("/compare/metrics/{*key}", get(series::compare_series))
        .route("/models", get(models::list))
        .route("/models/{name}", get(models::page))
        .route("/models/{name}/description", post(models::save_description))
        .route("/models/{name}/aliases", post(models::set_alias))
        .route("/models/{name}/aliases/delete", post(models::delete_alias))
        .route("/models/{name}/versions/{version}", get(models::version_page))
        .route("/models/{name}/versions/{version}/provenance", get(provenance::page))
        .route("/datasets", get(datasets::list))
        .route("/datasets/{name}", get(datasets::page))
        .route("/datasets/{name}/diff", get(datasets::diff))
        .route("/deployments", get(deployments::list).post(deployments::create))
        .route("/deployments/{name}", get(deployments::page))
        .route("/deployments/{name}/rollback", post(deployments::rollback))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(job_page::page))
        .route("/jobs/{id}/cancel", post(job_page::cancel))
        .route("/jobs/{id}/retry", post(job_page::retry))
        .route("/jobs/{id}/template", post(job_page::save_template))
        .route("/runs/{run_id}/retrain", get(job_forms::retrain_form).post(job_forms::retrain))
        .route("/job-templates", get(job_forms::templates))
        .route("/job-templates/{name}", get(job_forms::template_page).post(job_forms::submit_template))
        .route("/audit", get(audit::page))
        .route("/who-trained", get(audit::who_trained))
        .route("/settings/tokens", get(tokens::page).post(tokens::create))
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/projects/{project}", get(projects::page))
        .route("/projects/{project}/settings", post(projects::save_settings))
        .route("/projects/{project}/members", post(projects::set_member))
        .route("/projects/{project}/members/{username}/remove", post(projects::remove_member))
        .route("/projects/{project}/service-accounts", post(projects::create_service_account))
        .route("/projects/{project}/service-accounts/{name}/tokens", post(projects::create_token))
        .route("/projects/{project}/service-accounts/{name}/tokens/{id}/revoke", post(projects::revoke_token))
        .route("/admin/users", get(admin_users::page).post(admin_users::create))
        .route("/admin/users/{username}", post(admin_users::change))
}

/// What every page's header needs.
pub struct Header {
    pub username: String,
    pub role: String,
    pub csrf_token: String,
}

impl From<&SessionUser> for Header {
    fn from(user: &SessionUser) -> Self {
        Header {
            username: user.principal.username.clone(),
            role: user.principal.role.to_string(),
            csrf_token: user.csrf_token.clone(),
        }
    }
}

/// Renders a template; a rendering failure becomes the generic error page.
pub fn render(template: &impl Template) -> Result<Html<String>, HtmlError> {
    template.render().map(Html).map_err(HtmlError::internal)
}

/// The URL users reach this server at.
pub fn public_url(state: &AppState) -> String {
    state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.listen))
        .trim_end_matches('/')
        .to_owned()
}

/// The form behind every delete and restore button: the session's CSRF token and where to
/// go back to.
#[derive(serde::Deserialize)]
pub struct LifecycleForm {
    pub csrf_token: String,
    pub next: Option<String>,
}
