//! The dashboard: server-rendered pages (askama templates from `web/templates`) that work
//! without JavaScript. Pages need a session; forms carry the session's CSRF token.

mod error;
mod login;
mod session_user;
mod static_files;
mod tokens;

pub use error::HtmlError;
pub use session_user::SessionUser;

use askama::Template;
use axum::Router;
use axum::response::Html;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/settings/tokens", get(tokens::page).post(tokens::create))
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/static/{*file}", get(static_files::serve))
        .fallback(error::not_found)
}

/// What every page's header needs.
pub struct Header {
    pub username: String,
    pub role: String,
    pub csrf_token: String,
}

impl From<&SessionUser> for Header {
    fn from(user: &SessionUser) -> Self {
        Header {
            username: user.principal.username.clone(),
            role: user.principal.role.to_string(),
            csrf_token: user.csrf_token.clone(),
        }
    }
}

/// Renders a template; a rendering failure becomes the generic error page.
pub fn render(template: &impl Template) -> Result<Html<String>, HtmlError> {
    template.render().map(Html).map_err(HtmlError::internal)
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    header: Header,
    tracking_uri: String,
}

async fn home(
    user: SessionUser,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Html<String>, HtmlError> {
    render(&HomePage { header: Header::from(&user), tracking_uri: public_url(&state) })
}

/// The URL users reach this server at.
pub fn public_url(state: &AppState) -> String {
    state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.listen))
        .trim_end_matches('/')
        .to_owned()
}
