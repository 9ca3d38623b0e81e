//! `cairn serve`: lock the data dir, bring up the database (embedded or external), migrate,
//! bootstrap the admin, open storage, serve until SIGTERM/SIGINT, then shut down cleanly.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cairn_db::datadir_lock::DataDirLock;
use cairn_server::Application;
use cairn_server::accounts::{self, Bootstrap};
use cairn_storage::Storage;

use crate::admin::open_database;
use crate::config::{self, ExecutorKind, ServeArgs};
use crate::telemetry;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let resolved = config::resolve_serve(&args)?;
    telemetry::init(resolved.log_format);
    std::fs::create_dir_all(&resolved.data.data_dir)
        .with_context(|| format!("cannot create data directory {}", resolved.data.data_dir.display()))?;
    let lock = DataDirLock::acquire(&resolved.data.data_dir)?;
    let (db, embedded) = open_database(&resolved.data, true).await?;
    db.migrate().await.context("applying database migrations")?;

    let password_file = resolved.data.data_dir.join("initial-admin-password");
    match accounts::bootstrap_admin(&db, resolved.admin_password.as_ref().map(|s| s.expose())).await? {
        Bootstrap::Existing => {}
        Bootstrap::FromConfig => {
            tracing::info!("created user admin with the password from CAIRN_ADMIN_PASSWORD")
        }
        Bootstrap::Generated(password) => {
            write_private(&password_file, &format!("{password}\n"))?;
            println!("Created user `admin` with password: {password}");
            println!("(also saved to {}, readable only by you; this is shown once)", password_file.display());
        }
    }
    match (resolved.executor, &resolved.server.kubernetes) {
        (ExecutorKind::Kubernetes, Some(k8s)) => {
            tracing::info!(namespace = %k8s.namespace, "jobs run as Kubernetes pods")
        }
        _ => tracing::info!("jobs run as processes on this host"),
    }

    let storage = Storage::from_url(&resolved.storage_url)?;
    storage.check().await.with_context(|| format!("artifact storage {} is not reachable", resolved.storage_url))?;
    let app = Application::build(resolved.server, db.clone(), storage).await?;
    let url = format!("http://{}", app.local_addr());
    println!("Cairn is listening on {url}");
    if password_file.exists() {
        println!("Log in as `admin`; the initial password is in {}", password_file.display());
    }
    tracing::info!(%url, data_dir = %resolved.data.data_dir.display(), "cairn started");

    let served = app.run_until(shutdown_signal()).await;
    tracing::info!("shutting down");
    db.pool.close().await;
    if let Some(embedded) = embedded {
        embedded.stop().await.context("stopping the embedded PostgreSQL cluster")?;
    }
    drop(lock);
    served.context("serving HTTP")?;
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
