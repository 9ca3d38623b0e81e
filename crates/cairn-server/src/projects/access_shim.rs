//! TEMPORARY stand-in for `crate::access::ProjectAccess` (being written on main), with the
//! same methods, so that this branch compiles before it is merged. Removed at the merge.

use std::collections::HashMap;

use cairn_core::ProjectRole;

#[derive(Debug, Clone, Default)]
pub struct ProjectAccess {
    roles: HashMap<i64, ProjectRole>,
    admin: bool,
    home: i64,
}

impl ProjectAccess {
    pub fn role_in(&self, project_id: i64) -> Option<ProjectRole> {
        if self.admin { Some(ProjectRole::Owner) } else { self.roles.get(&project_id).copied() }
    }

    pub fn readable_projects(&self) -> Option<Vec<i64>> {
        (!self.admin).then(|| self.roles.keys().copied().collect())
    }

    pub fn home_project(&self) -> i64 {
        self.home
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

/// TEMPORARY: puts a stand-in [`ProjectAccess`] into the request (from the guard's
/// principal, or the dashboard session), so that this branch can be tested before the
/// access layer lands. Removed at the merge.
pub async fn insert(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use crate::auth::{Credential, Principal, TokenScope};
    let mut principal = request.extensions().get::<Principal>().cloned();
    if principal.is_none() {
        let jar = axum_extra::extract::CookieJar::from_headers(request.headers());
        principal = crate::auth::session::current(&state, &jar).await.ok().flatten();
    }
    if let Some(principal) = principal {
        let only = crate::accounts::credential_project(&state.db, &principal).await.ok().flatten();
        let admin = principal.role == cairn_core::Role::Admin && only.is_none();
        let read_only = matches!(principal.credential, Credential::Token { scope: TokenScope::Read, .. });
        let rows =
            cairn_db::projects::standings(&state.db.pool, principal.user_id, admin, only).await.unwrap_or_default();
        let roles = rows
            .into_iter()
            .filter_map(|r| {
                let standing = cairn_core::project::Standing {
                    server_role: if only.is_some() && principal.role == cairn_core::Role::Admin {
                        cairn_core::Role::Member
                    } else {
                        principal.role
                    },
                    membership: r.membership.and_then(|m| m.parse().ok()),
                    everyone_role: r.everyone_role.and_then(|m| m.parse().ok()),
                    read_only_credential: read_only,
                };
                standing.effective_role().map(|role| (r.id, role))
            })
            .collect();
        let access = ProjectAccess { roles, admin: admin && !read_only, home: only.unwrap_or(1) };
        request.extensions_mut().insert(access);
    }
    next.run(request).await
}
