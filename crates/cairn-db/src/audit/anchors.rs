//! Anchors: chain heads taken now and then (`cairn audit anchor`), stored here and meant to
//! be kept outside the system too. A rewrite of the chain's tail with recomputed hashes
//! verifies as a chain, but no longer contains the anchors taken before it.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use super::CHAIN_LOCK_KEY;
use super::chain::{Anchor, AnchorCheck};
use crate::DbError;

#[derive(Debug, Clone, FromRow)]
pub struct AnchorRow {
    pub id: i64,
    /// The audit row that was the chain head.
    pub event_id: i64,
    pub hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl AnchorRow {
    pub fn anchor(&self) -> Anchor {
        let mut hash = [0u8; 32];
        let n = self.hash.len().min(32);
        hash[..n].copy_from_slice(&self.hash[..n]);
        Anchor { id: self.event_id, hash }
    }
}

/// Stores the current chain head as an anchor, inside the caller's transaction (which
/// should also append the audit event that records it). None when the log is empty.
pub async fn take_in(conn: &mut PgConnection, created_by: &str) -> Result<Option<AnchorRow>, DbError> {
    // The same lock as appends: the head read here is the head.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK_KEY).execute(&mut *conn).await?;
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let Some((event_id, hash)) = head else {
        return Ok(None);
    };
    Ok(Some(
        sqlx::query_as(
            "INSERT INTO audit_anchors (event_id, hash, created_by) VALUES ($1, $2, $3) \
             RETURNING id, event_id, hash, created_at, created_by",
        )
        .bind(event_id)
        .bind(hash)
        .bind(created_by)
        .fetch_one(&mut *conn)
        .await?,
    ))
}

/// Every stored anchor, oldest first, with what the chain says about it now. One query.
pub async fn check_all(pool: &PgPool) -> Result<Vec<(AnchorRow, AnchorCheck)>, DbError> {
    #[derive(FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        anchor: AnchorRow,
        row_hash: Option<Vec<u8>>,
    }
    let rows: Vec<Joined> = sqlx::query_as(
        "SELECT a.id, a.event_id, a.hash, a.created_at, a.created_by, e.hash AS row_hash \
         FROM audit_anchors a LEFT JOIN audit_events e ON e.id = a.event_id ORDER BY a.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|j| {
            let check = AnchorCheck::of(&j.anchor.anchor(), j.row_hash.as_deref());
            (j.anchor, check)
        })
        .collect())
}

/// What the chain says about one anchor (given on the command line, say).
pub async fn check(pool: &PgPool, anchor: &Anchor) -> Result<AnchorCheck, DbError> {
    let hash: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM audit_events WHERE id = $1").bind(anchor.id).fetch_optional(pool).await?;
    Ok(AnchorCheck::of(anchor, hash.as_deref()))
}
