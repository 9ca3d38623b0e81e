//! Black-box tests of the running application over HTTP.

mod api_errors;
mod artifacts;
mod audit;
mod auth;
mod dashboard;
mod dashboard_artifacts;
mod dashboard_browser;
mod dashboard_datasets;
mod dashboard_pages;
mod datasets;
mod deployments;
mod job_templates;
mod jobs;
mod jobs_ui;
mod kube_jobs;
mod lineage;
mod mlflow_tracking;
mod native_api;
mod ops;
mod permissions;
mod project_visibility;
mod projects;
mod registry;
