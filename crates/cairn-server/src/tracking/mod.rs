//! Tracking rules: experiments, runs, params, metrics, tags, inputs and logged models.
//! Used by the MLflow-compatible API and the native API; each function validates, runs
//! one transaction, and records the audit events this domain promises (creation,
//! deletion, restore and rename of experiments and runs, with the actor).

mod environment;
mod experiments;
mod logged_models;
mod run_artifacts;
mod runs;
mod series;

pub use environment::*;
pub use experiments::*;
pub use logged_models::*;
pub use run_artifacts::*;
pub use runs::*;
pub use series::*;

use cairn_core::ValidationError;
use cairn_db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Db(DbError),
}

impl From<ValidationError> for TrackingError {
    fn from(e: ValidationError) -> Self {
        TrackingError::Invalid(e.0)
    }
}

impl From<DbError> for TrackingError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(msg) => TrackingError::AlreadyExists(msg),
            other => TrackingError::Db(other),
        }
    }
}

impl From<sqlx::Error> for TrackingError {
    fn from(e: sqlx::Error) -> Self {
        TrackingError::Db(e.into())
    }
}

pub type Result<T, E = TrackingError> = std::result::Result<T, E>;
