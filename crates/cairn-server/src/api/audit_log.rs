//! `/api/v1/audit`: the most recent audit events (admins only).

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::openapi::Problem;
use super::query::ApiQuery;
use crate::auth::Principal;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// How many events, 1 to 1000 (default 100).
    limit: Option<i64>,
}

/// An audit event.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    id: i64,
    occurred_at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    request_id: Option<String>,
    client_addr: Option<String>,
    outcome: String,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// This row's link in the hash chain (hex).
    hash: String,
}

/// The most recent audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    events: Vec<EventView>,
}

/// Reads the most recent audit events (admins only).
#[utoipa::path(get, path = "/audit", tag = "audit", params(RecentQuery), responses(
    (status = 200, body = EventList),
    (status = 400, description = "Bad limit", body = Problem),
    (status = 403, body = Problem),
))]
pub async fn recent(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<RecentQuery>,
) -> Result<Json<EventList>, ApiError> {
    if principal.role != cairn_core::Role::Admin {
        return Err(ApiError::forbidden("only admins read the audit log"));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let rows = cairn_db::audit::recent(&state.db.pool, limit).await?;
    let events: Vec<EventView> = rows
        .into_iter()
        .map(|r| EventView {
            id: r.id,
            occurred_at: r.occurred_at,
            actor: r.actor_name,
            action: r.action,
            target: r.target,
            request_id: r.request_id,
            client_addr: r.client_addr,
            outcome: r.outcome,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            hash: hex::encode(r.hash),
        })
        .collect();
    Ok(Json(EventList { events }))
}
