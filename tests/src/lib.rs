//! The test harness. One private PostgreSQL cluster per test process (system binaries,
//! data in a temp dir, fsync off), one migrated template database, and for each test a
//! fresh database copied from the template and the real application on a random port.
//!
//! Artifacts go to a temp directory, or with [`StorageKind::S3`] to a bucket of a private
//! S3-compatible server ([`s3`]).
//!
//! Set `CAIRN_TEST_DATABASE_URL` (a superuser URL to a `postgres` database) to run against
//! an external server instead of the private cluster.

pub mod fake_serving;
pub mod kube_fake;
pub mod s3;

use std::net::SocketAddr;
use std::sync::OnceLock;

pub use cairn_core::Role as UserRole;
use cairn_db::Db;
use cairn_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use cairn_server::audit::Actor;
use cairn_server::{Application, ServerConfig, accounts};
use cairn_storage::Storage;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const TEMPLATE_DB: &str = "cairn_template";

/// How to reach the test cluster.
struct Cluster {
    /// Options for the maintenance database; `.database(name)` for others.
    options: PgConnectOptions,
    /// URL of the maintenance database, for processes started by tests.
    url: url::Url,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        // Each #[tokio::test] has its own runtime, and a pool dies with the runtime that
        // made it; so set-up runs on a runtime of its own and keeps no pool.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("set-up runtime");
            rt.block_on(start_cluster())
        })
        .join()
        .expect("test cluster set-up panicked")
    })
}

async fn start_cluster() -> Cluster {
    let (options, url) = match std::env::var("CAIRN_TEST_DATABASE_URL") {
        Ok(url) => (url.parse::<PgConnectOptions>().expect("CAIRN_TEST_DATABASE_URL is a PostgreSQL URL"), url),
        Err(_) => {
            remove_stale_clusters();
            let dir = std::env::temp_dir().join(format!("cairn-test-pg-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let cluster =
                EmbeddedPostgres::start(EmbeddedOptions { cluster_dir: dir, ephemeral: true, stop_with_parent: true })
                    .await
                    .expect("start the private test PostgreSQL cluster");
            let options = cluster.connect_options("postgres");
            let url = cluster.database_url("postgres");
            // The cluster lives as long as this process: the postmaster gets SIGINT when
            // the process exits (PDEATHSIG), so the handle must not stop it on drop.
            std::mem::forget(cluster);
            (options, url)
        }
    };
    let url = url::Url::parse(&url).expect("cluster URL");
    let mut conn = PgConnection::connect_with(&options).await.expect("connect to the test cluster");
    // Separate statements: a multi-statement string runs as one transaction, and these
    // statements refuse to run inside one.
    for statement in
        [format!("DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)"), format!("CREATE DATABASE {TEMPLATE_DB}")]
    {
        sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut conn).await.expect("create the template database");
    }
    let template = Db::connect(options.clone().database(TEMPLATE_DB), 2).await.expect("connect to the template");
    template.migrate().await.expect("migrate the template");
    template.pool.close().await;
    Cluster { options, url }
}

/// Removes clusters left behind by test processes that no longer run.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix("cairn-test-pg-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn create_database() -> String {
    let cluster = cluster();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect_with(&cluster.options).await.expect("connect to the test cluster");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    name
}

/// A fresh, migrated database of its own for one test.
pub async fn fresh_db() -> Db {
    let name = create_database().await;
    Db::connect(cluster().options.clone().database(&name), 8).await.expect("connect to the test database")
}

/// The URL of a fresh, migrated database, for a `cairn` process started by a test.
pub async fn fresh_database_url() -> String {
    let name = create_database().await;
    let mut url = cluster().url.clone();
    url.set_path(&name);
    url.to_string()
}

/// The running application and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub url: String,
    pub db: Db,
    /// The app's artifact store, to look behind the API.
    pub storage: Storage,
    /// A client without cookies or redirects: each request stands alone.
    pub client: reqwest::Client,
    /// The local store's directory, removed with the app.
    _storage_dir: Option<tempfile::TempDir>,
}

/// Where a test app keeps artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// A fresh temp directory.
    Local,
    /// A fresh bucket on the test process's S3 server ([`s3::s3_server`]).
    S3,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with `adjust` applied to the default test configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    spawn_app_on_with(StorageKind::Local, adjust).await
}

/// Starts the app with its artifacts in a fresh bucket of the test S3 server.
pub async fn spawn_app_on_s3() -> TestApp {
    spawn_app_on(StorageKind::S3).await
}

pub async fn spawn_app_on(kind: StorageKind) -> TestApp {
    spawn_app_on_with(kind, |_| {}).await
}

pub async fn spawn_app_on_with(kind: StorageKind, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    match kind {
        StorageKind::Local => {
            let dir = tempfile::tempdir().expect("storage dir");
            let storage = Storage::local(dir.path()).expect("storage");
            start_app(storage, Some(dir), adjust).await
        }
        StorageKind::S3 => start_app(s3::s3_server().fresh_storage(), None, adjust).await,
    }
}

/// Starts the app on the given store (one that is unreachable, say).
pub async fn spawn_app_with_storage(storage: Storage, adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    start_app(storage, None, adjust).await
}

async fn start_app(
    storage: Storage,
    storage_dir: Option<tempfile::TempDir>,
    adjust: impl FnOnce(&mut ServerConfig),
) -> TestApp {
    let db = fresh_db().await;
    accounts::bootstrap_admin(&db, Some(ADMIN_PASSWORD)).await.expect("bootstrap admin");
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    adjust(&mut config);
    let app = Application::build(config, db.clone(), storage.clone()).await.expect("build app");
    let addr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        url: format!("http://{addr}"),
        db,
        storage,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        _storage_dir: storage_dir,
    }
}

/// An app a test stops, to start another on the same database and store (a restart).
pub struct StoppableApp {
    pub app: TestApp,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl StoppableApp {
    /// Starts the app on `db` (a fresh one when `None`) and `storage`.
    pub async fn start(db: Option<Db>, storage: Storage, adjust: impl FnOnce(&mut ServerConfig)) -> StoppableApp {
        let db = match db {
            Some(db) => db,
            None => fresh_db().await,
        };
        accounts::bootstrap_admin(&db, Some(ADMIN_PASSWORD)).await.expect("bootstrap admin");
        let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        adjust(&mut config);
        let app = Application::build(config, db.clone(), storage.clone()).await.expect("build app");
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let app = TestApp {
            addr,
            url: format!("http://{addr}"),
            db,
            storage,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            _storage_dir: None,
        };
        StoppableApp { app, stop, done }
    }

    /// Stops serving and the job executor, as a server process that exits.
    pub async fn stop(self) -> (Db, Storage) {
        let _ = self.stop.send(());
        self.done.await.expect("the app task").expect("the app stopped cleanly");
        (self.app.db.clone(), self.app.storage.clone())
    }
}

impl TestApp {
    /// Another handle on the same app (the store's directory stays with this one).
    pub fn handle(&self) -> TestApp {
        TestApp {
            addr: self.addr,
            url: self.url.clone(),
            db: self.db.clone(),
            storage: self.storage.clone(),
            client: self.client.clone(),
            _storage_dir: None,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Creates a user directly through the service layer.
    pub async fn add_user(&self, name: &str, password: &str, role: UserRole) {
        accounts::create_user(&self.db, &Actor::system("test"), name, password, role).await.expect("create user");
    }

    /// Issues an API token for `user` through the API, with Basic auth.
    pub async fn token_for(&self, user: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.at("/api/v1/tokens"))
            .basic_auth(user, Some(password))
            .json(&serde_json::json!({"name": "test"}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "token creation for {user}");
        let body: serde_json::Value = response.json().await.expect("json");
        body["token"].as_str().expect("token in body").to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token_for("admin", ADMIN_PASSWORD).await
    }

    /// GET `path` with a Bearer token, and its body as JSON (whatever the status).
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self.client.get(self.at(path)).bearer_auth(token).send().await.expect("request");
        response.json().await.expect("json")
    }

    /// A client that keeps cookies, as a browser does.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }
}

/// The value of `<input name="NAME" value="...">` in an HTML page.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}
