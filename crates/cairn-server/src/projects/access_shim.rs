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
