//! Page URLs. Every page state lives in the query string, so that a URL pasted to a
//! colleague shows the same page; these helpers write those query strings in one canonical
//! form (fixed parameter order, empty values left out).

/// `path?k=v&...` with the non-empty pairs, form-encoded; just `path` when none are left.
pub fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(key, value);
        any = true;
    }
    if any { format!("{path}?{}", query.finish()) } else { path.to_owned() }
}

/// The decoded pairs of a raw query string, repeated keys included.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The last value of `key` in decoded pairs.
pub fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The path of a run's page.
pub fn run(run_uuid: &uuid::Uuid) -> String {
    format!("/runs/{}", run_uuid.simple())
}

/// The path of an experiment's runs table.
pub fn experiment(id: i64) -> String {
    format!("/experiments/{id}")
}

/// The path of a metric's JSON series (keys may hold slashes, which stay path separators).
pub fn metric_series(run_uuid: &uuid::Uuid, key: &str) -> String {
    format!("/runs/{}/metrics/{}.json", run_uuid.simple(), encoded_path(key))
}

/// What a path segment in our URLs must have encoded: what would end or restructure the
/// path (`/`, `?`, `#`, `%`), and what is not allowed in a URL as is.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'\'');

/// `a/b c` as `a/b%20c`: each segment encoded, the slashes kept.
pub fn encoded_path(path: &str) -> String {
    let segments: Vec<String> =
        path.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()).collect();
    segments.join("/")
}

/// The artifact browser of a run at `path` (a directory or a file; the root for `None`).
pub fn artifacts(run_uuid: &uuid::Uuid, path: Option<&str>) -> String {
    match path {
        Some(path) => format!("/runs/{}/artifacts/{}", run_uuid.simple(), encoded_path(path)),
        None => format!("/runs/{}/artifacts", run_uuid.simple()),
    }
}

/// The bytes of a run's artifact file.
pub fn artifact_file(run_uuid: &uuid::Uuid, path: &str) -> String {
    format!("/runs/{}/files/{}", run_uuid.simple(), encoded_path(path))
}

/// A dataset's page; with a version, that version chosen on it.
pub fn dataset(name: &str, version: Option<i32>) -> String {
    let path = format!("/datasets/{}", encoded_path(name));
    match version {
        Some(v) => url(&path, &[("version", &v.to_string())]),
        None => path,
    }
}

/// A model version's page.
pub fn model_version(name: &str, version: i64) -> String {
    format!("/models/{}/versions/{version}", percent_encoding::utf8_percent_encode(name, SEGMENT))
}

/// The dashboard page of a lineage node.
pub fn lineage_node(node: &cairn_core::lineage::NodeId) -> Option<String> {
    use cairn_core::lineage::NodeId;
    match node {
        NodeId::Dataset { name, version } => Some(dataset(name, Some(*version))),
        NodeId::Run(id) => Some(run(id)),
        NodeId::Model { name, version } => Some(model_version(name, *version)),
        NodeId::Deployment(name) => Some(format!("/deployments/{name}")),
    }
}

/// The dashboard page of an audit event's target (`run:ID`, `experiment:ID`, `job:ID`,
/// `model:NAME[/VERSION]`, `dataset:NAME[@VERSION]`, `job_template:NAME@VERSION`), when it
/// has one. Objects without a page (users, tokens, requests) have none.
pub fn audit_target(target: &str) -> Option<String> {
    if let Ok(node) = target.parse::<cairn_core::lineage::NodeId>()
        && let Some(url) = lineage_node(&node)
    {
        return Some(url);
    }
    let (kind, id) = target.split_once(':')?;
    match kind {
        "experiment" => id.parse::<i64>().ok().map(experiment),
        "job" => uuid::Uuid::try_parse(id).ok().map(|id| format!("/jobs/{}", id.simple())),
        "model" if !id.is_empty() => Some(format!("/models/{}", percent_encoding::utf8_percent_encode(id, SEGMENT))),
        "dataset" if !id.is_empty() => Some(dataset(id, None)),
        "job_template" => {
            let name = id.rsplit_once('@').map_or(id, |(name, _)| name);
            Some(format!("/job-templates/{}", percent_encoding::utf8_percent_encode(name, SEGMENT)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_left_out_and_the_rest_encoded() {
        assert_eq!(url("/x", &[("a", ""), ("b", "c d"), ("e", "=&")]), "/x?b=c+d&e=%3D%26");
        assert_eq!(url("/x", &[("a", "")]), "/x");
    }

    #[test]
    fn lineage_nodes_link_to_their_pages() {
        use cairn_core::lineage::NodeId;
        let node = |raw: &str| raw.parse::<NodeId>().map(|n| lineage_node(&n)).ok().flatten();
        assert_eq!(node("dataset:imgs@3").as_deref(), Some("/datasets/imgs?version=3"));
        assert_eq!(node("model:fraud v2?/4").as_deref(), Some("/models/fraud%20v2%3F/versions/4"));
        assert_eq!(
            node("run:0123456789abcdef0123456789abcdef").as_deref(),
            Some("/runs/0123456789abcdef0123456789abcdef")
        );
        assert_eq!(node("deployment:prod").as_deref(), Some("/deployments/prod"));
    }

    #[test]
    fn audit_targets_link_to_their_objects() {
        let run = "run:0123456789abcdef0123456789abcdef";
        assert_eq!(audit_target(run).as_deref(), Some("/runs/0123456789abcdef0123456789abcdef"));
        assert_eq!(audit_target("model:fraud/2").as_deref(), Some("/models/fraud/versions/2"));
        assert_eq!(audit_target("model:fraud").as_deref(), Some("/models/fraud"));
        assert_eq!(audit_target("dataset:imgs@3").as_deref(), Some("/datasets/imgs?version=3"));
        assert_eq!(audit_target("experiment:4").as_deref(), Some("/experiments/4"));
        let job = "job:7f0c2c52-8a4d-4c34-9a0e-2f1d8f3f6b21";
        assert_eq!(audit_target(job).as_deref(), Some("/jobs/7f0c2c528a4d4c349a0e2f1d8f3f6b21"));
        assert_eq!(audit_target("job_template:train@2").as_deref(), Some("/job-templates/train"));
        assert_eq!(audit_target("user:ann"), None);
        assert_eq!(audit_target("/api/v1/users"), None);
    }

    #[test]
    fn metric_keys_keep_their_slashes() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            metric_series(&id, "train/loss rate"),
            "/runs/00000000000000000000000000000000/metrics/train/loss%20rate.json"
        );
    }

    #[test]
    fn artifact_paths_keep_slashes_and_encode_what_would_break_the_url() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            artifacts(&id, Some("plots/a b#1?.png")),
            "/runs/00000000000000000000000000000000/artifacts/plots/a%20b%231%3F.png"
        );
        assert_eq!(artifacts(&id, None), "/runs/00000000000000000000000000000000/artifacts");
        assert_eq!(artifact_file(&id, "100%/ü.txt"), "/runs/00000000000000000000000000000000/files/100%25/%C3%BC.txt");
    }
}
