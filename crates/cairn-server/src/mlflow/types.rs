//! MLflow's JSON shapes, as the client sends and expects them: ids as strings, 64-bit
//! integers as JSON numbers (but accepted as strings too, as proto3 JSON allows), doubles
//! with NaN and infinities as the strings "NaN", "Infinity", "-Infinity", and empty
//! collections omitted. Views are built from repository rows; rows are never serialized.

use cairn_db::tracking::KeyValue;
use cairn_db::tracking::experiments::ExperimentRow;
use cairn_db::tracking::metrics::LatestMetric;
use cairn_db::tracking::runs::{InputRow, RunRecord};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// Deserializes an int64 given as a JSON number or a decimal string.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(i64),
        Float(f64),
        Str(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
        Some(NumOrStr::Float(f)) => Err(de::Error::custom(format!("expected an integer, got {f}"))),
        Some(NumOrStr::Str(s)) => {
            s.trim().parse().map(Some).map_err(|_| de::Error::custom(format!("expected an integer, got {s:?}")))
        }
    }
}

/// Deserializes a double given as a number or as "NaN", "Infinity", "-Infinity" (or a
/// numeric string).
pub fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(f64),
        Str(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Str(s)) => match s.as_str() {
            "NaN" | "nan" => Ok(Some(f64::NAN)),
            "Infinity" | "inf" => Ok(Some(f64::INFINITY)),
            "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("expected a number, got {other:?}"))),
        },
    }
}

/// Serializes a double the way the client parses it back.
pub fn mlflow_f64<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        s.serialize_str("NaN")
    } else if *value == f64::INFINITY {
        s.serialize_str("Infinity")
    } else if *value == f64::NEG_INFINITY {
        s.serialize_str("-Infinity")
    } else {
        s.serialize_f64(*value)
    }
}

/// The run id as MLflow writes it: 32 lowercase hex digits.
pub fn run_id_string(id: Uuid) -> String {
    id.simple().to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl From<Tag> for KeyValue {
    fn from(tag: Tag) -> Self {
        KeyValue { key: tag.key, value: tag.value }
    }
}

impl From<KeyValue> for Tag {
    fn from(kv: KeyValue) -> Self {
        Tag { key: kv.key, value: kv.value }
    }
}

#[derive(Debug, Serialize)]
pub struct ExperimentView {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub last_update_time: i64,
    pub creation_time: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl ExperimentView {
    pub fn new(row: ExperimentRow, tags: Vec<Tag>) -> Self {
        ExperimentView {
            experiment_id: row.id.to_string(),
            name: row.name,
            artifact_location: row.artifact_location,
            lifecycle_stage: row.lifecycle_stage,
            last_update_time: row.last_update_time,
            creation_time: row.creation_time,
            tags,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MetricView {
    pub key: String,
    #[serde(serialize_with = "mlflow_f64")]
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

impl From<LatestMetric> for MetricView {
    fn from(m: LatestMetric) -> Self {
        MetricView { key: m.key, value: m.value, timestamp: m.timestamp, step: m.step }
    }
}

#[derive(Debug, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

impl RunInfo {
    pub fn new(run: &cairn_db::tracking::runs::RunRow) -> Self {
        let id = run_id_string(run.run_uuid);
        RunInfo {
            run_uuid: id.clone(),
            run_id: id,
            run_name: run.name.clone(),
            experiment_id: run.experiment_id.to_string(),
            user_id: run.user_id.clone(),
            status: run.status.clone(),
            start_time: run.start_time,
            end_time: run.end_time,
            artifact_uri: run.artifact_uri.clone(),
            lifecycle_stage: run.lifecycle_stage.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunData {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Tag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Serialize)]
pub struct DatasetView {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DatasetInputView {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub dataset: DatasetView,
}

impl From<InputRow> for DatasetInputView {
    fn from(row: InputRow) -> Self {
        let tags = serde_json::from_value(row.tags).unwrap_or_default();
        DatasetInputView {
            tags,
            dataset: DatasetView {
                name: row.name,
                digest: row.digest,
                source_type: row.source_type,
                source: row.source,
                schema: row.schema,
                profile: row.profile,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunInputs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<DatasetInputView>,
}

#[derive(Debug, Serialize)]
pub struct ModelOutput {
    pub model_id: String,
    pub step: i64,
}

#[derive(Debug, Serialize)]
pub struct RunOutputs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: RunOutputs,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            info: RunInfo::new(&r.run),
            data: RunData {
                metrics: r.metrics.into_iter().map(MetricView::from).collect(),
                params: r.params.into_iter().map(Tag::from).collect(),
                tags: r.tags.into_iter().map(Tag::from).collect(),
            },
            inputs: RunInputs { dataset_inputs: r.inputs.into_iter().map(DatasetInputView::from).collect() },
            outputs: RunOutputs {
                model_outputs: r.outputs.into_iter().map(|(model_id, step)| ModelOutput { model_id, step }).collect(),
            },
        }
    }
}

/// MLflow's opaque page token: base64 of `{"offset": N}`.
pub mod page_token {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn encode(offset: i64) -> String {
        STANDARD.encode(format!("{{\"offset\": {offset}}}"))
    }

    pub fn decode(token: Option<&str>) -> Result<i64, String> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(0);
        };
        let bytes =
            STANDARD.decode(token).map_err(|_| format!("Invalid page token, could not base64-decode: {token:?}"))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| format!("Invalid page token, decoded value={:?}", String::from_utf8_lossy(&bytes)))?;
        value["offset"]
            .as_i64()
            .filter(|o| *o >= 0)
            .ok_or_else(|| "Invalid page token, offset must be a non-negative integer".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "lenient_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "lenient_f64")]
        v: Option<f64>,
    }

    #[test]
    fn int64_accepts_numbers_and_strings() {
        let p: Probe = serde_json::from_str(r#"{"n": "1099511627776"}"#).expect("string");
        assert_eq!(p.n, Some(1 << 40));
        let p: Probe = serde_json::from_str(r#"{"n": 5}"#).expect("number");
        assert_eq!(p.n, Some(5));
        assert!(serde_json::from_str::<Probe>(r#"{"n": "five"}"#).is_err());
        let p: Probe = serde_json::from_str("{}").expect("absent");
        assert_eq!(p.n, None);
    }

    #[test]
    fn doubles_round_trip_non_finite_values_as_strings() {
        for (text, check) in [
            ("\"NaN\"", f64::is_nan as fn(f64) -> bool),
            ("\"Infinity\"", |v: f64| v == f64::INFINITY),
            ("\"-Infinity\"", |v: f64| v == f64::NEG_INFINITY),
        ] {
            let p: Probe = serde_json::from_str(&format!("{{\"v\": {text}}}")).expect("parses");
            assert!(check(p.v.expect("value")), "{text}");
        }
        let view = MetricView { key: "k".into(), value: f64::NAN, timestamp: 1, step: 2 };
        assert_eq!(serde_json::to_value(&view).expect("json")["value"], "NaN");
        let view = MetricView { key: "k".into(), value: 0.5, timestamp: 1, step: 2 };
        assert_eq!(serde_json::to_value(&view).expect("json")["value"], 0.5);
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(page_token::decode(Some(&page_token::encode(300))), Ok(300));
        assert_eq!(page_token::decode(None), Ok(0));
        assert!(page_token::decode(Some("!!!")).is_err());
        assert!(page_token::decode(Some("e30=")).is_err(), "{{}} has no offset");
    }
}
