//! Cairn's PostgreSQL layer: connection pool, the embedded cluster launcher, the embedded
//! migrations and one repository module per aggregate. Repositories take an executor
//! (pool or transaction) and hold no HTTP types.

pub mod audit;
pub mod datadir_lock;
pub mod datasets;
pub mod deployments;
pub mod embedded;
pub mod job_listing;
pub mod job_templates;
pub mod job_usage;
pub mod jobs;
pub mod lineage;
pub mod paging;
pub mod pool;
pub mod projects;
pub mod provenance;
pub mod registry;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod tracking;
pub mod users;

pub use pool::{Db, DbError};

/// The migrations under the top-level `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
