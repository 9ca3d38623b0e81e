//! `GET /api/v1/lineage?node=KIND:ID`: the lineage graph around one node (dataset version ->
//! run -> model version -> deployment), upstream and downstream, with display names and
//! dashboard links.

use axum::Json;
use axum::extract::State;
use cairn_core::lineage::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::openapi::Problem;
use super::query::ApiQuery;
use crate::lineage::{self, Edge, Node, Side};
use crate::state::AppState;
use crate::ui::links;
use crate::visibility::Visible;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LineageQuery {
    /// `dataset:NAME@VERSION`, `run:RUN_ID` (32 hex digits), `model:NAME/VERSION` or
    /// `deployment:NAME`.
    #[param(example = "model:fraud-detector/3")]
    node: String,
}

/// A node of the graph.
#[derive(Serialize, ToSchema)]
pub struct NodeView {
    /// `dataset`, `run`, `model` (a model version) or `deployment`.
    #[schema(example = "model")]
    kind: &'static str,
    /// The node id, as `node=` takes it.
    #[schema(example = "model:fraud-detector/3")]
    id: String,
    /// What people call it: `imgs@3`, the run's name, `fraud-detector v3`.
    name: String,
    /// Its dashboard page, absolute path.
    url: Option<String>,
    /// Runs only: the run is deleted (kept as history).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl From<Node> for NodeView {
    fn from(n: Node) -> Self {
        NodeView {
            kind: n.id.kind().as_str(),
            url: links::lineage_node(&n.id),
            id: n.id.to_string(),
            name: n.name,
            deleted: n.deleted,
        }
    }
}

/// An edge, in the direction the data flows.
#[derive(Serialize, ToSchema)]
pub struct EdgeView {
    from: String,
    to: String,
    /// `input` (dataset version -> run), `produced` (run -> model version) or `deployed`
    /// (model version -> deployment).
    #[schema(example = "input")]
    kind: &'static str,
    /// Input edges: how the run used the dataset (`training`, `evaluation`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<String>,
}

impl From<Edge> for EdgeView {
    fn from(e: Edge) -> Self {
        EdgeView {
            from: e.from.to_string(),
            to: e.to.to_string(),
            kind: e.kind.as_str(),
            context: (e.kind == lineage::EdgeKind::Input).then_some(e.context),
        }
    }
}

/// One side of the graph, followed transitively.
#[derive(Serialize, ToSchema)]
pub struct SideView {
    nodes: Vec<NodeView>,
    edges: Vec<EdgeView>,
    /// The side holds more than the 500 nodes listed.
    truncated: bool,
    /// How many neighbours were left out (with their edges, and what lies beyond them)
    /// because they are in projects the caller cannot read.
    #[serde(skip_serializing_if = "is_zero")]
    hidden: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl From<Side> for SideView {
    fn from(s: Side) -> Self {
        SideView {
            nodes: s.nodes.into_iter().map(NodeView::from).collect(),
            edges: s.edges.into_iter().map(EdgeView::from).collect(),
            truncated: s.truncated,
            hidden: s.hidden,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LineageView {
    /// The node asked about.
    node: NodeView,
    /// What it came from: for a model version its source run and the dataset versions
    /// that run used.
    upstream: SideView,
    /// What came from it: for a dataset version the runs that used it and the model
    /// versions registered from those runs.
    downstream: SideView,
}

/// The lineage graph around a node: upstream and downstream nodes and edges.
#[utoipa::path(get, path = "/lineage", tag = "lineage", params(LineageQuery), responses(
    (status = 200, body = LineageView),
    (status = 400, description = "A malformed node id (the detail names the accepted forms)", body = Problem),
    (status = 404, description = "No such dataset version, run, model version or deployment", body = Problem),
))]
pub async fn graph(
    State(state): State<AppState>,
    visible: Visible,
    ApiQuery(q): ApiQuery<LineageQuery>,
) -> Result<Json<LineageView>, ApiError> {
    let node = q.node.trim().parse::<NodeId>().map_err(|e| ApiError::bad_request(e.0))?;
    let graph = lineage::graph(&state.db, &node, visible.projects()).await?;
    Ok(Json(LineageView {
        node: graph.node.into(),
        upstream: graph.upstream.into(),
        downstream: graph.downstream.into(),
    }))
}
