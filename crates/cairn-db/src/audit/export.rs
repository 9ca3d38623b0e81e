//! The exported form of an audit event: one JSON object per line of a JSON Lines export,
//! carrying every field the chain hash covers exactly as stored (`details` as its JSON
//! text, the time to the microsecond, hashes in hex), so that `cairn audit verify --file`
//! recomputes each row's hash without the database.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{EventRow, chain};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub id: i64,
    /// RFC 3339 with microseconds, UTC.
    pub occurred_at: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    /// The canonical JSON text the hash covers (a string, not an object: re-encoding an
    /// object could change the bytes).
    pub details: String,
    /// Hex.
    pub prev_hash: String,
    /// Hex.
    pub hash: String,
}

impl From<&EventRow> for ExportRecord {
    fn from(r: &EventRow) -> Self {
        ExportRecord {
            id: r.id,
            occurred_at: r.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            actor_id: r.actor_id,
            actor_name: r.actor_name.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            request_id: r.request_id.clone(),
            client_addr: r.client_addr.clone(),
            outcome: r.outcome.clone(),
            details: r.details.clone(),
            prev_hash: hex::encode(&r.prev_hash),
            hash: hex::encode(&r.hash),
        }
    }
}

/// An export line decoded for checking: the fields as the chain sees them.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub record: ExportRecord,
    occurred_at_micros: i64,
    prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl Decoded {
    /// Parses one line of a JSON Lines export.
    pub fn parse(line: &str) -> Result<Decoded, String> {
        let record: ExportRecord = serde_json::from_str(line).map_err(|e| format!("not an audit export row: {e}"))?;
        let at = DateTime::parse_from_rfc3339(&record.occurred_at)
            .map_err(|e| format!("occurred_at {:?}: {e}", record.occurred_at))?;
        let prev_hash = hex::decode(&record.prev_hash).map_err(|_| "prev_hash is not hex".to_owned())?;
        let hash = hex::decode(&record.hash).map_err(|_| "hash is not hex".to_owned())?;
        Ok(Decoded { occurred_at_micros: at.with_timezone(&Utc).timestamp_micros(), prev_hash, hash, record })
    }

    pub fn fields(&self) -> chain::Fields<'_> {
        let r = &self.record;
        chain::Fields {
            id: r.id,
            occurred_at_micros: self.occurred_at_micros,
            actor_id: r.actor_id,
            actor_name: &r.actor_name,
            action: &r.action,
            target: &r.target,
            request_id: r.request_id.as_deref(),
            client_addr: r.client_addr.as_deref(),
            outcome: &r.outcome,
            details: &r.details,
            prev_hash: &self.prev_hash,
        }
    }
}

/// The CSV header of an export; [`csv_line`] writes the rows in this order.
pub const CSV_HEADER: &str =
    "id,occurred_at,actor_id,actor_name,action,target,request_id,client_addr,outcome,details,prev_hash,hash\r\n";

/// One CSV line (RFC 4180: fields quoted when they hold a comma, quote or line break).
pub fn csv_line(r: &ExportRecord) -> String {
    let fields = [
        r.id.to_string(),
        r.occurred_at.clone(),
        r.actor_id.map(|id| id.to_string()).unwrap_or_default(),
        r.actor_name.clone(),
        r.action.clone(),
        r.target.clone(),
        r.request_id.clone().unwrap_or_default(),
        r.client_addr.clone().unwrap_or_default(),
        r.outcome.clone(),
        r.details.clone(),
        r.prev_hash.clone(),
        r.hash.clone(),
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// Quotes as RFC 4180 asks, and defuses spreadsheet formulas: a field that a spreadsheet
/// would run (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return; actor names,
/// targets and details come from users) gets a leading `'`, as OWASP recommends. The CSV is
/// for people; the JSON Lines export is the one `cairn audit verify` checks, unchanged.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> EventRow {
        let mut row = EventRow {
            id: 3,
            occurred_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
            actor_id: None,
            actor_name: "anonymous".into(),
            action: "auth.failed".into(),
            target: "/api/v1/runs".into(),
            request_id: Some("r-1".into()),
            client_addr: None,
            outcome: "denied".into(),
            details: r#"{"reason":"bad, \"token\""}"#.into(),
            prev_hash: vec![5; 32],
            hash: Vec::new(),
        };
        row.hash = row.computed_hash().to_vec();
        row
    }

    #[test]
    fn an_exported_line_decodes_to_the_same_hash() {
        let row = row();
        let line = serde_json::to_string(&ExportRecord::from(&row)).expect("json");
        let decoded = Decoded::parse(&line).expect("decode");
        assert_eq!(chain::hash(&decoded.fields())[..], row.hash[..]);
        assert_eq!(decoded.hash, row.hash);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let line = csv_line(&ExportRecord::from(&row()));
        assert!(line.starts_with("3,2023-11-14T22:13:20.123456Z,,anonymous,auth.failed,"), "{line}");
        assert!(line.contains(r#","{""reason"":""bad, \""token\""""}","#), "{line}");
        assert!(line.ends_with("\r\n"));
    }

    #[test]
    fn csv_defuses_spreadsheet_formulas() {
        assert_eq!(csv_field("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("-1+2"), "'-1+2");
        assert_eq!(csv_field("user:alice"), "user:alice");
    }
}
