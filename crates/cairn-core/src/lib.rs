//! Cairn's domain: validated names and roles shared by every layer. No I/O lives here;
//! values are parsed once at the boundary so the inside of the system only sees valid ones.

pub mod account;
pub mod dataset;
pub mod job;
pub mod lineage;
pub mod project;
pub mod registry;
pub mod search;
pub mod tabular;
pub mod tracking;

pub use account::{Password, Role, Username, ValidationError};
pub use project::{ProjectName, ProjectRole};
