//! Dataset names and references (`NAME` or `NAME@VERSION`), as the API, the CLI and job
//! specs write them.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;

const MAX_NAME_LEN: usize = 100;

/// Letters, digits, `.`, `_` and `-`, starting with a letter or digit: safe in URLs, paths
/// and `NAME@VERSION` references.
pub fn validate_dataset_name(name: &str) -> Result<(), ValidationError> {
    let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let chars_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.len() > MAX_NAME_LEN || !starts_well || !chars_ok {
        return Err(ValidationError(format!(
            "invalid dataset name {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-', \
             starting with a letter or digit"
        )));
    }
    Ok(())
}

/// `NAME` (the latest version) or `NAME@VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRef {
    pub name: String,
    pub version: Option<i32>,
}

impl FromStr for DatasetRef {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = match s.split_once('@') {
            Some((name, v)) => {
                let version = v.parse::<i32>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    ValidationError(format!("invalid dataset version {v:?} in {s:?}: use NAME@N with N = 1, 2, ..."))
                })?;
                (name, Some(version))
            }
            None => (s, None),
        };
        validate_dataset_name(name)?;
        Ok(DatasetRef { name: name.to_owned(), version })
    }
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_or_without_a_version() {
        assert_eq!("imgs".parse::<DatasetRef>().unwrap(), DatasetRef { name: "imgs".into(), version: None });
        assert_eq!(
            "a.b-c_1@12".parse::<DatasetRef>().unwrap(),
            DatasetRef { name: "a.b-c_1".into(), version: Some(12) }
        );
        for bad in ["", "@1", "x@", "x@0", "x@-1", "x@v2", "../x", "a/b", "-x", "a b", &"n".repeat(101)] {
            assert!(bad.parse::<DatasetRef>().is_err(), "{bad:?}");
        }
    }
}
