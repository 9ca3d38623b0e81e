//! What listings may show. The route table lets any signed-in caller call a listing
//! ([`crate::access::policy::Policy::Signed`]); the listing itself then shows only what is
//! in the projects the caller can read. [`Visible`] carries those projects from the
//! request's [`ProjectAccess`] to the repositories as a plain `Option<&[i64]>` (None: every
//! project, for server admins), and names them for "Project" columns.
//!
//! A request without a [`ProjectAccess`] (which the access check does not let through)
//! sees nothing: the filter fails closed.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::access::ProjectAccess;

/// The projects a caller can read, for filtering listings.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    /// None: every project (server admins with an unrestricted credential).
    readable: Option<Vec<i64>>,
    /// The names of the projects the caller can see (admins: all of them).
    names: HashMap<i64, String>,
}

/// What lists say in place of a name from a project the caller cannot read.
pub const HIDDEN: &str = "(in a project you cannot read)";

impl Visible {
    pub fn of(access: Option<&ProjectAccess>) -> Visible {
        match access {
            None => Visible::default_closed(),
            Some(access) => Visible {
                readable: access.readable_projects(),
                names: access.projects().into_iter().map(|(id, name, _)| (id, name.to_owned())).collect(),
            },
        }
    }

    /// Sees nothing.
    fn default_closed() -> Visible {
        Visible { readable: Some(Vec::new()), names: HashMap::new() }
    }

    /// The filter repositories take: the readable project ids, None for every project.
    pub fn projects(&self) -> Option<&[i64]> {
        self.readable.as_deref()
    }

    pub fn can_read(&self, project_id: i64) -> bool {
        self.readable.as_ref().is_none_or(|ids| ids.contains(&project_id))
    }

    /// The name of a project the caller can read ("" when unknown, e.g. one created after
    /// the request's access was loaded).
    pub fn project_name(&self, project_id: i64) -> &str {
        self.names.get(&project_id).map_or("", String::as_str)
    }

    /// `name` when its project is readable, otherwise [`HIDDEN`].
    pub fn name_in<'a>(&self, project_id: i64, name: &'a str) -> &'a str {
        if self.can_read(project_id) { name } else { HIDDEN }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visible {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Visible::of(parts.extensions.get::<ProjectAccess>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_access_nothing_is_visible() {
        let visible = Visible::of(None);
        assert_eq!(visible.projects(), Some(&[][..]));
        assert!(!visible.can_read(1));
        assert_eq!(visible.name_in(1, "secret"), HIDDEN);
    }
}
