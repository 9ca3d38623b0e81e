//! JSON pieces shared by the tracking resources: times, lifecycle, metric values and
//! key/value maps. Views are built from service results; rows are never serialized.

use std::collections::BTreeMap;

use cairn_db::tracking::KeyValue;
use cairn_db::tracking::search::ViewType;
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stored time (epoch milliseconds) as the API shows it: RFC 3339 in UTC. Times outside
/// what RFC 3339 can write (a client may log anything) show as null.
pub fn time(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis).filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
}

/// Whether a resource is in use or deleted (and restorable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Active,
    Deleted,
}

impl Lifecycle {
    pub fn of(stage: &str) -> Lifecycle {
        if stage == "deleted" { Lifecycle::Deleted } else { Lifecycle::Active }
    }
}

/// Which resources a list shows: `active` (default), `deleted` or `all`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleFilter {
    #[default]
    Active,
    Deleted,
    All,
}

impl From<LifecycleFilter> for ViewType {
    fn from(filter: LifecycleFilter) -> Self {
        match filter {
            LifecycleFilter::Active => ViewType::ActiveOnly,
            LifecycleFilter::Deleted => ViewType::DeletedOnly,
            LifecycleFilter::All => ViewType::All,
        }
    }
}

/// A metric value JSON cannot write as a number. The value shows as null and this field
/// says which one it was; it is absent for finite values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum NonFinite {
    #[serde(rename = "NaN")]
    NaN,
    #[serde(rename = "Infinity")]
    Infinity,
    #[serde(rename = "-Infinity")]
    NegativeInfinity,
}

/// `value` and `non_finite` of a metric value.
pub fn split_value(value: f64) -> (Option<f64>, Option<NonFinite>) {
    if value.is_finite() {
        (Some(value), None)
    } else if value.is_nan() {
        (None, Some(NonFinite::NaN))
    } else if value > 0.0 {
        (None, Some(NonFinite::Infinity))
    } else {
        (None, Some(NonFinite::NegativeInfinity))
    }
}

/// A metric value in a request: a JSON number, or one of the strings `"NaN"`, `"Infinity"`
/// and `"-Infinity"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricNumber(pub f64);

impl<'de> Deserialize<'de> for MetricNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NumberVisitor;

        impl Visitor<'_> for NumberVisitor {
            type Value = MetricNumber;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or one of \"NaN\", \"Infinity\", \"-Infinity\"")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MetricNumber, E> {
                Ok(MetricNumber(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MetricNumber, E> {
                Ok(MetricNumber(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MetricNumber, E> {
                Ok(MetricNumber(v as f64))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricNumber, E> {
                match v {
                    "NaN" => Ok(MetricNumber(f64::NAN)),
                    "Infinity" => Ok(MetricNumber(f64::INFINITY)),
                    "-Infinity" => Ok(MetricNumber(f64::NEG_INFINITY)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }

        d.deserialize_any(NumberVisitor)
    }
}

/// A param or tag value in a request: a string, or a number or boolean taken as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Text(s)),
            v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Ok(Text(v.to_string())),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a string, number or boolean")),
        }
    }
}

fn unexpected(value: &serde_json::Value) -> de::Unexpected<'_> {
    match value {
        serde_json::Value::Null => de::Unexpected::Unit,
        serde_json::Value::Array(_) => de::Unexpected::Seq,
        _ => de::Unexpected::Map,
    }
}

/// Key/value pairs as a JSON object (keys are unique per resource).
pub fn map(pairs: Vec<KeyValue>) -> BTreeMap<String, String> {
    pairs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// A request's key/value object as pairs.
pub fn pairs(map: BTreeMap<String, Text>) -> Vec<KeyValue> {
    map.into_iter().map(|(key, Text(value))| KeyValue { key, value }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_null_with_a_name() {
        assert_eq!(split_value(0.5), (Some(0.5), None));
        assert_eq!(split_value(f64::NAN), (None, Some(NonFinite::NaN)));
        assert_eq!(split_value(f64::NEG_INFINITY), (None, Some(NonFinite::NegativeInfinity)));
    }

    #[test]
    fn metric_numbers_accept_numbers_and_named_non_finite_values() {
        let parse = |s: &str| serde_json::from_str::<MetricNumber>(s).map(|n| n.0);
        assert_eq!(parse("3").ok(), Some(3.0));
        assert_eq!(parse("\"-Infinity\"").ok(), Some(f64::NEG_INFINITY));
        assert!(parse("\"NaN\"").is_ok_and(f64::is_nan));
        assert!(parse("\"nan\"").is_err());
        assert!(parse("true").is_err());
    }

    #[test]
    fn text_takes_numbers_and_booleans_as_their_text() {
        let parse = |s: &str| serde_json::from_str::<Text>(s).map(|t| t.0);
        assert_eq!(parse("0.01").ok().as_deref(), Some("0.01"));
        assert_eq!(parse("true").ok().as_deref(), Some("true"));
        assert!(parse("[1]").is_err());
        assert!(parse("null").is_err());
    }

    #[test]
    fn times_outside_rfc_3339_show_as_null() {
        assert!(time(0).is_some());
        assert!(time(i64::MAX).is_none());
        assert!(time(-1).is_some(), "before 1970 is fine");
    }
}
