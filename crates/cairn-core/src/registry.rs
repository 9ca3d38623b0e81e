//! Rules for the model registry, with MLflow's wording (`mlflow/utils/validation.py`,
//! `model_version_stages.py`): model names, alias names, version numbers and the legacy stages.

use crate::ValidationError;

pub const MAX_MODEL_NAME_LENGTH: usize = 256;
pub const MAX_ALIAS_LENGTH: usize = 255;

/// A registered model's name: not blank, no `/` or `:` (they would break `models:/` URIs), and
/// not a path that normalises to something else (`a/../b`, `./a`).
pub fn validate_model_name(name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError("Missing value for required parameter 'name'.".into()));
    }
    if name.contains('/') || name.contains(':') {
        return Err(ValidationError(format!("Invalid model name '{name}'. Names cannot contain '/' or ':'.")));
    }
    if name == "." || name == ".." {
        return Err(ValidationError(format!(
            "Invalid value \"{name}\" for parameter 'name' supplied: Names may be treated as files in certain cases, \
             and must not resolve to other names when treated as such."
        )));
    }
    if name.chars().count() > MAX_MODEL_NAME_LENGTH {
        return Err(ValidationError(format!(
            "'name' exceeds the maximum length of {MAX_MODEL_NAME_LENGTH} characters"
        )));
    }
    Ok(())
}

/// An alias name as MLflow accepts it anywhere: letters, digits, `_` and `-`, at most 255.
pub fn validate_alias(alias: &str) -> Result<(), ValidationError> {
    if alias.is_empty() {
        return Err(ValidationError("Registered model alias name cannot be empty.".into()));
    }
    if !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(ValidationError(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        )));
    }
    if alias.chars().count() > MAX_ALIAS_LENGTH {
        return Err(ValidationError(format!(
            "Registered model alias name exceeds the maximum length of {MAX_ALIAS_LENGTH} characters"
        )));
    }
    Ok(())
}

/// An alias that may be set: [`validate_alias`], and not one of the names `models:/` URIs
/// reserve (`latest`, and `v1`, `V2`, ... which name versions).
pub fn validate_new_alias(alias: &str) -> Result<(), ValidationError> {
    validate_alias(alias)?;
    if alias.eq_ignore_ascii_case("latest") {
        return Err(ValidationError("'latest' alias name (case insensitive) is reserved.".into()));
    }
    let mut chars = alias.chars();
    if matches!(chars.next(), Some('v' | 'V')) && alias.len() > 1 && chars.all(|c| c.is_ascii_digit()) {
        return Err(ValidationError(format!("Version alias name '{alias}' is reserved.")));
    }
    Ok(())
}

/// A version number as the client sends it (a decimal string).
pub fn parse_version(raw: &str) -> Result<i64, ValidationError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ValidationError(format!("Parameter 'version' must be an integer, got '{raw}'.")))
}

/// MLflow's legacy model-version stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::None, Stage::Staging, Stage::Production, Stage::Archived];

    /// Any case, as MLflow's `get_canonical_stage` accepts.
    pub fn parse(raw: &str) -> Result<Stage, ValidationError> {
        Stage::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(raw)).ok_or_else(|| {
            ValidationError(format!(
                "Invalid Model Version stage: {raw}. Value must be one of None, Staging, Production, Archived."
            ))
        })
    }

    /// The canonical spelling, also the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Staging and Production: the stages whose other versions a transition may archive.
    pub fn is_active(self) -> bool {
        matches!(self, Stage::Staging | Stage::Production)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert!(validate_model_name("fraud-detector v2").is_ok());
        assert!(validate_model_name("  ").is_err());
        assert!(validate_model_name("a/b").unwrap_err().0.contains("cannot contain"));
        assert!(validate_model_name("a:b").is_err());
        assert!(validate_model_name("..").is_err());
        assert!(validate_model_name(&"x".repeat(257)).is_err());
    }

    #[test]
    fn aliases() {
        assert!(validate_new_alias("champion").is_ok());
        assert!(validate_new_alias("prod_2-b").is_ok());
        assert!(validate_new_alias("vip").is_ok(), "only v + digits is reserved");
        assert_eq!(validate_new_alias("v3").unwrap_err().0, "Version alias name 'v3' is reserved.");
        assert!(validate_new_alias("V12").is_err());
        assert!(validate_new_alias("Latest").is_err());
        assert!(validate_alias("latest").is_ok(), "reserved only for setting");
        assert!(validate_alias("").is_err());
        assert!(validate_alias("a.b").unwrap_err().0.starts_with("Invalid alias name: 'a.b'."));
        assert!(validate_alias(&"a".repeat(256)).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(" 3 "), Ok(3));
        assert_eq!(parse_version("x").unwrap_err().0, "Parameter 'version' must be an integer, got 'x'.");
        assert!(parse_version("0").is_err());
        assert!(parse_version("-1").is_err());
    }

    #[test]
    fn stages() {
        assert_eq!(Stage::parse("production"), Ok(Stage::Production));
        assert_eq!(Stage::parse("NONE"), Ok(Stage::None));
        assert!(Stage::parse("Deleted").unwrap_err().0.starts_with("Invalid Model Version stage: Deleted."));
        assert!(Stage::Staging.is_active() && !Stage::Archived.is_active());
    }
}
