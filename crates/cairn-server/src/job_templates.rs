//! Job templates: named, versioned specs a team reuses ("train-resnet"). Every update is a
//! new version, so a job names exactly the spec it came from; submitting from a template
//! applies the submitter's overrides (params, GPUs, dataset versions) to that spec and
//! records the template version on the job, for accounting.

use std::collections::BTreeMap;

use cairn_core::dataset::DatasetRef;
use cairn_core::job::JobSpec;
use cairn_db::Db;
use cairn_db::audit;
use cairn_db::job_templates::{self as repo, NewTemplate, TemplateRow};
use cairn_db::jobs::JobRow;
use serde_json::json;

use crate::audit::Actor;
use crate::jobs::{self, Result, Submission};
use crate::state::AppState;
use crate::tracking::TrackingError;

/// A template's name: a letter or digit, then letters, digits, `.`, `_` or `-`; at most 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateName(String);

impl TemplateName {
    pub fn parse(raw: &str) -> std::result::Result<TemplateName, TrackingError> {
        let ok = !raw.is_empty()
            && raw.len() <= 100
            && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(TemplateName(raw.to_owned()))
        } else {
            Err(TrackingError::Invalid(format!(
                "{raw:?} is not a template name: use letters, digits, '.', '_' and '-' (up to 100), starting with a letter or digit"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `NAME` (the latest version) or `NAME@VERSION`.
pub fn parse_reference(raw: &str) -> std::result::Result<(TemplateName, Option<i32>), TrackingError> {
    match raw.rsplit_once('@') {
        Some((name, version)) => {
            let number =
                version.parse::<i32>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                    TrackingError::Invalid(format!("{raw:?}: a template version is a number 1, 2, ..."))
                })?;
            Ok((TemplateName::parse(name)?, Some(number)))
        }
        None => Ok((TemplateName::parse(raw)?, None)),
    }
}

pub struct TemplateInput {
    pub name: TemplateName,
    pub description: String,
    pub experiment_id: Option<i64>,
    pub spec: JobSpec,
    /// Where a new template goes (see [`repo::insert_version`]).
    pub project_id: i64,
}

/// Adds a new version of the template (version 1 for a new name).
pub async fn save(db: &Db, actor: &Actor, input: TemplateInput) -> Result<TemplateRow> {
    input.spec.validate()?;
    for dataset in &input.spec.datasets {
        dataset.parse::<DatasetRef>().map_err(|e| TrackingError::Invalid(e.0))?;
    }
    let mut tx = db.pool.begin().await.map_err(TrackingError::from)?;
    let new = NewTemplate {
        name: input.name.as_str(),
        spec: &input.spec,
        description: &input.description,
        experiment_id: input.experiment_id,
        created_by: actor.user_id,
        project_id: input.project_id,
    };
    let (_, version) = repo::insert_version(&mut *tx, &new).await.map_err(|e| {
        if e.is_unique_violation() {
            TrackingError::AlreadyExists(format!(
                "template {} was updated at the same time by someone else; try again",
                input.name.as_str()
            ))
        } else {
            e.into()
        }
    })?;
    let target = format!("job_template:{}@{version}", input.name.as_str());
    audit::append_in(&mut tx, actor.event("job_template.save", target, json!({"gpus": input.spec.gpus}))).await?;
    tx.commit().await.map_err(TrackingError::from)?;
    get(db, &input.name, Some(version)).await
}

/// Version `version` of a template, or its latest.
pub async fn get(db: &Db, name: &TemplateName, version: Option<i32>) -> Result<TemplateRow> {
    repo::get(&db.pool, name.as_str(), version).await?.ok_or_else(|| {
        let what = match version {
            Some(v) => format!("no job template {}@{v}", name.as_str()),
            None => format!("no job template named {}", name.as_str()),
        };
        TrackingError::NotFound(what).into()
    })
}

/// What a submission from a template changes in its spec.
#[derive(Debug, Default)]
pub struct TemplateOverrides {
    /// Params to set (the template's others keep their defaults).
    pub params: BTreeMap<String, String>,
    pub gpus: Option<u32>,
    /// `NAME` or `NAME@VERSION`: replaces the input with that name, or adds it.
    pub datasets: Vec<String>,
    /// The experiment for the job's run, instead of the template's.
    pub experiment_id: Option<i64>,
    pub priority: i32,
}

/// The template's spec with the overrides applied.
pub fn apply(template: &TemplateRow, overrides: &TemplateOverrides) -> Result<JobSpec> {
    let mut spec = template.spec.0.clone();
    spec.params.extend(overrides.params.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(gpus) = overrides.gpus {
        spec.gpus = gpus;
    }
    for replacement in &overrides.datasets {
        let reference = replacement.parse::<DatasetRef>().map_err(|e| TrackingError::Invalid(e.0))?;
        spec.datasets.retain(|d| d.parse::<DatasetRef>().map_or(true, |existing| existing.name != reference.name));
        spec.datasets.push(replacement.clone());
    }
    Ok(spec)
}

/// Submits a job from template version `version` (the latest when `None`) with
/// `overrides`; the job records the template version it came from.
pub async fn submit(
    state: &AppState,
    actor: &Actor,
    name: &TemplateName,
    version: Option<i32>,
    overrides: TemplateOverrides,
) -> Result<JobRow> {
    let template = get(&state.db, name, version).await?;
    let spec = apply(&template, &overrides)?;
    let submission = Submission {
        experiment_id: overrides.experiment_id.or(template.experiment_id).unwrap_or(0),
        spec,
        priority: overrides.priority,
        origin: None,
        template: Some(template),
    };
    jobs::submit(state, actor, submission).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_references_are_checked() {
        assert!(TemplateName::parse("train-resnet.v2_a").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(101)] {
            assert!(TemplateName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_reference("t@3").map(|(n, v)| (n.0, v)).ok(), Some(("t".to_owned(), Some(3))));
        assert_eq!(parse_reference("t").map(|(n, v)| (n.0, v)).ok(), Some(("t".to_owned(), None)));
        assert!(parse_reference("t@0").is_err() && parse_reference("t@x").is_err() && parse_reference("@1").is_err());
    }
}
