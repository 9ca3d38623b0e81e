//! Black-box tests of the running application over HTTP.

mod api_errors;
mod audit;
mod auth;
mod dashboard;
mod mlflow_tracking;
mod ops;
