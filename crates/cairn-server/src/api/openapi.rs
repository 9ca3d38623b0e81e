//! The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json` without credentials
//! (it holds no data). Operations come from the `#[utoipa::path]` attributes of the very
//! handlers the router registers (see [`super::routes`]); this module adds what is common:
//! title, security schemes, the problem-details schema and the `/api/v1` prefix.

use std::sync::LazyLock;

use axum::Json;
use serde::Serialize;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the native API is mounted; operation paths are written relative to it.
pub const PREFIX: &str = "/api/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn native API",
        version = "1",
        description = "The native API for experiments, runs and accounts, used by the dashboard and the `cairn` CLI.\n\n\
            Conventions: fields are snake_case; ids are strings (experiments: decimal numbers; runs: 32 hex digits, \
            the same ids as in the MLflow API); times are RFC 3339 in UTC with milliseconds, in responses and \
            requests alike; metric values that JSON cannot write (NaN, ±infinity) are `null` with a `non_finite` \
            field naming them, and requests may give them as the strings \"NaN\", \"Infinity\", \"-Infinity\"; \
            lists are keyset-paged with `limit` and an opaque `cursor` (pass back `next_cursor`, null on the last \
            page); errors are RFC 9457 problem details (`application/problem+json`): 400 for a malformed query \
            (bad filter, limit or cursor), 401 without valid credentials, 403 for a read-only credential that \
            writes, 404 for an unknown id, 409 for a taken name, 415 without a JSON content type, 422 for a body \
            with wrong types or values the rules refuse.",
    ),
    paths(document),
    components(schemas(Problem)),
    modifiers(&Security),
    security(("bearer" = []), ("basic" = [])),
    tags(
        (name = "experiments", description = "Experiments"),
        (name = "runs", description = "Runs, their metrics, params, tags and environment"),
        (name = "models", description = "The model registry: registered models, versions and aliases"),
        (name = "datasets", description = "Versioned datasets over content-addressed file contents, and the runs that used them"),
        (name = "lineage", description = "Where models came from: dataset version -> run -> model version -> deployment"),
        (name = "jobs", description = "Training jobs: the queue, their runs, logs, cancel and retry"),
        (name = "deployments", description = "Model versions served over HTTP (gateway at /serve/NAME/...): revisions, rollback, logs"),
        (name = "accounts", description = "The caller, API tokens and users"),
        (name = "projects", description = "Projects: members and their roles, service accounts and their project-scoped tokens"),
        (name = "audit", description = "The audit log"),
        (name = "meta", description = "This document"),
    ),
)]
pub struct ApiDoc;

/// An error, as RFC 9457 problem details.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: String,
    #[schema(example = "Not Found")]
    title: String,
    #[schema(example = 404)]
    status: u16,
    /// What went wrong, for people.
    #[schema(example = "Run with id=0123456789abcdef0123456789abcdef not found")]
    detail: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

/// The document with every path under [`PREFIX`].
pub fn with_prefix(mut doc: Document) -> Document {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths.into_iter().map(|(path, item)| (format!("{PREFIX}{path}"), item)).collect();
    doc
}

static DOCUMENT: LazyLock<Document> = LazyLock::new(super::openapi_document);

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses(
    (status = 200, description = "The OpenAPI 3.1 document of /api/v1", content_type = "application/json"),
))]
pub async fn document() -> Json<&'static Document> {
    Json(&DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_is_under_the_prefix_and_every_operation_is_documented() {
        let doc = super::super::openapi_document();
        let json = serde_json::to_value(&doc).unwrap_or_default();
        let paths = json["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.len() > 10, "{paths:?}");
        for (path, item) in &paths {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for (method, operation) in item.as_object().into_iter().flatten() {
                let summary = operation["summary"].as_str().unwrap_or("");
                assert!(!summary.is_empty(), "{method} {path} has no summary (a doc comment on the handler)");
            }
        }
        assert_eq!(json["paths"]["/api/v1/openapi.json"]["get"]["security"], serde_json::json!([{}]));
        if let Ok(out) = std::env::var("CAIRN_DUMP_OPENAPI") {
            let _ = std::fs::write(out, serde_json::to_string_pretty(&json).unwrap_or_default());
        }
    }
}
