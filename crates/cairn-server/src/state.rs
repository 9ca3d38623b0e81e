//! The state shared by every handler.

use std::sync::Arc;

use cairn_db::Db;
use cairn_storage::Storage;

use crate::auth::{BasicAuthCache, LoginLimiter, TokenKeys};
use crate::config::ServerConfig;
use crate::ops::HttpMetrics;

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

pub struct App {
    pub config: ServerConfig,
    pub db: Db,
    pub storage: Storage,
    pub token_keys: TokenKeys,
    pub login_limiter: LoginLimiter,
    pub basic_cache: BasicAuthCache,
    pub metrics: HttpMetrics,
    /// Where deployments answer, and their request metrics.
    pub serving: crate::deployments::Serving,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}
