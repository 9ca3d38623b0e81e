"""Projects seen from the unmodified `mlflow` client: a service account's project-scoped
token puts the experiments it creates into its project and cannot reach other projects
(they answer RESOURCE_DOES_NOT_EXIST, as if absent); the `cairn.project` experiment tag
chooses the project for a token that may write in several."""

from __future__ import annotations

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.cairn_only


def api(server, method: str, path: str, body=None, token: str | None = None):
    headers = {"Authorization": f"Bearer {token or server.token}"}
    resp = requests.request(method, server.url + "/api/v1" + path, headers=headers, json=body, timeout=30)
    assert resp.status_code < 300, (method, path, resp.status_code, resp.text[:300])
    return resp.json()


@pytest.fixture
def project(server, unique):
    name = unique("team")
    api(server, "POST", "/projects", {"name": name})
    return name


@pytest.fixture
def project_token(server, project):
    api(server, "POST", f"/projects/{project}/service-accounts", {"name": "ci"})
    return api(server, "POST", f"/projects/{project}/service-accounts/ci/tokens", {"scope": "write"})["token"]


def test_a_project_token_logs_into_its_project_and_sees_nothing_else(
    server, client, unique, project, project_token, monkeypatch, tmp_path
):
    outside = client.create_experiment(unique("default-project"))
    outside_run = client.create_run(outside).info.run_id

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", project_token)
    scoped = MlflowClient()
    exp_id = scoped.create_experiment(unique("ci-exp"))
    artifact = tmp_path / "weights.txt"
    artifact.write_text("0.1 0.2")
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_artifact(str(artifact))
    assert scoped.get_run(run.info.run_id).data.params == {"lr": "0.01"}
    assert [a.path for a in scoped.list_artifacts(run.info.run_id)] == ["weights.txt"]

    # The experiment is in the token's project.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    assert api(server, "GET", f"/experiments/{exp_id}")["project"] == project

    # Other projects' objects do not exist for the scoped token, and searches skip them.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", project_token)
    for call in (lambda: scoped.get_experiment(outside), lambda: scoped.get_run(outside_run)):
        with pytest.raises(MlflowException) as info:
            call()
        assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST", str(info.value)[:300]
    with pytest.raises(MlflowException) as info:
        scoped.log_param(outside_run, "x", "1")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    visible = {e.experiment_id for e in scoped.search_experiments()}
    assert exp_id in visible and outside not in visible


def test_the_cairn_project_tag_chooses_the_project(server, client, unique, project):
    exp_id = client.create_experiment(unique("tagged"), tags={"cairn.project": project})
    assert api(server, "GET", f"/experiments/{exp_id}")["project"] == project
    with pytest.raises(MlflowException) as info:
        client.create_experiment(unique("nowhere"), tags={"cairn.project": "no-such-project"})
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
