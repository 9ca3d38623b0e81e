//! `/api/v1/audit` (admins only): the audit trail filtered and paged newest first, and its
//! export as JSON Lines or CSV, streamed, with the chain hashes so that
//! `cairn audit verify --file` checks an export offline.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::openapi::Problem;
use super::query::{ApiQuery, DEFAULT_LIMIT, MAX_LIMIT, limit};
use crate::audit_trail::{self, BadFilter, ExportFormat, FilterParams};
use crate::auth::Principal;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Events with ids below this one: the `next_before` of the previous page.
    before: Option<i64>,
    /// How many events, 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    format: Option<ExportFormat>,
}

/// An audit event.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// The event's place in the chain.
    id: i64,
    occurred_at: DateTime<Utc>,
    /// The actor's name (`admin`, `cli:root`, `anonymous`, `system:bootstrap`).
    actor: String,
    /// The actor's user id, when a Cairn account acted.
    actor_id: Option<i64>,
    action: String,
    /// The object acted on (`job:ID`, `model:NAME/VERSION`...).
    target: String,
    request_id: Option<String>,
    client_addr: Option<String>,
    outcome: String,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// The previous row's hash (hex).
    prev_hash: String,
    /// This row's link in the hash chain (hex).
    hash: String,
}

impl From<cairn_db::audit::EventRow> for EventView {
    fn from(r: cairn_db::audit::EventRow) -> Self {
        EventView {
            id: r.id,
            occurred_at: r.occurred_at,
            actor: r.actor_name,
            actor_id: r.actor_id,
            action: r.action,
            target: r.target,
            request_id: r.request_id,
            client_addr: r.client_addr,
            outcome: r.outcome,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            prev_hash: hex::encode(r.prev_hash),
            hash: hex::encode(r.hash),
        }
    }
}

/// A page of events, newest first.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    events: Vec<EventView>,
    /// Pass as `before` for the next page; null on the last page.
    next_before: Option<i64>,
}

impl From<BadFilter> for ApiError {
    fn from(e: BadFilter) -> Self {
        ApiError::bad_request(e.0)
    }
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.role == cairn_core::Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins read the audit log"))
    }
}

/// Audit events matching the filters, newest first (admins only). Text filters match
/// exactly, or by prefix with a trailing `*` (`action=job.*`).
#[utoipa::path(get, path = "/audit", tag = "audit", params(FilterParams, PageQuery), responses(
    (status = 200, body = EventList),
    (status = 400, description = "Bad filter, limit or before", body = Problem),
    (status = 403, body = Problem),
))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(filters): ApiQuery<FilterParams>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<EventList>, ApiError> {
    require_admin(&principal)?;
    let filter = filters.parse()?;
    let limit = limit(page.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let (rows, next_before) = cairn_db::audit::query::page(&state.db.pool, &filter, page.before, limit).await?;
    Ok(Json(EventList { events: rows.into_iter().map(EventView::from).collect(), next_before }))
}

/// Every audit event matching the filters, oldest first, as a file (admins only): JSON
/// Lines with every hashed field as stored (`details` as its JSON text) and the chain
/// hashes, checkable offline with `cairn audit verify --file`; or CSV with the same
/// columns. Streamed: the export starts at once however long the log.
#[utoipa::path(get, path = "/audit/export", tag = "audit", params(FilterParams, ExportQuery), responses(
    (status = 200, description = "JSON Lines (application/x-ndjson) or CSV (text/csv)"),
    (status = 400, description = "Bad filter or format", body = Problem),
    (status = 403, body = Problem),
))]
pub async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(filters): ApiQuery<FilterParams>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let filter = filters.parse()?;
    let format = query.format.unwrap_or(ExportFormat::Jsonl);
    let file = format!("cairn-audit-{}.{}", Utc::now().format("%Y%m%dT%H%M%SZ"), format.extension());
    let body = Body::from_stream(audit_trail::export(state.db.pool.clone(), filter, format));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(format.content_type())),
            (header::CONTENT_DISPOSITION, crate::mlflow::artifacts::attachment(&file)),
        ],
        body,
    )
        .into_response())
}
