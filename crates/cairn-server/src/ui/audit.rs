//! The audit pages: `/audit` (admins only), the audit trail filtered by actor, action,
//! object, outcome and time, newest first, each event linked to its object, with export
//! links for the same filters; and `/who-trained`, "who trained what": model versions with
//! who trained the source run, on which dataset versions, from which commit, and who
//! registered them.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_db::audit::EventRow;

use super::display::When;
use super::{Header, HtmlError, SessionUser, links, render};
use crate::audit_trail::FilterParams;
use crate::state::AppState;

/// Events on a page of the audit trail.
const PAGE_SIZE: i64 = 50;

struct EventLine {
    id: i64,
    when: When,
    actor: String,
    action: String,
    target: String,
    target_url: Option<String>,
    outcome: String,
    failed: bool,
    details: String,
}

impl From<EventRow> for EventLine {
    fn from(r: EventRow) -> Self {
        let millis = r.occurred_at.timestamp_millis();
        EventLine {
            id: r.id,
            when: When::from_millis(millis).unwrap_or(When { iso: String::new(), text: r.occurred_at.to_string() }),
            target_url: links::audit_target(&r.target),
            failed: r.outcome != "success",
            details: if r.details == "{}" { String::new() } else { r.details },
            actor: r.actor_name,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
        }
    }
}

/// The filter form's values, as given.
struct FormValues {
    actor: String,
    action: String,
    target: String,
    outcome: String,
    since: String,
    until: String,
    project: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    header: Header,
    form: FormValues,
    events: Vec<EventLine>,
    error: Option<String>,
    filtered: bool,
    next_url: Option<String>,
    first_url: Option<String>,
    export_jsonl: String,
    export_csv: String,
}

fn require_admin(user: &SessionUser) -> Result<(), HtmlError> {
    if user.principal.role == cairn_core::Role::Admin {
        Ok(())
    } else {
        Err(HtmlError::page(
            StatusCode::FORBIDDEN,
            format!("The audit log is for admins; your role is {}. Ask an admin for an export.", user.principal.role),
        ))
    }
}

pub async fn page(
    State(state): State<AppState>,
    user: SessionUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, HtmlError> {
    require_admin(&user)?;
    let pairs = links::pairs(raw.as_deref());
    let value = |key: &str| links::last(&pairs, key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let params = FilterParams {
        actor: value("actor"),
        action: value("action"),
        target: value("target").or_else(|| value("object")),
        outcome: value("outcome"),
        since: value("since"),
        until: value("until"),
        project: value("project"),
    };
    let filter_pairs = params.pairs();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let form = FormValues {
        actor: text(&params.actor),
        action: text(&params.action),
        target: text(&params.target),
        outcome: text(&params.outcome),
        since: text(&params.since),
        until: text(&params.until),
        project: text(&params.project),
    };
    let with = |path: &str, extra: Option<(&str, &str)>| {
        let mut all: Vec<(&str, &str)> = filter_pairs.to_vec();
        all.extend(extra);
        links::url(path, &all)
    };
    let export_jsonl = with("/api/v1/audit/export", Some(("format", "jsonl")));
    let export_csv = with("/api/v1/audit/export", Some(("format", "csv")));
    let filtered = filter_pairs.iter().any(|(_, v)| !v.is_empty());
    let before = value("before").map(|b| b.parse::<i64>());
    let (filter, before) = match (params.parse(), before.transpose()) {
        (Ok(filter), Ok(before)) => (filter, before),
        (Err(e), _) => return error_page(user, form, e.0, export_jsonl, export_csv),
        (_, Err(_)) => return error_page(user, form, "before must be an event id".into(), export_jsonl, export_csv),
    };
    let (rows, next) = cairn_db::audit::query::page(&state.db.pool, &filter, before, PAGE_SIZE).await?;
    let page = AuditPage {
        header: Header::from(&user),
        form,
        events: rows.into_iter().map(EventLine::from).collect(),
        error: None,
        filtered,
        next_url: next.map(|id| with("/audit", Some(("before", &id.to_string())))),
        first_url: before.map(|_| with("/audit", None)),
        export_jsonl,
        export_csv,
    };
    Ok(render(&page)?.into_response())
}

fn error_page(
    user: SessionUser,
    form: FormValues,
    error: String,
    export_jsonl: String,
    export_csv: String,
) -> Result<Response, HtmlError> {
    let page = AuditPage {
        header: Header::from(&user),
        form,
        events: Vec::new(),
        error: Some(error),
        filtered: true,
        next_url: None,
        first_url: None,
        export_jsonl,
        export_csv,
    };
    Ok((StatusCode::BAD_REQUEST, render(&page)?).into_response())
}

struct DatasetLink {
    label: String,
    url: String,
}

struct TrainedLine {
    model: String,
    version: i64,
    url: String,
    provenance_url: String,
    stage: String,
    registered: Option<When>,
    registered_by: String,
    run_url: Option<String>,
    run_name: String,
    trained_by: String,
    commit: String,
    datasets: Vec<DatasetLink>,
    /// `ACTOR (DEPLOYMENT)` for each deployment of the version and who put it there.
    deployed_by: Vec<String>,
}

impl From<cairn_db::provenance::WhoTrainedRow> for TrainedLine {
    fn from(r: cairn_db::provenance::WhoTrainedRow) -> Self {
        let url = links::model_version(&r.model, r.version);
        let run_name = match (&r.run_name, &r.run_uuid) {
            (Some(name), _) if !name.is_empty() => name.clone(),
            (_, Some(id)) => id.simple().to_string()[..8].to_owned(),
            _ if r.run_hidden => crate::visibility::HIDDEN.to_owned(),
            _ => String::new(),
        };
        TrainedLine {
            provenance_url: format!("{url}/provenance"),
            url,
            stage: r.stage,
            registered: When::from_millis(r.registered_at),
            registered_by: r.registered_by.unwrap_or_default(),
            run_url: r.run_uuid.as_ref().map(links::run),
            run_name,
            trained_by: r.trained_by.or(r.run_user.filter(|u| !u.is_empty())).unwrap_or_default(),
            commit: r.source_commit.unwrap_or_default(),
            datasets: r
                .datasets
                .0
                .into_iter()
                .map(|(name, v)| DatasetLink { url: links::dataset(&name, Some(v)), label: format!("{name}@{v}") })
                .collect(),
            deployed_by: r.deployed_by.0.into_iter().map(|(deployment, by)| format!("{by} ({deployment})")).collect(),
            model: r.model,
            version: r.version,
        }
    }
}

#[derive(Template)]
#[template(path = "who_trained.html")]
struct WhoTrainedPage {
    header: Header,
    model: String,
    versions: Vec<TrainedLine>,
    next_url: Option<String>,
    first_url: Option<String>,
}

pub async fn who_trained(
    State(state): State<AppState>,
    user: SessionUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, HtmlError> {
    let pairs = links::pairs(raw.as_deref());
    let model = links::last(&pairs, "model").map(str::trim).filter(|m| !m.is_empty());
    let before = match links::last(&pairs, "before").filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => {
            Some(b.parse::<i64>().map_err(|_| HtmlError::page(StatusCode::BAD_REQUEST, "before must be a number"))?)
        }
    };
    let visible = user.visible();
    let (rows, next) = crate::provenance::who_trained(&state.db, visible.projects(), model, before, PAGE_SIZE).await?;
    let model = model.unwrap_or_default().to_owned();
    let page = WhoTrainedPage {
        header: Header::from(&user),
        versions: rows.into_iter().map(TrainedLine::from).collect(),
        next_url: next.map(|id| links::url("/who-trained", &[("model", &model), ("before", &id.to_string())])),
        first_url: before.map(|_| links::url("/who-trained", &[("model", &model)])),
        model,
    };
    Ok(render(&page)?.into_response())
}
