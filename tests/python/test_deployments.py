"""Deployments served for real: a pure-Python pyfunc model logged with the mlflow client,
two versions registered, deployed by Cairn as a local MLflow scoring server, and queried
through Cairn's gateway (`/serve/NAME/invocations`) in each of MLflow's input formats; then
version 2 is rolled out, rolled back, and bad requests get clear errors."""

from __future__ import annotations

import time
import uuid

import mlflow
import mlflow.pyfunc
import pytest
import requests

pytestmark = pytest.mark.cairn_only

PIP_REQUIREMENTS = ["mlflow==3.17.2", "pandas"]  # skip requirement inference: faster
READY_TIMEOUT_S = 180

# "Models from code": the serving process loads this file, so the model needs nothing
# from the test module.
MODEL_CODE = '''
import mlflow
import pandas as pd
from mlflow.models import set_model


class AddN(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        # `inputs` and `instances` arrive as columns (a dict of arrays), not a DataFrame.
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return frame.astype(float).apply(lambda column: column + {n})


set_model(AddN())
'''


def _register(tmp_path, name: str, n: int) -> str:
    code = tmp_path / f"add_{n}.py"
    code.write_text(MODEL_CODE.format(n=n))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=PIP_REQUIREMENTS)
    return mlflow.register_model(info.model_uri, name).version


def _api(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.url}/api/v1{path}", headers=server.auth_headers(), timeout=30, **kwargs)


def _wait_ready(server, name: str, revision: int) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        d = _api(server, "GET", f"/deployments/{name}").json()
        if d["revision"] == revision and d["status"] in ("ready", "failed"):
            logs = _api(server, "GET", f"/deployments/{name}/logs").text
            assert d["status"] == "ready", f"{d['status_message']}\n{logs}"
            return d
        assert time.monotonic() < deadline, f"revision {revision} not ready: {d}"
        time.sleep(0.5)


def _predict(server, name: str, body) -> requests.Response:
    return requests.post(
        f"{server.url}/serve/{name}/invocations", json=body, headers=server.auth_headers(), timeout=60
    )


def _predictions(server, name: str, body) -> list:
    response = _predict(server, name, body)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _check_all_formats(server, name: str, n: int) -> None:
    split = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 10.0], [2.0, 20.0]]}}
    assert _predictions(server, name, split) == [{"a": 1.0 + n, "b": 10.0 + n}, {"a": 2.0 + n, "b": 20.0 + n}]
    records = {"dataframe_records": [{"a": 1.0, "b": 10.0}]}
    assert _predictions(server, name, records) == [{"a": 1.0 + n, "b": 10.0 + n}]
    instances = {"instances": [{"a": 3.0, "b": 30.0}]}
    assert _predictions(server, name, instances) == [{"a": 3.0 + n, "b": 30.0 + n}]
    inputs = {"inputs": {"a": [4.0], "b": [40.0]}}
    assert _predictions(server, name, inputs) == [{"a": 4.0 + n, "b": 40.0 + n}]


def test_deploy_predict_roll_out_and_roll_back(server, experiment_id, tmp_path):
    model = f"deployed-{uuid.uuid4().hex[:8]}"
    v1 = _register(tmp_path, model, 5)
    v2 = _register(tmp_path, model, 100)
    name = f"d-{uuid.uuid4().hex[:8]}"

    created = _api(server, "POST", "/deployments", json={"name": name, "model": model, "version": int(v1)})
    assert created.status_code == 201, created.text
    assert created.json()["endpoint_url"] == f"{server.url}/serve/{name}"
    _wait_ready(server, name, 1)
    _check_all_formats(server, name, 5)
    assert requests.get(f"{server.url}/serve/{name}/ping", headers=server.auth_headers(), timeout=10).status_code == 200

    # A new version rolls out as revision 2.
    updated = _api(server, "PATCH", f"/deployments/{name}", json={"version": int(v2)})
    assert updated.status_code == 200, updated.text
    _wait_ready(server, name, 2)
    _check_all_formats(server, name, 100)

    # Rollback: revision 3 serves version 1 again.
    rolled = _api(server, "POST", f"/deployments/{name}/rollback")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == int(v1)
    _wait_ready(server, name, 3)
    _check_all_formats(server, name, 5)

    revisions = _api(server, "GET", f"/deployments/{name}/revisions").json()["revisions"]
    assert [(r["revision"], r["version"], r["reason"]) for r in revisions] == [
        (3, int(v1), "rollback"),
        (2, int(v2), "update"),
        (1, int(v1), "create"),
    ]

    # Bad requests get clear errors, from the model server or from the gateway.
    bad = _predict(server, name, {"no_such_format": []})
    assert bad.status_code == 400, bad.text
    assert "dataframe_split" in bad.text or "format" in bad.text.lower()
    not_json = requests.post(
        f"{server.url}/serve/{name}/invocations",
        data=b"{not json",
        headers={**server.auth_headers(), "Content-Type": "application/json"},
        timeout=30,
    )
    assert not_json.status_code == 400, not_json.text
    anonymous = requests.post(f"{server.url}/serve/{name}/invocations", json={"inputs": {"a": [1.0]}}, timeout=10)
    assert anonymous.status_code == 401
    unknown = _predict(server, "no-such-deployment", {"inputs": {"a": [1.0]}})
    assert unknown.status_code == 404
    assert "no deployment named" in unknown.json()["detail"]

    metrics = _api(server, "GET", f"/deployments/{name}").json()["metrics"]
    assert metrics["requests"] >= 12 and metrics["errors"] >= 2
    assert metrics["p50_ms"] is not None

    assert _api(server, "DELETE", f"/deployments/{name}").status_code == 204
    assert _predict(server, name, {"inputs": {"a": [1.0]}}).status_code == 404
