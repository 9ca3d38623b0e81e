//! The fake's apps/v1 Deployments and v1 Services (what model serving creates): create,
//! get, replace (optimistic concurrency on `resourceVersion`), delete and list with a
//! `labelSelector`, as JSON shaped like the `k8s-openapi` types. A simple deployment
//! controller rolls out every new generation: all replicas updated and available, unless
//! the pod template's image names `does-not-exist`, whose rollout exceeds its progress
//! deadline.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use super::{Shared, key, not_found, now, status_error};

/// Deployments and services by kind (`deployments`, `services`) and `namespace/name`.
#[derive(Default)]
pub(super) struct Workloads {
    objects: BTreeMap<(&'static str, String), Value>,
}

fn validate(kind: &str, object: &Value) -> Result<(), String> {
    let parsed = match kind {
        "deployments" => serde_json::from_value::<Deployment>(object.clone()).map(|_| ()),
        _ => serde_json::from_value::<Service>(object.clone()).map(|_| ()),
    };
    parsed.map_err(|e| format!("invalid {kind}: {e}"))
}

fn labels_match(object: &Value, selector: Option<&String>) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.into_iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()).all(|term| match term.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => !labels[term].is_null(),
    })
}

async fn list(kind: &'static str, shared: Shared, namespace: String, query: BTreeMap<String, String>) -> Response {
    let Ok(mut c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    let prefix = format!("{namespace}/");
    let items: Vec<Value> = c
        .workloads
        .objects
        .iter()
        .filter(|((k, key), object)| {
            *k == kind && key.starts_with(&prefix) && labels_match(object, query.get("labelSelector"))
        })
        .map(|(_, object)| object.clone())
        .collect();
    let rv = c.bump();
    let list_kind = if kind == "deployments" { "DeploymentList" } else { "ServiceList" };
    let api_version = if kind == "deployments" { "apps/v1" } else { "v1" };
    axum::Json(
        json!({"kind": list_kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv}, "items": items}),
    )
    .into_response()
}

async fn create(kind: &'static str, shared: Shared, namespace: String, body: axum::body::Bytes) -> Response {
    let mut object: Value = match serde_json::from_slice(&body) {
        Ok(object) => object,
        Err(e) => return status_error(400, "BadRequest", format!("invalid JSON: {e}")),
    };
    if let Err(e) = validate(kind, &object) {
        return status_error(400, "BadRequest", e);
    }
    let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
        return status_error(422, "Invalid", format!("{kind} is invalid: metadata.name: Required value"));
    };
    let Ok(mut c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    let id = (kind, key(&namespace, &name));
    if c.workloads.objects.contains_key(&id) {
        return status_error(409, "AlreadyExists", format!("{kind} \"{name}\" already exists"));
    }
    let rv = c.bump();
    let meta = &mut object["metadata"];
    meta["namespace"] = json!(namespace);
    meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
    meta["resourceVersion"] = json!(rv);
    meta["creationTimestamp"] = serde_json::to_value(now()).unwrap_or(Value::Null);
    meta["generation"] = json!(1);
    c.workloads.objects.insert(id, object.clone());
    (StatusCode::CREATED, axum::Json(object)).into_response()
}

async fn read(kind: &'static str, shared: Shared, namespace: String, name: String) -> Response {
    let Ok(c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    match c.workloads.objects.get(&(kind, key(&namespace, &name))) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => not_found(kind, &name),
    }
}

async fn replace(
    kind: &'static str,
    shared: Shared,
    namespace: String,
    name: String,
    body: axum::body::Bytes,
) -> Response {
    let mut object: Value = match serde_json::from_slice(&body) {
        Ok(object) => object,
        Err(e) => return status_error(400, "BadRequest", format!("invalid JSON: {e}")),
    };
    if let Err(e) = validate(kind, &object) {
        return status_error(400, "BadRequest", e);
    }
    let Ok(mut c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    let id = (kind, key(&namespace, &name));
    let Some(existing) = c.workloads.objects.get(&id).cloned() else { return not_found(kind, &name) };
    if object["metadata"]["resourceVersion"] != existing["metadata"]["resourceVersion"] {
        return status_error(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified"),
        );
    }
    let rv = c.bump();
    let generation =
        existing["metadata"]["generation"].as_i64().unwrap_or(1) + i64::from(object["spec"] != existing["spec"]);
    let meta = &mut object["metadata"];
    for field in ["namespace", "uid", "creationTimestamp"] {
        meta[field] = existing["metadata"][field].clone();
    }
    meta["resourceVersion"] = json!(rv);
    meta["generation"] = json!(generation);
    object["status"] = existing["status"].clone();
    c.workloads.objects.insert(id, object.clone());
    axum::Json(object).into_response()
}

async fn delete(kind: &'static str, shared: Shared, namespace: String, name: String) -> Response {
    let Ok(mut c) = shared.0.lock() else { return status_error(500, "InternalError", "poisoned".into()) };
    match c.workloads.objects.remove(&(kind, key(&namespace, &name))) {
        Some(_) => axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})).into_response(),
        None => not_found(kind, &name),
    }
}

type NamePath = Path<(String, String)>;
type Listing = Query<BTreeMap<String, String>>;

fn kind_routes(kind: &'static str) -> (axum::routing::MethodRouter<Shared>, axum::routing::MethodRouter<Shared>) {
    let collection =
        get(move |State(s): State<Shared>, Path(ns): Path<String>, Query(q): Listing| list(kind, s, ns, q))
            .post(move |State(s): State<Shared>, Path(ns): Path<String>, body| create(kind, s, ns, body));
    let item = get(move |State(s): State<Shared>, Path((ns, n)): NamePath| read(kind, s, ns, n))
        .put(move |State(s): State<Shared>, Path((ns, n)): NamePath, body| replace(kind, s, ns, n, body))
        .delete(move |State(s): State<Shared>, Path((ns, n)): NamePath| delete(kind, s, ns, n));
    (collection, item)
}

pub(super) fn routes() -> Router<Shared> {
    let (deployments, deployment) = kind_routes("deployments");
    let (services, service) = kind_routes("services");
    Router::new()
        .route("/apis/apps/v1/namespaces/{ns}/deployments", deployments)
        .route("/apis/apps/v1/namespaces/{ns}/deployments/{name}", deployment)
        .route("/api/v1/namespaces/{ns}/services", services)
        .route("/api/v1/namespaces/{ns}/services/{name}", service)
}

impl Workloads {
    /// One round of the deployment controller: every Deployment whose generation was not
    /// observed yet is rolled out (or gets stuck, for an image named `does-not-exist`).
    pub(super) fn step(&mut self) {
        for ((kind, _), object) in &mut self.objects {
            if *kind != "deployments" {
                continue;
            }
            let Ok(mut deployment) = serde_json::from_value::<Deployment>(object.clone()) else { continue };
            let generation = deployment.metadata.generation.unwrap_or(1);
            let status = deployment.status.get_or_insert_with(DeploymentStatus::default);
            if status.observed_generation == Some(generation) {
                continue;
            }
            let wanted = deployment.spec.replicas.unwrap_or(1);
            let broken = deployment.spec.template.spec.as_ref().is_some_and(|p| {
                p.containers.iter().any(|c| c.image.as_deref().is_some_and(|i| i.contains("does-not-exist")))
            });
            status.observed_generation = Some(generation);
            status.replicas = Some(wanted);
            if broken {
                status.updated_replicas = Some(0);
                status.available_replicas = Some(0);
                status.conditions = Some(vec![DeploymentCondition {
                    type_: Some("Progressing".into()),
                    status: Some("False".into()),
                    reason: Some("ProgressDeadlineExceeded".into()),
                    message: Some("ReplicaSet has timed out progressing.".into()),
                    last_update_time: Some(now()),
                    ..DeploymentCondition::default()
                }]);
            } else {
                status.updated_replicas = Some(wanted);
                status.ready_replicas = Some(wanted);
                status.available_replicas = Some(wanted);
                status.conditions = Some(vec![DeploymentCondition {
                    type_: Some("Available".into()),
                    status: Some("True".into()),
                    last_update_time: Some(now()),
                    ..DeploymentCondition::default()
                }]);
            }
            if let Ok(value) = serde_json::to_value(&deployment) {
                *object = value;
            }
        }
    }

    pub(super) fn get<T: serde::de::DeserializeOwned>(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Option<T> {
        let object = self.objects.get(&(kind, key(namespace, name)))?;
        serde_json::from_value(object.clone()).ok()
    }

    pub(super) fn count(&self, kind: &str) -> usize {
        self.objects.keys().filter(|(k, _)| *k == kind).count()
    }
}
