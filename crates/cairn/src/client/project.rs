//! `cairn project list|show|create|update|member|service-account|token`: projects, their
//! members and roles, service accounts and their project-scoped tokens.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::job::text;
use super::{Api, ClientArgs};

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// List the projects you can read, with your role in each
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a project: settings, members, service accounts
    Show {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a project (server admins)
    Create {
        /// Lower-case letters, digits, '.', '_' and '-'
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The role every account gets there: viewer or member (default: members only)
        #[arg(long)]
        everyone_role: Option<String>,
        /// The user name of its first owner
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add members, change their roles, remove them (owners)
    #[command(subcommand)]
    Member(MemberCommand),
    /// Service accounts: accounts for CI that cannot log in (owners)
    #[command(subcommand)]
    ServiceAccount(ServiceAccountCommand),
    /// Tokens of service accounts, limited to their project (owners)
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Add USER to the project with ROLE, or change their role
    Set {
        user: String,
        /// owner, member or viewer
        role: String,
        #[arg(long)]
        project: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove USER from the project
    Remove {
        user: String,
        #[arg(long)]
        project: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
pub enum ServiceAccountCommand {
    /// Create service account NAME (user NAME@PROJECT)
    Create {
        name: String,
        #[arg(long)]
        project: String,
        /// member (default) or viewer
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the project's service accounts and their tokens
    List {
        #[arg(long)]
        project: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a service account and print it (shown once)
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        service_account: String,
        /// write (default) or read
        #[arg(long)]
        scope: Option<String>,
        /// A name to recognise the token by (default: the service account's)
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a service account's token
    Revoke {
        id: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        service_account: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// A path segment: names are URL-safe already, but a user name may hold '@'.
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

pub async fn run(command: ProjectCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        ProjectCommand::List { json, client } => {
            let api = Api::new(&client)?;
            let answer: Value = api.json(api.request(Method::GET, "/projects")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("{:<24} {:<8} {:<14} DESCRIPTION", "NAME", "ROLE", "EVERYONE");
                for p in answer["projects"].as_array().into_iter().flatten() {
                    let everyone = p["everyone_role"].as_str().unwrap_or("members only");
                    println!(
                        "{:<24} {:<8} {:<14} {}",
                        text(&p["name"]),
                        text(&p["role"]),
                        everyone,
                        text(&p["description"])
                    );
                }
            }
        }
        ProjectCommand::Show { name, json, client } => {
            let api = Api::new(&client)?;
            let path = format!("/projects/{}", segment(&name));
            let mut project: Value = api.json(api.request(Method::GET, &path)).await?;
            let members: Value = api.json(api.request(Method::GET, &format!("{path}/members"))).await?;
            let accounts: Value = api.json(api.request(Method::GET, &format!("{path}/service-accounts"))).await?;
            project["members"] = members["members"].clone();
            project["service_accounts"] = accounts["service_accounts"].clone();
            if json {
                println!("{}", serde_json::to_string_pretty(&project)?);
            } else {
                print_project(&project);
            }
        }
        ProjectCommand::Create { name, description, everyone_role, owner, client } => {
            let api = Api::new(&client)?;
            let body =
                json!({"name": name, "description": description, "everyone_role": everyone_role, "owner": owner});
            let created: Value = api.json(api.request(Method::POST, "/projects").json(&body)).await?;
            println!("created project {}", text(&created["name"]));
        }
        ProjectCommand::Member(MemberCommand::Set { user, role, project, client }) => {
            let api = Api::new(&client)?;
            let path = format!("/projects/{}/members/{}", segment(&project), segment(&user));
            let answer: Value = api.json(api.request(Method::PUT, &path).json(&json!({"role": role}))).await?;
            match answer["previous_role"].as_str() {
                Some(previous) => println!("{user} is now {role} in {project} (was {previous})"),
                None => println!("{user} is now {role} in {project}"),
            }
        }
        ProjectCommand::Member(MemberCommand::Remove { user, project, client }) => {
            let api = Api::new(&client)?;
            let path = format!("/projects/{}/members/{}", segment(&project), segment(&user));
            api.send(api.request(Method::DELETE, &path)).await?;
            println!("removed {user} from {project}");
        }
        ProjectCommand::ServiceAccount(ServiceAccountCommand::Create { name, project, role, client }) => {
            let api = Api::new(&client)?;
            let path = format!("/projects/{}/service-accounts", segment(&project));
            let body = json!({"name": name, "role": role});
            let created: Value = api.json(api.request(Method::POST, &path).json(&body)).await?;
            println!("created service account {} ({})", text(&created["username"]), text(&created["role"]));
        }
        ProjectCommand::ServiceAccount(ServiceAccountCommand::List { project, json, client }) => {
            let api = Api::new(&client)?;
            let path = format!("/projects/{}/service-accounts", segment(&project));
            let answer: Value = api.json(api.request(Method::GET, &path)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_service_accounts(&answer["service_accounts"]);
            }
        }
        ProjectCommand::Token(TokenCommand::Create {
            project,
            service_account,
            scope,
            name,
            expires_in_days,
            client,
        }) => {
            let api = Api::new(&client)?;
            let path = format!("/projects/{}/service-accounts/{}/tokens", segment(&project), segment(&service_account));
            let body = json!({"name": name, "scope": scope, "expires_in_days": expires_in_days});
            let created: Value = api.json(api.request(Method::POST, &path).json(&body)).await?;
            eprintln!(
                "token {} ({}, {}) for {service_account}@{project}; store it now, it is shown once:",
                text(&created["id"]),
                text(&created["name"]),
                text(&created["scope"])
            );
            println!("{}", text(&created["token"]));
        }
        ProjectCommand::Token(TokenCommand::Revoke { id, project, service_account, client }) => {
            let api = Api::new(&client)?;
            let path = format!(
                "/projects/{}/service-accounts/{}/tokens/{}",
                segment(&project),
                segment(&service_account),
                segment(&id)
            );
            api.send(api.request(Method::DELETE, &path)).await?;
            println!("revoked token {id}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_project(p: &Value) {
    let limit = |v: &Value| if v.is_null() { "no limit".to_owned() } else { v.to_string() };
    println!("project      {}", text(&p["name"]));
    println!("description  {}", text(&p["description"]));
    println!("your role    {}", text(&p["role"]));
    println!("everyone     {}", p["everyone_role"].as_str().unwrap_or("members only"));
    println!(
        "gpu quotas   {} at once, {} hours a month",
        limit(&p["max_concurrent_gpus"]),
        limit(&p["monthly_gpu_hours"])
    );
    println!("members");
    for m in p["members"].as_array().into_iter().flatten() {
        let kind = if m["service_account"] == true { " (service account)" } else { "" };
        println!("  {:<32} {}{kind}", text(&m["username"]), text(&m["role"]));
    }
    println!("service accounts");
    print_service_accounts(&p["service_accounts"]);
}

fn print_service_accounts(accounts: &Value) {
    for a in accounts.as_array().into_iter().flatten() {
        println!("  {} ({})", text(&a["username"]), text(&a["role"]));
        for t in a["tokens"].as_array().into_iter().flatten() {
            let state = if t["revoked_at"].is_null() { "" } else { " revoked" };
            println!("    {}  {:<20} {}{state}", text(&t["id"]), text(&t["name"]), text(&t["scope"]));
        }
    }
}
