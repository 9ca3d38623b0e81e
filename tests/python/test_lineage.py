"""log_input with a Cairn dataset's digest links the run to that dataset version (Cairn's
native API, so `cairn_only`): the version lists the run, the lineage graph shows the path
dataset version -> run -> model version, and the provenance export names the digest."""

from __future__ import annotations

import hashlib

import mlflow
import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.cairn_only

CSV = b"x,y\n1.0,0\n2.0,1\n3.0,0\n"


def _api(server, method, path, **kwargs):
    resp = requests.request(method, f"{server.url}/api/v1{path}", headers=server.auth_headers(), timeout=30, **kwargs)
    assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
    return resp.json()


def _push(server, name: str) -> dict:
    """One version of a one-file dataset, pushed as `cairn dataset push` does."""
    sha = hashlib.sha256(CSV).hexdigest()
    _api(server, "PUT", f"/blobs/{sha}", data=CSV)
    manifest = {"files": [{"path": "train.csv", "size": len(CSV), "sha256": sha}], "message": "first cut"}
    return _api(server, "POST", f"/datasets/{name}/versions", json=manifest)


def test_log_input_with_a_cairn_digest_links_the_run(server, client, experiment_id, unique):
    name = unique("ds")
    version = _push(server, name)
    assert version["version"] == 1

    df = pd.read_csv(pd.io.common.BytesIO(CSV))
    source = f"{server.url}/api/v1/datasets/{name}/versions/1/files/train.csv"
    dataset = mlflow.data.from_pandas(df, source=source, name=name, digest=version["digest"])
    other = mlflow.data.from_pandas(df, source="file:///tmp/elsewhere.csv", name="not-cairn")
    assert dataset.digest == version["digest"]
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(other, context="evaluation")
        mlflow.log_param("lr", "0.1")
    run_id = run.info.run_id

    # The MLflow view keeps both inputs as logged.
    logged = {i.dataset.name for i in client.get_run(run_id).inputs.dataset_inputs}
    assert logged == {name, "not-cairn"}

    # Only the Cairn one is linked, with its context.
    detail = _api(server, "GET", f"/datasets/{name}/versions/1")
    assert [(r["run_id"], r["context"]) for r in detail["runs"]] == [(run_id, "training")]
    used = _api(server, "GET", f"/runs/{run_id}/datasets")
    assert [(u["reference"], u["digest"]) for u in used] == [(f"{name}@1", version["digest"])]

    # Register a model from the run: the lineage reaches from the data to the version.
    model = unique("model")
    client.create_registered_model(model)
    mv = client.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id)
    graph = _api(server, "GET", "/lineage", params={"node": f"dataset:{name}@1"})
    downstream = {n["id"] for n in graph["downstream"]["nodes"]}
    assert downstream == {f"run:{run_id}", f"model:{model}/{mv.version}"}

    provenance = _api(server, "GET", f"/models/{model}/versions/{mv.version}/provenance")
    assert provenance["run"]["id"] == run_id
    assert provenance["run"]["params"] == {"lr": "0.1"}
    assert [(d["reference"], d["digest"]) for d in provenance["run"]["datasets"]] == [
        (f"{name}@1", version["digest"])
    ]
