//! The audit chain's arithmetic, in one place and without I/O: the hash of a row, and the
//! walk that checks a sequence of rows. The database writer, `cairn audit verify` against
//! the database and the offline check of an export (`cairn audit verify --file`) all use
//! these functions, so they cannot disagree about what a valid chain is.
//!
//! A row's hash is SHA-256 over a version tag, the previous row's hash and this row's
//! fields in a fixed, length-prefixed encoding (an absent value is encoded apart from an
//! empty one), so no two different rows hash the same input.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Everything a row's hash covers, borrowed from wherever the row lives (a database row,
/// a line of an export).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub id: i64,
    /// `occurred_at` in microseconds since the epoch (PostgreSQL's precision).
    pub occurred_at_micros: i64,
    pub actor_id: Option<i64>,
    pub actor_name: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub request_id: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub outcome: &'a str,
    /// The canonical JSON text exactly as stored.
    pub details: &'a str,
    pub prev_hash: &'a [u8],
}

/// The hash a row with these fields must carry.
pub fn hash(f: &Fields<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cairn-audit-v1");
    h.update(f.prev_hash);
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
        None => h.update(u64::MAX.to_be_bytes()),
    };
    field(Some(&f.id.to_be_bytes()));
    field(Some(&f.occurred_at_micros.to_be_bytes()));
    field(f.actor_id.map(i64::to_be_bytes).as_ref().map(|b| &b[..]));
    field(Some(f.actor_name.as_bytes()));
    field(Some(f.action.as_bytes()));
    field(Some(f.target.as_bytes()));
    field(f.request_id.map(str::as_bytes));
    field(f.client_addr.map(str::as_bytes));
    field(Some(f.outcome.as_bytes()));
    field(Some(f.details.as_bytes()));
    h.finalize().into()
}

/// Why a walk stopped at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// A row is missing before this id (ids must run 1, 2, 3, ...).
    Gap { expected_id: i64, found_id: i64 },
    /// The row's `prev_hash` is not the previous row's hash.
    PrevHashMismatch { id: i64 },
    /// The row's content does not match its hash (the row was altered).
    HashMismatch { id: i64 },
    /// Rows must come in increasing id order (an export was reordered or has duplicates).
    OutOfOrder { id: i64, after: i64 },
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
            ChainBreak::OutOfOrder { id, after } => {
                write!(f, "row {id} comes after row {after}: rows must be in increasing id order")
            }
        }
    }
}

/// Checks rows one by one, in id order.
///
/// A [`Walk::complete`] walk checks a whole chain: ids must run from 1 without gaps and
/// every link must hold. A [`Walk::partial`] walk checks what a filtered export allows:
/// every row's own hash, and the link between rows whose ids are consecutive; a gap in the
/// ids is counted, not reported, because the rows between were filtered out (it cannot
/// tell a filtered row from a deleted one; anchors and the database check can).
#[derive(Debug, Clone)]
pub struct Walk {
    complete: bool,
    /// The last row accepted: its id and hash.
    last: Option<(i64, [u8; 32])>,
    pub rows_checked: u64,
    /// Links (prev_hash against the previous row's hash) that were checked.
    pub links_checked: u64,
    /// Places where ids jump (partial walks only).
    pub gaps: u64,
}

impl Walk {
    pub fn complete() -> Walk {
        Walk { complete: true, last: None, rows_checked: 0, links_checked: 0, gaps: 0 }
    }

    pub fn partial() -> Walk {
        Walk { complete: false, ..Walk::complete() }
    }

    /// Checks the next row (`stored_hash` is the hash the row carries). On a break the walk
    /// must not go on: the counters tell how much was verified before it.
    pub fn check(&mut self, row: &Fields<'_>, stored_hash: &[u8]) -> Result<(), ChainBreak> {
        let expected_prev: Option<[u8; 32]> = match self.last {
            None if self.complete || row.id == 1 => {
                if self.complete && row.id != 1 {
                    return Err(ChainBreak::Gap { expected_id: 1, found_id: row.id });
                }
                Some(GENESIS_HASH)
            }
            None => None,
            Some((last_id, _)) if row.id <= last_id => {
                return Err(ChainBreak::OutOfOrder { id: row.id, after: last_id });
            }
            Some((last_id, last_hash)) if row.id == last_id + 1 => Some(last_hash),
            Some((last_id, _)) => {
                if self.complete {
                    return Err(ChainBreak::Gap { expected_id: last_id + 1, found_id: row.id });
                }
                self.gaps += 1;
                None
            }
        };
        if let Some(prev) = expected_prev {
            if row.prev_hash != prev {
                return Err(ChainBreak::PrevHashMismatch { id: row.id });
            }
            self.links_checked += 1;
        }
        let computed = hash(row);
        if computed[..] != *stored_hash {
            return Err(ChainBreak::HashMismatch { id: row.id });
        }
        self.last = Some((row.id, computed));
        self.rows_checked += 1;
        Ok(())
    }

    /// The id and hash of the last row accepted.
    pub fn head(&self) -> Option<(i64, [u8; 32])> {
        self.last
    }
}

/// A chain head kept outside the system: the row id and the hash it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub id: i64,
    pub hash: [u8; 32],
}

impl std::str::FromStr for Anchor {
    type Err = String;

    /// `ID:HASH` with the hash in hex, as `cairn audit anchor` prints it.
    fn from_str(s: &str) -> Result<Anchor, String> {
        let usage = || format!("{s:?} is not an anchor: expected ID:HASH (as `cairn audit anchor` prints)");
        let (id, hash) = s.trim().split_once(':').ok_or_else(usage)?;
        let id = id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(usage)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hash, &mut bytes).map_err(|_| usage())?;
        Ok(Anchor { id, hash: bytes })
    }
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id, hex::encode(self.hash))
    }
}

/// What a chain says about an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCheck {
    /// The row is there with the anchored hash.
    Present,
    /// The row is there with another hash: it, or a row before it, was rewritten.
    Altered { found: [u8; 32] },
    /// No row with the anchor's id (deleted, or not in this export).
    Absent,
}

impl AnchorCheck {
    /// Compares an anchor with the hash the row of its id carries, if any.
    pub fn of(anchor: &Anchor, row_hash: Option<&[u8]>) -> AnchorCheck {
        match row_hash {
            None => AnchorCheck::Absent,
            Some(h) if h == anchor.hash => AnchorCheck::Present,
            Some(h) => {
                let mut found = [0u8; 32];
                let n = h.len().min(32);
                found[..n].copy_from_slice(&h[..n]);
                AnchorCheck::Altered { found }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned {
        id: i64,
        action: String,
        target: String,
        request_id: Option<String>,
        prev_hash: Vec<u8>,
    }

    impl Owned {
        fn new(id: i64, prev: &[u8]) -> Owned {
            Owned {
                id,
                action: "user.create".into(),
                target: "user:jane".into(),
                request_id: None,
                prev_hash: prev.to_vec(),
            }
        }

        fn fields(&self) -> Fields<'_> {
            Fields {
                id: self.id,
                occurred_at_micros: 1_700_000_000_123_456,
                actor_id: Some(7),
                actor_name: "admin",
                action: &self.action,
                target: &self.target,
                request_id: self.request_id.as_deref(),
                client_addr: Some("127.0.0.1"),
                outcome: "success",
                details: "{}",
                prev_hash: &self.prev_hash,
            }
        }
    }

    fn chain(n: i64) -> Vec<(Owned, [u8; 32])> {
        let mut out: Vec<(Owned, [u8; 32])> = Vec::new();
        for id in 1..=n {
            let prev = out.last().map_or(GENESIS_HASH, |(_, h)| *h);
            let row = Owned::new(id, &prev);
            let h = hash(&row.fields());
            out.push((row, h));
        }
        out
    }

    #[test]
    fn hash_covers_every_field_and_boundaries_are_unambiguous() {
        let base = hash(&Owned::new(1, &GENESIS_HASH).fields());
        let mut changed = Owned::new(1, &GENESIS_HASH);
        changed.request_id = Some(String::new());
        assert_ne!(hash(&changed.fields()), base, "None and empty string must differ");
        let mut changed = Owned::new(1, &GENESIS_HASH);
        changed.prev_hash[0] = 1;
        assert_ne!(hash(&changed.fields()), base);
        let (mut a, mut b) = (Owned::new(1, &GENESIS_HASH), Owned::new(1, &GENESIS_HASH));
        (a.action, a.target, b.action, b.target) = ("ab".into(), "c".into(), "a".into(), "bc".into());
        assert_ne!(hash(&a.fields()), hash(&b.fields()));
        assert_eq!(hash(&Owned::new(1, &GENESIS_HASH).fields()), base, "deterministic");
    }

    #[test]
    fn a_complete_walk_accepts_a_chain_and_names_the_altered_or_missing_row() {
        let rows = chain(4);
        let mut walk = Walk::complete();
        for (row, h) in &rows {
            walk.check(&row.fields(), h).expect("valid chain");
        }
        assert_eq!((walk.rows_checked, walk.links_checked), (4, 4));

        let mut walk = Walk::complete();
        walk.check(&rows[0].0.fields(), &rows[0].1).expect("row 1");
        let mut altered = Owned::new(2, &rows[0].1);
        altered.target = "user:eve".into();
        assert_eq!(walk.check(&altered.fields(), &rows[1].1), Err(ChainBreak::HashMismatch { id: 2 }));

        let mut walk = Walk::complete();
        walk.check(&rows[0].0.fields(), &rows[0].1).expect("row 1");
        assert_eq!(walk.check(&rows[2].0.fields(), &rows[2].1), Err(ChainBreak::Gap { expected_id: 2, found_id: 3 }));
    }

    #[test]
    fn a_partial_walk_skips_gaps_but_checks_every_row_and_adjacent_links() {
        let rows = chain(6);
        let mut walk = Walk::partial();
        for i in [1, 2, 4] {
            walk.check(&rows[i].0.fields(), &rows[i].1).expect("filtered export");
        }
        assert_eq!((walk.rows_checked, walk.links_checked, walk.gaps), (3, 1, 1));
        // A row whose prev_hash was rewritten next to its neighbour is caught.
        let mut walk = Walk::partial();
        walk.check(&rows[1].0.fields(), &rows[1].1).expect("row 2");
        let forged = Owned::new(3, &[9; 32]);
        let forged_hash = hash(&forged.fields());
        assert_eq!(walk.check(&forged.fields(), &forged_hash), Err(ChainBreak::PrevHashMismatch { id: 3 }));
        let mut walk = Walk::partial();
        walk.check(&rows[3].0.fields(), &rows[3].1).expect("row 4");
        assert_eq!(walk.check(&rows[2].0.fields(), &rows[2].1), Err(ChainBreak::OutOfOrder { id: 3, after: 4 }));
    }

    #[test]
    fn anchors_parse_print_and_compare() {
        let anchor: Anchor = format!("12:{}", hex::encode([7u8; 32])).parse().expect("anchor");
        assert_eq!(anchor.to_string().parse::<Anchor>().expect("round trip"), anchor);
        assert!("12".parse::<Anchor>().is_err());
        assert!("x:00".parse::<Anchor>().is_err());
        assert_eq!(AnchorCheck::of(&anchor, Some(&[7u8; 32])), AnchorCheck::Present);
        assert_eq!(AnchorCheck::of(&anchor, None), AnchorCheck::Absent);
        assert!(matches!(AnchorCheck::of(&anchor, Some(&[8u8; 32])), AnchorCheck::Altered { .. }));
    }
}
