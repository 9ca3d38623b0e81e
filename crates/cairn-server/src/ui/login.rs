//! The login form, login and logout.

use askama::Template;
use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

use super::{HtmlError, SessionUser, render};
use crate::audit::{Actor, AuditNote};
use crate::auth::{self, AuthError, session};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only same-site paths are followed after login (no open redirect).
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

pub async fn form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Result<Response, HtmlError> {
    if session::current(&state, &jar).await?.is_some() {
        return Ok(Redirect::to(safe_next(q.next.as_deref())).into_response());
    }
    let (jar, csrf) = session::login_csrf(&state, jar);
    let page = LoginPage { csrf_token: &csrf, next: safe_next(q.next.as_deref()), username: "", error: None };
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, HtmlError> {
    let expected = jar.get(session::LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    let next = safe_next(form.next.as_deref()).to_owned();
    let note = |outcome: &str| AuditNote {
        action: "session.login".into(),
        target: format!("user:{}", form.username),
        actor_name: Some(form.username.clone()),
        details: json!({ "result": outcome }),
    };
    if !session::csrf_matches(&form.csrf_token, &expected) {
        let (jar, csrf) = session::login_csrf(&state, jar);
        let page = LoginPage {
            csrf_token: &csrf,
            next: &next,
            username: &form.username,
            error: Some("Your login form expired. Please try again."),
        };
        return Ok((StatusCode::FORBIDDEN, jar, Extension(note("csrf_rejected")), render(&page)?).into_response());
    }
    match auth::authenticate_password(&state, &form.username, &form.password, &peer.ip().to_string()).await {
        Ok(principal) => {
            let jar = session::start(&state, jar, principal.user_id).await?;
            Ok((jar, Extension(note("success")), Redirect::to(&next)).into_response())
        }
        Err(AuthError::Internal(e)) => Err(HtmlError::internal(e)),
        Err(e) => {
            let status = match e {
                AuthError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let message = e.to_string();
            let (jar, csrf) = session::login_csrf(&state, jar);
            let page = LoginPage { csrf_token: &csrf, next: &next, username: &form.username, error: Some(&message) };
            // A failed login is a failed authentication, as for API credentials.
            let failed = AuditNote {
                action: "auth.failed".into(),
                details: json!({ "reason": message, "via": "dashboard login" }),
                ..note("failed")
            };
            Ok((status, jar, Extension(failed), render(&page)?).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf_token: String,
}

pub async fn logout(
    State(state): State<AppState>,
    user: SessionUser,
    actor: Actor,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response, HtmlError> {
    user.check_csrf(&form.csrf_token)?;
    let jar = session::end(&state, jar).await?;
    let note = AuditNote {
        action: "session.logout".into(),
        target: format!("user:{}", actor.name),
        actor_name: None,
        details: json!({}),
    };
    Ok((jar, Extension(note), Redirect::to("/login")).into_response())
}
