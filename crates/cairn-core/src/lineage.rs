//! Lineage node ids: `dataset:NAME@VERSION`, `run:RUN_ID`, `model:NAME/VERSION` and
//! `deployment:NAME`, as `GET /api/v1/lineage?node=...` takes them and the audit log names
//! its targets. The graph they form is dataset version -> run -> model version -> deployment.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::ValidationError;
use crate::dataset::validate_dataset_name;

/// What a lineage node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    Dataset,
    Run,
    Model,
    Deployment,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Dataset => "dataset",
            NodeKind::Run => "run",
            NodeKind::Model => "model",
            NodeKind::Deployment => "deployment",
        }
    }
}

/// One node of the lineage graph, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeId {
    /// A dataset version.
    Dataset {
        name: String,
        version: i32,
    },
    Run(Uuid),
    /// A model version.
    Model {
        name: String,
        version: i64,
    },
    Deployment(String),
}

/// The accepted forms, for error messages.
pub const NODE_FORMS: &str = "dataset:NAME@VERSION, run:RUN_ID (32 hex digits), model:NAME/VERSION or deployment:NAME";

const MAX_DEPLOYMENT_NAME_LEN: usize = 100;

impl NodeId {
    pub fn kind(&self) -> NodeKind {
        match self {
            NodeId::Dataset { .. } => NodeKind::Dataset,
            NodeId::Run(_) => NodeKind::Run,
            NodeId::Model { .. } => NodeKind::Model,
            NodeId::Deployment(_) => NodeKind::Deployment,
        }
    }
}

fn refused(raw: &str, why: &str) -> ValidationError {
    ValidationError(format!("invalid lineage node {raw:?}: {why}; use {NODE_FORMS}"))
}

fn positive<T: FromStr + PartialOrd + Default>(raw: &str) -> Option<T> {
    raw.parse::<T>().ok().filter(|v| *v > T::default())
}

impl FromStr for NodeId {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let Some((kind, id)) = raw.split_once(':') else {
            return Err(refused(raw, "no KIND: prefix"));
        };
        match kind {
            "dataset" => {
                let (name, version) =
                    id.rsplit_once('@').ok_or_else(|| refused(raw, "a dataset node needs @VERSION"))?;
                validate_dataset_name(name).map_err(|e| refused(raw, &e.0))?;
                let version = positive(version).ok_or_else(|| refused(raw, "the version must be 1, 2, ..."))?;
                Ok(NodeId::Dataset { name: name.to_owned(), version })
            }
            "run" => {
                let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
                let uuid = Uuid::try_parse(id).ok().filter(|_| valid);
                uuid.map(NodeId::Run).ok_or_else(|| refused(raw, "a run id is 32 hex digits"))
            }
            "model" => {
                let (name, version) = id.rsplit_once('/').ok_or_else(|| refused(raw, "a model node needs /VERSION"))?;
                crate::registry::validate_model_name(name).map_err(|e| refused(raw, &e.0))?;
                let version = positive(version).ok_or_else(|| refused(raw, "the version must be 1, 2, ..."))?;
                Ok(NodeId::Model { name: name.to_owned(), version })
            }
            "deployment" => {
                let valid = id.len() <= MAX_DEPLOYMENT_NAME_LEN
                    && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if !valid {
                    return Err(refused(raw, "a deployment name is letters, digits, '.', '_' or '-'"));
                }
                Ok(NodeId::Deployment(id.to_owned()))
            }
            other => Err(refused(raw, &format!("unknown kind {other:?}"))),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Dataset { name, version } => write!(f, "dataset:{name}@{version}"),
            NodeId::Run(id) => write!(f, "run:{}", id.simple()),
            NodeId::Model { name, version } => write!(f, "model:{name}/{version}"),
            NodeId::Deployment(name) => write!(f, "deployment:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for raw in [
            "dataset:train.v2_set-1@3",
            "run:0123456789abcdef0123456789abcdef",
            "model:fraud detector/12",
            "model:a@b/1",
            "deployment:fraud-prod",
        ] {
            let node: NodeId = raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(node.to_string(), raw);
        }
        let run: NodeId = "run:0123456789ABCDEF0123456789ABCDEF".parse().unwrap();
        assert_eq!(run.to_string(), "run:0123456789abcdef0123456789abcdef", "written in lowercase");
        assert_eq!(run.kind(), NodeKind::Run);
    }

    #[test]
    fn malformed_ids_name_the_accepted_forms() {
        for (raw, why) in [
            ("", "no KIND: prefix"),
            ("fraud/1", "no KIND: prefix"),
            ("job:1", "unknown kind"),
            ("dataset:imgs", "needs @VERSION"),
            ("dataset:imgs@0", "1, 2, ..."),
            ("dataset:imgs@x", "1, 2, ..."),
            ("dataset:../x@1", "invalid dataset name"),
            ("run:0123", "32 hex digits"),
            ("run:01234567-89ab-cdef-0123-456789abcdef", "32 hex digits"),
            ("run:0123456789abcdef0123456789abcdeg", "32 hex digits"),
            ("model:fraud", "needs /VERSION"),
            ("model:fraud/-1", "1, 2, ..."),
            ("model:/1", "name"),
            ("deployment:", "deployment name"),
            ("deployment:a/b", "deployment name"),
        ] {
            let err = raw.parse::<NodeId>().expect_err(raw).0;
            assert!(err.contains(why), "{raw}: {err}");
            assert!(err.contains(NODE_FORMS), "{raw}: {err}");
        }
    }
}
