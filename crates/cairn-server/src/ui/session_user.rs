//! The page guard: every page and form needs a live session (otherwise the browser is sent
//! to the login page) and passes the route table's permission check
//! ([`crate::access::policy`]); handlers then take the [`SessionUser`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use super::HtmlError;
use crate::access::{Denial, ProjectAccess};
use crate::audit::ActorSlot;
use crate::auth::{Credential, Principal, session};
use crate::state::AppState;

/// Admits a page request: a session, then the permission check; a refusal is a page that
/// says why (not found for objects in projects the user cannot read).
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let jar = CookieJar::from_headers(request.headers());
    let next_url = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let principal = match session::current(&state, &jar).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return refused(HtmlError::Login { next: next_url }),
        Err(e) => return HtmlError::from(e).into_response(),
    };
    ActorSlot::fill(request.extensions(), &principal);
    if let Err(denial) = crate::access::authorize_request(&state, &principal, &mut request).await {
        return refused(denial_page(denial));
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn refused(error: HtmlError) -> Response {
    let mut response = error.into_response();
    crate::access::mark_refusal(&mut response);
    response
}

fn denial_page(denial: Denial) -> HtmlError {
    match denial {
        Denial::Auth(e) => HtmlError::internal(e),
        Denial::NotFound(message) => HtmlError::page(StatusCode::NOT_FOUND, capitalized(&message)),
        Denial::NoPolicy(route) => HtmlError::internal(format!("no access policy for route {route}")),
        Denial::BodyTooLarge => HtmlError::page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
        Denial::MethodNotAllowed => {
            HtmlError::page(StatusCode::METHOD_NOT_ALLOWED, "This page does not take that method.")
        }
        Denial::AdminOnly => HtmlError::page(StatusCode::FORBIDDEN, "This page is for server admins."),
        other => HtmlError::page(StatusCode::FORBIDDEN, capitalized(&other.to_string())),
    }
}

fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

pub struct SessionUser {
    pub principal: Principal,
    pub csrf_token: String,
    /// The user's projects and roles (absent only on pages outside the guard).
    pub access: Option<ProjectAccess>,
}

impl SessionUser {
    /// The projects this user can read, for filtering lists.
    pub fn visible(&self) -> crate::visibility::Visible {
        crate::visibility::Visible::of(self.access.as_ref())
    }

    /// Whether this user may change data (members and admins); pages show their forms only then.
    pub fn can_write(&self) -> bool {
        self.principal.can_write()
    }

    /// Refuses a change by a viewer, as the API does.
    pub fn require_writer(&self) -> Result<(), HtmlError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(HtmlError::page(
                axum::http::StatusCode::FORBIDDEN,
                format!("Your role ({}) can read but not change data.", self.principal.role),
            ))
        }
    }

    /// [`Self::check_csrf`] then [`Self::require_writer`]: what every form that changes data checks.
    pub fn check_change(&self, submitted_csrf: &str) -> Result<(), HtmlError> {
        self.check_csrf(submitted_csrf)?;
        self.require_writer()
    }

    /// Checks a form's CSRF field against this session's token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), HtmlError> {
        if session::csrf_matches(submitted, &self.csrf_token) {
            Ok(())
        } else {
            Err(HtmlError::page(
                axum::http::StatusCode::FORBIDDEN,
                "This form has expired or did not come from Cairn (CSRF check failed). Go back, reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = HtmlError;

    /// The session principal the guard admitted; outside the guard (logout), the session's.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let principal = match parts.extensions.get::<Principal>() {
            Some(principal) => principal.clone(),
            None => {
                let jar = CookieJar::from_headers(&parts.headers);
                let principal = session::current(state, &jar).await?.ok_or(HtmlError::Login { next })?;
                ActorSlot::fill(&parts.extensions, &principal);
                principal
            }
        };
        let Credential::Session { csrf_token } = &principal.credential else {
            return Err(HtmlError::internal("session principal without session credential"));
        };
        let csrf_token = csrf_token.clone();
        let access = parts.extensions.get::<ProjectAccess>().cloned();
        Ok(SessionUser { principal, csrf_token, access })
    }
}
