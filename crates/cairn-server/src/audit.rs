//! The audit middleware and the [`Actor`] that service functions record.
//!
//! Service functions write their own audit rows inside their transactions and mark the
//! response with [`Audited`]. Every other mutating request (POST, PUT, PATCH, DELETE),
//! including the ones refused for bad credentials, bad input or missing permission, is
//! recorded here after the response is known, so no mutating request goes unrecorded.
//! High-volume telemetry routes opt out with [`AuditExempt`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use cairn_db::audit::{self, NewEvent};
use serde_json::json;

use crate::auth::Principal;
use crate::state::AppState;

/// Who does something, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl Actor {
    /// A process acting on its own behalf (bootstrap, admin commands).
    pub fn system(name: &str) -> Actor {
        Actor { user_id: None, name: format!("system:{name}"), request_id: None, client_addr: None }
    }

    pub fn for_principal(principal: &Principal, parts: &Parts) -> Actor {
        Actor { user_id: Some(principal.user_id), name: principal.username.clone(), ..Actor::anonymous(parts) }
    }

    /// A successful event done by this actor.
    pub fn event(&self, action: &str, target: String, details: serde_json::Value) -> NewEvent {
        NewEvent {
            actor_id: self.user_id,
            actor_name: self.name.clone(),
            action: action.to_owned(),
            target,
            request_id: self.request_id.clone(),
            client_addr: self.client_addr.clone(),
            outcome: "success".to_owned(),
            details,
        }
    }

    pub fn anonymous(parts: &Parts) -> Actor {
        Actor::anonymous_at(&parts.headers, &parts.extensions)
    }

    /// [`Actor::anonymous`] from a request's headers and extensions.
    pub fn anonymous_at(headers: &HeaderMap, extensions: &Extensions) -> Actor {
        Actor {
            user_id: None,
            name: "anonymous".into(),
            request_id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
            client_addr: extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(match parts.extensions.get::<Principal>() {
            Some(principal) => Actor::for_principal(principal, parts),
            None => Actor::anonymous(parts),
        })
    }
}

/// Where the authentication layers leave the authenticated caller for this middleware,
/// which runs outside them and would otherwise not see who acted.
#[derive(Clone, Default)]
pub struct ActorSlot(Arc<OnceLock<Principal>>);

impl ActorSlot {
    pub fn fill(extensions: &axum::http::Extensions, principal: &Principal) {
        if let Some(slot) = extensions.get::<ActorSlot>() {
            let _ = slot.0.set(principal.clone());
        }
    }
}

/// Response marker: the handler's service function has written the audit row.
#[derive(Clone, Copy, Debug)]
pub struct Audited;

/// Response marker: this route is telemetry and is not audited request by request.
#[derive(Clone, Copy, Debug)]
pub struct AuditExempt;

/// Response extension set by handlers that know more than the route about what happened,
/// for requests that are not audited by a service function (failed logins, say).
#[derive(Clone, Debug)]
pub struct AuditNote {
    pub action: String,
    pub target: String,
    pub actor_name: Option<String>,
    pub details: serde_json::Value,
}

pub async fn record_mutations(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if !crate::access::changes_data(request.method(), matched) {
        return next.run(request).await;
    }
    let slot = ActorSlot::default();
    request.extensions_mut().insert(slot.clone());
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let route = parts.extensions.get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let path = parts.uri.path().to_owned();
    let anonymous = Actor::anonymous(&parts);
    let response = next.run(Request::from_parts(parts, body)).await;

    let ext = response.extensions();
    if ext.get::<Audited>().is_some() || ext.get::<AuditExempt>().is_some() {
        return response;
    }
    let note = ext.get::<AuditNote>().cloned();
    let principal = slot.0.get();
    let status = response.status();
    let event = NewEvent {
        actor_id: principal.map(|p| p.user_id),
        actor_name: principal
            .map(|p| p.username.clone())
            .or_else(|| note.as_ref().and_then(|n| n.actor_name.clone()))
            .unwrap_or(anonymous.name),
        action: note.as_ref().map_or_else(
            || format!("http.{} {}", method.as_str().to_lowercase(), route.as_deref().unwrap_or("(no route)")),
            |n| n.action.clone(),
        ),
        target: note.as_ref().map_or(path, |n| n.target.clone()),
        request_id: anonymous.request_id,
        client_addr: anonymous.client_addr,
        outcome: outcome(status),
        details: note.map_or_else(
            || json!({"status": status.as_u16()}),
            |n| {
                let mut d = n.details;
                if let Some(obj) = d.as_object_mut() {
                    obj.insert("status".into(), status.as_u16().into());
                }
                d
            },
        ),
    };
    if let Err(e) = audit::append(&state.db.pool, event).await {
        tracing::error!(error = %e, "could not write audit event");
    }
    response
}

fn outcome(status: StatusCode) -> String {
    match status.as_u16() {
        200..=399 => "success".into(),
        401 | 403 => "denied".into(),
        429 => "rate_limited".into(),
        code => format!("failed ({code})"),
    }
}
