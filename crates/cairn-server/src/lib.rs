//! Cairn's HTTP server: the native API (`/api/v1`), the dashboard, authentication, the
//! audit middleware and the operational endpoints. `Application::build` is the one way
//! to assemble the server, used by `cairn serve` and by the tests alike.

pub mod access;
pub mod accounts;
pub mod api;
pub mod audit;
pub mod audit_trail;
pub mod auth;
pub mod config;
pub mod datasets;
pub mod deployments;
pub mod job_templates;
pub mod job_usage;
pub mod jobs;
pub mod lineage;
pub mod mlflow;
pub mod ops;
pub mod projects;
pub mod provenance;
pub mod registry;
pub mod service_error;
pub mod startup;
pub mod state;
pub mod tracking;
pub mod ui;
pub mod visibility;

pub use config::{KubernetesConfig, Secret, ServerConfig, ServingConfig, Toleration};
pub use startup::Application;
pub use state::AppState;
