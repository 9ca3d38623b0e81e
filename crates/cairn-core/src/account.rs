//! Accounts: user names, roles and the password policy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value from outside failed validation; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// A user name: 1 to 64 characters from letters, digits and `.`, `_`, `-`, `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(valid_char) {
            return Err(ValidationError(format!(
                "invalid user name {raw:?}: use 1 to 64 characters from letters, digits, '.', '_', '-' and '@'"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that satisfies the policy. It never prints.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(ValidationError(format!("password too short: use at least {} characters", Self::MIN_LEN)));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError(format!("password too long: use at most {} bytes", Self::MAX_LEN)));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Server-wide role. Ordered by power: a check for `Member` admits admins too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "viewer" => Ok(Role::Viewer),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            other => Err(ValidationError(format!("unknown role {other:?}: use admin, member or viewer"))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_accepts_common_forms_and_rejects_the_rest() {
        for ok in ["admin", "jane.doe", "ci-bot_2", "a@b.c"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "semi;colon", &"x".repeat(65), "ünïcode"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy_and_redacted_debug() {
        assert!(Password::parse("short").is_err());
        let p = Password::parse("long enough").expect("valid");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
    }

    #[test]
    fn roles_order_by_power_and_round_trip() {
        assert!(Role::Admin > Role::Member && Role::Member > Role::Viewer);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
