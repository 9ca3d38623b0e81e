//! The project check behind every route: finds the objects a request names (path, query or
//! body, as [`super::policy::ROUTES`] says), looks up their projects and compares the
//! caller's role there with what the route needs. Objects in projects the caller cannot
//! read are answered as not found; objects that do not exist are left to the handler.

use std::collections::HashMap;

use axum::RequestExt;
use axum::body::{Body, Bytes};
use axum::extract::{RawPathParams, Request};
use axum::http::{Method, header};
use cairn_core::project::{DEFAULT_PROJECT_ID, Standing};
use cairn_core::{ProjectRole, Role};
use cairn_db::projects::{self as repo, ObjectKey};
use serde_json::Value;

use super::Denial;
use super::policy::{self, Check, Need, Object, Policy, Source};
use super::run_scope;
use crate::auth::{Credential, Principal, TokenScope};
use crate::state::AppState;

/// What the caller may do in which project; in every authenticated request's extensions.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    /// The projects the caller can see, by id, with their name and the caller's role.
    roles: HashMap<i64, (String, ProjectRole)>,
    /// A server admin with an unrestricted credential: every project, present and future.
    every_project: bool,
    /// Where new objects land when the request names no project.
    home: i64,
}

/// The project a creating request's new object goes to (set by the check for
/// [`Policy::Create`] routes, and for [`Policy::CreateOrChange`] ones that create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetProject(pub i64);

/// Where a new object goes: the project the access check chose for this request (its
/// [`TargetProject`]), else the caller's home project. Handlers that create take this.
#[derive(Debug, Clone, Copy)]
pub struct NewObjectProject(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NewObjectProject {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let chosen = parts.extensions.get::<TargetProject>().map(|t| t.0);
        let home = parts.extensions.get::<ProjectAccess>().map(ProjectAccess::home_project);
        Ok(NewObjectProject(chosen.or(home).unwrap_or(DEFAULT_PROJECT_ID)))
    }
}

impl ProjectAccess {
    /// Loads the caller's roles: one query.
    pub async fn load(state: &AppState, principal: &Principal) -> Result<ProjectAccess, Denial> {
        let token_project = principal.token_project();
        let read_only_credential = matches!(principal.credential, Credential::Token { scope: TokenScope::Read, .. });
        let admin = principal.role == Role::Admin;
        let rows = repo::standings(&state.db.pool, principal.user_id, admin, token_project).await?;
        let roles = rows
            .into_iter()
            .filter_map(|row| {
                let standing = Standing {
                    server_role: principal.role,
                    membership: row.membership.as_deref().and_then(|r| r.parse().ok()),
                    everyone_role: row.everyone_role.as_deref().and_then(|r| r.parse().ok()),
                    read_only_credential,
                };
                standing.effective_role().map(|role| (row.id, (row.name, role)))
            })
            .collect();
        Ok(ProjectAccess {
            roles,
            every_project: admin && token_project.is_none(),
            home: token_project.unwrap_or(DEFAULT_PROJECT_ID),
        })
    }

    pub fn role_in(&self, project_id: i64) -> Option<ProjectRole> {
        self.roles.get(&project_id).map(|(_, role)| *role)
    }

    /// The ids of the projects the caller can read; None means every project (admins).
    pub fn readable_projects(&self) -> Option<Vec<i64>> {
        if self.every_project { None } else { Some(self.roles.keys().copied().collect()) }
    }

    /// Whether the caller can read `project_id`.
    pub fn can_read(&self, project_id: i64) -> bool {
        self.every_project || self.roles.contains_key(&project_id)
    }

    /// Whether the caller can change things in `project_id`.
    pub fn can_write(&self, project_id: i64) -> bool {
        self.role_in(project_id).is_some_and(|role| role >= ProjectRole::Member)
    }

    /// Whether the caller may change things in at least one project.
    pub fn writes_somewhere(&self) -> bool {
        self.roles.values().any(|(_, role)| *role >= ProjectRole::Member)
    }

    /// Where new objects land when the request names no project: the token's project, or
    /// the default project.
    pub fn home_project(&self) -> i64 {
        self.home
    }

    pub fn is_admin(&self) -> bool {
        self.every_project
    }

    /// The visible projects with the caller's role, by name.
    pub fn projects(&self) -> Vec<(i64, &str, ProjectRole)> {
        let mut list: Vec<_> = self.roles.iter().map(|(id, (name, role))| (*id, name.as_str(), *role)).collect();
        list.sort_by(|a, b| a.1.cmp(b.1));
        list
    }
}

/// Applies the route's policy to an authenticated request: on success the request carries
/// the caller's [`ProjectAccess`] (and, when it creates something, its [`TargetProject`]).
pub async fn authorize(state: &AppState, principal: &Principal, request: &mut Request) -> Result<(), Denial> {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    let Some(route) = route else {
        return Err(Denial::NoPolicy("(unmatched)".to_owned()));
    };
    let policy = match policy::lookup(request.method(), &route) {
        Some(policy) => policy,
        None if policy::knows_path(&route) => return Err(Denial::MethodNotAllowed),
        None => return Err(Denial::NoPolicy(route)),
    };
    if matches!(policy, Policy::Public) {
        return Ok(());
    }
    let access = ProjectAccess::load(state, principal).await?;
    let fields = RequestFields::read(state, request, policy).await?;
    let target = decide(state, principal, &access, policy, &fields).await?;
    request.extensions_mut().insert(access);
    if let Some(target) = target {
        request.extensions_mut().insert(target);
    }
    Ok(())
}

async fn decide(
    state: &AppState,
    principal: &Principal,
    access: &ProjectAccess,
    policy: &Policy,
    fields: &RequestFields,
) -> Result<Option<TargetProject>, Denial> {
    // A job's token changes only its run (and what run_scope allows): of the routes that
    // change no object they name, it may only register models.
    if let Some(own) = principal.token_run()
        && fields.changes_data
    {
        let registers_model = fields.route.ends_with("/registered-models/create");
        // A change must be to an object run_scope can vouch for (a route that only reads
        // its objects, such as token creation naming a project, changes something else).
        let changes_named_object =
            matches!(policy, Policy::Objects(checks) if checks.iter().any(|c| c.need != Need::Read));
        if !changes_named_object && !registers_model {
            return Err(Denial::RunScoped(own));
        }
    }
    match policy {
        Policy::Public | Policy::Signed => Ok(None),
        Policy::AnyWriter => {
            if access.writes_somewhere() {
                Ok(None)
            } else {
                Err(Denial::read_only(principal))
            }
        }
        Policy::Admin => {
            if access.is_admin() && (principal.can_write() || !fields.changes_data) {
                Ok(None)
            } else {
                Err(Denial::AdminOnly)
            }
        }
        Policy::Objects(checks) => {
            for check in *checks {
                apply(state, principal, access, check, fields).await?;
            }
            Ok(None)
        }
        Policy::Create { project, refs } => {
            for check in *refs {
                apply(state, principal, access, check, fields).await?;
            }
            creation_target(state, principal, access, project, fields).await.map(Some)
        }
        Policy::CreateOrChange { existing, project, refs } => {
            for check in *refs {
                apply(state, principal, access, check, fields).await?;
            }
            if apply(state, principal, access, existing, fields).await? {
                Ok(None)
            } else {
                creation_target(state, principal, access, project, fields).await.map(Some)
            }
        }
    }
}

/// The project a new object goes to; the caller must be able to write there.
async fn creation_target(
    state: &AppState,
    principal: &Principal,
    access: &ProjectAccess,
    project: &Source,
    fields: &RequestFields,
) -> Result<TargetProject, Denial> {
    let id = match fields.values(project).into_iter().next().filter(|name| !name.is_empty()) {
        None => access.home_project(),
        Some(name) => match repo::project_of(&state.db.pool, &ObjectKey::Project(name.clone())).await? {
            Some(id) if access.can_read(id) => id,
            _ => return Err(Denial::NotFound(format!("project {name:?} does not exist"))),
        },
    };
    if !access.can_read(id) {
        return Err(Denial::NotFound("the project for new objects does not exist".to_owned()));
    }
    if !access.can_write(id) {
        return Err(Denial::read_only(principal));
    }
    Ok(TargetProject(id))
}

/// Checks every object `check` names; returns whether any of them exists.
async fn apply(
    state: &AppState,
    principal: &Principal,
    access: &ProjectAccess,
    check: &Check,
    fields: &RequestFields,
) -> Result<bool, Denial> {
    let mut found = false;
    for raw in fields.values(&check.source) {
        let Some(key) = object_key(check.object, &raw) else {
            if check.object == Object::ArtifactPath && !access.is_admin() {
                return Err(Denial::NotFound(format!("artifact path {raw:?} does not exist")));
            }
            continue;
        };
        let Some(project) = repo::project_of(&state.db.pool, &key).await? else {
            // Nothing to protect; the handler answers for the missing object. A change is
            // refused outright to callers who cannot change anything anywhere, and artifact
            // paths of experiments that do not exist (yet) are for admins only.
            if check.need != Need::Read && !access.writes_somewhere() {
                return Err(Denial::read_only(principal));
            }
            if check.object == Object::ArtifactPath && !access.is_admin() {
                return Err(Denial::NotFound(format!("artifact path {raw:?} does not exist")));
            }
            continue;
        };
        found = true;
        if !access.can_read(project) {
            return Err(Denial::NotFound(format!("{} {raw:?} does not exist", kind_name(check.object))));
        }
        let allowed = match check.need {
            Need::Read => true,
            Need::Write => access.can_write(project),
            Need::Own => access.role_in(project) == Some(ProjectRole::Owner),
        };
        if !allowed {
            return Err(match check.need {
                Need::Own => Denial::NotOwner,
                _ => Denial::read_only(principal),
            });
        }
        if let Some(own) = principal.token_run()
            && check.need != Need::Read
            && !run_scope::allows(&state.db.pool, own, &fields.route, check.object, &raw).await?
        {
            return Err(Denial::RunScoped(own));
        }
    }
    Ok(found)
}

/// The key an object reference names, or None when the text cannot name one (the handler
/// then answers for a missing object, as it would anyway).
fn object_key(object: Object, raw: &str) -> Option<ObjectKey> {
    let text = || raw.to_owned();
    Some(match object {
        Object::Project => ObjectKey::Project(text()),
        Object::Experiment => ObjectKey::Experiment(crate::tracking::parse_experiment_id(raw).ok()?),
        Object::ExperimentName => ObjectKey::ExperimentName(text()),
        Object::Run => ObjectKey::Run(crate::tracking::parse_run_id(raw).ok()?),
        Object::LoggedModel => ObjectKey::LoggedModel(text()),
        Object::Model => ObjectKey::Model(text()),
        Object::Dataset => ObjectKey::Dataset(text()),
        Object::DatasetRef => ObjectKey::Dataset(raw.split_once('@').map_or(raw, |(name, _)| name).to_owned()),
        Object::Job => ObjectKey::Job(uuid::Uuid::try_parse(raw.trim()).ok()?),
        Object::JobTemplate => ObjectKey::JobTemplate(text()),
        Object::Deployment => ObjectKey::Deployment(text()),
        Object::ArtifactPath => {
            let first = raw.trim_start_matches('/').split('/').next().unwrap_or("");
            ObjectKey::Experiment(first.parse::<i64>().ok().filter(|id| *id >= 0)?)
        }
        Object::LineageNode => {
            let (kind, id) = raw.split_once(':')?;
            match kind {
                "run" => ObjectKey::Run(crate::tracking::parse_run_id(id).ok()?),
                "dataset" => ObjectKey::Dataset(id.split_once('@').map_or(id, |(name, _)| name).to_owned()),
                "model" => ObjectKey::Model(id.rsplit_once('/').map_or(id, |(name, _)| name).to_owned()),
                "deployment" => ObjectKey::Deployment(id.to_owned()),
                _ => return None,
            }
        }
    })
}

fn kind_name(object: Object) -> &'static str {
    match object {
        Object::Project => "project",
        Object::Experiment | Object::ExperimentName => "experiment",
        Object::Run => "run",
        Object::LoggedModel => "logged model",
        Object::Model => "registered model",
        Object::Dataset | Object::DatasetRef => "dataset",
        Object::Job => "job",
        Object::JobTemplate => "job template",
        Object::Deployment => "deployment",
        Object::ArtifactPath => "artifact path",
        Object::LineageNode => "lineage node",
    }
}

/// The parts of a request that object keys come from. The body is read only when the
/// route's checks need it, and put back for the handler.
struct RequestFields {
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<KeyFields>,
    changes_data: bool,
    /// The matched route template.
    route: String,
}

impl RequestFields {
    async fn read(state: &AppState, request: &mut Request, policy: &Policy) -> Result<RequestFields, Denial> {
        let path = match request.extract_parts::<RawPathParams>().await {
            Ok(params) => params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            Err(_) => Vec::new(),
        };
        let query = request
            .uri()
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
        let changes_data = super::changes_data(request.method(), route.as_deref());
        let body =
            if needs_body(policy) && request.method() != Method::GET { read_body(state, request).await? } else { None };
        Ok(RequestFields { path, query, body, changes_data, route: route.unwrap_or_default() })
    }

    /// Every value `source` names in this request (none when absent).
    fn values(&self, source: &Source) -> Vec<String> {
        match source {
            Source::Path(name) => self.path.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect(),
            Source::Field(names) => self.first_field(names).into_iter().collect(),
            Source::FieldOr(names, default) => vec![self.first_field(names).unwrap_or_else(|| (*default).to_owned())],
            Source::List(name) => {
                let mut values: Vec<String> = self
                    .query
                    .iter()
                    .filter(|(k, _)| k == name)
                    .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned))
                    .collect();
                if let Some(Value::Array(items)) = self.body.as_ref().and_then(|b| b.get(name)) {
                    values.extend(items.iter().filter_map(scalar_text));
                }
                values
            }
            Source::Tag(key) => self
                .body
                .as_ref()
                .and_then(|b| b.get("tags"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|tag| tag.get("key").and_then(Value::as_str) == Some(key))
                .filter_map(|tag| tag.get("value").and_then(scalar_text))
                .collect(),
        }
    }

    /// The first of `names` present in the query string or the body, as the handlers read
    /// them (MLflow's `run_id` before `run_uuid`).
    fn first_field(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|name| {
            self.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| self.body.as_ref().and_then(|b| b.get(name)).and_then(scalar_text))
        })
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn needs_body(policy: &Policy) -> bool {
    let body_source = |s: &Source| !matches!(s, Source::Path(_));
    match policy {
        Policy::Objects(checks) => checks.iter().any(|c| body_source(&c.source)),
        Policy::Create { project, refs } => body_source(project) || refs.iter().any(|c| body_source(&c.source)),
        Policy::CreateOrChange { existing, project, refs } => {
            body_source(&existing.source) || body_source(project) || refs.iter().any(|c| body_source(&c.source))
        }
        Policy::Public | Policy::Signed | Policy::AnyWriter | Policy::Admin => false,
    }
}

/// Buffers the body (within the server's body limit), parses it as JSON or as a form, and
/// puts the bytes back for the handler. A body that is neither is left to the handler.
async fn read_body(state: &AppState, request: &mut Request) -> Result<Option<KeyFields>, Denial> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = std::mem::replace(request.body_mut(), Body::empty());
    let bytes: Bytes =
        axum::body::to_bytes(body, state.config.max_body_bytes).await.map_err(|_| Denial::BodyTooLarge)?;
    let parsed = if is_form {
        let pairs: serde_json::Map<String, Value> =
            url::form_urlencoded::parse(&bytes).into_owned().map(|(k, v)| (k, Value::String(v))).collect();
        serde_json::from_value(Value::Object(pairs)).ok()
    } else {
        serde_json::from_slice::<KeyFields>(&bytes).ok()
    };
    *request.body_mut() = Body::from(bytes);
    Ok(parsed)
}

/// The body fields that name objects. Deserializing into this struct skips every other
/// field without building it, so a large log-batch body costs one quick scan.
#[derive(Debug, Default, serde::Deserialize)]
struct KeyFields {
    run_id: Option<Value>,
    run_uuid: Option<Value>,
    source_run_id: Option<Value>,
    experiment_id: Option<Value>,
    experiment_ids: Option<Value>,
    experiment_name: Option<Value>,
    name: Option<Value>,
    model: Option<Value>,
    model_id: Option<Value>,
    project: Option<Value>,
    tags: Option<Value>,
    dataset: Option<Value>,
    datasets: Option<Value>,
}

impl KeyFields {
    /// The field called `name`; None for a field this struct does not know (a unit test
    /// checks that it knows every body field the route table names).
    fn get(&self, name: &str) -> Option<&Value> {
        match name {
            "run_id" => self.run_id.as_ref(),
            "run_uuid" => self.run_uuid.as_ref(),
            "source_run_id" => self.source_run_id.as_ref(),
            "experiment_id" => self.experiment_id.as_ref(),
            "experiment_ids" => self.experiment_ids.as_ref(),
            "experiment_name" => self.experiment_name.as_ref(),
            "name" => self.name.as_ref(),
            "model" => self.model.as_ref(),
            "model_id" => self.model_id.as_ref(),
            "project" => self.project.as_ref(),
            "tags" => self.tags.as_ref(),
            "dataset" => self.dataset.as_ref(),
            "datasets" => self.datasets.as_ref(),
            _ => None,
        }
    }

    #[cfg(test)]
    const KNOWN: &[&str] = &[
        "run_id",
        "run_uuid",
        "source_run_id",
        "experiment_id",
        "experiment_ids",
        "experiment_name",
        "name",
        "model",
        "model_id",
        "project",
        "tags",
        "dataset",
        "datasets",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::policy::ROUTES;

    /// Query-only fields (GET routes) need not be body fields.
    const QUERY_ONLY: &[&str] = &["path", "node", "runs"];

    fn sources(policy: &Policy) -> Vec<Source> {
        match policy {
            Policy::Objects(checks) => checks.iter().map(|c| c.source).collect(),
            Policy::Create { project, refs } => {
                std::iter::once(*project).chain(refs.iter().map(|c| c.source)).collect()
            }
            Policy::CreateOrChange { existing, project, refs } => {
                [existing.source, *project].into_iter().chain(refs.iter().map(|c| c.source)).collect()
            }
            _ => Vec::new(),
        }
    }

    #[test]
    fn every_body_field_the_table_names_is_read_from_bodies() {
        for route in ROUTES {
            for source in sources(&route.policy) {
                let names: Vec<&str> = match source {
                    Source::Path(_) => continue,
                    Source::Field(names) | Source::FieldOr(names, _) => names.to_vec(),
                    Source::List(name) => vec![name],
                    Source::Tag(_) => vec!["tags"],
                };
                for name in names {
                    assert!(
                        KeyFields::KNOWN.contains(&name) || QUERY_ONLY.contains(&name),
                        "{} names body field {name:?}, which KeyFields does not read",
                        route.path
                    );
                }
            }
        }
    }

    #[test]
    fn object_keys_parse_as_the_handlers_do() {
        let run = "0123456789abcdef0123456789abcdef";
        assert!(matches!(object_key(Object::Run, run), Some(ObjectKey::Run(_))));
        assert!(object_key(Object::Run, "not-a-run").is_none());
        assert_eq!(object_key(Object::Experiment, " 7 "), Some(ObjectKey::Experiment(7)));
        assert_eq!(object_key(Object::ArtifactPath, "7/abc/artifacts/x"), Some(ObjectKey::Experiment(7)));
        assert_eq!(object_key(Object::ArtifactPath, "custom/x"), None);
        assert_eq!(object_key(Object::DatasetRef, "mnist@3"), Some(ObjectKey::Dataset("mnist".into())));
        assert_eq!(object_key(Object::LineageNode, "model:m/2"), Some(ObjectKey::Model("m".into())));
        assert_eq!(object_key(Object::LineageNode, "deployment:d"), Some(ObjectKey::Deployment("d".into())));
    }
}
