//! Admin commands: `migrate`, `user ...`, `token ...` (and `audit ...` in [`crate::audit`]). They work whether
//! the server is running or not: with the embedded database they attach to the running
//! server's cluster, or start the cluster for the length of the command.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_core::Role;
use cairn_db::datadir_lock::DataDirLock;
use cairn_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use cairn_db::{Db, projects, tokens, users};
use cairn_server::accounts::{self, TokenRequest};
use cairn_server::audit::Actor;
use cairn_server::auth::TokenScope;
use chrono::{Duration, Utc};
use clap::Subcommand;
use uuid::Uuid;

use crate::config::{self, DataArgs, DataConfig, Database};

/// Connects to the configured database; for the embedded one, starts the cluster (the
/// caller must hold the data-dir lock) or attaches to the running server's cluster.
pub async fn open_database(data: &DataConfig, start_embedded: bool) -> anyhow::Result<(Db, Option<EmbeddedPostgres>)> {
    match &data.database {
        Database::External(url) => {
            let options = url.expose().parse().context("invalid DATABASE_URL")?;
            let db = Db::connect(options, 16).await.context("connecting to PostgreSQL at DATABASE_URL")?;
            Ok((db, None))
        }
        Database::Embedded { cluster_dir } => {
            let cluster = if start_embedded {
                // If cairn dies without cleaning up, the kernel stops the cluster too, so a
                // restart never finds an orphaned postmaster holding the data directory.
                let options =
                    EmbeddedOptions { cluster_dir: cluster_dir.clone(), ephemeral: false, stop_with_parent: true };
                EmbeddedPostgres::start(options).await?
            } else {
                EmbeddedPostgres::attach(cluster_dir)
                    .await?
                    .context("the Cairn server holds the data directory but its database is not running yet; try again in a moment")?
            };
            let db = Db::connect(cluster.connect_options("cairn"), 16)
                .await
                .context("connecting to the embedded PostgreSQL cluster")?;
            // An attached cluster belongs to the server: hand back no handle so it is not stopped.
            Ok((db, start_embedded.then_some(cluster)))
        }
    }
}

/// The database for one admin command, and what must be released after it.
struct AdminDb {
    db: Db,
    embedded: Option<EmbeddedPostgres>,
    _lock: Option<DataDirLock>,
}

impl AdminDb {
    async fn open(args: &DataArgs) -> anyhow::Result<AdminDb> {
        let data = config::resolve_data_only(args)?;
        let (lock, start) = match &data.database {
            Database::External(_) => (None, false),
            Database::Embedded { .. } => {
                std::fs::create_dir_all(&data.data_dir)
                    .with_context(|| format!("cannot create data directory {}", data.data_dir.display()))?;
                match DataDirLock::try_acquire(&data.data_dir)? {
                    Some(lock) => (Some(lock), true),
                    None => (None, false),
                }
            }
        };
        let (db, embedded) = open_database(&data, start).await?;
        db.migrate().await.context("applying database migrations")?;
        Ok(AdminDb { db, embedded, _lock: lock })
    }

    async fn close(self) -> anyhow::Result<()> {
        self.db.pool.close().await;
        if let Some(cluster) = self.embedded {
            cluster.stop().await?;
        }
        Ok(())
    }
}

pub(crate) fn cli_actor() -> Actor {
    let os_user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Actor { user_id: None, name: format!("cli:{os_user}"), request_id: None, client_addr: None }
}

/// Runs `f` against the admin database and always releases it.
pub(crate) async fn with_db<F, Fut>(args: &DataArgs, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let admin = AdminDb::open(args).await?;
    let result = f(admin.db.clone()).await;
    admin.close().await?;
    result
}

pub async fn migrate(args: DataArgs) -> anyhow::Result<ExitCode> {
    with_db(&args, |db| async move {
        let applied = db.applied_migrations().await?;
        println!("ok: database schema is current ({applied} migrations applied)");
        Ok(ExitCode::SUCCESS)
    })
    .await
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (prompts for the password when --password is not given)
    Add {
        name: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value = "member")]
        role: Role,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List users
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Change a user's role
    SetRole {
        name: String,
        role: Role,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set a new password (prompts when --password is not given)
    SetPassword {
        name: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable an account: its sessions end and its tokens stop working
    Disable {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Re-enable a disabled account
    Enable {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// The password from the flag, an interactive prompt, or one line of standard input.
fn read_password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let actor = cli_actor();
    match cmd {
        UserCommand::Add { name, password, role, data } => {
            let password = read_password(password)?;
            with_db(&data, |db| async move {
                accounts::create_user(&db, &actor, &name, &password, role).await?;
                println!("created user {name} ({role})");
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        UserCommand::List { json, data } => with_db(&data, |db| async move {
            let rows = users::list(&db.pool).await?;
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|u| serde_json::json!({"username": u.username, "role": u.role, "disabled": u.disabled, "created_at": u.created_at}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<24} {:<8} {:<9} CREATED", "NAME", "ROLE", "STATUS");
                for u in rows {
                    let status = if u.disabled { "disabled" } else { "active" };
                    println!("{:<24} {:<8} {:<9} {}", u.username, u.role, status, u.created_at.format("%Y-%m-%d %H:%M"));
                }
            }
            Ok(ExitCode::SUCCESS)
        })
        .await,
        UserCommand::SetRole { name, role, data } => with_db(&data, |db| async move {
            accounts::set_role(&db, &actor, &name, role).await?;
            println!("user {name} is now {role}");
            Ok(ExitCode::SUCCESS)
        })
        .await,
        UserCommand::SetPassword { name, password, data } => {
            let password = read_password(password)?;
            with_db(&data, |db| async move {
                accounts::set_password(&db, &actor, &name, &password).await?;
                println!("password of {name} changed; their dashboard sessions were ended");
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        UserCommand::Disable { name, data } => with_db(&data, |db| async move {
            accounts::set_disabled(&db, &actor, &name, true).await?;
            println!("user {name} is disabled");
            Ok(ExitCode::SUCCESS)
        })
        .await,
        UserCommand::Enable { name, data } => with_db(&data, |db| async move {
            accounts::set_disabled(&db, &actor, &name, false).await?;
            println!("user {name} is enabled");
            Ok(ExitCode::SUCCESS)
        })
        .await,
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue an API token for a user and print it (shown once)
    Create {
        /// The token's owner
        #[arg(long)]
        user: String,
        /// A name to recognise the token by
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long, default_value = "write")]
        scope: TokenScope,
        /// Limit the token to this project: it sees and changes nothing else
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List tokens (all users, or one with --user)
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a token by id
    Revoke {
        id: Uuid,
        #[command(flatten)]
        data: DataArgs,
    },
}

pub async fn token(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let actor = cli_actor();
    match cmd {
        TokenCommand::Create { user, name, expires_in_days, scope, project, data } => with_db(&data, |db| async move {
            let owner = users::find_by_name(&db.pool, &user).await?.with_context(|| format!("no user named {user:?}"))?;
            let project_id = match &project {
                Some(p) => Some(projects::find_by_name(&db.pool, p).await?.with_context(|| format!("no project named {p:?}"))?.id),
                None => None,
            };
            if expires_in_days.is_some_and(|d| d == 0 || d > 3650) {
                bail!("--expires-in-days must be between 1 and 3650");
            }
            let keys = accounts::token_keys(&db, config::secret_from_env("CAIRN_JWT_SECRET")?.as_ref().map(|s| s.expose())).await?;
            let expires_at = expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d)));
            let issued = accounts::create_token(&db, &keys, &actor, &owner, TokenRequest { name: &name, scope, expires_at, project_id }).await?;
            eprintln!("token {} ({}) for {user}; store it now, it is shown once:", issued.row.id, issued.row.name);
            println!("{}", issued.token);
            Ok(ExitCode::SUCCESS)
        })
        .await,
        TokenCommand::List { user, json, data } => with_db(&data, |db| async move {
            let mut rows = tokens::list_all(&db.pool).await?;
            if let Some(user) = &user {
                rows.retain(|(_, owner)| owner == user);
            }
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(t, owner)| serde_json::json!({"id": t.id, "user": owner, "name": t.name, "scope": t.scope, "created_at": t.created_at, "expires_at": t.expires_at, "revoked_at": t.revoked_at, "last_used_at": t.last_used_at}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<36} {:<16} {:<20} {:<6} STATUS", "ID", "USER", "NAME", "SCOPE");
                for (t, owner) in rows {
                    let status = match (t.revoked_at, t.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(at)) if at <= Utc::now() => "expired",
                        _ => "active",
                    };
                    println!("{:<36} {:<16} {:<20} {:<6} {status}", t.id, owner, t.name, t.scope);
                }
            }
            Ok(ExitCode::SUCCESS)
        })
        .await,
        TokenCommand::Revoke { id, data } => with_db(&data, |db| async move {
            accounts::revoke_token(&db, &actor, id, true).await?;
            println!("token {id} revoked");
            Ok(ExitCode::SUCCESS)
        })
        .await,
    }
}
