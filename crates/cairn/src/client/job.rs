//! `cairn job submit|list|show|logs|cancel|retry|retrain` and `cairn job template save|list`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Subcommand;
use futures::TryStreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Api, ClientArgs};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Queue a job and print its id: `cairn job submit [OPTIONS] -- COMMAND ARGS...`, or from a
    /// template: `cairn job submit --template NAME[@VERSION] [--param K=V]...`
    Submit {
        /// A job template, NAME (its latest version) or NAME@VERSION: its spec with the
        /// given --param, --gpus and --dataset changes; the job records the template version
        #[arg(long, conflicts_with_all = ["env", "timeout", "image", "cpu", "memory"])]
        template: Option<String>,
        /// GPUs the job needs (default: the template's, or 0)
        #[arg(long)]
        gpus: Option<u32>,
        #[command(flatten)]
        spec: SpecArgs,
        #[arg(long, default_value_t = 0)]
        priority: i32,
        /// Follow the job's log until it ends, then exit with its outcome
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
        #[arg(last = true, required_unless_present = "template", conflicts_with = "template")]
        command: Vec<String>,
    },
    /// Save and list job templates (named, versioned specs)
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// List jobs, newest first
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a job: state, run, times, reason, events
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a job's log; with -f, follow it until the job ends
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a queued or running job
    Cancel {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a job's spec again as a new job, and print the new job's id
    Retry {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Retrain: run the job that produced RUN_ID again, with changed params, and print the new job's id
    Retrain {
        run_id: String,
        #[arg(long = "param", value_parser = key_value)]
        params: Vec<(String, String)>,
        /// Replace a dataset input, NAME or NAME@VERSION (repeatable)
        #[arg(long = "dataset")]
        datasets: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `NAME` or `NAME@VERSION`, checked before it goes into a URL path.
fn template_reference(raw: &str) -> anyhow::Result<(&str, Option<u32>)> {
    let (name, version) = match raw.rsplit_once('@') {
        Some((name, version)) => {
            let number = version.parse::<u32>().ok().filter(|v| *v >= 1);
            let number = number.with_context(|| format!("{raw:?}: a template version is a number 1, 2, ..."))?;
            (name, Some(number))
        }
        None => (raw, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        bail!("{name:?} is not a template name: letters, digits, '.', '_' and '-'");
    }
    Ok((name, version))
}

/// What a job or a template spec takes from the command line, besides its command and GPUs.
#[derive(clap::Args)]
pub struct SpecArgs {
    /// The experiment the run goes to, by name or id (default: the template's, or Default)
    #[arg(long)]
    experiment: Option<String>,
    /// A dataset input, NAME or NAME@VERSION (repeatable); NAME is resolved to its latest version on submission
    #[arg(long = "dataset")]
    datasets: Vec<String>,
    /// A parameter K=V (repeatable): logged on the run, exported as CAIRN_PARAM_K, substituted for {{K}}
    #[arg(long = "param", value_parser = key_value)]
    params: Vec<(String, String)>,
    /// An environment variable K=V for the job (repeatable)
    #[arg(long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Seconds before the job is stopped
    #[arg(long)]
    timeout: Option<u64>,
    /// The container image (the Kubernetes executor runs jobs in containers)
    #[arg(long)]
    image: Option<String>,
    /// CPU cores to reserve, e.g. 4 or 500m (CPU-seconds are charged for them; default 1)
    #[arg(long)]
    cpu: Option<String>,
    /// Memory to reserve, e.g. 16Gi
    #[arg(long)]
    memory: Option<String>,
}

impl SpecArgs {
    /// The request body's fields for these options.
    fn body(self) -> Value {
        let mut body = json!({
            "datasets": self.datasets,
            "params": self.params.into_iter().collect::<BTreeMap<_, _>>(),
        });
        if !self.env.is_empty() {
            body["env"] = json!(self.env.into_iter().collect::<BTreeMap<_, _>>());
        }
        if let Some(timeout) = self.timeout {
            body["timeout_secs"] = json!(timeout);
        }
        for (field, value) in [("image", self.image), ("cpu", self.cpu), ("memory", self.memory)] {
            if let Some(value) = value {
                body[field] = json!(value);
            }
        }
        match self.experiment {
            Some(e) if e.chars().all(|c| c.is_ascii_digit()) => body["experiment_id"] = json!(e),
            Some(e) => body["experiment_name"] = json!(e),
            None => {}
        }
        body
    }
}

#[derive(Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per process; boxing clap's flattened args buys nothing")]
pub enum TemplateCommand {
    /// Save a job template, version 1 for a new name or the next version of an existing one:
    /// `cairn job template save NAME [OPTIONS] -- COMMAND ARGS...`; prints NAME@VERSION
    Save {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// GPUs its jobs need
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        client: ClientArgs,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// List job templates (their latest versions)
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

async fn run_template(command: TemplateCommand) -> anyhow::Result<()> {
    match command {
        TemplateCommand::Save { name, description, gpus, spec, client, command } => {
            let api = Api::new(&client)?;
            let mut body = spec.body();
            body["name"] = json!(name);
            body["description"] = json!(description);
            body["command"] = json!(command);
            body["gpus"] = json!(gpus);
            let saved: Value = api.json(api.request(Method::POST, "/job-templates").json(&body)).await?;
            println!("{}@{}", text(&saved["name"]), saved["version"]);
        }
        TemplateCommand::List { json, client } => {
            let api = Api::new(&client)?;
            let answer: Value = api.json(api.request(Method::GET, "/job-templates")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("{:<24} {:>7} {:>4}  {:<24} COMMAND", "NAME", "VERSION", "GPUS", "SAVED");
                for t in answer["templates"].as_array().into_iter().flatten() {
                    let command: Vec<String> =
                        t["spec"]["command"].as_array().into_iter().flatten().map(text).collect();
                    println!(
                        "{:<24} {:>7} {:>4}  {:<24} {}",
                        text(&t["name"]),
                        t["version"],
                        t["spec"]["gpus"],
                        text(&t["created_at"]),
                        command.join(" ")
                    );
                }
            }
        }
    }
    Ok(())
}

pub(super) fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not K=V"))
}

pub async fn run(command: JobCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        JobCommand::Submit { template, gpus, spec, priority, follow, client, command } => {
            let api = Api::new(&client)?;
            let mut body = spec.body();
            body["priority"] = json!(priority);
            let path = match template {
                Some(template) => {
                    let (name, version) = template_reference(&template)?;
                    if let Some(version) = version {
                        body["version"] = json!(version);
                    }
                    if let Some(gpus) = gpus {
                        body["gpus"] = json!(gpus);
                    }
                    format!("/job-templates/{name}/jobs")
                }
                None => {
                    body["command"] = json!(command);
                    body["gpus"] = json!(gpus.unwrap_or(0));
                    "/jobs".to_owned()
                }
            };
            let job: Value = api.json(api.request(Method::POST, &path).json(&body)).await?;
            let id = text(&job["id"]);
            println!("{id}");
            if follow {
                return follow_to_end(&api, &id).await;
            }
        }
        JobCommand::Template { command } => run_template(command).await?,
        JobCommand::List { state, json, client } => {
            let api = Api::new(&client)?;
            let path = state.map_or_else(|| "/jobs".to_owned(), |s| format!("/jobs?state={s}"));
            let answer: Value = api.json(api.request(Method::GET, &path)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("{:<32}  {:<10} {:>4}  {:<24} {:<12} REASON", "ID", "STATE", "GPUS", "CREATED", "BY");
                for job in answer["jobs"].as_array().into_iter().flatten() {
                    println!(
                        "{:<32}  {:<10} {:>4}  {:<24} {:<12} {}",
                        text(&job["id"]),
                        text(&job["state"]),
                        job["gpus"],
                        text(&job["created_at"]),
                        job["created_by"].as_str().unwrap_or("-"),
                        text(&job["reason"])
                    );
                }
            }
        }
        JobCommand::Show { id, json, client } => {
            let api = Api::new(&client)?;
            let job: Value = api.json(api.request(Method::GET, &format!("/jobs/{id}"))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
        }
        JobCommand::Logs { id, follow, client } => {
            let api = Api::new(&client)?;
            stream_log(&api, &id, follow).await?;
        }
        JobCommand::Cancel { id, client } => {
            let api = Api::new(&client)?;
            let job: Value = api.json(api.request(Method::POST, &format!("/jobs/{id}/cancel"))).await?;
            println!("{} {}", text(&job["id"]), text(&job["state"]));
        }
        JobCommand::Retry { id, client } => {
            let api = Api::new(&client)?;
            let job: Value = api.json(api.request(Method::POST, &format!("/jobs/{id}/retry"))).await?;
            println!("{}", text(&job["id"]));
        }
        JobCommand::Retrain { run_id, params, datasets, client } => {
            let api = Api::new(&client)?;
            let body = json!({"params": params.into_iter().collect::<BTreeMap<_, _>>(), "datasets": datasets});
            let job: Value =
                api.json(api.request(Method::POST, &format!("/runs/{run_id}/retrain")).json(&body)).await?;
            println!("{}", text(&job["id"]));
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub(super) fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn print_job(job: &Value) {
    println!("job      {}", text(&job["id"]));
    println!("state    {}  {}", text(&job["state"]), text(&job["reason"]));
    println!("run      {} (experiment {})", text(&job["run_id"]), text(&job["experiment_id"]));
    println!(
        "command  {}",
        job["spec"]["command"].as_array().into_iter().flatten().map(text).collect::<Vec<_>>().join(" ")
    );
    for (label, key) in [("created", "created_at"), ("started", "started_at"), ("finished", "finished_at")] {
        if let Some(at) = job[key].as_str() {
            println!("{label:<8} {at}");
        }
    }
    for event in job["events"].as_array().into_iter().flatten() {
        println!(
            "  {}  {} -> {}  {}",
            text(&event["at"]),
            event["from"].as_str().unwrap_or("-"),
            text(&event["to"]),
            text(&event["reason"])
        );
    }
}

async fn stream_log(api: &Api, id: &str, follow: bool) -> anyhow::Result<()> {
    let path = if follow { format!("/jobs/{id}/logs?follow=true") } else { format!("/jobs/{id}/logs") };
    let response = api.send(api.request(Method::GET, &path)).await?;
    let mut body = response.bytes_stream();
    let mut out = tokio::io::stdout();
    while let Some(chunk) = body.try_next().await.context("reading the log")? {
        out.write_all(&chunk).await?;
        out.flush().await?;
    }
    Ok(())
}

/// Follows the log, then exits 0 if the job succeeded and 1 otherwise.
async fn follow_to_end(api: &Api, id: &str) -> anyhow::Result<std::process::ExitCode> {
    stream_log(api, id, true).await?;
    let job: Value = api.json(api.request(Method::GET, &format!("/jobs/{id}"))).await?;
    match job["state"].as_str() {
        Some("succeeded") => Ok(std::process::ExitCode::SUCCESS),
        Some(state) => {
            eprintln!("job {id} {state}: {}", text(&job["reason"]));
            Ok(std::process::ExitCode::FAILURE)
        }
        None => bail!("the server did not say how job {id} ended"),
    }
}
