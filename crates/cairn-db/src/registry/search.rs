//! `registered-models/search` and `model-versions/search`: the parsed MLflow filters and
//! order_by clauses as one SQL statement each, every value a bind parameter. Pages are
//! offsets because MLflow's page tokens are (`{"offset": N}`).
//!
//! Tag clauses are `EXISTS` semi-joins, except MLflow's prompt-exclusion clause
//! (``tag.`mlflow.prompt.is_prompt` != 'true'``, which the client appends to every model
//! search): a model *without* the tag must match it, so it becomes `NOT EXISTS` of the tag
//! with value `'true'`, as MLflow's anti-join does.

use cairn_core::search::{
    ModelVersionClause, ModelVersionFilter, ModelVersionOrderKey, OrderBy, RegisteredModelClause,
    RegisteredModelFilter, RegisteredModelOrderKey, StrOp,
};
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use super::{MODEL_SELECT, ModelRow, VERSION_SELECT, VersionRow};
use crate::DbError;
use crate::tracking::search::{RUN_ID_COLUMN, push_str_cond};

const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

pub struct ModelSearch<'a> {
    /// Only models in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
    pub filter: &'a RegisteredModelFilter,
    pub order_by: &'a [OrderBy<RegisteredModelOrderKey>],
    pub offset: i64,
    pub limit: i64,
}

pub async fn models(db: impl PgExecutor<'_>, query: &ModelSearch<'_>) -> Result<Vec<ModelRow>, DbError> {
    let mut q = QueryBuilder::<Postgres>::new(MODEL_SELECT);
    q.push(" WHERE true");
    push_projects(&mut q, query.projects);
    for clause in &query.filter.0 {
        q.push(" AND ");
        match clause {
            RegisteredModelClause::Name(cond) => push_str_cond(&mut q, "m.name", cond),
            RegisteredModelClause::Tag { key, op, value } => {
                push_tag(&mut q, "registered_model_tags", "model_id", "m.id", key, *op, value);
            }
        }
    }
    q.push(" ORDER BY ");
    let mut by_name = false;
    for order in query.order_by {
        let column = match order.key {
            RegisteredModelOrderKey::Name => {
                by_name = true;
                "m.name"
            }
            // MLflow sorts both timestamp keys by the last update.
            RegisteredModelOrderKey::CreationTimestamp | RegisteredModelOrderKey::LastUpdatedTimestamp => {
                "m.last_updated_time"
            }
        };
        q.push(format!("{column} {}, ", direction(order.ascending)));
    }
    if !by_name {
        q.push("m.name ASC, ");
    }
    q.push("m.id LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
    Ok(q.build_query_as().fetch_all(db).await?)
}

pub struct VersionSearch<'a> {
    /// Only versions of models in these projects; None for every project.
    pub projects: Option<&'a [i64]>,
    pub filter: &'a ModelVersionFilter,
    /// Empty: MLflow's default, last updated first.
    pub order_by: &'a [OrderBy<ModelVersionOrderKey>],
    pub offset: i64,
    pub limit: i64,
}

pub async fn versions(db: impl PgExecutor<'_>, query: &VersionSearch<'_>) -> Result<Vec<VersionRow>, DbError> {
    let mut q = QueryBuilder::<Postgres>::new(VERSION_SELECT);
    q.push(" WHERE true");
    push_projects(&mut q, query.projects);
    for clause in &query.filter.0 {
        q.push(" AND ");
        match clause {
            ModelVersionClause::Name(cond) => push_str_cond(&mut q, "m.name", cond),
            ModelVersionClause::SourcePath { op, value } => {
                q.push(format!("v.source {} ", op.as_sql())).push_bind(value.clone());
            }
            // Run ids are compared as MLflow writes them: 32 hex digits without dashes.
            ModelVersionClause::RunId(cond) => push_str_cond(&mut q, RUN_ID_COLUMN, cond),
            ModelVersionClause::VersionNumber { op, value } => {
                q.push(format!("v.version {} ", op.as_sql())).push_bind(*value);
            }
            ModelVersionClause::Tag { key, op, value } => {
                push_tag(&mut q, "model_version_tags", "version_id", "v.id", key, *op, value);
            }
        }
    }
    let default_order = [OrderBy { key: ModelVersionOrderKey::LastUpdatedTimestamp, ascending: false }];
    let order_by = if query.order_by.is_empty() { &default_order[..] } else { query.order_by };
    q.push(" ORDER BY ");
    for order in order_by {
        let column = match order.key {
            ModelVersionOrderKey::Name => "m.name",
            ModelVersionOrderKey::VersionNumber => "v.version",
            ModelVersionOrderKey::CreationTimestamp => "v.creation_time",
            ModelVersionOrderKey::LastUpdatedTimestamp => "v.last_updated_time",
        };
        q.push(format!("{column} {}, ", direction(order.ascending)));
    }
    // MLflow's tie-breakers: name ascending, then version descending.
    if !order_by.iter().any(|o| o.key == ModelVersionOrderKey::Name) {
        q.push("m.name ASC, ");
    }
    if !order_by.iter().any(|o| o.key == ModelVersionOrderKey::VersionNumber) {
        q.push("v.version DESC, ");
    }
    q.push("v.id LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// Restricts a search to models in `projects` (None: every project).
fn push_projects(q: &mut QueryBuilder<Postgres>, projects: Option<&[i64]>) {
    if let Some(projects) = projects {
        q.push(" AND m.project_id = ANY(").push_bind(projects.to_vec()).push(")");
    }
}

fn direction(ascending: bool) -> &'static str {
    if ascending { "ASC" } else { "DESC" }
}

fn push_tag(q: &mut QueryBuilder<Postgres>, table: &str, column: &str, owner: &str, key: &str, op: StrOp, value: &str) {
    let excludes_prompts = key == PROMPT_TAG
        && (op == StrOp::Ne && value.eq_ignore_ascii_case("true")
            || op == StrOp::Eq && value.eq_ignore_ascii_case("false"));
    if excludes_prompts {
        q.push(format!("NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = {owner} AND t.key = "));
        q.push_bind(PROMPT_TAG).push(" AND lower(t.value) = 'true')");
        return;
    }
    q.push(format!("EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = {owner} AND t.key = "));
    q.push_bind(key.to_owned()).push(format!(" AND t.value {} ", op.as_sql())).push_bind(value.to_owned()).push(")");
}
