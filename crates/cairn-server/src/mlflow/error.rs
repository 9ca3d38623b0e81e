//! MLflow's error shape: `{"error_code": "...", "message": "..."}` with the HTTP status
//! MLflow uses for each code. A client error is never answered with a 5xx, because the
//! client retries those for minutes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::access::Denial;
use crate::auth::AuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameterValue,
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    BadRequest,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    EndpointNotFound,
    InternalError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidParameterValue | ErrorCode::ResourceAlreadyExists | ErrorCode::BadRequest => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => StatusCode::NOT_FOUND,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Debug)]
pub struct MlflowError {
    pub code: ErrorCode,
    pub message: String,
}

impl MlflowError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MlflowError { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }

    /// Logs the cause once; the caller gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error in the MLflow API");
        Self::new(ErrorCode::InternalError, "internal server error; the details are in the server log")
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code.as_str(), "message": self.message});
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if self.code == ErrorCode::Unauthenticated {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"cairn\", Basic realm=\"cairn\""),
            );
        }
        response
    }
}

impl From<Denial> for MlflowError {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::Auth(AuthError::Internal(e)) => MlflowError::internal(e),
            Denial::Auth(e @ AuthError::RateLimited(_)) => {
                MlflowError::new(ErrorCode::ResourceExhausted, e.to_string())
            }
            Denial::Auth(e @ AuthError::Malformed(_)) => MlflowError::new(ErrorCode::BadRequest, e.to_string()),
            Denial::Auth(e) => MlflowError::new(ErrorCode::Unauthenticated, e.to_string()),
            Denial::NotFound(msg) => MlflowError::not_found(msg),
            Denial::MethodNotAllowed => {
                MlflowError::new(ErrorCode::EndpointNotFound, "this method is not allowed here")
            }
            Denial::BodyTooLarge => MlflowError::invalid(Denial::BodyTooLarge.to_string()),
            Denial::NoPolicy(route) => MlflowError::internal(format!("no access policy for route {route}")),
            other => MlflowError::new(ErrorCode::PermissionDenied, other.to_string()),
        }
    }
}

impl From<crate::tracking::TrackingError> for MlflowError {
    fn from(e: crate::tracking::TrackingError) -> Self {
        use crate::tracking::TrackingError;
        match e {
            TrackingError::Invalid(msg) => MlflowError::invalid(msg),
            TrackingError::NotFound(msg) => MlflowError::not_found(msg),
            TrackingError::AlreadyExists(msg) => MlflowError::already_exists(msg),
            TrackingError::Db(cause) => MlflowError::internal(cause),
        }
    }
}

impl From<cairn_db::DbError> for MlflowError {
    fn from(e: cairn_db::DbError) -> Self {
        MlflowError::internal(e)
    }
}

pub async fn endpoint_not_found(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> MlflowError {
    MlflowError::new(ErrorCode::EndpointNotFound, format!("no MLflow endpoint at {}", uri.path()))
}
