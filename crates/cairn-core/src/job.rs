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
    /// CPU cores to reserve, as a Kubernetes quantity ("2", "0.5", "500m"): the pod's
    /// request and limit; CPU-seconds are charged for them (1 core when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory to reserve and cap, as a Kubernetes quantity ("512Mi", "8Gi").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
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
        if let Some(cpu) = &self.cpu
            && cpu_cores(cpu).is_none()
        {
            return invalid(format!("cpu {cpu:?}: give cores as a number (\"2\", \"0.5\") or millicores (\"500m\")"));
        }
        if let Some(memory) = &self.memory
            && !is_memory_quantity(memory)
        {
            return invalid(format!(
                "memory {memory:?}: give bytes with an optional unit (Ki, Mi, Gi, Ti or k, M, G, T), e.g. \"8Gi\""
            ));
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return invalid(format!("timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}"));
        }
        Ok(())
    }

    /// The CPU cores the job is charged for: its `cpu`, or 1.
    pub fn charged_cores(&self) -> f64 {
        self.cpu.as_deref().and_then(cpu_cores).unwrap_or(1.0)
    }

    /// The command with `{{K}}` replaced by param `K`'s value.
    pub fn resolved_command(&self) -> Vec<String> {
        self.command
            .iter()
            .map(|arg| self.params.iter().fold(arg.clone(), |a, (k, v)| a.replace(&format!("{{{{{k}}}}}"), v)))
            .collect()
    }
}

/// The cores a Kubernetes CPU quantity names ("2", "0.5", "500m"), between 1 millicore and
/// 1024 cores.
pub fn cpu_cores(quantity: &str) -> Option<f64> {
    let (number, scale) = match quantity.strip_suffix('m') {
        Some(milli) => (milli, 1000.0),
        None => (quantity, 1.0),
    };
    let valid = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().filter(|&c| c == '.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    let cores = number.parse::<f64>().ok().filter(|_| valid)? / scale;
    (0.001..=1024.0).contains(&cores).then_some(cores)
}

/// Whether `quantity` is a Kubernetes memory quantity: digits, an optional fraction and an
/// optional binary or decimal unit.
pub fn is_memory_quantity(quantity: &str) -> bool {
    const UNITS: [&str; 8] = ["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"];
    let number = UNITS.iter().find_map(|u| quantity.strip_suffix(u)).unwrap_or(quantity);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    !whole.is_empty()
        && whole.len() <= 15
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.len() <= 6 && f.chars().all(|c| c.is_ascii_digit()))
        && number.parse::<f64>().is_ok_and(|n| n > 0.0)
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
            cpu: None,
            memory: None,
            datasets: vec![],
            timeout_secs: 60,
            source: None,
        }
    }

    #[test]
    fn resource_quantities_are_checked() {
        assert_eq!(cpu_cores("2"), Some(2.0));
        assert_eq!(cpu_cores("0.5"), Some(0.5));
        assert_eq!(cpu_cores("500m"), Some(0.5));
        for bad in ["", "m", "-1", "1.2.3", ".5", "2 ", "0", "0m", "5000", "1e3", "NaN", "inf"] {
            assert_eq!(cpu_cores(bad), None, "{bad:?}");
        }
        for good in ["512Mi", "8Gi", "1.5Gi", "1000000", "2G", "64k"] {
            assert!(is_memory_quantity(good), "{good:?}");
        }
        for bad in ["", "Gi", "8GB", "-1Gi", "0", "1.Gi", "8 Gi", "1e9"] {
            assert!(!is_memory_quantity(bad), "{bad:?}");
        }
        let mut job = spec(&["x"]);
        assert_eq!(job.charged_cores(), 1.0);
        job.cpu = Some("250m".into());
        job.memory = Some("1Gi".into());
        assert!(job.validate().is_ok());
        assert_eq!(job.charged_cores(), 0.25);
        job.cpu = Some("lots".into());
        assert!(job.validate().unwrap_err().0.contains("millicores"));
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
