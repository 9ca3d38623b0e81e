//! The native API under `/api/v1`: experiments, runs, metrics, accounts and the audit log,
//! in JSON designed for people, the dashboard and the CLI (conventions in
//! [`openapi::ApiDoc`]'s description). Every route but the OpenAPI document is behind
//! [`guard`]; errors are RFC 9457 problem details ([`ApiError`]).
//!
//! Routes are registered through utoipa-axum's [`OpenApiRouter`]: each `routes!` entry adds
//! a handler to the router and its `#[utoipa::path]` description to the document, so the
//! document at `/api/v1/openapi.json` cannot drift from the router.

mod audit_log;
pub mod datasets;
mod deployments;
mod error;
mod experiments;
mod job_templates;
mod jobs;
mod json;
mod lineage;
mod metrics;
mod models;
mod openapi;
mod projects;
mod provenance;
mod query;
mod run_views;
mod runs;
mod tokens;
mod users;
mod views;
mod who_trained;

pub use error::ApiError;
pub use json::ApiJson;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let (guarded, _) = routes().split_for_parts();
    guarded
        .route_layer(from_fn_with_state(state.clone(), guard))
        .route("/openapi.json", get(openapi::document))
        .fallback(error::not_found)
}

/// Every guarded route with its description. Paths here are relative to `/api/v1`.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(users::me))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::update))
        .routes(routes!(audit_log::list))
        .routes(routes!(audit_log::export))
        .routes(routes!(experiments::list, experiments::create))
        .routes(routes!(experiments::get, experiments::update, experiments::delete))
        .routes(routes!(experiments::restore))
        .routes(routes!(runs::list))
        .routes(routes!(runs::create))
        .routes(routes!(runs::get, runs::update, runs::delete))
        .routes(routes!(runs::restore))
        .routes(routes!(runs::log))
        .routes(routes!(runs::set_environment))
        .routes(routes!(metrics::history))
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::logs))
        .routes(routes!(jobs::retrain))
        .routes(routes!(job_templates::save, job_templates::list))
        .routes(routes!(job_templates::get))
        .routes(routes!(job_templates::submit))
        .routes(routes!(job_templates::usage))
        .routes(routes!(datasets::list))
        .routes(routes!(datasets::get))
        .routes(routes!(datasets::create_version))
        .routes(routes!(datasets::version))
        .route("/datasets/{name}/versions/{version}/files/{*path}", axum::routing::get(datasets::file))
        .routes(routes!(datasets::diff))
        .routes(routes!(datasets::missing))
        .routes(routes!(datasets::upload))
        .routes(routes!(datasets::link_run, datasets::run_datasets))
        .routes(routes!(models::list))
        .routes(routes!(models::get, models::update))
        .routes(routes!(models::versions))
        .routes(routes!(models::version, models::update_version))
        .routes(routes!(models::set_alias, models::delete_alias))
        .routes(routes!(deployments::create, deployments::list))
        .routes(routes!(deployments::get, deployments::update, deployments::delete))
        .routes(routes!(deployments::rollback))
        .routes(routes!(deployments::revisions))
        .routes(routes!(deployments::logs))
        .routes(routes!(lineage::graph))
        .routes(routes!(provenance::model_version))
        .routes(routes!(who_trained::list))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::update))
        .routes(routes!(projects::members))
        .routes(routes!(projects::set_member, projects::remove_member))
        .routes(routes!(projects::service_accounts, projects::create_service_account))
        .routes(routes!(projects::create_service_token))
        .routes(routes!(projects::revoke_service_token))
}

/// The OpenAPI document of `/api/v1`, built from the same routes as [`router`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::with_prefix(routes().into_openapi())
}

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::access::guard(&state, request, next, |denial| ApiError::from(denial).into_response()).await
}
