"""Error cases: the client raises MlflowException with the error code the server sent, and
the server answers with MLflow's HTTP status for that code (never a 5xx for a client
error, which the client would retry)."""

from __future__ import annotations

import requests

from compat_helpers import raises_mlflow

MISSING_RUN = "0123456789abcdef0123456789abcdef"


def _api(server, method, path, **kwargs):
    return requests.request(
        method, f"{server.url}/api/2.0/mlflow/{path}", headers=server.auth_headers(), timeout=30, **kwargs
    )


def _assert_error(resp, status, code):
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body["error_code"] == code, body
    assert isinstance(body.get("message"), str) and body["message"]


def test_client_error_codes(client, unique, experiment_id):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_run(MISSING_RUN)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_experiment("987654321")

    name = unique("dup")
    client.create_experiment(name)
    with raises_mlflow("RESOURCE_ALREADY_EXISTS"):
        client.create_experiment(name)

    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_runs([experiment_id], filter_string="metrics.acc >> 1")

    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_metric(run_id, "m", 1.0)


def test_http_status_not_found(server):
    resp = _api(server, "GET", "runs/get", params={"run_id": MISSING_RUN, "run_uuid": MISSING_RUN})
    _assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")
    resp = _api(server, "GET", "experiments/get", params={"experiment_id": "987654321"})
    _assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")
    resp = _api(server, "GET", "experiments/get-by-name", params={"experiment_name": "no-such-exp-xyz"})
    _assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")


def test_http_status_already_exists(server, unique):
    name = unique("dup-http")
    assert _api(server, "POST", "experiments/create", json={"name": name}).status_code == 200
    resp = _api(server, "POST", "experiments/create", json={"name": name})
    _assert_error(resp, 400, "RESOURCE_ALREADY_EXISTS")


def test_http_status_invalid_parameter(server, client, experiment_id):
    resp = _api(
        server, "POST", "runs/search",
        json={"experiment_ids": [experiment_id], "filter": "metrics.acc >> 1", "max_results": 10},
    )
    _assert_error(resp, 400, "INVALID_PARAMETER_VALUE")

    run_id = client.create_run(experiment_id).info.run_id
    metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
    resp = _api(server, "POST", "runs/log-batch", json={"run_id": run_id, "metrics": metrics})
    _assert_error(resp, 400, "INVALID_PARAMETER_VALUE")

    assert _api(server, "POST", "runs/log-parameter",
                json={"run_id": run_id, "key": "p", "value": "1"}).status_code == 200
    resp = _api(server, "POST", "runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "2"})
    _assert_error(resp, 400, "INVALID_PARAMETER_VALUE")

    resp = _api(server, "POST", "runs/search",
                json={"experiment_ids": [experiment_id], "max_results": 100_000})
    _assert_error(resp, 400, "INVALID_PARAMETER_VALUE")
