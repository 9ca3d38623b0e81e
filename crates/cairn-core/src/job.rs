//! Training jobs: the spec a job runs from, its states and the transitions between them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What a job runs. Stored resolved (dataset versions pinned, params filled in), so a job
/// can be reproduced from its record alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The program and its arguments (local executor), or the container's command.
    pub command: Vec<String>,
    /// The container image (Kubernetes executor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Logged as params of the job's run, exported as `CAIRN_PARAM_<K>` and substituted
    /// for `{{K}}` in the command.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub gpus: u32,
    /// Dataset versions, `NAME@VERSION` once resolved.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Seconds before the job is stopped and failed.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    pub repository: String,
    pub commit: String,
}

fn default_timeout() -> u64 {
    24 * 3600
}

pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

impl JobSpec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        let invalid = |m: String| Err(ValidationError(m));
        if self.command.is_empty() || self.command[0].trim().is_empty() {
            return invalid("a job needs a command: the program and its arguments".into());
        }
        if self.command.iter().chain(self.env.values()).any(|s| s.contains('\0')) {
            return invalid("commands and environment values cannot contain NUL".into());
        }
        for key in self.env.keys().chain(self.params.keys()) {
            let ok = !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !key.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return invalid(format!(
                    "{key:?}: names of params and environment variables are letters, digits and '_'"
                ));
            }
        }
        if self.env.keys().any(|k| k.starts_with("CAIRN_") || k.starts_with("MLFLOW_")) {
            return invalid("CAIRN_* and MLFLOW_* variables are set by Cairn for the job".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return invalid(format!("timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}"));
        }
        Ok(())
    }

    /// The command with `{{K}}` replaced by param `K`'s value.
    pub fn resolved_command(&self) -> Vec<String> {
        self.command
            .iter()
            .map(|arg| self.params.iter().fold(arg.clone(), |a, (k, v)| a.replace(&format!("{{{{{k}}}}}"), v)))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Scheduled,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Scheduled,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }

    /// The states a job may move to from this one.
    pub fn may_become(self, next: JobState) -> bool {
        use JobState::*;
        match self {
            Queued => matches!(next, Scheduled | Cancelled | Failed),
            Scheduled => matches!(next, Running | Queued | Cancelled | Failed),
            Running => matches!(next, Succeeded | Failed | Cancelled),
            Succeeded | Failed | Cancelled => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str]) -> JobSpec {
        JobSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            image: None,
            env: BTreeMap::new(),
            params: BTreeMap::from([("lr".into(), "0.1".into())]),
            gpus: 0,
            datasets: vec![],
            timeout_secs: 60,
            source: None,
        }
    }

    #[test]
    fn params_fill_placeholders_and_specs_are_checked() {
        assert_eq!(spec(&["train", "--lr={{lr}}", "{{other}}"]).resolved_command(), ["train", "--lr=0.1", "{{other}}"]);
        assert!(spec(&["python", "x.py"]).validate().is_ok());
        assert!(spec(&[]).validate().is_err());
        let mut bad = spec(&["x"]);
        bad.env.insert("MLFLOW_RUN_ID".into(), "x".into());
        assert!(bad.validate().is_err());
        let mut bad = spec(&["x"]);
        bad.params.insert("1x".into(), "x".into());
        assert!(bad.validate().is_err());
    }

    #[test]
    fn finished_jobs_stay_finished() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            if state.is_final() {
                assert!(JobState::ALL.iter().all(|next| !state.may_become(*next)));
            }
        }
        assert!(JobState::Queued.may_become(JobState::Scheduled));
        assert!(!JobState::Queued.may_become(JobState::Succeeded));
    }
}
