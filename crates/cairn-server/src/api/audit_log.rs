//! `/api/v1/audit`: the most recent audit events (admins only).

use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::auth::Principal;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct RecentQuery {
    limit: Option<i64>,
}

#[derive(Serialize)]
struct EventView {
    id: i64,
    occurred_at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    request_id: Option<String>,
    client_addr: Option<String>,
    outcome: String,
    details: serde_json::Value,
    hash: String,
}

pub async fn recent(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<RecentQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    Ok(Json(serde_json::json!({ "events": events })))
}
