//! The audit log: an append-only, hash-chained table.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and this row's fields in a
//! fixed, length-prefixed encoding, so changing, inserting or deleting a row anywhere
//! breaks the chain from that row on. Rows are appended one at a time under a
//! transaction-scoped advisory lock: the chain needs a total order, and ids without gaps
//! make a deleted row visible even when the hashes around it were recomputed.

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::DbError;

/// Arbitrary constant naming the advisory lock that serialises appends.
const CHAIN_LOCK_KEY: i64 = 0x6361_6972_6e61_7564; // "cairnaud"
const GENESIS_HASH: [u8; 32] = [0; 32];

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
    /// The hash this row should carry given its content and `prev_hash`.
    pub fn computed_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"cairn-audit-v1");
        h.update(&self.prev_hash);
        let mut field = |bytes: Option<&[u8]>| match bytes {
            Some(b) => {
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            None => h.update(u64::MAX.to_be_bytes()),
        };
        field(Some(&self.id.to_be_bytes()));
        field(Some(&self.occurred_at.timestamp_micros().to_be_bytes()));
        field(self.actor_id.map(i64::to_be_bytes).as_ref().map(|b| &b[..]));
        field(Some(self.actor_name.as_bytes()));
        field(Some(self.action.as_bytes()));
        field(Some(self.target.as_bytes()));
        field(self.request_id.as_deref().map(str::as_bytes));
        field(self.client_addr.as_deref().map(str::as_bytes));
        field(Some(self.outcome.as_bytes()));
        field(Some(self.details.as_bytes()));
        h.finalize().into()
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
         client_addr, outcome, details, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
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
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// The most recent events, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<EventRow>, DbError> {
    Ok(sqlx::query_as("SELECT * FROM audit_events ORDER BY id DESC LIMIT $1").bind(limit).fetch_all(pool).await?)
}

/// Why verification stopped at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// A row is missing before this id (ids must run 1, 2, 3, ...).
    Gap { expected_id: i64, found_id: i64 },
    /// The row's `prev_hash` is not the previous row's hash.
    PrevHashMismatch { id: i64 },
    /// The row's content does not match its hash (the row was altered).
    HashMismatch { id: i64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Gap { expected_id, found_id } => {
                write!(f, "row {expected_id} is missing (the next row present is {found_id}): rows were deleted")
            }
            ChainBreak::PrevHashMismatch { id } => {
                write!(f, "row {id}: prev_hash does not match the hash of the row before it")
            }
            ChainBreak::HashMismatch { id } => {
                write!(f, "row {id}: content does not match its hash: the row was altered")
            }
        }
    }
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
    let mut expected_prev = GENESIS_HASH.to_vec();
    let mut expected_id = 1;
    let mut checked = 0;
    while let Some(row) = rows.next().await {
        let row = row?;
        let first_break = if row.id != expected_id {
            Some(ChainBreak::Gap { expected_id, found_id: row.id })
        } else if row.prev_hash != expected_prev {
            Some(ChainBreak::PrevHashMismatch { id: row.id })
        } else if row.computed_hash()[..] != row.hash[..] {
            Some(ChainBreak::HashMismatch { id: row.id })
        } else {
            None
        };
        if first_break.is_some() {
            return Ok(Verification {
                rows_checked: checked,
                first_break,
                head_hash: Some(hex::encode(&expected_prev)),
            });
        }
        checked += 1;
        expected_id += 1;
        expected_prev = row.hash;
    }
    let head_hash = (checked > 0).then(|| hex::encode(&expected_prev));
    Ok(Verification { rows_checked: checked, first_break: None, head_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> EventRow {
        EventRow {
            id: 1,
            occurred_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time"),
            actor_id: Some(7),
            actor_name: "admin".into(),
            action: "user.create".into(),
            target: "user:jane".into(),
            request_id: None,
            client_addr: Some("127.0.0.1".into()),
            outcome: "success".into(),
            details: "{}".into(),
            prev_hash: GENESIS_HASH.to_vec(),
            hash: Vec::new(),
        }
    }

    #[test]
    fn hash_covers_every_field() {
        let base = row().computed_hash();
        let mut changed = row();
        changed.actor_name = "mallory".into();
        assert_ne!(changed.computed_hash(), base);
        let mut changed = row();
        changed.request_id = Some(String::new());
        assert_ne!(changed.computed_hash(), base, "None and empty string must differ");
        let mut changed = row();
        changed.prev_hash[0] = 1;
        assert_ne!(changed.computed_hash(), base);
        assert_eq!(row().computed_hash(), base, "deterministic");
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = row();
        a.action = "ab".into();
        a.target = "c".into();
        let mut b = row();
        b.action = "a".into();
        b.target = "bc".into();
        assert_ne!(a.computed_hash(), b.computed_hash());
    }
}
