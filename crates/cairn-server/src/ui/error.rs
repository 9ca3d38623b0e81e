//! Errors for the dashboard: a readable page, or a redirect to the login page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

#[derive(Debug)]
pub enum HtmlError {
    /// Not logged in: go to the login page, then come back.
    Login {
        next: String,
    },
    Page {
        status: StatusCode,
        message: String,
    },
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl HtmlError {
    pub fn page(status: StatusCode, message: impl Into<String>) -> Self {
        HtmlError::Page { status, message: message.into() }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error while rendering a page");
        Self::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on the server. The details are in the server log.",
        )
    }
}

impl From<cairn_db::DbError> for HtmlError {
    fn from(e: cairn_db::DbError) -> Self {
        HtmlError::internal(e)
    }
}

/// A service refusal becomes a page that says why; database failures stay in the log.
impl From<crate::tracking::TrackingError> for HtmlError {
    fn from(e: crate::tracking::TrackingError) -> Self {
        use crate::tracking::TrackingError;
        match e {
            TrackingError::NotFound(message) => HtmlError::page(StatusCode::NOT_FOUND, message),
            TrackingError::Invalid(message) => HtmlError::page(StatusCode::BAD_REQUEST, message),
            TrackingError::AlreadyExists(message) => HtmlError::page(StatusCode::CONFLICT, message),
            TrackingError::Db(e) => HtmlError::internal(e),
        }
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        match self {
            HtmlError::Login { next } => {
                let target = format!(
                    "/login?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Redirect::to(&target).into_response()
            }
            HtmlError::Page { status, message } => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    title: status.canonical_reason().unwrap_or("Error"),
                    message: &message,
                };
                match page.render() {
                    Ok(html) => (status, Html(html)).into_response(),
                    Err(_) => (status, message).into_response(),
                }
            }
        }
    }
}

pub async fn not_found(uri: axum::http::Uri) -> HtmlError {
    HtmlError::page(StatusCode::NOT_FOUND, format!("There is no page at {}.", uri.path()))
}
