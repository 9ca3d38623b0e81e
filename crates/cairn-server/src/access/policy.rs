//! Who may call each route: one table for every surface (native API, MLflow API, artifact
//! proxy, model gateway, dashboard). A route absent from the table is refused, so a new
//! route cannot be forgotten; the permission-matrix test walks the router and this table.

use axum::http::Method;

/// The role a caller needs in the object's project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Own,
}

/// Where a request carries an object's key.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A path parameter of the route.
    Path(&'static str),
    /// The first of these fields that is present, in the query string or the JSON or form
    /// body (MLflow sends `run_id` and `run_uuid`, GETs in the query, the rest in the body).
    Field(&'static [&'static str]),
    /// Like `Field`, with this value when absent (MLflow's Default experiment is "0").
    FieldOr(&'static [&'static str], &'static str),
    /// A list: a JSON array in the body, or a comma-separated query parameter.
    List(&'static str),
    /// The value of the tag with this key in the body's `tags` array (`[{key, value}]`).
    Tag(&'static str),
}

/// The kind of object a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Project,
    Experiment,
    ExperimentName,
    Run,
    LoggedModel,
    Model,
    Dataset,
    /// `NAME@VERSION` or `NAME`.
    DatasetRef,
    Job,
    JobTemplate,
    Deployment,
    /// An artifact proxy path `EXPERIMENT_ID/...`.
    ArtifactPath,
    /// A lineage node id `KIND:ID`.
    LineageNode,
}

#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub object: Object,
    pub source: Source,
    pub need: Need,
}

/// How a route is guarded.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    /// No credentials needed.
    Public,
    /// Any signed-in caller; what it lists is filtered by [`super::ProjectAccess`].
    Signed,
    /// Signed-in callers who may write in at least one project (content-addressed dataset
    /// blobs, which belong to no project until a version names them).
    AnyWriter,
    /// Server admins.
    Admin,
    /// Every object the request names must be in a project where the caller has the role.
    Objects(&'static [Check]),
    /// Creates an object in a project: the one named by `project` (a project name), else
    /// the caller's home project; the caller must be a member there. Further checks apply
    /// to objects the request refers to.
    Create { project: Source, refs: &'static [Check] },
    /// Changes the object named by `existing` when it exists (needs write there), or
    /// creates it as [`Policy::Create`] does; `refs` apply either way.
    CreateOrChange { existing: Check, project: Source, refs: &'static [Check] },
}

/// The HTTP method a table entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    /// Every method (the model gateway passes any on).
    Any,
}

impl On {
    pub fn matches(self, method: &Method) -> bool {
        match self {
            On::Get => method == Method::GET || method == Method::HEAD,
            On::Post => method == Method::POST,
            On::Put => method == Method::PUT,
            On::Patch => method == Method::PATCH,
            On::Delete => method == Method::DELETE,
            On::Any => true,
        }
    }
}

/// One route: method, path template as the router has it, and its policy.
pub struct Route {
    pub on: On,
    pub path: &'static str,
    pub policy: Policy,
}

/// The policy of `path` (a matched route template) for `method`, if the table has one.
/// MLflow's `/ajax-api/...` twins share the `/api/...` entries.
pub fn lookup(method: &Method, path: &str) -> Option<&'static Policy> {
    let path = canonical(path);
    ROUTES.iter().find(|r| r.path == path && r.on.matches(method)).map(|r| &r.policy)
}

/// Whether the table has `path` for some method (a request with another method is then
/// answered 405, as the router would).
pub fn knows_path(path: &str) -> bool {
    let path = canonical(path);
    ROUTES.iter().any(|r| r.path == path)
}

fn canonical(path: &str) -> std::borrow::Cow<'_, str> {
    path.strip_prefix("/ajax-api/")
        .map_or(std::borrow::Cow::Borrowed(path), |rest| std::borrow::Cow::Owned(format!("/api/{rest}")))
}

const fn check(object: Object, source: Source, need: Need) -> Check {
    Check { object, source, need }
}

const fn path(name: &'static str) -> Source {
    Source::Path(name)
}

const RUN_FIELD: Source = Source::Field(&["run_id", "run_uuid"]);
const EXPERIMENT_FIELD: Source = Source::Field(&["experiment_id"]);
const MODEL_FIELD: Source = Source::Field(&["name"]);
const PROJECT_FIELD: Source = Source::Field(&["project"]);
const PROJECT_TAG: Source = Source::Tag("cairn.project");

macro_rules! table {
    ($($on:ident $path:literal => $policy:expr;)*) => {
        &[$(Route { on: On::$on, path: $path, policy: $policy },)*]
    };
}

/// `Objects` with a single check.
macro_rules! on {
    ($object:ident, $source:expr, $need:ident) => {
        Policy::Objects(&[check(Object::$object, $source, Need::$need)])
    };
}

/// Every route of the server. Paths are the router's templates.
pub static ROUTES: &[Route] = table! {
    // Operations and the login flow.
    Get "/healthz" => Policy::Public;
    Get "/readyz" => Policy::Public;
    Get "/metrics" => Policy::Public;
    Get "/api/v1/openapi.json" => Policy::Public;
    Get "/api/3.0/mlflow/server-info" => Policy::Signed;
    Get "/login" => Policy::Public;
    Post "/login" => Policy::Public;
    Post "/logout" => Policy::Public;
    Get "/static/{*file}" => Policy::Public;

    // Accounts: the caller's own, and the server admins' pages.
    Get "/api/v1/me" => Policy::Signed;
    Get "/api/v1/tokens" => Policy::Signed;
    Post "/api/v1/tokens" => on!(Project, PROJECT_FIELD, Read);
    Delete "/api/v1/tokens/{id}" => Policy::Signed;
    Get "/api/v1/users" => Policy::Admin;
    Post "/api/v1/users" => Policy::Admin;
    Patch "/api/v1/users/{username}" => Policy::Admin;
    Get "/api/v1/audit" => Policy::Admin;
    Get "/api/v1/audit/export" => Policy::Admin;
    Get "/settings/tokens" => Policy::Signed;
    Post "/settings/tokens" => on!(Project, PROJECT_FIELD, Read);
    Post "/settings/tokens/{id}/revoke" => Policy::Signed;
    Get "/audit" => Policy::Admin;

    // Native API: tracking.
    Get "/api/v1/experiments" => Policy::Signed;
    Post "/api/v1/experiments" => Policy::Create { project: PROJECT_FIELD, refs: &[] };
    Get "/api/v1/experiments/{id}" => on!(Experiment, path("id"), Read);
    Patch "/api/v1/experiments/{id}" => on!(Experiment, path("id"), Write);
    Delete "/api/v1/experiments/{id}" => on!(Experiment, path("id"), Write);
    Post "/api/v1/experiments/{id}/restore" => on!(Experiment, path("id"), Write);
    Get "/api/v1/experiments/{id}/runs" => on!(Experiment, path("id"), Read);
    Post "/api/v1/runs" => on!(Experiment, EXPERIMENT_FIELD, Write);
    Get "/api/v1/runs/{id}" => on!(Run, path("id"), Read);
    Patch "/api/v1/runs/{id}" => on!(Run, path("id"), Write);
    Delete "/api/v1/runs/{id}" => on!(Run, path("id"), Write);
    Post "/api/v1/runs/{id}/restore" => on!(Run, path("id"), Write);
    Post "/api/v1/runs/{id}/log" => on!(Run, path("id"), Write);
    Put "/api/v1/runs/{id}/environment" => on!(Run, path("id"), Write);
    Get "/api/v1/runs/{id}/metrics/{key}" => on!(Run, path("id"), Read);
    Get "/api/v1/runs/{id}/datasets" => on!(Run, path("id"), Read);
    Post "/api/v1/runs/{id}/datasets" => Policy::Objects(&[
        check(Object::Run, path("id"), Need::Write),
        check(Object::DatasetRef, Source::List("datasets"), Need::Read),
    ]);

    // Native API: jobs and templates.
    Get "/api/v1/jobs" => Policy::Signed;
    Post "/api/v1/jobs" => Policy::Objects(&[
        check(Object::Experiment, Source::FieldOr(&["experiment_id"], "0"), Need::Write),
        check(Object::ExperimentName, Source::Field(&["experiment_name"]), Need::Write),
        check(Object::DatasetRef, Source::List("datasets"), Need::Read),
    ]);
    Get "/api/v1/jobs/{id}" => on!(Job, path("id"), Read);
    Post "/api/v1/jobs/{id}/cancel" => on!(Job, path("id"), Write);
    Post "/api/v1/jobs/{id}/retry" => on!(Job, path("id"), Write);
    Get "/api/v1/jobs/{id}/logs" => on!(Job, path("id"), Read);
    Post "/api/v1/runs/{id}/retrain" => Policy::Objects(&[
        check(Object::Run, path("id"), Need::Write),
        check(Object::DatasetRef, Source::List("datasets"), Need::Read),
    ]);
    Get "/api/v1/usage" => Policy::Signed;
    Get "/api/v1/job-templates" => Policy::Signed;
    Post "/api/v1/job-templates" => Policy::CreateOrChange {
        existing: check(Object::JobTemplate, Source::Field(&["name"]), Need::Write),
        project: PROJECT_FIELD,
        refs: &[
            check(Object::Experiment, EXPERIMENT_FIELD, Need::Write),
            check(Object::ExperimentName, Source::Field(&["experiment_name"]), Need::Write),
        ],
    };
    Get "/api/v1/job-templates/{name}" => on!(JobTemplate, path("name"), Read);
    Post "/api/v1/job-templates/{name}/jobs" => Policy::Objects(&[
        check(Object::JobTemplate, path("name"), Need::Write),
        check(Object::Experiment, EXPERIMENT_FIELD, Need::Write),
        check(Object::ExperimentName, Source::Field(&["experiment_name"]), Need::Write),
        check(Object::DatasetRef, Source::List("datasets"), Need::Read),
    ]);

    // Native API: datasets. Blobs are content-addressed and shared; a version names them.
    Get "/api/v1/datasets" => Policy::Signed;
    Get "/api/v1/datasets/{name}" => on!(Dataset, path("name"), Read);
    Get "/api/v1/datasets/{name}/diff" => on!(Dataset, path("name"), Read);
    Post "/api/v1/datasets/{name}/versions" => Policy::CreateOrChange {
        existing: check(Object::Dataset, path("name"), Need::Write),
        project: PROJECT_FIELD,
        refs: &[],
    };
    Get "/api/v1/datasets/{name}/versions/{version}" => on!(Dataset, path("name"), Read);
    Get "/api/v1/datasets/{name}/versions/{version}/files/{*path}" => on!(Dataset, path("name"), Read);
    Post "/api/v1/blobs/missing" => Policy::AnyWriter;
    Put "/api/v1/blobs/{sha256}" => Policy::AnyWriter;

    // Native API: registry, deployments, lineage and provenance.
    Get "/api/v1/models" => Policy::Signed;
    Get "/api/v1/models/{name}" => on!(Model, path("name"), Read);
    Patch "/api/v1/models/{name}" => on!(Model, path("name"), Write);
    Get "/api/v1/models/{name}/versions" => on!(Model, path("name"), Read);
    Get "/api/v1/models/{name}/versions/{version}" => on!(Model, path("name"), Read);
    Patch "/api/v1/models/{name}/versions/{version}" => on!(Model, path("name"), Write);
    Put "/api/v1/models/{name}/aliases/{alias}" => on!(Model, path("name"), Write);
    Delete "/api/v1/models/{name}/aliases/{alias}" => on!(Model, path("name"), Write);
    Get "/api/v1/models/{name}/versions/{version}/provenance" => on!(Model, path("name"), Read);
    Get "/api/v1/deployments" => Policy::Signed;
    Post "/api/v1/deployments" => on!(Model, Source::Field(&["model"]), Write);
    Get "/api/v1/deployments/{name}" => on!(Deployment, path("name"), Read);
    Patch "/api/v1/deployments/{name}" => Policy::Objects(&[
        check(Object::Deployment, path("name"), Need::Write),
        check(Object::Model, Source::Field(&["model"]), Need::Write),
    ]);
    Delete "/api/v1/deployments/{name}" => on!(Deployment, path("name"), Write);
    Post "/api/v1/deployments/{name}/rollback" => on!(Deployment, path("name"), Write);
    Get "/api/v1/deployments/{name}/revisions" => on!(Deployment, path("name"), Read);
    Get "/api/v1/deployments/{name}/logs" => on!(Deployment, path("name"), Read);
    Get "/api/v1/lineage" => on!(LineageNode, Source::Field(&["node"]), Read);
    Get "/api/v1/who-trained" => Policy::Signed;

    // The model gateway: predictions change nothing, so readers may ask for them.
    Any "/serve/{name}" => on!(Deployment, path("name"), Read);
    Any "/serve/{name}/{*rest}" => on!(Deployment, path("name"), Read);

    // MLflow API: experiments (new ones land in the project of their `cairn.project` tag,
    // else the caller's home project).
    Post "/api/2.0/mlflow/experiments/create" => Policy::Create { project: PROJECT_TAG, refs: &[] };
    Get "/api/2.0/mlflow/experiments/get" => on!(Experiment, EXPERIMENT_FIELD, Read);
    Get "/api/2.0/mlflow/experiments/get-by-name" => on!(ExperimentName, Source::Field(&["experiment_name"]), Read);
    Get "/api/2.0/mlflow/experiments/search" => Policy::Signed;
    Post "/api/2.0/mlflow/experiments/search" => Policy::Signed;
    Post "/api/2.0/mlflow/experiments/update" => on!(Experiment, EXPERIMENT_FIELD, Write);
    Post "/api/2.0/mlflow/experiments/delete" => on!(Experiment, EXPERIMENT_FIELD, Write);
    Post "/api/2.0/mlflow/experiments/restore" => on!(Experiment, EXPERIMENT_FIELD, Write);
    Post "/api/2.0/mlflow/experiments/set-experiment-tag" => on!(Experiment, EXPERIMENT_FIELD, Write);
    Post "/api/2.0/mlflow/experiments/delete-experiment-tag" => on!(Experiment, EXPERIMENT_FIELD, Write);

    // MLflow API: runs and metrics.
    Post "/api/2.0/mlflow/runs/create" => on!(Experiment, Source::FieldOr(&["experiment_id"], "0"), Write);
    Get "/api/2.0/mlflow/runs/get" => on!(Run, RUN_FIELD, Read);
    Post "/api/2.0/mlflow/runs/update" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/delete" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/restore" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/set-tag" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/delete-tag" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/log-parameter" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/log-metric" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/log-batch" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/log-inputs" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/outputs" => on!(Run, RUN_FIELD, Write);
    Post "/api/2.0/mlflow/runs/search" => on!(Experiment, Source::List("experiment_ids"), Read);
    Get "/api/2.0/mlflow/metrics/get-history" => on!(Run, RUN_FIELD, Read);

    // MLflow API: logged models.
    Post "/api/2.0/mlflow/logged-models" => Policy::Objects(&[
        check(Object::Experiment, EXPERIMENT_FIELD, Need::Write),
        check(Object::Run, Source::Field(&["source_run_id"]), Need::Write),
    ]);
    Post "/api/2.0/mlflow/logged-models/search" => on!(Experiment, Source::List("experiment_ids"), Read);
    Get "/api/2.0/mlflow/logged-models/{model_id}" => on!(LoggedModel, path("model_id"), Read);
    Patch "/api/2.0/mlflow/logged-models/{model_id}" => on!(LoggedModel, path("model_id"), Write);
    Patch "/api/2.0/mlflow/logged-models/{model_id}/tags" => on!(LoggedModel, path("model_id"), Write);

    // MLflow API: the model registry (new models land as new experiments do).
    Post "/api/2.0/mlflow/registered-models/create" => Policy::Create { project: PROJECT_TAG, refs: &[] };
    Get "/api/2.0/mlflow/registered-models/get" => on!(Model, MODEL_FIELD, Read);
    Get "/api/2.0/mlflow/registered-models/search" => Policy::Signed;
    Patch "/api/2.0/mlflow/registered-models/update" => on!(Model, MODEL_FIELD, Write);
    Post "/api/2.0/mlflow/registered-models/rename" => on!(Model, MODEL_FIELD, Write);
    Delete "/api/2.0/mlflow/registered-models/delete" => on!(Model, MODEL_FIELD, Write);
    Post "/api/2.0/mlflow/registered-models/set-tag" => on!(Model, MODEL_FIELD, Write);
    Delete "/api/2.0/mlflow/registered-models/delete-tag" => on!(Model, MODEL_FIELD, Write);
    Get "/api/2.0/mlflow/registered-models/get-latest-versions" => on!(Model, MODEL_FIELD, Read);
    Post "/api/2.0/mlflow/registered-models/get-latest-versions" => on!(Model, MODEL_FIELD, Read);
    Get "/api/2.0/mlflow/registered-models/alias" => on!(Model, MODEL_FIELD, Read);
    Post "/api/2.0/mlflow/registered-models/alias" => on!(Model, MODEL_FIELD, Write);
    Delete "/api/2.0/mlflow/registered-models/alias" => on!(Model, MODEL_FIELD, Write);
    Post "/api/2.0/mlflow/model-versions/create" => Policy::Objects(&[
        check(Object::Model, MODEL_FIELD, Need::Write),
        check(Object::Run, Source::Field(&["run_id"]), Need::Read),
        check(Object::LoggedModel, Source::Field(&["model_id"]), Need::Read),
    ]);
    Get "/api/2.0/mlflow/model-versions/get" => on!(Model, MODEL_FIELD, Read);
    Get "/api/2.0/mlflow/model-versions/get-download-uri" => on!(Model, MODEL_FIELD, Read);
    Get "/api/2.0/mlflow/model-versions/search" => Policy::Signed;
    Patch "/api/2.0/mlflow/model-versions/update" => on!(Model, MODEL_FIELD, Write);
    Post "/api/2.0/mlflow/model-versions/transition-stage" => on!(Model, MODEL_FIELD, Write);
    Delete "/api/2.0/mlflow/model-versions/delete" => on!(Model, MODEL_FIELD, Write);
    Post "/api/2.0/mlflow/model-versions/set-tag" => on!(Model, MODEL_FIELD, Write);
    Delete "/api/2.0/mlflow/model-versions/delete-tag" => on!(Model, MODEL_FIELD, Write);

    // MLflow artifact proxy: paths start with the experiment id.
    Get "/api/2.0/mlflow-artifacts/artifacts" => on!(ArtifactPath, Source::Field(&["path"]), Read);
    Get "/api/2.0/mlflow-artifacts/artifacts/{*path}" => on!(ArtifactPath, path("path"), Read);
    Put "/api/2.0/mlflow-artifacts/artifacts/{*path}" => on!(ArtifactPath, path("path"), Write);
    Delete "/api/2.0/mlflow-artifacts/artifacts/{*path}" => on!(ArtifactPath, path("path"), Write);
    Post "/api/2.0/mlflow-artifacts/mpu/{action}" => Policy::Signed;

    // Dashboard.
    Get "/" => Policy::Signed;
    Post "/experiments" => Policy::Create { project: PROJECT_FIELD, refs: &[] };
    Get "/experiments/{id}" => on!(Experiment, path("id"), Read);
    Post "/experiments/{id}/rename" => on!(Experiment, path("id"), Write);
    Post "/experiments/{id}/delete" => on!(Experiment, path("id"), Write);
    Post "/experiments/{id}/restore" => on!(Experiment, path("id"), Write);
    Get "/runs/{run_id}" => on!(Run, path("run_id"), Read);
    Post "/runs/{run_id}/delete" => on!(Run, path("run_id"), Write);
    Post "/runs/{run_id}/restore" => on!(Run, path("run_id"), Write);
    Post "/runs/{run_id}/tags" => on!(Run, path("run_id"), Write);
    Post "/runs/{run_id}/tags/delete" => on!(Run, path("run_id"), Write);
    Post "/runs/{run_id}/description" => on!(Run, path("run_id"), Write);
    Get "/runs/{run_id}/metrics/{*key}" => on!(Run, path("run_id"), Read);
    Get "/runs/{run_id}/artifacts" => on!(Run, path("run_id"), Read);
    Get "/runs/{run_id}/artifacts/{*path}" => on!(Run, path("run_id"), Read);
    Get "/runs/{run_id}/files/{*path}" => on!(Run, path("run_id"), Read);
    Get "/runs/{run_id}/retrain" => on!(Run, path("run_id"), Read);
    Post "/runs/{run_id}/retrain" => Policy::Objects(&[
        check(Object::Run, path("run_id"), Need::Write),
        check(Object::DatasetRef, Source::List("datasets"), Need::Read),
    ]);
    Get "/compare" => on!(Run, Source::List("runs"), Read);
    Get "/compare/metrics/{*key}" => on!(Run, Source::List("runs"), Read);
    Get "/models" => Policy::Signed;
    Get "/models/{name}" => on!(Model, path("name"), Read);
    Post "/models/{name}/description" => on!(Model, path("name"), Write);
    Post "/models/{name}/aliases" => on!(Model, path("name"), Write);
    Post "/models/{name}/aliases/delete" => on!(Model, path("name"), Write);
    Get "/models/{name}/versions/{version}" => on!(Model, path("name"), Read);
    Get "/models/{name}/versions/{version}/provenance" => on!(Model, path("name"), Read);
    Get "/datasets" => Policy::Signed;
    Get "/datasets/{name}" => on!(Dataset, path("name"), Read);
    Get "/datasets/{name}/diff" => on!(Dataset, path("name"), Read);
    Get "/deployments" => Policy::Signed;
    Post "/deployments" => on!(Model, Source::Field(&["model"]), Write);
    Get "/deployments/{name}" => on!(Deployment, path("name"), Read);
    Post "/deployments/{name}/rollback" => on!(Deployment, path("name"), Write);
    Get "/jobs" => Policy::Signed;
    Get "/jobs/{id}" => on!(Job, path("id"), Read);
    Post "/jobs/{id}/cancel" => on!(Job, path("id"), Write);
    Post "/jobs/{id}/retry" => on!(Job, path("id"), Write);
    Post "/jobs/{id}/template" => Policy::Objects(&[
        check(Object::Job, path("id"), Need::Write),
        check(Object::JobTemplate, Source::Field(&["name"]), Need::Write),
    ]);
    Get "/job-templates" => Policy::Signed;
    Get "/job-templates/{name}" => on!(JobTemplate, path("name"), Read);
    Post "/job-templates/{name}" => on!(JobTemplate, path("name"), Write);
    Get "/who-trained" => Policy::Signed;

    // Projects and the server admins' users page. Owners manage a project; its readers see its settings, members and service
    // accounts; server admins create projects and manage users.
    Get "/api/v1/projects" => Policy::Signed;
    Post "/api/v1/projects" => Policy::Admin;
    Get "/api/v1/projects/{project}" => on!(Project, path("project"), Read);
    Patch "/api/v1/projects/{project}" => on!(Project, path("project"), Own);
    Get "/api/v1/projects/{project}/members" => on!(Project, path("project"), Read);
    Put "/api/v1/projects/{project}/members/{username}" => on!(Project, path("project"), Own);
    Delete "/api/v1/projects/{project}/members/{username}" => on!(Project, path("project"), Own);
    Get "/api/v1/projects/{project}/service-accounts" => on!(Project, path("project"), Read);
    Post "/api/v1/projects/{project}/service-accounts" => on!(Project, path("project"), Own);
    Post "/api/v1/projects/{project}/service-accounts/{name}/tokens" => on!(Project, path("project"), Own);
    Delete "/api/v1/projects/{project}/service-accounts/{name}/tokens/{id}" => on!(Project, path("project"), Own);
    Get "/projects" => Policy::Signed;
    Post "/projects" => Policy::Admin;
    Get "/projects/{project}" => on!(Project, path("project"), Read);
    Post "/projects/{project}/settings" => on!(Project, path("project"), Own);
    Post "/projects/{project}/members" => on!(Project, path("project"), Own);
    Post "/projects/{project}/members/{username}/remove" => on!(Project, path("project"), Own);
    Post "/projects/{project}/service-accounts" => on!(Project, path("project"), Own);
    Post "/projects/{project}/service-accounts/{name}/tokens" => on!(Project, path("project"), Own);
    Post "/projects/{project}/service-accounts/{name}/tokens/{id}/revoke" => on!(Project, path("project"), Own);
    Get "/admin/users" => Policy::Admin;
    Post "/admin/users" => Policy::Admin;
    Post "/admin/users/{username}" => Policy::Admin;
};
