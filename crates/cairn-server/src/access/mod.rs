//! Authentication and permission for every surface, in one place.
//!
//! Every request must authenticate (Bearer token, Basic, or a dashboard session plus its
//! CSRF header for state-changing requests). What it may then do is decided by the route
//! table in [`policy`] and the caller's role in each object's project ([`projects`]).
//! Each surface renders a [`Denial`] in its own error shape (problem details, MLflow's
//! error JSON, an HTML page).

pub mod policy;
mod projects;
mod run_scope;

pub use projects::{NewObjectProject, ProjectAccess, TargetProject};

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::CookieJar;
use base64::Engine;
use cairn_db::audit::NewEvent;
use serde_json::json;

use crate::audit::{Actor, ActorSlot, Audited};
use crate::auth::session::{self, CSRF_HEADER};
use crate::auth::{self, AuthError, Credential, Principal};
use crate::state::AppState;

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Denial {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("missing or wrong X-CSRF-Token header for a session request")]
    Csrf,
    #[error("{username} can read but not change data here (their role in this project, with this credential)")]
    ReadOnly { username: String },
    #[error("only the project's owners may do this")]
    NotOwner,
    #[error("this job's token may only change its run {} and the runs nested under it", .0.simple())]
    RunScoped(uuid::Uuid),
    #[error("only server admins may do this")]
    AdminOnly,
    /// The object does not exist, or is in a project the caller cannot read: the answer
    /// is the same, so that names in other projects do not leak.
    #[error("{0}")]
    NotFound(String),
    #[error("request body too large")]
    BodyTooLarge,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// A route missing from [`policy::ROUTES`]: refused until someone decides who may call it.
    #[error("no access policy for route {0}")]
    NoPolicy(String),
}

impl Denial {
    pub fn read_only(principal: &Principal) -> Denial {
        Denial::ReadOnly { username: principal.username.clone() }
    }
}

impl From<cairn_db::DbError> for Denial {
    fn from(e: cairn_db::DbError) -> Self {
        Denial::Auth(AuthError::Internal(e))
    }
}

/// Authenticates and authorizes the request; on success the [`Principal`] is in the
/// request's extensions for the handler.
pub async fn admit(state: &AppState, request: &mut Request) -> Result<(), Denial> {
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string());
    let principal = principal_for(state, request.headers(), request.method(), &client_ip).await?;
    ActorSlot::fill(request.extensions(), &principal);
    authorize_request(state, &principal, request).await?;
    request.extensions_mut().insert(principal);
    Ok(())
}

/// Applies the route table to an authenticated request (the dashboard's guard
/// authenticates by session itself, then calls this).
pub async fn authorize_request(state: &AppState, principal: &Principal, request: &mut Request) -> Result<(), Denial> {
    projects::authorize(state, principal, request).await
}

/// The guard of a surface: admits the request, or answers with `refuse` (the surface's
/// error shape). A refusal for bad credentials is audited here as `auth.failed`, reads
/// included (the audit middleware sees only writes), and the response is marked so that
/// the middleware does not record it twice.
pub async fn guard(
    state: &AppState,
    mut request: Request,
    next: Next,
    refuse: impl FnOnce(Denial) -> Response,
) -> Response {
    match admit(state, &mut request).await {
        Ok(()) => next.run(request).await,
        Err(denial) => {
            let recorded = match auth_failure_event(state, &request, &denial) {
                None => false,
                Some(event) => match cairn_db::audit::append(&state.db.pool, event).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "could not write audit event");
                        false
                    }
                },
            };
            let mut response = refuse(denial);
            if recorded {
                response.extensions_mut().insert(Audited);
            }
            mark_refusal(&mut response);
            response
        }
    }
}

/// Marks a response as a refusal by this module (`X-Cairn-Access: denied`), so that
/// operators and the permission-matrix test can tell it from a handler's own answer.
pub fn mark_refusal(response: &mut Response) {
    response.headers_mut().insert("x-cairn-access", axum::http::HeaderValue::from_static("denied"));
}

/// Writes `auth.failed` for credentials that were given and refused (not for absent ones,
/// which are the normal first step of HTTP authentication). The event names the account a
/// password was tried for, or the token's id when its signature is ours; never the secret.
fn auth_failure_event(state: &AppState, request: &Request, denial: &Denial) -> Option<NewEvent> {
    let Denial::Auth(error) = denial else {
        return None;
    };
    if matches!(error, AuthError::Missing | AuthError::Internal(_)) {
        return None;
    }
    let actor = Actor::anonymous_at(request.headers(), request.extensions());
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, credential) = authorization.split_once(' ').unwrap_or((authorization, ""));
    let (actor_name, target) = if scheme.eq_ignore_ascii_case("basic") {
        let username = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| d.split_once(':').map(|(user, _)| user.to_owned()));
        match username {
            Some(user) => (user.clone(), format!("user:{user}")),
            None => (actor.name.clone(), "user:(unreadable)".to_owned()),
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let id =
            state.token_keys.decode(credential.trim()).map_or_else(|| "(unknown)".to_owned(), |c| c.jti.to_string());
        (actor.name.clone(), format!("token:{id}"))
    } else {
        (actor.name.clone(), "(credentials)".to_owned())
    };
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let mut event = actor.event(
        "auth.failed",
        target,
        json!({"reason": error.to_string(), "method": request.method().as_str(), "route": route}),
    );
    event.actor_name = actor_name;
    event.outcome = if matches!(error, AuthError::RateLimited(_)) { "rate_limited" } else { "denied" }.to_owned();
    Some(event)
}

async fn principal_for(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    client_ip: &str,
) -> Result<Principal, Denial> {
    if let Some(principal) = auth::from_authorization(state, headers, client_ip).await? {
        return Ok(principal);
    }
    let jar = CookieJar::from_headers(headers);
    let principal = session::current(state, &jar).await?.ok_or(AuthError::Missing)?;
    if let Credential::Session { csrf_token } = &principal.credential
        && is_mutating(method)
    {
        let submitted = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !session::csrf_matches(submitted, csrf_token) {
            return Err(Denial::Csrf);
        }
    }
    Ok(principal)
}

/// POST routes that only read (MLflow's searches take their query in a JSON body).
const READ_ONLY_POST_SUFFIXES: &[&str] = &[
    "/2.0/mlflow/runs/search",
    "/2.0/mlflow/experiments/search",
    "/2.0/mlflow/logged-models/search",
    "/2.0/mlflow/registered-models/get-latest-versions",
];

/// Whether a request changes data: any method but GET, HEAD and OPTIONS, except the
/// read-only POST routes. Shared by the guard and the audit middleware.
pub fn changes_data(method: &Method, route: Option<&str>) -> bool {
    let read_only_post =
        *method == Method::POST && route.is_some_and(|r| READ_ONLY_POST_SUFFIXES.iter().any(|s| r.ends_with(s)));
    is_mutating(method) && !read_only_post
}

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
