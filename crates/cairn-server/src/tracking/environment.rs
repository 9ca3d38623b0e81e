//! Environment snapshots: what a run ran on (library versions, image digest, Python
//! version...), given by the native API and kept with the run for reproducibility.

use cairn_db::Db;
use cairn_db::tracking::runs as repo;
use serde_json::Value;
use uuid::Uuid;

use super::runs::{require_active, require_run};
use super::{Result, TrackingError};

/// The largest snapshot kept, serialized: a lock file's worth of library versions.
pub const MAX_ENVIRONMENT_BYTES: usize = 64 * 1024;

/// A valid snapshot: a JSON object of at most [`MAX_ENVIRONMENT_BYTES`]. Its keys are free;
/// the API documents the conventional ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment(Value);

impl Environment {
    pub fn parse(value: Value) -> Result<Environment> {
        if !value.is_object() {
            return Err(TrackingError::Invalid("the environment snapshot must be a JSON object".into()));
        }
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_ENVIRONMENT_BYTES {
            return Err(TrackingError::Invalid(format!(
                "the environment snapshot is {size} bytes of JSON; at most {MAX_ENVIRONMENT_BYTES} are kept"
            )));
        }
        Ok(Environment(value))
    }

    pub fn as_json(&self) -> &Value {
        &self.0
    }
}

/// Replaces the environment snapshot of an active run.
pub async fn set_run_environment(db: &Db, id: Uuid, environment: &Environment) -> Result<()> {
    let run = require_run(db, id).await?;
    require_active(&run)?;
    repo::set_environment(&db.pool, run.id, environment.as_json()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn snapshots_are_objects_of_bounded_size() {
        assert!(Environment::parse(json!({"python_version": "3.12.1", "libraries": {"torch": "2.4.0"}})).is_ok());
        assert!(Environment::parse(json!(["torch"])).is_err());
        assert!(Environment::parse(json!("3.12")).is_err());
        let huge = json!({"lock": "x".repeat(MAX_ENVIRONMENT_BYTES)});
        assert!(Environment::parse(huge).is_err());
    }
}
