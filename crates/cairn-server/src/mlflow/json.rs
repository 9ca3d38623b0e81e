//! The JSON body extractor for MLflow endpoints: MLflow requires
//! `Content-Type: application/json` and answers bad bodies with INVALID_PARAMETER_VALUE.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::{ErrorCode, MlflowError};

pub struct MlflowJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MlflowJson<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(MlflowJson(value)),
            Err(rejection) => Err(rejection_error(rejection)),
        }
    }
}

fn rejection_error(rejection: JsonRejection) -> MlflowError {
    match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            MlflowError::invalid("Content-Type must be one of ['application/json']")
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            MlflowError::new(ErrorCode::ResourceExhausted, "request body is too large")
        }
        _ => MlflowError::invalid(format!("invalid request body: {}", rejection.body_text())),
    }
}
