//! Projects and the roles people have in them: what decides whether a caller may read or
//! change an object (every object belongs to one project).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::account::{Role, ValidationError};

/// The project every install has, where work lands when no project is chosen.
pub const DEFAULT_PROJECT_ID: i64 = 1;
pub const DEFAULT_PROJECT_NAME: &str = "default";

/// A project name: 1 to 63 characters from lower-case letters, digits and `.`, `_`, `-`,
/// starting with a letter or digit (it appears in URLs and in CLI flags).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        let starts_well = raw.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !starts_well || raw.len() > 63 || !raw.chars().all(valid_char) {
            return Err(ValidationError(format!(
                "invalid project name {raw:?}: use 1 to 63 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role in one project. Ordered by power: a check for `Member` admits owners too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectRole {
    /// Reads everything in the project.
    Viewer,
    /// Also creates and changes experiments, runs, models, datasets, jobs and deployments.
    Member,
    /// Also manages the project: members and their roles, service accounts and their tokens.
    Owner,
}

impl ProjectRole {
    pub const ALL: [ProjectRole; 3] = [ProjectRole::Owner, ProjectRole::Member, ProjectRole::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Member => "member",
            ProjectRole::Owner => "owner",
        }
    }
}

impl FromStr for ProjectRole {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "viewer" => Ok(ProjectRole::Viewer),
            "member" => Ok(ProjectRole::Member),
            "owner" => Ok(ProjectRole::Owner),
            other => Err(ValidationError(format!("unknown project role {other:?}: use owner, member or viewer"))),
        }
    }
}

impl fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decides a caller's role in one project.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    /// The account's server role: admins own every project; a server viewer only reads.
    pub server_role: Role,
    /// The account's membership in the project, if any.
    pub membership: Option<ProjectRole>,
    /// The role the project gives every account (the default project: member).
    pub everyone_role: Option<ProjectRole>,
    /// The credential only reads (a read-scoped token).
    pub read_only_credential: bool,
}

impl Standing {
    /// The caller's role in the project, or None when they may not even see it.
    pub fn effective_role(&self) -> Option<ProjectRole> {
        let granted = if self.server_role == Role::Admin {
            Some(ProjectRole::Owner)
        } else {
            self.membership.max(self.everyone_role)
        }?;
        let read_only = self.read_only_credential || self.server_role == Role::Viewer;
        Some(if read_only { granted.min(ProjectRole::Viewer) } else { granted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(server_role: Role, membership: Option<ProjectRole>, everyone_role: Option<ProjectRole>) -> Standing {
        Standing { server_role, membership, everyone_role, read_only_credential: false }
    }

    #[test]
    fn project_names_are_url_safe() {
        for ok in ["default", "vision-team", "a", "nlp_2.0"] {
            assert!(ProjectName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Vision", "-lead", "has space", "x/y", &"x".repeat(64)] {
            assert!(ProjectName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn membership_and_everyone_role_give_the_higher_role() {
        use ProjectRole::*;
        assert_eq!(standing(Role::Member, None, None).effective_role(), None);
        assert_eq!(standing(Role::Member, Some(Viewer), Some(Member)).effective_role(), Some(Member));
        assert_eq!(standing(Role::Member, Some(Owner), Some(Member)).effective_role(), Some(Owner));
        assert_eq!(standing(Role::Member, None, Some(Viewer)).effective_role(), Some(Viewer));
    }

    #[test]
    fn admins_own_everything_and_viewers_and_read_tokens_only_read() {
        use ProjectRole::*;
        assert_eq!(standing(Role::Admin, None, None).effective_role(), Some(Owner));
        assert_eq!(standing(Role::Viewer, Some(Owner), None).effective_role(), Some(Viewer));
        assert_eq!(standing(Role::Viewer, None, None).effective_role(), None);
        let read_token = Standing { read_only_credential: true, ..standing(Role::Admin, None, None) };
        assert_eq!(read_token.effective_role(), Some(Viewer));
    }

    #[test]
    fn project_roles_order_by_power_and_round_trip() {
        assert!(ProjectRole::Owner > ProjectRole::Member && ProjectRole::Member > ProjectRole::Viewer);
        for role in ProjectRole::ALL {
            assert_eq!(role.as_str().parse::<ProjectRole>(), Ok(role));
        }
    }
}
