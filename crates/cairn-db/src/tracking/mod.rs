//! Experiment tracking storage: experiments, runs, params, tags, metrics, inputs and
//! logged models. Multi-row writes are single statements over arrays (`UNNEST`), and
//! pages of runs are loaded in one statement, never with a query per run.

pub mod dashboard;
pub mod experiments;
pub mod logged_models;
pub mod metrics;
pub mod runs;
pub mod search;

/// Milliseconds since the Unix epoch, MLflow's unit of time.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A key/value pair (params and tags).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}
