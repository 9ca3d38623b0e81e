//! Assembling the server: state, routes and all middleware in one place, and serving with
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use cairn_db::Db;
use cairn_storage::Storage;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{BasicAuthCache, LoginLimiter};
use crate::config::ServerConfig;
use crate::state::{App, AppState};
use crate::{accounts, api, audit, deployments, mlflow, ops, ui};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Binds the listener and builds the router. The database must be migrated already.
    pub async fn build(mut config: ServerConfig, db: Db, storage: Storage) -> Result<Application, BuildError> {
        let token_keys = accounts::token_keys(&db, config.jwt_secret.as_ref().map(|s| s.expose())).await?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| BuildError::Bind(config.listen, e))?;
        // With port 0 the OS picks one; links must name the real one.
        config.listen = listener.local_addr().map_err(|e| BuildError::Bind(config.listen, e))?;
        let state = AppState(Arc::new(App {
            config,
            db,
            storage,
            token_keys,
            login_limiter: LoginLimiter::default(),
            basic_cache: BasicAuthCache::default(),
            metrics: ops::HttpMetrics::default(),
            serving: crate::deployments::Serving::default(),
        }));
        let router = router(&state);
        Ok(Application { listener, router, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.state.config.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let sweeper = tokio::spawn(sweep_expired_sessions(self.state.clone()));
        let executor = crate::jobs::start_executor(&self.state);
        let serving = crate::deployments::runtime::start(&self.state);
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await;
        sweeper.abort();
        executor.stop().await;
        serving.stop().await;
        result
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Db(#[from] cairn_db::DbError),
}

pub fn router(state: &AppState) -> Router {
    let config = &state.config;
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .nest("/api/v1", api::router(state))
        .merge(mlflow::router(state))
        .route("/serve/{name}", any(deployments::gateway::proxy))
        .route("/serve/{name}/{*rest}", any(deployments::gateway::proxy))
        .merge(ui::router(state))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), audit::record_mutations))
        .layer(from_fn_with_state(state.clone(), ops::track_requests))
        .layer(from_fn_with_state(state.clone(), request_timeout))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION, axum::http::header::COOKIE]))
        .with_state(state.clone())
}

/// Answers 408 when a request takes longer than `request_timeout`; except artifact
/// uploads, which take as long as their data keeps coming (their handler fails a body that
/// stalls for `request_timeout`, and caps the size).
async fn request_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if mlflow::artifacts::is_streaming_upload(&request) || api::datasets::is_blob_upload(&request) {
        return next.run(request).await;
    }
    match tokio::time::timeout(state.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

async fn sweep_expired_sessions(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = cairn_db::sessions::delete_expired(&state.db.pool).await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    }
}
