//! The error type of the services that use both the database and object storage.

use cairn_storage::StorageError;

use crate::tracking::TrackingError;

/// What can go wrong in the services that also touch object storage (datasets, jobs): the
/// tracking service's kinds (invalid, not found, ...) and storage failures.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Tracking(#[from] TrackingError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<cairn_db::DbError> for ServiceError {
    fn from(e: cairn_db::DbError) -> Self {
        ServiceError::Tracking(e.into())
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        ServiceError::Tracking(e.into())
    }
}

impl From<cairn_core::ValidationError> for ServiceError {
    fn from(e: cairn_core::ValidationError) -> Self {
        ServiceError::Tracking(e.into())
    }
}

pub fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Tracking(TrackingError::Invalid(message.into()))
}
