"""Cairn requires credentials on every MLflow route (the reference server has no auth:
these tests are `cairn_only`). The client's Bearer token and Basic credentials both work;
wrong ones get 401 and the client raises."""

from __future__ import annotations

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.cairn_only

ROUTES = [
    ("GET", "/api/2.0/mlflow/experiments/get?experiment_id=0"),
    ("POST", "/api/2.0/mlflow/experiments/search"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=0"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-valid-token"},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"},
    ],
    ids=["no-credentials", "garbage-token", "forged-jwt"],
)
def test_requests_without_valid_credentials_get_401(server, method, path, headers):
    body = {"max_results": 10} if method == "POST" else None
    resp = requests.request(method, server.url + path, headers=headers, json=body, timeout=30)
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])


def test_client_with_wrong_token_raises(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wrong-token")
    with pytest.raises(MlflowException) as info:
        MlflowClient().search_experiments()
    err = info.value
    assert err.error_code == "UNAUTHENTICATED" or "401" in str(err), str(err)[:500]


def test_client_with_wrong_token_cannot_upload_artifacts(server, client, experiment_id, tmp_path, monkeypatch):
    run_id = client.create_run(experiment_id).info.run_id
    f = tmp_path / "secret.txt"
    f.write_text("nope")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wrong-token")
    with pytest.raises(Exception):
        MlflowClient().log_artifact(run_id, str(f))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    assert MlflowClient().list_artifacts(run_id) == []


def test_client_with_basic_credentials(server, monkeypatch, unique):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin_user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
    client = MlflowClient()
    exp_id = client.create_experiment(unique("basic-auth"))
    run_id = client.create_run(exp_id).info.run_id
    client.log_metric(run_id, "m", 1.0)
    assert client.get_run(run_id).data.metrics == {"m": 1.0}


def test_client_with_wrong_basic_password_raises(server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin_user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "definitely-wrong")
    with pytest.raises(MlflowException) as info:
        MlflowClient().search_experiments()
    err = info.value
    assert err.error_code == "UNAUTHENTICATED" or "401" in str(err), str(err)[:500]
