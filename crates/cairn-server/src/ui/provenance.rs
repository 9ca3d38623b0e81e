//! A model version's provenance page (`/models/{name}/versions/{version}/provenance`): who
//! trained it and when, parameters and metrics, code, environment, dataset versions with
//! their digests, and the registry's audit events in order, laid out to be read or printed;
//! the same facts as JSON are a download away (`/api/v1/.../provenance?download`).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use cairn_db::audit::EventRow;
use serde_json::Value;

use super::display::{When, duration, metric, metric_exact, status_label};
use super::{Header, HtmlError, SessionUser, links, render};
use crate::provenance::{self, SourceRun};
use crate::state::AppState;

struct Fact {
    key: String,
    value: String,
}

struct MetricLine {
    key: String,
    value: String,
    exact: String,
    step: i64,
}

struct DatasetLine {
    reference: String,
    url: String,
    digest: String,
    context: String,
}

struct InputLine {
    name: String,
    digest: String,
    source: String,
    context: String,
}

struct RunBlock {
    url: String,
    id: String,
    name: String,
    experiment: String,
    experiment_url: String,
    status: String,
    user: String,
    created_by: String,
    started: Option<When>,
    ended: Option<When>,
    duration: Option<String>,
    deleted: bool,
    params: Vec<Fact>,
    metrics: Vec<MetricLine>,
    repository: Option<String>,
    commit: Option<String>,
    branch: Option<String>,
    entry_point: Option<String>,
    /// The snapshot's top-level values, and its maps (such as `libraries`) as tables.
    environment: Vec<Fact>,
    environment_tables: Vec<(String, Vec<Fact>)>,
    mlflow_tags: Vec<Fact>,
    datasets: Vec<DatasetLine>,
    inputs: Vec<InputLine>,
}

struct EventLine {
    id: i64,
    when: Option<When>,
    actor: String,
    action: String,
    what: String,
    outcome: String,
    target: String,
}

#[derive(Template)]
#[template(path = "provenance.html")]
struct ProvenancePage {
    header: Header,
    model: String,
    model_url: String,
    version: i64,
    version_url: String,
    json_url: String,
    stage: String,
    aliases: Vec<String>,
    registered_by: String,
    registered: Option<When>,
    source: String,
    storage_location: String,
    run: Option<RunBlock>,
    /// The source run is in a project the user cannot read.
    run_hidden: bool,
    events: Vec<EventLine>,
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, HtmlError> {
    let number = super::models::version_number(&name, &version)?;
    let p = provenance::model_version(&state.db, &name, number, user.visible().projects()).await?;
    let row = p.version.row;
    let version_url = links::model_version(&row.model_name, row.version);
    let page = ProvenancePage {
        header: Header::from(&user),
        model_url: format!("/models/{}", links::encoded_path(&row.model_name)),
        json_url: format!("/api/v1{version_url}/provenance?download"),
        version_url,
        version: row.version,
        stage: row.current_stage,
        aliases: p.version.aliases,
        registered_by: row.user_id,
        registered: When::from_millis(row.creation_time),
        source: row.source,
        storage_location: row.storage_location,
        run: p.run.map(run_block),
        run_hidden: p.run_hidden,
        events: p.events.into_iter().map(|e| event_line(e, number)).collect(),
        model: row.model_name,
    };
    Ok(render(&page)?.into_response())
}

fn facts(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<Fact> {
    pairs.into_iter().map(|(key, value)| Fact { key, value }).collect()
}

/// A JSON value as one line of text: strings bare, the rest as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn run_block(run: SourceRun) -> RunBlock {
    let record = run.record;
    let row = record.run;
    let mut environment = Vec::new();
    let mut environment_tables = Vec::new();
    if let Some(Value::Object(snapshot)) = &run.environment {
        for (key, value) in snapshot {
            match value {
                Value::Object(map) => {
                    environment_tables.push((key.clone(), facts(map.iter().map(|(k, v)| (k.clone(), text(v))))))
                }
                other => environment.push(Fact { key: key.clone(), value: text(other) }),
            }
        }
    }
    RunBlock {
        url: links::run(&row.run_uuid),
        id: row.run_uuid.simple().to_string(),
        name: row.name,
        experiment: run.experiment_name,
        experiment_url: links::experiment(row.experiment_id),
        status: status_label(&row.status),
        user: row.user_id,
        created_by: run.created_by.unwrap_or_default(),
        started: row.start_time.and_then(When::from_millis),
        ended: row.end_time.and_then(When::from_millis),
        duration: duration(row.start_time, row.end_time),
        deleted: row.lifecycle_stage == "deleted",
        params: facts(record.params.into_iter().map(|p| (p.key, p.value))),
        metrics: record
            .metrics
            .into_iter()
            .map(|m| MetricLine { value: metric(m.value), exact: metric_exact(m.value), step: m.step, key: m.key })
            .collect(),
        repository: run.code.repository,
        commit: run.code.commit,
        branch: run.code.branch,
        entry_point: run.code.entry_point,
        environment,
        environment_tables,
        mlflow_tags: facts(run.system_tags.into_iter().map(|t| (t.key, t.value))),
        datasets: run
            .datasets
            .into_iter()
            .map(|d| DatasetLine {
                url: links::dataset(&d.dataset, Some(d.version)),
                reference: format!("{}@{}", d.dataset, d.version),
                digest: d.digest,
                context: d.context,
            })
            .collect(),
        inputs: record
            .inputs
            .into_iter()
            .map(|i| InputLine { context: input_context(&i.tags), name: i.name, digest: i.digest, source: i.source })
            .collect(),
    }
}

fn input_context(tags: &Value) -> String {
    let tags = tags.as_array().map(Vec::as_slice).unwrap_or_default();
    let context = tags.iter().find(|t| t.get("key").and_then(Value::as_str) == Some("mlflow.data.context"));
    context.and_then(|t| t.get("value")).map(text).unwrap_or_default()
}

fn event_line(e: EventRow, this_version: i64) -> EventLine {
    let details: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
    EventLine {
        id: e.id,
        when: When::from_millis(e.occurred_at.timestamp_millis()),
        what: describe(&e.action, &e.target, &details, this_version),
        actor: e.actor_name,
        action: e.action,
        outcome: e.outcome,
        target: e.target,
    }
}

/// What an event did, in words.
fn describe(action: &str, target: &str, details: &Value, this_version: i64) -> String {
    let field = |key: &str| details.get(key).map(text).unwrap_or_default();
    let version = target.rsplit_once('/').map(|(_, v)| v.to_owned()).unwrap_or_default();
    match action {
        "registered_model.create" => "created the registered model".into(),
        "registered_model.rename" => format!("renamed the model from {} to {}", field("from"), field("to")),
        "registered_model.update" => format!("set the model's description to “{}”", field("description")),
        "registered_model.set_tag" => format!("set the model's tag {} = {}", field("key"), field("value")),
        "registered_model.delete_tag" => format!("removed the model's tag {}", field("key")),
        "model_version.create" => format!("registered version {version} from {}", field("source")),
        "model_version.update" => format!("set version {version}'s description to “{}”", field("description")),
        "model_version.transition_stage" => {
            format!("moved version {version} from stage {} to {}", field("from"), field("to"))
        }
        "model_version.set_tag" => format!("set version {version}'s tag {} = {}", field("key"), field("value")),
        "model_version.delete_tag" => format!("removed version {version}'s tag {}", field("key")),
        "model_version.delete" => format!("deleted version {version}"),
        "model_alias.set" => {
            let previous = details.get("previous_version").and_then(Value::as_i64);
            let moved = match previous {
                Some(p) if p == this_version && version != this_version.to_string() => {
                    format!(", taking it away from version {p}")
                }
                Some(p) => format!(" (it was on version {p})"),
                None => String::new(),
            };
            format!("pointed alias @{} at version {version}{moved}", field("alias"))
        }
        "model_alias.delete" => format!("removed alias @{} from version {version}", field("alias")),
        other => format!("{other} {details}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn alias_events_say_which_version_gained_or_lost_the_alias() {
        let set = json!({"alias": "champion", "version": 1, "previous_version": null});
        assert_eq!(describe("model_alias.set", "model:m/1", &set, 1), "pointed alias @champion at version 1");
        let moved = json!({"alias": "champion", "version": 2, "previous_version": 1});
        assert_eq!(
            describe("model_alias.set", "model:m/2", &moved, 1),
            "pointed alias @champion at version 2, taking it away from version 1"
        );
        assert_eq!(
            describe("model_alias.set", "model:m/2", &moved, 2),
            "pointed alias @champion at version 2 (it was on version 1)"
        );
        let removed = json!({"alias": "staging", "version": 1});
        assert_eq!(describe("model_alias.delete", "model:m/1", &removed, 1), "removed alias @staging from version 1");
        assert_eq!(
            describe("model_version.transition_stage", "model:m/3", &json!({"from": "None", "to": "Staging"}), 3),
            "moved version 3 from stage None to Staging"
        );
        assert!(describe("something.new", "model:m", &json!({"a": 1}), 1).contains("something.new"));
    }
}
