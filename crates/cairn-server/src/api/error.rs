//! Native API errors as RFC 9457 problem details (`application/problem+json`). Internal
//! errors are logged once with their cause and answered with a generic body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::accounts::AccountError;
use crate::auth::AuthError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Extra headers: WWW-Authenticate on 401, Retry-After on 429.
    pub challenge: bool,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError { status, detail: detail.into(), challenge: false, retry_after: None }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error; the details are in the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = json!({
            "type": "about:blank",
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cairn\", Basic realm=\"cairn\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Internal(cause) => ApiError::internal(cause),
            AuthError::RateLimited(secs) => {
                ApiError { retry_after: Some(secs), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()) }
            }
            AuthError::Malformed(_) => ApiError::bad_request(e.to_string()),
            other => ApiError { challenge: true, ..ApiError::new(StatusCode::UNAUTHORIZED, other.to_string()) },
        }
    }
}

impl From<crate::access::Denial> for ApiError {
    fn from(denial: crate::access::Denial) -> Self {
        use crate::access::Denial;
        match denial {
            Denial::Auth(e) => e.into(),
            Denial::NotFound(msg) => ApiError::not_found(msg),
            Denial::MethodNotAllowed => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this method is not allowed here")
            }
            Denial::BodyTooLarge => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Denial::NoPolicy(route) => ApiError::internal(format!("no access policy for route {route}")),
            other => ApiError::forbidden(other.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(v) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.0),
            AccountError::NotFound(msg) => ApiError::not_found(msg),
            AccountError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, msg),
            AccountError::Forbidden(msg) => ApiError::forbidden(msg),
            AccountError::Db(cause) => ApiError::internal(cause),
            AccountError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl From<cairn_db::DbError> for ApiError {
    fn from(e: cairn_db::DbError) -> Self {
        ApiError::internal(e)
    }
}

/// The full path (a nested router sees only the part after `/api/v1`).
pub async fn not_found(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> ApiError {
    ApiError::not_found(format!("no API route at {}", uri.path()))
}

impl From<crate::tracking::TrackingError> for ApiError {
    fn from(e: crate::tracking::TrackingError) -> Self {
        use crate::tracking::TrackingError;
        match e {
            TrackingError::Invalid(msg) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg),
            TrackingError::NotFound(msg) => ApiError::not_found(msg),
            TrackingError::AlreadyExists(msg) => ApiError::new(StatusCode::CONFLICT, msg),
            TrackingError::Db(cause) => ApiError::internal(cause),
        }
    }
}

impl From<crate::service_error::ServiceError> for ApiError {
    fn from(e: crate::service_error::ServiceError) -> Self {
        use crate::service_error::ServiceError;
        use cairn_storage::StorageError;
        match e {
            ServiceError::Tracking(e) => e.into(),
            ServiceError::Storage(e) => match e {
                StorageError::DigestMismatch { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                StorageError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
                StorageError::Body(_) => ApiError::bad_request(e.to_string()),
                other => ApiError::internal(other),
            },
        }
    }
}
