//! Where a run's artifacts are in Cairn's store. The MLflow artifact proxy keeps MLflow's
//! tree (`{experiment_id}/{run_id}/artifacts/...`) under [`MLFLOW_ARTIFACTS_PREFIX`]; a run
//! whose artifact URI is `mlflow-artifacts:/...` (the default) therefore has its files
//! under one key prefix, which the dashboard lists and reads. A run created with another
//! location (`s3://...` of the user's own, say) has its files outside Cairn's store.

use cairn_db::Db;
use cairn_db::tracking::runs::RunRow;
use cairn_storage::ArtifactPath;
use uuid::Uuid;

use super::Result;
use super::runs::require_run;

/// Where MLflow's artifact tree lives in the store.
pub const MLFLOW_ARTIFACTS_PREFIX: &str = "mlflow-artifacts";

/// The scheme of artifact URIs served by the artifact proxy.
const PROXY_SCHEME: &str = "mlflow-artifacts:";

/// The storage key of an MLflow artifact path (of the whole tree for `None`).
pub fn mlflow_artifact_key(path: Option<&ArtifactPath>) -> ArtifactPath {
    let root = ArtifactPath::parse(MLFLOW_ARTIFACTS_PREFIX).expect("MLFLOW_ARTIFACTS_PREFIX is a valid path");
    match path {
        Some(path) => root.join(path),
        None => root,
    }
}

/// Where the files of an artifact URI are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRoot {
    /// In Cairn's store, under this key.
    Stored(ArtifactPath),
    /// Somewhere Cairn does not serve (the URI as the run has it).
    Elsewhere(String),
}

/// The root of `uri`: `mlflow-artifacts:/1/abc/artifacts` (or the `mlflow-artifacts://host/...`
/// form some clients write) is in the store; anything else is elsewhere.
pub fn artifact_root(uri: &str) -> ArtifactRoot {
    let elsewhere = || ArtifactRoot::Elsewhere(uri.to_owned());
    let Some(rest) = uri.strip_prefix(PROXY_SCHEME) else {
        return elsewhere();
    };
    // `//host:port/path`: the authority names the server, not a part of the path.
    let path = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, path)| path),
        None => rest,
    };
    match ArtifactPath::parse(path.trim_matches('/')) {
        Ok(path) => ArtifactRoot::Stored(mlflow_artifact_key(Some(&path))),
        Err(_) => elsewhere(),
    }
}

/// A run and where its artifacts are.
pub struct RunArtifacts {
    pub run: RunRow,
    pub root: ArtifactRoot,
}

/// The run `id` (deleted runs included: their artifacts stay readable) and its artifact root.
pub async fn run_artifacts(db: &Db, id: Uuid) -> Result<RunArtifacts> {
    let run = require_run(db, id).await?;
    let root = artifact_root(&run.artifact_uri);
    Ok(RunArtifacts { run, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &str) -> ArtifactRoot {
        ArtifactRoot::Stored(ArtifactPath::parse(key).expect("valid"))
    }

    #[test]
    fn proxy_uris_map_to_keys_in_the_store_and_others_do_not() {
        assert_eq!(artifact_root("mlflow-artifacts:/1/abc/artifacts"), stored("mlflow-artifacts/1/abc/artifacts"));
        assert_eq!(
            artifact_root("mlflow-artifacts://cairn:8080/2/x/artifacts/"),
            stored("mlflow-artifacts/2/x/artifacts")
        );
        for elsewhere in
            ["s3://bucket/1/abc", "file:///tmp/x", "mlflow-artifacts:/1/../../etc", "mlflow-artifacts:/", "x"]
        {
            assert_eq!(artifact_root(elsewhere), ArtifactRoot::Elsewhere(elsewhere.to_owned()), "{elsewhere}");
        }
    }
}
