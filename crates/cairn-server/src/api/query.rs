//! A query-string extractor whose rejections are problem details (400 with serde's message),
//! and the paging rules shared by every list.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Page sizes: `limit` defaults to 100 and may be 1 to 1000.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// The page size asked for, within `1..=max`.
pub fn limit(raw: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!("limit must be between 1 and {max}, not {n}"))),
    }
}

/// Opaque cursors: base64url of a short text that names where the next page starts.
/// Clients must pass them back unchanged; their content is not part of the API.
pub mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use cairn_db::tracking::metrics::HistoryCursor;
    use uuid::Uuid;

    use super::ApiError;

    fn encode(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    /// The fields of a cursor of `kind`, or a 400 naming the problem.
    fn decode(raw: &str, kind: &str) -> Result<Vec<String>, ApiError> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid(raw))?;
        let text = String::from_utf8(bytes).map_err(|_| invalid(raw))?;
        let mut fields = text.split(':');
        if fields.next() != Some(kind) {
            return Err(invalid(raw));
        }
        Ok(fields.map(str::to_owned).collect())
    }

    fn invalid(raw: &str) -> ApiError {
        ApiError::bad_request(format!("invalid cursor {raw:?}: pass back a next_cursor unchanged"))
    }

    pub fn experiment(id: i64) -> String {
        encode(&format!("e:{id}"))
    }

    pub fn parse_experiment(raw: &str) -> Result<i64, ApiError> {
        match decode(raw, "e")?.as_slice() {
            [id] => id.parse().map_err(|_| invalid(raw)),
            _ => Err(invalid(raw)),
        }
    }

    pub fn run(id: Uuid) -> String {
        encode(&format!("r:{}", id.simple()))
    }

    pub fn parse_run(raw: &str) -> Result<Uuid, ApiError> {
        match decode(raw, "r")?.as_slice() {
            [id] => Uuid::try_parse(id).map_err(|_| invalid(raw)),
            _ => Err(invalid(raw)),
        }
    }

    pub fn history(at: HistoryCursor) -> String {
        encode(&format!("m:{}:{}:{}", at.step, at.timestamp, at.id))
    }

    pub fn parse_history(raw: &str) -> Result<HistoryCursor, ApiError> {
        let fields = decode(raw, "m")?;
        let numbers: Vec<i64> = fields.iter().map(|f| f.parse()).collect::<Result<_, _>>().map_err(|_| invalid(raw))?;
        match numbers.as_slice() {
            [step, timestamp, id] => Ok(HistoryCursor { step: *step, timestamp: *timestamp, id: *id }),
            _ => Err(invalid(raw)),
        }
    }

    /// After a registered model (names cannot contain `:`).
    pub fn model(name: &str) -> String {
        encode(&format!("rm:{name}"))
    }

    pub fn parse_model(raw: &str) -> Result<String, ApiError> {
        match decode(raw, "rm")?.as_slice() {
            [name] => Ok(name.clone()),
            _ => Err(invalid(raw)),
        }
    }

    /// Below a model version number.
    pub fn version(number: i64) -> String {
        encode(&format!("mv:{number}"))
    }

    pub fn parse_version(raw: &str) -> Result<i64, ApiError> {
        match decode(raw, "mv")?.as_slice() {
            [number] => number.parse().map_err(|_| invalid(raw)),
            _ => Err(invalid(raw)),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn cursors_round_trip_and_do_not_mix() {
            assert_eq!(parse_experiment(&experiment(42)).ok(), Some(42));
            let id = Uuid::new_v4();
            assert_eq!(parse_run(&run(id)).ok(), Some(id));
            let at = HistoryCursor { step: -3, timestamp: 1_700_000_000_000, id: 9 };
            assert_eq!(parse_history(&history(at)).ok(), Some(at));
            assert!(parse_run(&experiment(42)).is_err());
            assert!(parse_experiment("not base64!").is_err());
            assert!(parse_history(&encode("m:1:2")).is_err());
            assert_eq!(parse_model(&model("fraud v2")).ok().as_deref(), Some("fraud v2"));
            assert_eq!(parse_version(&version(7)).ok(), Some(7));
            assert!(parse_version(&model("7")).is_err());
        }
    }
}
