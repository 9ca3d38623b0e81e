//! Rules for tracking data, with MLflow's limits and wording so that client code that
//! matches on messages keeps working.

use crate::ValidationError;

pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_PER_BATCH: usize = 100;
pub const MAX_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTRIES_PER_BATCH: usize = 1000;
pub const MAX_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_RUN_NAME_LENGTH: usize = 250;

/// What kind of key is checked, for the message.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::Metric => "metric",
            KeyKind::Param => "param",
            KeyKind::Tag => "tag",
        }
    }
}

/// MLflow: names may contain alphanumerics, underscores, periods, dashes, spaces, slashes
/// and colons, at most 250 characters, and may not climb out with `..` path segments.
pub fn validate_key(kind: KeyKind, key: &str) -> Result<(), ValidationError> {
    let valid_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':');
    if key.is_empty() {
        return Err(ValidationError(format!(
            "Invalid value \"\" for parameter 'key' supplied: {} name must not be empty.",
            kind.name()
        )));
    }
    if !key.chars().all(valid_char) {
        return Err(ValidationError(format!(
            "Invalid {} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons(:) and slashes (/).",
            kind.name()
        )));
    }
    if key.split('/').any(|segment| segment == "..") || key.starts_with('/') {
        return Err(ValidationError(format!(
            "Invalid {} name: '{key}'. Names may be treated as files in certain cases, and must not resolve to other names when treated as such.",
            kind.name()
        )));
    }
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(ValidationError(format!(
            "'{}' exceeds the maximum length of {MAX_KEY_LENGTH} characters",
            kind.name()
        )));
    }
    Ok(())
}

pub fn validate_param_value(key: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_PARAM_VALUE_LENGTH {
        return Err(ValidationError(format!(
            "Param value '{}...' had length {}, which exceeded length limit of {MAX_PARAM_VALUE_LENGTH} (param '{key}')",
            value.chars().take(20).collect::<String>(),
            value.chars().count()
        )));
    }
    Ok(())
}

pub fn validate_tag_value(key: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_TAG_VALUE_LENGTH {
        return Err(ValidationError(format!(
            "Tag value '{}...' had length {}, which exceeded length limit of {MAX_TAG_VALUE_LENGTH} (tag '{key}')",
            value.chars().take(20).collect::<String>(),
            value.chars().count()
        )));
    }
    Ok(())
}

pub fn validate_experiment_name(name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError("Invalid experiment name: ''. Experiment name must be a non-empty string.".into()));
    }
    if name.chars().count() > MAX_EXPERIMENT_NAME_LENGTH {
        return Err(ValidationError(format!(
            "Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

pub fn validate_run_name(name: &str) -> Result<(), ValidationError> {
    if name.chars().count() > MAX_RUN_NAME_LENGTH {
        return Err(ValidationError(format!(
            "Run name exceeds the maximum length of {MAX_RUN_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

/// MLflow's per-request limits for `log-batch`.
pub fn validate_batch_sizes(metrics: usize, params: usize, tags: usize) -> Result<(), ValidationError> {
    let over = |what: &str, got: usize, max: usize| {
        ValidationError(format!(
            "A batch logging request can contain at most {max} {what}. Got {got} {what}. Please split up {what} across multiple requests and try again."
        ))
    };
    if metrics > MAX_METRICS_PER_BATCH {
        return Err(over("metrics", metrics, MAX_METRICS_PER_BATCH));
    }
    if params > MAX_PARAMS_PER_BATCH {
        return Err(over("params", params, MAX_PARAMS_PER_BATCH));
    }
    if tags > MAX_TAGS_PER_BATCH {
        return Err(over("tags", tags, MAX_TAGS_PER_BATCH));
    }
    let total = metrics + params + tags;
    if total > MAX_ENTRIES_PER_BATCH {
        return Err(ValidationError(format!(
            "A batch logging request can contain at most {MAX_ENTRIES_PER_BATCH} metrics, params, and tags in total. Got {total} total entries."
        )));
    }
    Ok(())
}

/// Run statuses MLflow knows.
pub const RUN_STATUSES: [&str; 5] = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

pub fn validate_run_status(status: &str) -> Result<(), ValidationError> {
    if RUN_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(ValidationError(format!("Invalid run status '{status}'; expected one of {}", RUN_STATUSES.join(", "))))
    }
}

/// A run name like MLflow's generated ones ("bright-fox-417"), from a random number.
pub fn generated_run_name(seed: u64) -> String {
    const ADJECTIVES: [&str; 24] = [
        "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "gentle", "glad", "keen", "lively",
        "lucid", "merry", "nimble", "quiet", "rapid", "serene", "sharp", "steady", "swift", "tidy", "vivid", "wise",
    ];
    const NOUNS: [&str; 24] = [
        "badger", "bear", "crane", "deer", "dove", "eagle", "falcon", "fox", "hare", "hawk", "heron", "lark", "lynx",
        "moth", "newt", "otter", "owl", "panda", "raven", "seal", "swan", "trout", "whale", "wren",
    ];
    let a = ADJECTIVES[(seed % 24) as usize];
    let n = NOUNS[((seed / 24) % 24) as usize];
    format!("{a}-{n}-{}", (seed / 576) % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for ok in ["loss", "val/acc", "a.b-c_d e:f", "état"] {
            assert!(validate_key(KeyKind::Metric, ok).is_ok(), "{ok}");
        }
        for bad in ["", "a;b", "../up", "a/../b", "/abs", &"k".repeat(251)] {
            assert!(validate_key(KeyKind::Param, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_limits_match_mlflow() {
        assert!(validate_batch_sizes(1000, 0, 0).is_ok());
        let err = validate_batch_sizes(1001, 0, 0).expect_err("over");
        assert!(err.0.contains("at most 1000 metrics. Got 1001"), "{}", err.0);
        assert!(validate_batch_sizes(0, 101, 0).is_err());
        assert!(validate_batch_sizes(0, 0, 101).is_err());
        assert!(validate_batch_sizes(900, 100, 100).is_err(), "1100 entries in all");
    }

    #[test]
    fn values_and_names_have_limits() {
        assert!(validate_param_value("k", &"v".repeat(6000)).is_ok());
        assert!(validate_param_value("k", &"v".repeat(6001)).is_err());
        assert!(validate_tag_value("k", &"v".repeat(8001)).is_err());
        assert!(validate_experiment_name("  ").is_err());
        assert!(validate_run_status("DONE").is_err());
        assert_eq!(generated_run_name(0), "amber-badger-0");
    }
}
