//! The page guard: a dashboard page or form handler takes a [`SessionUser`], which exists
//! only for a live session (otherwise the browser is sent to the login page).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::HtmlError;
use crate::audit::ActorSlot;
use crate::auth::{Credential, Principal, session};
use crate::state::AppState;

pub struct SessionUser {
    pub principal: Principal,
    pub csrf_token: String,
}

impl SessionUser {
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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let principal = session::current(state, &jar).await?.ok_or(HtmlError::Login { next })?;
        let Credential::Session { csrf_token } = &principal.credential else {
            return Err(HtmlError::internal("session principal without session credential"));
        };
        let csrf_token = csrf_token.clone();
        ActorSlot::fill(&parts.extensions, &principal);
        parts.extensions.insert(principal.clone());
        Ok(SessionUser { principal, csrf_token })
    }
}
