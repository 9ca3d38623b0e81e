//! A run's page: overview (status, times, user, source and commit, parent, environment
//! snapshot, dataset inputs), description, params, latest metrics with one chart per key
//! (drawn by `charts.js` from [`super::series`]), tags, child runs and the top level of its
//! artifacts (browsed further in [`super::artifacts`]). Members edit the
//! description and tags and delete or restore the run with the forms in [`super::run_forms`].

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_db::tracking::dashboard;
use cairn_db::tracking::runs::{self as run_repo, InputRow};
use cairn_db::tracking::search::ViewType;

use super::artifacts::{self, RunArtifactsSummary};
use super::display::{self, When};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::state::AppState;
use crate::tracking;

/// The tag MLflow keeps a run's description in.
pub const NOTE_TAG: &str = "mlflow.note.content";
/// Children listed on the page; the runs table lists them all.
const CHILDREN_SHOWN: i64 = 50;

/// Tags shown as facts of the source, in this order.
const SOURCE_TAGS: &[(&str, &str)] = &[
    ("mlflow.source.name", "Source"),
    ("mlflow.source.type", "Source type"),
    ("mlflow.source.git.repoURL", "Repository"),
    ("mlflow.source.git.branch", "Branch"),
    ("mlflow.source.git.commit", "Commit"),
    ("mlflow.project.entryPoint", "Entry point"),
];

pub struct Fact {
    pub label: String,
    pub value: String,
    pub code: bool,
}

pub struct Link {
    pub label: String,
    pub url: String,
}

pub struct KeyValueLine {
    pub key: String,
    pub value: String,
}

pub struct MetricLine {
    pub key: String,
    pub value: String,
    pub exact: String,
    pub step: i64,
    pub at: Option<When>,
    pub series_url: String,
    pub chart_id: String,
}

pub struct InputLine {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub context: String,
}

pub struct ChildLine {
    pub name: String,
    pub url: String,
    pub status_label: String,
    pub status_class: &'static str,
    pub start: Option<When>,
}

pub struct RunView {
    pub uuid: String,
    pub name: String,
    pub status_label: String,
    pub status_class: &'static str,
    pub deleted: bool,
    pub experiment: Link,
    pub facts: Vec<Fact>,
    pub start: Option<When>,
    pub end: Option<When>,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    header: Header,
    can_write: bool,
    run: RunView,
    here: String,
    description: String,
    parent: Option<Link>,
    environment: Vec<KeyValueLine>,
    inputs: Vec<InputLine>,
    params: Vec<KeyValueLine>,
    metrics: Vec<MetricLine>,
    tags: Vec<KeyValueLine>,
    system_tags: Vec<KeyValueLine>,
    children: Vec<ChildLine>,
    children_total: i64,
    children_url: String,
    artifacts: RunArtifactsSummary,
    artifacts_url: String,
    error: Option<String>,
    /// The job that produced the run (its page), when one did: the page offers Retrain.
    job: Option<Link>,
    /// The run this one retrains or retries.
    origin_run: Option<Link>,
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Path(run_id): Path<String>,
) -> Result<Response, HtmlError> {
    render_run(&state, &user, &run_id, None).await
}

/// The page, with a form's refusal shown at the top when there is one.
pub async fn render_run(
    state: &AppState,
    user: &SessionUser,
    run_id: &str,
    error: Option<(StatusCode, String)>,
) -> Result<Response, HtmlError> {
    let id = tracking::parse_run_id(run_id)?;
    let (record, details) = tracking::get_run_details(&state.db, id).await?;
    let (experiment, _) = tracking::get_experiment(&state.db, record.run.experiment_id).await?;
    let children =
        dashboard::child_runs(&state.db.pool, &[record.run.id], ViewType::ActiveOnly, CHILDREN_SHOWN).await?;
    let children_total = children.first().map_or(0, |c| c.siblings);
    let child_ids: Vec<i64> = children.iter().map(|c| c.id).collect();
    let children = run_repo::load(&state.db.pool, &child_ids).await?;

    let run = &record.run;
    let artifacts = artifacts::summary(&state.storage, &run.run_uuid, &run.artifact_uri).await;
    let tag = |key: &str| record.tags.iter().find(|t| t.key == key).map(|t| t.value.clone());
    let mut facts = vec![
        Fact { label: "Run ID".into(), value: run.run_uuid.simple().to_string(), code: true },
        Fact { label: "User".into(), value: run.user_id.clone(), code: false },
    ];
    if let Some(duration) = display::duration(run.start_time, run.end_time) {
        facts.push(Fact { label: "Duration".into(), value: duration, code: false });
    }
    for (key, label) in SOURCE_TAGS {
        if let Some(value) = tag(key) {
            facts.push(Fact { label: (*label).into(), value, code: key.contains("git") });
        }
    }
    facts.push(Fact { label: "Artifact location".into(), value: run.artifact_uri.clone(), code: true });
    let kv = |key: &str, value: &str| KeyValueLine { key: key.to_owned(), value: value.to_owned() };
    let (system_tags, tags): (Vec<KeyValueLine>, Vec<KeyValueLine>) =
        record.tags.iter().map(|t| kv(&t.key, &t.value)).partition(|t| t.key.starts_with("mlflow."));
    let page = RunPage {
        header: Header::from(user),
        can_write: user.can_write(),
        here: links::run(&run.run_uuid),
        description: tag(NOTE_TAG).unwrap_or_default(),
        parent: details.parent_run_uuid.map(|p| Link { label: p.simple().to_string(), url: links::run(&p) }),
        environment: environment_lines(details.environment.as_ref()),
        inputs: record.inputs.iter().map(input_line).collect(),
        params: record.params.iter().map(|p| kv(&p.key, &p.value)).collect(),
        metrics: record
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| MetricLine {
                key: m.key.clone(),
                value: display::metric(m.value),
                exact: display::metric_exact(m.value),
                step: m.step,
                at: When::from_millis(m.timestamp),
                series_url: links::metric_series(&run.run_uuid, &m.key),
                chart_id: format!("chart-{i}"),
            })
            .collect(),
        tags,
        system_tags,
        children: children.iter().map(child_line).collect(),
        children_total,
        children_url: links::url(
            &links::experiment(run.experiment_id),
            &[("filter", &format!("tags.mlflow.parentRunId = '{}'", run.run_uuid.simple()))],
        ),
        artifacts,
        artifacts_url: links::artifacts(&run.run_uuid, None),
        error: error.as_ref().map(|(_, message)| message.clone()),
        job: tag(crate::jobs::JOB_TAG)
            .and_then(|id| uuid::Uuid::try_parse(&id).ok())
            .map(|id| Link { label: id.simple().to_string()[..8].to_owned(), url: super::jobs::job_url(&id) }),
        origin_run: tag(crate::jobs::ORIGIN_RUN_TAG)
            .and_then(|id| uuid::Uuid::try_parse(&id).ok())
            .map(|id| Link { label: id.simple().to_string(), url: links::run(&id) }),
        run: RunView {
            uuid: run.run_uuid.simple().to_string(),
            name: if run.name.is_empty() { run.run_uuid.simple().to_string() } else { run.name.clone() },
            status_label: display::status_label(&run.status),
            status_class: display::status_class(&run.status),
            deleted: run.lifecycle_stage == "deleted",
            experiment: Link { label: experiment.name, url: links::experiment(experiment.id) },
            facts,
            start: run.start_time.and_then(When::from_millis),
            end: run.end_time.and_then(When::from_millis),
        },
    };
    let status = error.map_or(StatusCode::OK, |(status, _)| status);
    Ok((status, render(&page)?).into_response())
}

/// The snapshot's top-level entries; nested values as compact JSON.
fn environment_lines(environment: Option<&serde_json::Value>) -> Vec<KeyValueLine> {
    let Some(serde_json::Value::Object(entries)) = environment else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|(key, value)| KeyValueLine {
            key: key.clone(),
            value: match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        })
        .collect()
}

fn input_line(input: &InputRow) -> InputLine {
    let context = input
        .tags
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["key"] == "mlflow.data.context"))
        .and_then(|t| t["value"].as_str())
        .unwrap_or_default()
        .to_owned();
    InputLine {
        name: input.name.clone(),
        digest: input.digest.clone(),
        source_type: input.source_type.clone(),
        source: input.source.clone(),
        context,
    }
}

fn child_line(record: &run_repo::RunRecord) -> ChildLine {
    let run = &record.run;
    ChildLine {
        name: if run.name.is_empty() { run.run_uuid.simple().to_string() } else { run.name.clone() },
        url: links::run(&run.run_uuid),
        status_label: display::status_label(&run.status),
        status_class: display::status_class(&run.status),
        start: run.start_time.and_then(When::from_millis),
    }
}
