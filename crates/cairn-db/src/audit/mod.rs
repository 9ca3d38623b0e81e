//! The audit log: an append-only, hash-chained table.
//!
//! Each row's `hash` covers the previous row's hash and this row's fields ([`chain`]), so
//! changing, inserting or deleting a row anywhere breaks the chain from that row on. Rows
//! are appended one at a time under a transaction-scoped advisory lock: the chain needs a
//! total order, and ids without gaps make a deleted row visible even when the hashes
//! around it were recomputed. Anchors ([`anchors`]) are chain heads kept outside the
//! system, which catch a rewrite of the whole tail; exports ([`export`]) carry everything
//! needed to check them offline.

pub mod anchors;
pub mod chain;
pub mod export;
pub mod query;

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use sqlx::{FromRow, PgConnection, PgPool};

pub use chain::{ChainBreak, GENESIS_HASH};

use crate::DbError;

/// Arbitrary constant naming the advisory lock that serialises appends.
pub(crate) const CHAIN_LOCK_KEY: i64 = 0x6361_6972_6e61_7564; // "cairnaud"

/// What the caller knows about an event; id, time and hashes are assigned on append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    /// Extra facts as a JSON object. Never secrets.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl EventRow {
    /// The fields the chain hash covers.
    pub fn fields(&self) -> chain::Fields<'_> {
        chain::Fields {
            id: self.id,
            occurred_at_micros: self.occurred_at.timestamp_micros(),
            actor_id: self.actor_id,
            actor_name: &self.actor_name,
            action: &self.action,
            target: &self.target,
            request_id: self.request_id.as_deref(),
            client_addr: self.client_addr.as_deref(),
            outcome: &self.outcome,
            details: &self.details,
            prev_hash: &self.prev_hash,
        }
    }

    /// The hash this row should carry given its content and `prev_hash`.
    pub fn computed_hash(&self) -> [u8; 32] {
        chain::hash(&self.fields())
    }
}

/// Appends one event in its own transaction and returns the stored row.
pub async fn append(pool: &PgPool, event: NewEvent) -> Result<EventRow, DbError> {
    let mut tx = pool.begin().await?;
    let row = append_in(&mut tx, event).await?;
    tx.commit().await?;
    Ok(row)
}

/// Appends one event inside the caller's transaction, so the action and its audit row
/// commit or roll back together.
pub async fn append_in(conn: &mut PgConnection, event: NewEvent) -> Result<EventRow, DbError> {
    // Looked up before taking the chain lock: everything under the lock is serialized
    // across all writers, so it holds only what the chain needs.
    let project_id: Option<i64> =
        sqlx::query_scalar("SELECT audit_target_project($1)").bind(&event.target).fetch_one(&mut *conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK_KEY).execute(&mut *conn).await?;
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let (prev_id, prev_hash) = head.unwrap_or((0, GENESIS_HASH.to_vec()));
    let mut row = EventRow {
        id: prev_id + 1,
        // PostgreSQL keeps microseconds; truncate first so the hashed value is the stored one.
        occurred_at: Utc::now().trunc_subsecs(6),
        actor_id: event.actor_id,
        actor_name: event.actor_name,
        action: event.action,
        target: event.target,
        request_id: event.request_id,
        client_addr: event.client_addr,
        outcome: event.outcome,
        // serde_json sorts object keys, so this text is canonical.
        details: event.details.to_string(),
        prev_hash,
        hash: Vec::new(),
    };
    row.hash = row.computed_hash().to_vec();
    sqlx::query(
        "INSERT INTO audit_events (id, occurred_at, actor_id, actor_name, action, target, request_id, \
         client_addr, outcome, details, prev_hash, hash, project_id) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
    )
    .bind(row.id)
    .bind(row.occurred_at)
    .bind(row.actor_id)
    .bind(&row.actor_name)
    .bind(&row.action)
    .bind(&row.target)
    .bind(&row.request_id)
    .bind(&row.client_addr)
    .bind(&row.outcome)
    .bind(&row.details)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .bind(project_id)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// The most recent events, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<EventRow>, DbError> {
    Ok(sqlx::query_as("SELECT * FROM audit_events ORDER BY id DESC LIMIT $1").bind(limit).fetch_all(pool).await?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows_checked: u64,
    pub first_break: Option<ChainBreak>,
    /// Hash of the last row checked (the chain head), hex.
    pub head_hash: Option<String>,
}

/// Walks the whole chain in id order, streaming, and reports the first broken row.
pub async fn verify(pool: &PgPool) -> Result<Verification, DbError> {
    let mut rows = sqlx::query_as::<_, EventRow>("SELECT * FROM audit_events ORDER BY id").fetch(pool);
    let mut walk = chain::Walk::complete();
    while let Some(row) = rows.next().await {
        let row = row?;
        if let Err(first_break) = walk.check(&row.fields(), &row.hash) {
            return Ok(Verification {
                rows_checked: walk.rows_checked,
                first_break: Some(first_break),
                head_hash: Some(hex::encode(walk.head().map_or(GENESIS_HASH, |(_, h)| h))),
            });
        }
    }
    let head_hash = walk.head().map(|(_, h)| hex::encode(h));
    Ok(Verification { rows_checked: walk.rows_checked, first_break: None, head_hash })
}
