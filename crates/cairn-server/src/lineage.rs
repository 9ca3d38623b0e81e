//! The lineage graph around one node: dataset version -> run -> model version -> deployment.
//! Upstream is what the node came from, downstream what came from it, both followed
//! transitively. The graph is layered (each edge goes one layer right), so a walk is at
//! most three hops, each one set-based query over the whole frontier
//! ([`cairn_db::lineage`]); a walk stops at [`MAX_NODES`] nodes and says it was cut.
//!
//! A deployment links to the model version its current revision serves
//! ([`EdgeKind::Deployed`]).
//!
//! Neighbours in projects the caller cannot read are left out, with their edges, and the
//! walk does not go on through them; each side counts how many it left out
//! ([`Side::hidden`]). Placeholders were the other choice, but a node id names the object
//! (`model:NAME/VERSION`), so a placeholder would need ids of its own and would still show
//! the shape of another project's work; leaving the nodes out shows only what the caller
//! could find by reading their own projects. The start node itself is checked by the route
//! table before the walk begins.

use std::collections::{HashMap, HashSet};

use cairn_core::lineage::NodeId;
use cairn_db::Db;
use cairn_db::lineage::{self as repo, DatasetVersionNode, ModelVersionNode, RunNode};

use crate::tracking::{Result, TrackingError};

/// Most nodes listed on each side of the graph.
pub const MAX_NODES: usize = 500;
/// Most edges read in one hop (several edges may lead to one node).
const MAX_EDGES: usize = 2000;
const EDGE_QUERY_LIMIT: i64 = MAX_EDGES as i64 + 1;

/// A node with what people call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    /// `imgs@3`, the run's name (or its id), `fraud v2`.
    pub name: String,
    /// Runs only: the run is deleted (still part of the history).
    pub deleted: bool,
}

/// How one node led to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// A dataset version was an input of a run.
    Input,
    /// A run produced a model version (the version was registered from it).
    Produced,
    /// A model version is served by a deployment.
    Deployed,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Input => "input",
            EdgeKind::Produced => "produced",
            EdgeKind::Deployed => "deployed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
    pub kind: EdgeKind,
    /// Input edges: how the run used the dataset (`training`, ...); may be empty.
    pub context: String,
}

/// One side of the graph: its nodes (without the start node) and edges.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// The walk stopped at [`MAX_NODES`]; more nodes exist.
    pub truncated: bool,
    /// Neighbours left out because they are in projects the caller cannot read.
    pub hidden: usize,
}

#[derive(Debug, Clone)]
pub struct Graph {
    pub node: Node,
    pub upstream: Side,
    pub downstream: Side,
}

/// What a walk still has to expand: one layer's nodes, by internal id.
enum Frontier {
    Datasets(HashMap<i64, NodeId>),
    Runs(HashMap<i64, NodeId>),
    Models(HashMap<i64, NodeId>),
    Deployments(HashMap<i64, NodeId>),
}

impl Frontier {
    fn ids(&self) -> Vec<i64> {
        let (Frontier::Datasets(m) | Frontier::Runs(m) | Frontier::Models(m) | Frontier::Deployments(m)) = self;
        m.keys().copied().collect()
    }

    fn get(&self, id: i64) -> Option<NodeId> {
        let (Frontier::Datasets(m) | Frontier::Runs(m) | Frontier::Models(m) | Frontier::Deployments(m)) = self;
        m.get(&id).cloned()
    }

    fn is_empty(&self) -> bool {
        let (Frontier::Datasets(m) | Frontier::Runs(m) | Frontier::Models(m) | Frontier::Deployments(m)) = self;
        m.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The graph around `node`, without the nodes outside `readable` (the projects the caller
/// can read; None for every project); unknown nodes are [`TrackingError::NotFound`].
pub async fn graph(db: &Db, node: &NodeId, readable: Option<&[i64]>) -> Result<Graph> {
    let (start, up) = resolve(db, node).await?;
    let down = match &up {
        Frontier::Datasets(m) => Frontier::Datasets(m.clone()),
        Frontier::Runs(m) => Frontier::Runs(m.clone()),
        Frontier::Models(m) => Frontier::Models(m.clone()),
        Frontier::Deployments(m) => Frontier::Deployments(m.clone()),
    };
    let (upstream, downstream) =
        tokio::try_join!(walk(db, up, Direction::Up, readable), walk(db, down, Direction::Down, readable))?;
    Ok(Graph { node: start, upstream, downstream })
}

async fn resolve(db: &Db, node: &NodeId) -> Result<(Node, Frontier)> {
    let pool = &db.pool;
    match node {
        NodeId::Dataset { name, version } => {
            let found = repo::dataset_version(pool, name, *version).await?;
            let found = found.ok_or_else(|| TrackingError::NotFound(format!("no dataset version {name}@{version}")))?;
            let node = dataset_node(&found);
            Ok((node.clone(), Frontier::Datasets(HashMap::from([(found.id, node.id)]))))
        }
        NodeId::Run(id) => {
            let found = repo::run(pool, *id).await?;
            let found = found.ok_or_else(|| TrackingError::NotFound(format!("no run with id {}", id.simple())))?;
            let node = run_node(&found);
            Ok((node.clone(), Frontier::Runs(HashMap::from([(found.id, node.id)]))))
        }
        NodeId::Model { name, version } => {
            let found = repo::model_version(pool, name, *version).await?;
            let found = found.ok_or_else(|| TrackingError::NotFound(format!("no model version {name}/{version}")))?;
            let node = model_node(&found);
            Ok((node.clone(), Frontier::Models(HashMap::from([(found.id, node.id)]))))
        }
        NodeId::Deployment(name) => {
            let id = cairn_db::deployments::id_of(pool, name).await?;
            let id = id.ok_or_else(|| TrackingError::NotFound(format!("no deployment named {name:?}")))?;
            let node = deployment_node(name);
            Ok((node.clone(), Frontier::Deployments(HashMap::from([(id, node.id)]))))
        }
    }
}

fn dataset_node(d: &DatasetVersionNode) -> Node {
    Node {
        id: NodeId::Dataset { name: d.dataset.clone(), version: d.version },
        name: format!("{}@{}", d.dataset, d.version),
        deleted: false,
    }
}

fn run_node(r: &RunNode) -> Node {
    let name = if r.name.is_empty() { r.run_uuid.simple().to_string() } else { r.name.clone() };
    Node { id: NodeId::Run(r.run_uuid), name, deleted: r.deleted }
}

fn model_node(m: &ModelVersionNode) -> Node {
    Node {
        id: NodeId::Model { name: m.model.clone(), version: m.version },
        name: format!("{} v{}", m.model, m.version),
        deleted: false,
    }
}

fn deployment_node(name: &str) -> Node {
    Node { id: NodeId::Deployment(name.to_owned()), name: name.to_owned(), deleted: false }
}

/// Collects one side, node by node, without repeating nodes.
struct Collector<'a> {
    side: Side,
    seen: HashSet<NodeId>,
    /// The projects the caller can read (None: every project).
    readable: Option<&'a [i64]>,
    hidden: HashSet<NodeId>,
}

impl Collector<'_> {
    /// A hop's edges, at most [`MAX_EDGES`]: the query asked for one more, to tell.
    fn bounded<T>(&mut self, mut rows: Vec<T>) -> Vec<T> {
        if rows.len() > MAX_EDGES {
            rows.truncate(MAX_EDGES);
            self.side.truncated = true;
        }
        rows
    }

    /// Adds the node unless present; false when the side is full.
    fn add(&mut self, node: Node) -> bool {
        if self.seen.contains(&node.id) {
            return true;
        }
        if self.side.nodes.len() >= MAX_NODES {
            self.side.truncated = true;
            return false;
        }
        self.seen.insert(node.id.clone());
        self.side.nodes.push(node);
        true
    }

    /// Records the edge between a frontier node and `node` (which is added), pointing the
    /// way the graph flows: a walk upstream meets the edges from their far end. False when
    /// the side is full, or when `node` is in a project (`project_id`) the caller cannot
    /// read: it is then only counted.
    fn link(
        &mut self,
        near: Option<NodeId>,
        (node, project_id): (&Node, i64),
        kind: EdgeKind,
        context: String,
        direction: Direction,
    ) -> bool {
        let Some(near) = near else { return false };
        if self.readable.is_some_and(|readable| !readable.contains(&project_id)) {
            if self.hidden.insert(node.id.clone()) {
                self.side.hidden += 1;
            }
            return false;
        }
        if !self.add(node.clone()) {
            return false;
        }
        let (from, to) = match direction {
            Direction::Down => (near, node.id.clone()),
            Direction::Up => (node.id.clone(), near),
        };
        self.side.edges.push(Edge { from, to, kind, context });
        true
    }
}

/// Follows edges from the frontier in one direction until no layer is left or the side is
/// full. Each hop is one query over the whole layer.
async fn walk(db: &Db, mut frontier: Frontier, direction: Direction, readable: Option<&[i64]>) -> Result<Side> {
    let pool = &db.pool;
    let mut out = Collector { side: Side::default(), seen: HashSet::new(), readable, hidden: HashSet::new() };
    while !frontier.is_empty() && !out.side.truncated {
        let ids = frontier.ids();
        let mut next = HashMap::new();
        frontier = match (direction, &frontier) {
            (Direction::Down, Frontier::Datasets(_)) => {
                for edge in out.bounded(repo::runs_using(pool, &ids, EDGE_QUERY_LIMIT).await?) {
                    let node = run_node(&edge.run);
                    let target = (&node, edge.run.project_id);
                    if out.link(frontier.get(edge.other_id), target, EdgeKind::Input, edge.context, direction) {
                        next.insert(edge.run.id, node.id);
                    }
                }
                Frontier::Runs(next)
            }
            (Direction::Down, Frontier::Runs(_)) => {
                for edge in out.bounded(repo::models_from(pool, &ids, EDGE_QUERY_LIMIT).await?) {
                    let node = model_node(&edge.model);
                    let target = (&node, edge.model.project_id);
                    if out.link(frontier.get(edge.run_id), target, EdgeKind::Produced, String::new(), direction) {
                        next.insert(edge.model.id, node.id);
                    }
                }
                Frontier::Models(next)
            }
            (Direction::Up, Frontier::Models(_)) => {
                for edge in out.bounded(repo::source_runs(pool, &ids, EDGE_QUERY_LIMIT).await?) {
                    let node = run_node(&edge.run);
                    let target = (&node, edge.run.project_id);
                    if out.link(frontier.get(edge.other_id), target, EdgeKind::Produced, String::new(), direction) {
                        next.insert(edge.run.id, node.id);
                    }
                }
                Frontier::Runs(next)
            }
            (Direction::Up, Frontier::Runs(_)) => {
                for edge in out.bounded(repo::inputs_of(pool, &ids, EDGE_QUERY_LIMIT).await?) {
                    let node = dataset_node(&edge.dataset);
                    let target = (&node, edge.dataset.project_id);
                    if out.link(frontier.get(edge.run_id), target, EdgeKind::Input, edge.context, direction) {
                        next.insert(edge.dataset.id, node.id);
                    }
                }
                Frontier::Datasets(next)
            }
            (Direction::Down, Frontier::Models(_)) => {
                let edges = cairn_db::deployments::serving(pool, &ids, EDGE_QUERY_LIMIT).await?;
                for edge in out.bounded(edges) {
                    let node = deployment_node(&edge.name);
                    let target = (&node, edge.deployment_project_id);
                    if out.link(frontier.get(edge.model.id), target, EdgeKind::Deployed, String::new(), direction) {
                        next.insert(edge.deployment_id, node.id);
                    }
                }
                Frontier::Deployments(next)
            }
            (Direction::Up, Frontier::Deployments(_)) => {
                for edge in out.bounded(cairn_db::deployments::served(pool, &ids).await?) {
                    let node = model_node(&edge.model);
                    let target = (&node, edge.model.project_id);
                    if out.link(frontier.get(edge.deployment_id), target, EdgeKind::Deployed, String::new(), direction)
                    {
                        next.insert(edge.model.id, node.id);
                    }
                }
                Frontier::Models(next)
            }
            // Nothing is upstream of a dataset version, nor downstream of a deployment.
            (Direction::Up, Frontier::Datasets(_)) | (Direction::Down, Frontier::Deployments(_)) => break,
        };
    }
    Ok(out.side)
}
