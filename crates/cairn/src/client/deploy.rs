//! `cairn deploy create|list|show|update|rollback|delete|logs`: model deployments, served at
//! `POST <server>/serve/NAME/invocations`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::job::{key_value, text};
use super::{Api, ClientArgs};

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Deploy a model version (or follow an alias) under NAME and print its endpoint
    Create {
        /// Lowercase letters, digits and '-' (the endpoint is /serve/NAME)
        name: String,
        /// The registered model
        #[arg(long)]
        model: String,
        #[command(flatten)]
        serves: ServesArgs,
        /// local or kubernetes (default: where the server runs jobs)
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List deployments
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a deployment: status, revision, endpoint URL, metrics and revision history
    Show {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Serve another version (or alias) or change settings: a new revision
    Update {
        name: String,
        #[command(flatten)]
        serves: ServesArgs,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Serve the version of an earlier revision again (default: the previous one)
    Rollback {
        name: String,
        #[arg(long)]
        revision: Option<i32>,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop serving and delete the deployment
    Delete {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the serving process's last log lines
    Logs {
        name: String,
        #[arg(long, default_value_t = 200)]
        tail: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(clap::Args)]
pub struct ServesArgs {
    /// The version to serve
    #[arg(long, conflicts_with = "alias")]
    version: Option<i64>,
    /// Follow this alias: serve its version, and roll out the new one when it moves
    #[arg(long)]
    alias: Option<String>,
}

#[derive(clap::Args)]
pub struct SettingsArgs {
    /// Replicas (Kubernetes)
    #[arg(long)]
    replicas: Option<i32>,
    /// CPU per replica, e.g. 500m or 2
    #[arg(long)]
    cpu: Option<String>,
    /// Memory per replica, e.g. 2Gi
    #[arg(long)]
    memory: Option<String>,
    /// GPUs per replica
    #[arg(long)]
    gpus: Option<i32>,
    /// An environment variable K=V of the serving process (repeatable; replaces all)
    #[arg(long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
}

#[derive(clap::Args)]
pub struct WaitArgs {
    /// Wait until the new revision serves (or failed), up to this many seconds
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
}

impl SettingsArgs {
    fn fill(self, serves: ServesArgs, body: &mut Value) {
        let fields = [
            ("version", serves.version.map(|v| json!(v))),
            ("alias", serves.alias.map(|a| json!(a))),
            ("replicas", self.replicas.map(|r| json!(r))),
            ("cpu", self.cpu.map(|c| json!(c))),
            ("memory", self.memory.map(|m| json!(m))),
            ("gpus", self.gpus.map(|g| json!(g))),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                body[field] = value;
            }
        }
        if !self.env.is_empty() {
            body["env"] = json!(self.env.into_iter().collect::<BTreeMap<_, _>>());
        }
    }
}

pub async fn run(command: DeployCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        DeployCommand::Create { name, model, serves, target, settings, wait, client } => {
            if serves.version.is_none() && serves.alias.is_none() {
                bail!("give the version to serve (--version V) or an alias to follow (--alias A)");
            }
            let api = Api::new(&client)?;
            let mut body = json!({"name": name, "model": model});
            if let Some(target) = target {
                body["target"] = json!(target);
            }
            settings.fill(serves, &mut body);
            let created: Value = api.json(api.request(Method::POST, "/deployments").json(&body)).await?;
            return finish(&api, created, wait).await;
        }
        DeployCommand::List { json, client } => {
            let api = Api::new(&client)?;
            let answer: Value = api.json(api.request(Method::GET, "/deployments")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!(
                    "{:<24} {:<24} {:>7} {:>4}  {:<10} {:<8} ENDPOINT",
                    "NAME", "MODEL", "VERSION", "REV", "STATUS", "TARGET"
                );
                for d in answer["deployments"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<24} {:>7} {:>4}  {:<10} {:<8} {}",
                        text(&d["name"]),
                        text(&d["model"]),
                        text(&d["version"]),
                        d["revision"],
                        text(&d["status"]),
                        text(&d["target"]),
                        text(&d["endpoint_url"])
                    );
                }
            }
        }
        DeployCommand::Show { name, json, client } => {
            let api = Api::new(&client)?;
            let mut deployment: Value = api.json(api.request(Method::GET, &format!("/deployments/{name}"))).await?;
            let revisions: Value =
                api.json(api.request(Method::GET, &format!("/deployments/{name}/revisions"))).await?;
            if json {
                deployment["revisions"] = revisions["revisions"].clone();
                println!("{}", serde_json::to_string_pretty(&deployment)?);
            } else {
                print_deployment(&deployment);
                println!("revisions");
                for r in revisions["revisions"].as_array().into_iter().flatten() {
                    println!(
                        "  {:>4}  version {:<6} {:<12} {:<16} {}",
                        r["revision"],
                        r["version"],
                        text(&r["reason"]),
                        text(&r["created_by"]),
                        text(&r["created_at"])
                    );
                }
            }
        }
        DeployCommand::Update { name, serves, settings, wait, client } => {
            let api = Api::new(&client)?;
            let mut body = json!({});
            settings.fill(serves, &mut body);
            let path = format!("/deployments/{name}");
            let updated: Value = api.json(api.request(Method::PATCH, &path).json(&body)).await?;
            return finish(&api, updated, wait).await;
        }
        DeployCommand::Rollback { name, revision, wait, client } => {
            let api = Api::new(&client)?;
            let body = revision.map_or_else(|| json!({}), |r| json!({"revision": r}));
            let path = format!("/deployments/{name}/rollback");
            let rolled: Value = api.json(api.request(Method::POST, &path).json(&body)).await?;
            return finish(&api, rolled, wait).await;
        }
        DeployCommand::Delete { name, client } => {
            let api = Api::new(&client)?;
            api.send(api.request(Method::DELETE, &format!("/deployments/{name}"))).await?;
            println!("deleted {name}");
        }
        DeployCommand::Logs { name, tail, client } => {
            let api = Api::new(&client)?;
            let path = format!("/deployments/{name}/logs?tail={tail}");
            let log = api.send(api.request(Method::GET, &path)).await?.text().await?;
            print!("{log}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Prints the new revision (after waiting for it to serve, when asked); fails when it did not.
async fn finish(api: &Api, mut deployment: Value, wait: WaitArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(secs) = wait.wait {
        let name = text(&deployment["name"]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while deployment["status"] == "pending" && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            deployment = api.json(api.request(Method::GET, &format!("/deployments/{name}"))).await?;
        }
        print_deployment(&deployment);
        if deployment["status"] != "ready" {
            bail!("revision {} is not serving: {}", deployment["revision"], text(&deployment["status_message"]));
        }
    } else {
        println!(
            "{} revision {} ({})",
            text(&deployment["name"]),
            deployment["revision"],
            text(&deployment["endpoint_url"])
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_deployment(d: &Value) {
    let serves = match d["alias"].as_str() {
        Some(alias) => format!("{} version {} (following @{alias})", text(&d["model"]), text(&d["version"])),
        None => format!("{} version {}", text(&d["model"]), text(&d["version"])),
    };
    println!("deployment {}", text(&d["name"]));
    println!("serves     {serves}");
    println!("revision   {}", d["revision"]);
    println!("status     {}  {}", text(&d["status"]), text(&d["status_message"]));
    println!("target     {} (replicas {}, gpus {})", text(&d["target"]), d["replicas"], d["gpus"]);
    println!("endpoint   {}/invocations", text(&d["endpoint_url"]));
    let m = &d["metrics"];
    println!(
        "requests   {} ({} errors), latency p50 {} ms, p95 {} ms, p99 {} ms",
        m["requests"], m["errors"], m["p50_ms"], m["p95_ms"], m["p99_ms"]
    );
}
