//! `cairn`: the server and its admin commands.

mod admin;
mod audit;
mod client;
mod config;
mod serve;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{DataArgs, ServeArgs};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: experiment tracking, model registry, datasets and training jobs for ML teams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (embedded PostgreSQL unless DATABASE_URL is set)
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit
    Migrate(DataArgs),
    /// Manage user accounts
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage API tokens
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Verify the audit log (in the database or an export file) and anchor its head
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Push, pull and inspect versioned datasets (client: CAIRN_URL, CAIRN_TOKEN)
    #[command(subcommand)]
    Dataset(client::dataset::DatasetCommand),
    /// Submit, follow, cancel and retrain training jobs (client: CAIRN_URL, CAIRN_TOKEN)
    #[command(subcommand)]
    Job(client::job::JobCommand),
    /// Deploy model versions, roll out, roll back (client: CAIRN_URL, CAIRN_TOKEN)
    #[command(subcommand)]
    Deploy(client::deploy::DeployCommand),
    /// Projects, members and roles, service accounts and their tokens (client: CAIRN_URL, CAIRN_TOKEN)
    #[command(subcommand)]
    Project(client::project::ProjectCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Migrate(args) => admin::migrate(args).await,
            Command::User(cmd) => admin::user(cmd).await,
            Command::Token(cmd) => admin::token(cmd).await,
            Command::Audit(cmd) => audit::audit(cmd).await,
            Command::Dataset(cmd) => client::dataset::run(cmd).await,
            Command::Job(cmd) => client::job::run(cmd).await,
            Command::Deploy(cmd) => client::deploy::run(cmd).await,
            Command::Project(cmd) => client::project::run(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
