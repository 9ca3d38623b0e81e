//! Kubernetes serving: per deployment NAME, in the configured namespace, a Deployment and a
//! Service named `cairn-serve-NAME` and a Secret `cairn-serve-NAME-token` holding a
//! read-only API token. The pods run the serving image (`serving.image`): MLflow's
//! `mlflow models serve -m models:/MODEL/VERSION`, which downloads the model from Cairn
//! (MLflow's registry API, authenticated with the token) at start, and answers on port
//! 8080; the readiness probe is `/ping`. GPUs are `nvidia.com/gpu` limits. Rolling
//! updates keep every old replica until a new one is ready (`maxUnavailable: 0`), and the
//! reconciler reads the Deployment's status every few seconds to show the rollout's
//! progress. Objects whose deployment was deleted in Cairn are deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_db::deployments::{self as repo, DeploymentRow};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret,
    Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::runtime::Backend;
use crate::audit::Actor;
use crate::auth::TokenScope;
use crate::config::{KubernetesConfig, ServingConfig};
use crate::jobs::kubernetes::pod::{GPU_RESOURCE, MANAGED_BY, TOKEN_KEY, from_secret, placement, var};
use crate::jobs::kubernetes::{connect, describe};
use crate::state::AppState;

pub const DEPLOYMENT_LABEL: &str = "cairn.dev/deployment";
pub const REVISION_LABEL: &str = "cairn.dev/revision";
pub const COMPONENT: (&str, &str) = ("app.kubernetes.io/component", "model-serving");
/// The port the serving container listens on.
pub const SERVING_PORT: i32 = 8080;
const CONTAINER: &str = "model";

pub fn object_name(name: &str) -> String {
    format!("cairn-serve-{name}")
}

pub fn secret_name(name: &str) -> String {
    format!("cairn-serve-{name}-token")
}

/// The labels of every object of the deployment, and of its pods.
fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (COMPONENT.0.to_owned(), COMPONENT.1.to_owned()),
        (DEPLOYMENT_LABEL.to_owned(), name.to_owned()),
    ])
}

fn metadata(config: &KubernetesConfig, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The URL pods reach Cairn at.
fn cairn_url(state: &AppState, config: &KubernetesConfig) -> String {
    config
        .cairn_url
        .clone()
        .or_else(|| state.config.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", state.config.listen))
        .trim_end_matches('/')
        .to_owned()
}

/// The Deployment serving the row's current revision.
pub fn deployment(
    config: &KubernetesConfig,
    serving: &ServingConfig,
    cairn_url: &str,
    row: &DeploymentRow,
) -> Deployment {
    let name = &row.name;
    let version = row.version.unwrap_or_default();
    let mut pod_labels = labels(name);
    pod_labels.insert(REVISION_LABEL.to_owned(), row.current_revision.to_string());
    let mut env: Vec<_> = row.settings.env.0.iter().map(|(k, v)| var(k, v)).collect();
    env.push(var("MLFLOW_TRACKING_URI", cairn_url));
    env.push(from_secret("MLFLOW_TRACKING_TOKEN", &secret_name(name)));
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if row.settings.gpus > 0 {
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(row.settings.gpus.to_string()));
    }
    if let Some(memory) = &row.settings.memory {
        limits.insert("memory".to_owned(), Quantity(memory.clone()));
        requests.insert("memory".to_owned(), Quantity(memory.clone()));
    }
    if let Some(cpu) = &row.settings.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    let probe = |initial: i32, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/ping".into()),
            port: IntOrString::Int(SERVING_PORT),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let model_uri = format!("models:/{}/{version}", row.model_name);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(serving.image.clone()),
        command: Some(
            ["mlflow", "models", "serve", "-m", &model_uri, "--host", "0.0.0.0", "--port", &SERVING_PORT.to_string()]
                .into_iter()
                .chain(["--env-manager", "local", "--timeout", &serving.timeout.as_secs().to_string()])
                .map(String::from)
                .collect(),
        ),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: SERVING_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe(5, 5, 3)),
        // Generous: the model is downloaded and loaded before the first answer.
        liveness_probe: Some(probe(120, 20, 6)),
        resources: Some(ResourceRequirements {
            limits: (!limits.is_empty()).then_some(limits),
            requests: (!requests.is_empty()).then_some(requests),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    let mut meta = metadata(config, object_name(name), labels(name));
    meta.annotations = Some(BTreeMap::from([
        ("cairn.dev/model-version".to_owned(), format!("{}/{version}", row.model_name)),
        (REVISION_LABEL.to_owned(), row.current_revision.to_string()),
    ]));
    Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: Some(row.settings.replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(DEPLOYMENT_LABEL.to_owned(), name.clone())])),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            // Old ReplicaSets are kept by Kubernetes; Cairn keeps the history itself.
            revision_history_limit: Some(2),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The token in the secret is all the pods need; no API credentials.
                    automount_service_account_token: Some(false),
                    ..placement(config)
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// The Service in front of the deployment's pods (port 80).
pub fn service(config: &KubernetesConfig, name: &str) -> Service {
    Service {
        metadata: metadata(config, object_name(name), labels(name)),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(DEPLOYMENT_LABEL.to_owned(), name.to_owned())])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(SERVING_PORT)),
                ..ServicePort::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// What a Deployment's status says about the rollout of `revision`.
pub fn rollout(found: &Deployment, revision: i32) -> (&'static str, String) {
    let wanted = found.spec.replicas.unwrap_or(1);
    let status = found.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= found.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let stuck = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if let Some(condition) = stuck {
        let why = condition.message.clone().unwrap_or_default();
        return ("failed", format!("revision {revision} did not become ready: {why}"));
    }
    if observed && updated == wanted && available == wanted && total == wanted {
        return ("ready", format!("revision {revision}: {available} of {wanted} replicas ready"));
    }
    (
        "pending",
        format!("rolling out revision {revision}: {updated} of {wanted} replicas updated, {available} available"),
    )
}

/// The connection to the cluster and what was applied.
pub(crate) struct Cluster {
    config: KubernetesConfig,
    deployments: Api<Deployment>,
    services: Api<Service>,
    secrets: Api<Secret>,
    /// Deployment name -> the revision whose objects were applied by this process.
    applied: HashMap<String, i32>,
    /// Deployments whose service the gateway of this process was given.
    served: HashSet<String>,
}

impl Cluster {
    pub(crate) async fn connect(state: &AppState) -> Option<Cluster> {
        let config = state.config.kubernetes.clone()?;
        match connect(&config).await {
            Ok(client) => Some(Cluster {
                deployments: Api::namespaced(client.clone(), &config.namespace),
                services: Api::namespaced(client.clone(), &config.namespace),
                secrets: Api::namespaced(client, &config.namespace),
                config,
                applied: HashMap::new(),
                served: HashSet::new(),
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot use the Kubernetes API; Kubernetes deployments are not served");
                None
            }
        }
    }

    /// Reads rollout status; when `leads` (one replica at a time), also applies the objects
    /// of revisions not applied yet and deletes the objects of deployments that are gone.
    pub(crate) async fn reconcile(&mut self, state: &AppState, rows: &[DeploymentRow], leads: bool) {
        let rows: Vec<&DeploymentRow> = rows.iter().filter(|r| r.settings.target == "kubernetes").collect();
        for row in &rows {
            if leads && self.applied.get(&row.name) != Some(&row.current_revision) {
                match self.apply(state, row).await {
                    Ok(()) => {
                        self.applied.insert(row.name.clone(), row.current_revision);
                    }
                    Err(e) => {
                        let message = format!("could not apply revision {}: {e}", row.current_revision);
                        let _ =
                            repo::set_status(&state.db.pool, &row.name, row.current_revision, "failed", &message).await;
                        continue;
                    }
                }
            }
            self.watch_rollout(state, row).await;
        }
        if leads {
            self.remove_orphans(state, &rows).await;
        }
        // A deployment deleted through another replica: this gateway stops routing to it.
        self.served.retain(|name| {
            let live = rows.iter().any(|r| &r.name == name);
            if !live {
                state.serving.set_backend(name, None);
                state.serving.metrics.forget(name);
            }
            live
        });
    }

    async fn apply(&self, state: &AppState, row: &DeploymentRow) -> Result<(), String> {
        let name = &row.name;
        // The secret is made with the Deployment (Cairn may not read secrets: see the Helm
        // chart's RBAC), so an existing Deployment has its secret.
        if get_opt(&self.deployments, &object_name(name)).await?.is_none() {
            let token = token(state, row).await?;
            let secret = Secret {
                metadata: metadata(&self.config, secret_name(name), labels(name)),
                data: Some(BTreeMap::from([(TOKEN_KEY.to_owned(), ByteString(token.into_bytes()))])),
                type_: Some("Opaque".into()),
                ..Secret::default()
            };
            let params = PostParams::default();
            match self.secrets.create(&params, &secret).await {
                // Left by an earlier attempt: replaced, so that the token is one Cairn knows.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    self.secrets
                        .delete(&secret_name(name), &DeleteParams::default())
                        .await
                        .map_err(|e| describe(&e))?;
                    self.secrets.create(&params, &secret).await.map_err(|e| describe(&e))?;
                }
                other => {
                    other.map_err(|e| describe(&e))?;
                }
            }
        }
        let url = cairn_url(state, &self.config);
        upsert(&self.deployments, deployment(&self.config, &state.config.serving, &url, row)).await?;
        upsert(&self.services, service(&self.config, name)).await?;
        tracing::info!(deployment = %name, revision = row.current_revision, "applied the Kubernetes objects");
        Ok(())
    }

    async fn watch_rollout(&mut self, state: &AppState, row: &DeploymentRow) {
        let found = match get_opt(&self.deployments, &object_name(&row.name)).await {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(e) => return tracing::warn!(deployment = %row.name, error = %e, "could not read the rollout status"),
        };
        let (status, message) = rollout(&found, row.current_revision);
        if status == "ready" {
            let url = format!("http://{}.{}.svc:80", object_name(&row.name), self.config.namespace);
            state.serving.set_backend(&row.name, Some(Backend { url, revision: row.current_revision }));
            self.served.insert(row.name.clone());
        }
        let _ = repo::set_status(&state.db.pool, &row.name, row.current_revision, status, &message).await;
    }

    async fn remove_orphans(&mut self, state: &AppState, rows: &[&DeploymentRow]) {
        let selector = format!("{}={},{}={}", MANAGED_BY.0, MANAGED_BY.1, COMPONENT.0, COMPONENT.1);
        let found = match self.deployments.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(e) => return tracing::warn!(error = %describe(&e), "could not list serving Deployments"),
        };
        for d in found {
            let Some(name) = d.metadata.labels.as_ref().and_then(|l| l.get(DEPLOYMENT_LABEL)).cloned() else {
                continue;
            };
            if rows.iter().any(|r| r.name == name) {
                continue;
            }
            let params = DeleteParams::default();
            let results = [
                self.deployments.delete(&object_name(&name), &params).await.map(|_| ()),
                self.services.delete(&object_name(&name), &params).await.map(|_| ()),
                self.secrets.delete(&secret_name(&name), &params).await.map(|_| ()),
            ];
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                tracing::warn!(deployment = %name, error = %describe(e), "could not delete a serving object");
            }
            self.applied.remove(&name);
            state.serving.set_backend(&name, None);
            state.serving.metrics.forget(&name);
        }
    }
}

async fn get_opt<K: Clone + DeserializeOwned + std::fmt::Debug>(api: &Api<K>, name: &str) -> Result<Option<K>, String> {
    api.get_opt(name).await.map_err(|e| describe(&e))
}

/// Creates the object, or replaces it (keeping its resourceVersion) when it exists.
async fn upsert<K>(api: &Api<K>, mut object: K) -> Result<(), String>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = kube::Resource::meta(&object).name.clone().unwrap_or_default();
    match get_opt(api, &name).await? {
        None => api.create(&PostParams::default(), &object).await.map(|_| ()).map_err(|e| describe(&e)),
        Some(existing) => {
            kube::Resource::meta_mut(&mut object).resource_version =
                kube::Resource::meta(&existing).resource_version.clone();
            api.replace(&name, &PostParams::default(), &object).await.map(|_| ()).map_err(|e| describe(&e))
        }
    }
}

/// A read-only token of the deployment's creator, limited to the deployment's project, for
/// its pods to download the model with.
async fn token(state: &AppState, row: &DeploymentRow) -> Result<String, String> {
    let owner = match &row.created_by {
        Some(name) => cairn_db::users::find_by_name(&state.db.pool, name).await.map_err(|e| e.to_string())?,
        None => None,
    };
    let owner = owner.ok_or("the deployment has no creating user whose token its pods could use")?;
    let name = format!("deployment {}", row.name);
    let request = crate::accounts::TokenRequest {
        name: &name,
        scope: TokenScope::Read,
        expires_at: None,
        project_id: Some(row.project_id),
    };
    let issued =
        crate::accounts::create_token(&state.db, &state.token_keys, &Actor::system("deployments"), &owner, request)
            .await
            .map_err(|e| e.to_string())?;
    Ok(issued.token)
}

/// The last `lines` lines of the newest pod of the deployment.
pub(crate) async fn logs(state: &AppState, name: &str, lines: usize) -> String {
    let Some(config) = &state.config.kubernetes else { return String::new() };
    let Ok(client) = connect(config).await else { return String::new() };
    let pods: Api<Pod> = Api::namespaced(client, &config.namespace);
    let selector = format!("{DEPLOYMENT_LABEL}={name}");
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else { return String::new() };
    let newest = list.items.into_iter().max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    let Some(pod) = newest.and_then(|p| p.metadata.name) else { return String::new() };
    let params = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: i64::try_from(lines).ok(),
        timestamps: true,
        ..LogParams::default()
    };
    pods.logs(&pod, &params)
        .await
        .unwrap_or_else(|e| format!("could not read the logs of pod {pod}: {}\n", describe(&e)))
}
