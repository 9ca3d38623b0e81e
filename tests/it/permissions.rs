//! The permission matrix: every route of the router (enumerated from the router itself, so
//! a new route cannot be forgotten) is called by an admin, a project owner, member and
//! viewer, a user of another project, an anonymous caller and a revoked credential, and
//! each answer must be what the route table says: allowed, 401 (or the login redirect),
//! 403, or 404 for objects in projects the caller cannot read. Refusals by the access
//! layer carry `X-Cairn-Access: denied`, which tells them from a handler's own answer.

use std::collections::BTreeMap;

use cairn_server::access::policy::{self, Check, Need, Object, Policy, Source};
use cairn_server::{Application, ServerConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::dashboard_pages::log_in_as;
use cairn_tests::{TestApp, UserRole, spawn_app};

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Persona {
    Anonymous,
    Revoked,
    Outsider,
    Viewer,
    Member,
    Owner,
    Admin,
}

const PERSONAS: [Persona; 7] = [
    Persona::Anonymous,
    Persona::Revoked,
    Persona::Outsider,
    Persona::Viewer,
    Persona::Member,
    Persona::Owner,
    Persona::Admin,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Allowed,
    Forbidden,
    NotFound,
    Unauthenticated,
}

/// Names of the objects in project `alpha`; none may reach a caller who cannot read it.
const SECRET_NAMES: [&str; 5] = ["alpha-exp", "alpha-model", "alpha-data", "alpha-template", "alpha-serve"];

/// Project `alpha` with one of everything, its people, and their credentials.
struct World {
    app: TestApp,
    experiment: String,
    run: String,
    logged_model: String,
    job: String,
    tokens: BTreeMap<Persona, String>,
    browsers: BTreeMap<Persona, (Client, String)>,
}

impl World {
    async fn new() -> World {
        let app = spawn_app().await;
        let pool = &app.db.pool;
        let admin = app.admin_token().await;
        let alpha = project(&app, "alpha").await;
        let beta = project(&app, "beta").await;
        // A closed default project: reading anything needs a membership.
        sqlx::query("UPDATE projects SET everyone_role = NULL WHERE id = 1").execute(pool).await.expect("close");
        let people =
            [("olga", "owner", alpha), ("max", "member", alpha), ("vic", "viewer", alpha), ("otto", "member", beta)];
        for (name, role, project) in people {
            app.add_user(name, "password-123", UserRole::Member).await;
            sqlx::query(
                "INSERT INTO project_members (project_id, user_id, role) SELECT $1, id, $3 FROM users WHERE username = $2",
            )
            .bind(project)
            .bind(name)
            .bind(role)
            .execute(pool)
            .await
            .expect("membership");
        }

        let call = |method: Method, path: &str, body: Value| {
            let request = app.client.request(method, app.at(path)).bearer_auth(&admin).json(&body);
            async move {
                let response = request.send().await.expect("request");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert!(status.is_success(), "fixture {status}: {body}");
                body
            }
        };
        let exp = call(Method::POST, "/api/v1/experiments", json!({"name": "alpha-exp", "project": "alpha"})).await;
        let experiment = exp["id"].as_str().map_or_else(|| exp["id"].to_string(), str::to_owned);
        let run = call(Method::POST, "/api/2.0/mlflow/runs/create", json!({"experiment_id": experiment})).await;
        let run = run["run"]["info"]["run_id"].as_str().expect("run id").to_owned();
        let put = app
            .client
            .put(app.at(&format!("/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/x.txt")))
            .bearer_auth(&admin)
            .body("x")
            .send()
            .await
            .expect("artifact");
        assert!(put.status().is_success());
        let model = json!({"experiment_id": experiment, "name": "lm", "source_run_id": run});
        let model = call(Method::POST, "/api/2.0/mlflow/logged-models", model).await;
        let logged_model = model["model"]["info"]["model_id"].as_str().expect("model id").to_owned();
        let tags = json!([{"key": "cairn.project", "value": "alpha"}]);
        call(Method::POST, "/api/2.0/mlflow/registered-models/create", json!({"name": "alpha-model", "tags": tags}))
            .await;
        let source = format!("mlflow-artifacts:/{experiment}/{run}/artifacts/model");
        let version = json!({"name": "alpha-model", "source": source, "run_id": run});
        call(Method::POST, "/api/2.0/mlflow/model-versions/create", version).await;
        let alias = json!({"name": "alpha-model", "alias": "champion", "version": "1"});
        call(Method::POST, "/api/2.0/mlflow/registered-models/alias", alias).await;
        let template =
            json!({"name": "alpha-template", "project": "alpha", "command": ["true"], "experiment_id": experiment});
        call(Method::POST, "/api/v1/job-templates", template).await;
        let job = call(Method::POST, "/api/v1/jobs", json!({"experiment_id": experiment, "command": ["true"]})).await;
        let job = job["id"].as_str().expect("job id").to_owned();
        sqlx::query(
            "INSERT INTO datasets (name, creation_time, last_update_time, project_id) VALUES ('alpha-data', 0, 0, $1)",
        )
        .bind(alpha)
        .execute(pool)
        .await
        .expect("dataset");
        sqlx::query(
            "INSERT INTO deployments (name, model_id, status, project_id) \
             SELECT 'alpha-serve', id, 'stopped', project_id FROM registered_models WHERE name = 'alpha-model'",
        )
        .execute(pool)
        .await
        .expect("deployment");

        let mut tokens = BTreeMap::new();
        let mut browsers = BTreeMap::new();
        for (persona, user) in
            [(Persona::Owner, "olga"), (Persona::Member, "max"), (Persona::Viewer, "vic"), (Persona::Outsider, "otto")]
        {
            tokens.insert(persona, app.token_for(user, "password-123").await);
            let browser = app.browser();
            let csrf = log_in_as(&app, &browser, user, "password-123").await;
            browsers.insert(persona, (browser, csrf));
        }
        tokens.insert(Persona::Admin, admin);
        let admin_browser = app.browser();
        let csrf = log_in_as(&app, &admin_browser, "admin", cairn_tests::ADMIN_PASSWORD).await;
        browsers.insert(Persona::Admin, (admin_browser, csrf));
        // The revoked persona: the owner's second token, revoked; a session logged out.
        let revoked = app.token_for("olga", "password-123").await;
        let listed = app.get_json("/api/v1/tokens", &revoked).await;
        let newest = listed["tokens"][0]["id"].as_str().expect("token id").to_owned();
        let revoke = app.client.delete(app.at(&format!("/api/v1/tokens/{newest}"))).bearer_auth(&revoked).send().await;
        assert!(revoke.expect("revoke").status().is_success());
        tokens.insert(Persona::Revoked, revoked);
        let gone = app.browser();
        let csrf = log_in_as(&app, &gone, "olga", "password-123").await;
        gone.post(app.at("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await.expect("logout");
        browsers.insert(Persona::Revoked, (gone, csrf));
        World { app, experiment, run, logged_model, job, tokens, browsers }
    }

    /// The value that names `object` of project alpha.
    fn key(&self, object: Object) -> String {
        match object {
            Object::Project => "alpha".into(),
            Object::Experiment => self.experiment.clone(),
            Object::ExperimentName => "alpha-exp".into(),
            Object::Run => self.run.clone(),
            Object::LoggedModel => self.logged_model.clone(),
            Object::Model => "alpha-model".into(),
            Object::Dataset | Object::DatasetRef => "alpha-data".into(),
            Object::Job => self.job.clone(),
            Object::JobTemplate => "alpha-template".into(),
            Object::Deployment => "alpha-serve".into(),
            Object::ArtifactPath => format!("{}/{}/artifacts/x.txt", self.experiment, self.run),
            Object::LineageNode => format!("run:{}", self.run),
        }
    }

    /// `template` with its parameters filled: objects the policy names, plain values else.
    fn concrete_path(&self, template: &str, policy: &Policy) -> String {
        let by_param: BTreeMap<&str, Object> = checks(policy)
            .into_iter()
            .filter_map(|c| match c.source {
                Source::Path(name) => Some((name, c.object)),
                _ => None,
            })
            .collect();
        template
            .split('/')
            .map(|segment| {
                let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                    return segment.to_owned();
                };
                let param = param.trim_start_matches('*');
                if let Some(object) = by_param.get(param) {
                    return self.key(*object);
                }
                match param {
                    "version" => "1".into(),
                    "alias" => "champion".into(),
                    "key" => "loss".into(),
                    "username" => "nobody".into(),
                    "sha256" => "0".repeat(64),
                    "action" => "create".into(),
                    "rest" => "invocations".into(),
                    "file" => "app.css".into(),
                    "id" => "00000000-0000-4000-8000-000000000000".into(),
                    _ => "x.txt".into(),
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The query or body fields the policy reads, filled with alpha's objects.
    fn fields(&self, policy: &Policy) -> serde_json::Map<String, Value> {
        let mut fields = serde_json::Map::new();
        let mut put = |source: Source, value: String| match source {
            Source::Path(_) => {}
            Source::Field(names) | Source::FieldOr(names, _) => {
                fields.insert(names[0].to_owned(), Value::String(value));
            }
            Source::List(name) => {
                fields.insert(name.to_owned(), json!([value]));
            }
            Source::Tag(key) => {
                fields.insert("tags".to_owned(), json!([{"key": key, "value": value}]));
            }
        };
        for check in checks(policy) {
            put(check.source, self.key(check.object));
        }
        match policy {
            Policy::Create { project, .. } | Policy::CreateOrChange { project, .. } => put(*project, "alpha".into()),
            _ => {}
        }
        fields
    }

    async fn call(
        &self,
        persona: Persona,
        method: &Method,
        template: &str,
        policy: &Policy,
    ) -> (StatusCode, bool, String) {
        let path = self.concrete_path(template, policy);
        let fields = self.fields(policy);
        let ui = is_dashboard(template);
        let plain = &self.app.client;
        let client = match (ui, persona) {
            (true, Persona::Anonymous) | (false, _) => plain,
            (true, persona) => &self.browsers[&persona].0,
        };
        let mut request = client.request(method.clone(), self.app.at(&path));
        if *method == Method::GET {
            let pairs: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| match v {
                    Value::Array(items) => {
                        (k.clone(), items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                    }
                    Value::String(s) => (k.clone(), s.clone()),
                    other => (k.clone(), other.to_string()),
                })
                .collect();
            request = request.query(&pairs);
        } else if ui {
            let csrf = self.browsers.get(&persona).map_or(String::new(), |(_, csrf)| csrf.clone());
            let mut form: Vec<(String, String)> = vec![("csrf_token".into(), csrf)];
            form.extend(fields.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))));
            request = request.form(&form);
        } else {
            request = request.json(&Value::Object(fields));
        }
        if !ui && let Some(token) = self.tokens.get(&persona) {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let denied = response.headers().get("x-cairn-access").is_some_and(|v| v == "denied");
        let body = response.text().await.unwrap_or_default();
        (status, denied, body)
    }
}

async fn project(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO projects (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(&app.db.pool)
        .await
        .expect("project")
}

fn is_dashboard(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path.starts_with("/ajax-api/")
        || path.starts_with("/serve/")
        || ["/healthz", "/readyz", "/metrics"].contains(&path))
}

fn checks(policy: &Policy) -> Vec<Check> {
    match policy {
        Policy::Objects(checks) => checks.to_vec(),
        Policy::Create { refs, .. } => refs.to_vec(),
        Policy::CreateOrChange { existing, refs, .. } => {
            std::iter::once(*existing).chain(refs.iter().copied()).collect()
        }
        _ => Vec::new(),
    }
}

/// What the route table promises `persona` (who is nobody in project alpha when an
/// outsider) for a request naming alpha's objects.
fn expected(policy: &Policy, persona: Persona) -> Outcome {
    if matches!(policy, Policy::Public) {
        return Outcome::Allowed;
    }
    if matches!(persona, Persona::Anonymous | Persona::Revoked) {
        return Outcome::Unauthenticated;
    }
    let by_need = |need: Need| match (persona, need) {
        (Persona::Outsider, _) => Outcome::NotFound,
        (Persona::Viewer, Need::Read) => Outcome::Allowed,
        (Persona::Viewer, _) => Outcome::Forbidden,
        (Persona::Member, Need::Own) => Outcome::Forbidden,
        _ => Outcome::Allowed,
    };
    let strictest = |needs: Vec<Need>| {
        needs
            .into_iter()
            .map(by_need)
            .max_by_key(|o| (*o == Outcome::NotFound, *o == Outcome::Forbidden))
            .unwrap_or(Outcome::Allowed)
    };
    match policy {
        Policy::Public | Policy::Signed => Outcome::Allowed,
        Policy::Admin => {
            if persona == Persona::Admin {
                Outcome::Allowed
            } else {
                Outcome::Forbidden
            }
        }
        Policy::AnyWriter => {
            if persona == Persona::Viewer {
                Outcome::Forbidden
            } else {
                Outcome::Allowed
            }
        }
        Policy::Objects(_) | Policy::CreateOrChange { .. } => {
            strictest(checks(policy).iter().map(|c| c.need).collect())
        }
        Policy::Create { .. } => {
            strictest(checks(policy).iter().map(|c| c.need).chain(std::iter::once(Need::Write)).collect())
        }
    }
}

fn matches(outcome: Outcome, status: StatusCode, denied: bool, dashboard: bool) -> bool {
    match outcome {
        Outcome::Allowed => !denied && status != StatusCode::INTERNAL_SERVER_ERROR,
        Outcome::Forbidden => denied && status == StatusCode::FORBIDDEN,
        Outcome::NotFound => denied && status == StatusCode::NOT_FOUND,
        Outcome::Unauthenticated if dashboard => denied && status == StatusCode::SEE_OTHER,
        Outcome::Unauthenticated => denied && status == StatusCode::UNAUTHORIZED,
    }
}

/// The routes of the real router with the methods each serves. axum's `Debug` for a router
/// prints, per path router, `routes: {RouteId(n): MethodRouter(MethodRouter { get: .., post:
/// None, .. })}` and `node: Node { paths: {RouteId(n): "/path"} }`; the count check in the
/// test fails loudly if that format changes.
async fn served_routes(app: &TestApp) -> Vec<(String, Vec<Method>)> {
    let config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    let built = Application::build(config, app.db.clone(), app.storage.clone()).await.expect("build");
    let debug = format!("{:?}", cairn_server::startup::router(built.state()));
    let mut served = BTreeMap::new();
    for block in debug.split("PathRouter {").skip(1) {
        let Some((routes, node)) = block.split_once("node: Node {") else { continue };
        let mut methods_of = BTreeMap::new();
        for piece in routes.split("RouteId(").skip(1) {
            let Some((id, rest)) = piece.split_once(')') else { continue };
            let methods: Vec<Method> = if rest.starts_with(": MethodRouter(") {
                let fields = rest.split("fallback:").next().unwrap_or("");
                let served =
                    |name: &str| fields.contains(&format!("{name}: ")) && !fields.contains(&format!("{name}: None"));
                METHODS.iter().filter(|m| served(&m.as_str().to_lowercase())).cloned().collect()
            } else {
                METHODS.to_vec()
            };
            methods_of.insert(id.to_owned(), methods);
        }
        for piece in node.split("RouteId(").skip(1) {
            let Some((id, rest)) = piece.split_once("): \"") else { continue };
            let Some((path, _)) = rest.split_once('"') else { continue };
            // Nested routers' fallbacks show up as internal catch-all routes.
            if path.contains("__private__axum") {
                continue;
            }
            if let Some(methods) = methods_of.get(id) {
                served.insert(path.to_owned(), methods.clone());
            }
        }
    }
    served.into_iter().collect()
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_the_route_table_says() {
    let world = World::new().await;
    let served = served_routes(&world.app).await;
    assert!(served.len() > 150, "the router's routes could not be read from its Debug output: {served:?}");

    let mut routes = Vec::new();
    let mut unlisted = Vec::new();
    for (path, methods) in &served {
        for method in methods {
            match policy::lookup(method, path) {
                Some(policy) => routes.push((method.clone(), path.clone(), policy)),
                None => unlisted.push(format!("{method} {path}")),
            }
        }
    }
    assert!(unlisted.is_empty(), "routes without an access policy: {unlisted:#?}");
    for entry in policy::ROUTES {
        assert!(
            served.iter().any(|(p, _)| p == entry.path),
            "the route table names {}, which the router lacks",
            entry.path
        );
    }

    // Refusals first, while every object is in place; then the allowed calls, which may
    // change or delete things (an allowed call only has to get past the access check).
    let mut failures = Vec::new();
    for phase_allowed in [false, true] {
        for (method, path, policy) in &routes {
            for persona in PERSONAS {
                let outcome = expected(policy, persona);
                let public_again = matches!(policy, Policy::Public) && persona != Persona::Anonymous;
                if (outcome == Outcome::Allowed) != phase_allowed || public_again {
                    continue;
                }
                let (status, denied, body) = world.call(persona, method, path, policy).await;
                if !matches(outcome, status, denied, is_dashboard(path)) {
                    failures.push(format!(
                        "{method} {path} as {persona:?}: expected {outcome:?}, got {status}{} {}",
                        if denied { " (refused by the access check)" } else { "" },
                        body.chars().take(160).collect::<String>()
                    ));
                }
                // Refusals may echo the name the caller sent; anything else must not name
                // alpha's objects to an outsider.
                if persona == Persona::Outsider && !denied && !matches!(policy, Policy::Public) {
                    for name in SECRET_NAMES {
                        if body.contains(name) {
                            failures.push(format!("{method} {path} shows {name:?} to a user of another project"));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of the permission matrix failed:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_job_token_changes_only_its_run_and_the_runs_nested_under_it() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let send = |token: &str, method: Method, path: &str, body: Value| {
        let request = app.client.request(method, app.at(path)).bearer_auth(token).json(&body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, exp) = send(&admin, Method::POST, "/api/2.0/mlflow/experiments/create", json!({"name": "job-exp"})).await;
    let exp = exp["experiment_id"].as_str().expect("experiment id").to_owned();
    let new_run = |body: Value| send(&admin, Method::POST, "/api/2.0/mlflow/runs/create", body);
    let own = new_run(json!({"experiment_id": exp})).await.1["run"]["info"]["run_id"].as_str().expect("run").to_owned();
    let other =
        new_run(json!({"experiment_id": exp})).await.1["run"]["info"]["run_id"].as_str().expect("run").to_owned();

    // The job's token: the submitter's, limited to its run (as the executor makes it).
    let token = app.token_for("admin", cairn_tests::ADMIN_PASSWORD).await;
    let (_, listed) = send(&token, Method::GET, "/api/v1/tokens", Value::Null).await;
    let id: uuid::Uuid = listed["tokens"][0]["id"].as_str().expect("token id").parse().expect("uuid");
    cairn_db::tokens::limit_to_run(&app.db.pool, id, own.parse().expect("run uuid")).await.expect("limit");

    let metric = |run: &str| json!({"run_id": run, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0});
    let post = |path: &'static str, body: Value| send(&token, Method::POST, path, body);
    assert_eq!(post("/api/2.0/mlflow/runs/log-metric", metric(&own)).await.0, 200);
    let tags = json!([{"key": "mlflow.parentRunId", "value": own}]);
    let (status, child) = post("/api/2.0/mlflow/runs/create", json!({"experiment_id": exp, "tags": tags})).await;
    assert_eq!(status, 200, "{child}");
    let child = child["run"]["info"]["run_id"].as_str().expect("child run").to_owned();
    assert_eq!(post("/api/2.0/mlflow/runs/log-metric", metric(&child)).await.0, 200, "runs nested under it");
    assert_eq!(post("/api/2.0/mlflow/registered-models/create", json!({"name": "from-job"})).await.0, 200);
    let put = |run: &str| {
        app.client
            .put(app.at(&format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/a.txt")))
            .bearer_auth(&token)
            .body("a")
            .send()
    };
    assert!(put(&own).await.expect("PUT").status().is_success());
    let (status, _) = send(&token, Method::GET, &format!("/api/2.0/mlflow/runs/get?run_id={other}"), Value::Null).await;
    assert_eq!(status, 200, "reading is not limited to the run");

    // Everything else it would change is refused.
    let refused = [
        post("/api/2.0/mlflow/runs/log-metric", metric(&other)).await,
        post("/api/2.0/mlflow/experiments/update", json!({"experiment_id": exp, "new_name": "renamed"})).await,
        post("/api/2.0/mlflow/experiments/create", json!({"name": "elsewhere"})).await,
        post("/api/v1/tokens", json!({"name": "escape"})).await,
    ];
    for (status, body) in refused {
        assert_eq!(status, 403, "{body}");
    }
    assert_eq!(put(&other).await.expect("PUT").status(), StatusCode::FORBIDDEN);
}
