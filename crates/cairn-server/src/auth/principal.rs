//! The authenticated caller.

use cairn_core::Role;
use uuid::Uuid;

use super::TokenScope;

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub credential: Credential,
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A dashboard session; state-changing requests must echo its CSRF token.
    Session {
        csrf_token: String,
    },
    Token {
        id: Uuid,
        scope: TokenScope,
        /// The only project a project-scoped token may touch.
        project: Option<i64>,
        /// A job's token: the run it may change (with the runs nested under it).
        run: Option<Uuid>,
    },
    Basic,
}

impl Principal {
    /// Whether this caller may change data: members and admins, unless they came with a
    /// read-only token.
    pub fn can_write(&self) -> bool {
        let token_allows = !matches!(self.credential, Credential::Token { scope: TokenScope::Read, .. });
        self.role >= Role::Member && token_allows
    }

    /// The run a job's token is limited to.
    pub fn token_run(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Token { run, .. } => run,
            _ => None,
        }
    }

    /// The project a project-scoped token is limited to.
    pub fn token_project(&self) -> Option<i64> {
        match self.credential {
            Credential::Token { project, .. } => project,
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.can_write()
    }
}
