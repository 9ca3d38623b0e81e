"""Jobs run by Cairn's local executor for real: a training script that uses the unmodified
`mlflow` client logs into the run Cairn created for the job (through the environment Cairn
sets: MLFLOW_TRACKING_URI, MLFLOW_RUN_ID, MLFLOW_TRACKING_TOKEN), with a dataset input
downloaded into its working directory; a failing script fails its job. Cairn-only."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.cairn_only

TRAIN = r'''
import os, sys
import mlflow

rows = open(os.path.join("datasets", os.environ["CAIRN_PARAM_dataset"], "train.csv")).read().splitlines()[1:]
lr = float(os.environ["CAIRN_PARAM_lr"])
with mlflow.start_run() as run:
    assert run.info.run_id == os.environ["CAIRN_RUN_ID"]  # mlflow pops MLFLOW_RUN_ID once it resumes the run
    loss = 1.0
    for step in range(5):
        loss *= (1 - lr)
        mlflow.log_metric("loss", loss, step=step)
    mlflow.log_metric("rows", len(rows))
    mlflow.set_tag("trained_by", "test_jobs")
print("done", flush=True)
if sys.argv[1:] == ["fail"]:
    raise SystemExit("the model diverged")
'''


def _api(server, method, path, expect=(200, 201), **kwargs):
    resp = requests.request(method, f"{server.url}/api/v1{path}", headers=server.auth_headers(), timeout=30, **kwargs)
    assert resp.status_code in expect, f"{method} {path}: {resp.status_code} {resp.text}"
    return resp.json()


def _push_csv(server, name: str, csv: bytes) -> None:
    sha = hashlib.sha256(csv).hexdigest()
    _api(server, "PUT", f"/blobs/{sha}", data=csv)
    _api(server, "POST", f"/datasets/{name}/versions", json={"files": [{"path": "train.csv", "size": len(csv), "sha256": sha}]})


def _wait(server, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = _api(server, "GET", f"/jobs/{job_id}")
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end: {job}")


def test_a_training_script_logs_into_the_jobs_run(server, client, tmp_path: Path, unique):
    name = unique("data")
    _push_csv(server, name, b"x,y\n1,0\n2,1\n3,0\n")
    script = tmp_path / "train.py"
    script.write_text(TRAIN)

    spec = {"command": [sys.executable, str(script)], "params": {"lr": "0.5", "dataset": name}, "datasets": [name]}
    job = _wait(server, _api(server, "POST", "/jobs", json=spec)["id"])
    log = requests.get(f"{server.url}/api/v1/jobs/{job['id']}/logs", headers=server.auth_headers(), timeout=30).text
    assert job["state"] == "succeeded", f"{job}\n{log}"
    assert "stdout done" in log
    assert job["spec"]["datasets"] == [f"{name}@1"], "the input is pinned to the version it resolved to"

    run = client.get_run(job["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.5"
    assert run.data.metrics["rows"] == 3
    assert [round(m.value, 4) for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25, 0.125, 0.0625, 0.0312]
    assert run.data.tags["trained_by"] == "test_jobs"
    used = _api(server, "GET", f"/runs/{job['run_id']}/datasets")
    assert [u["reference"] for u in used] == [f"{name}@1"]


def test_a_failing_script_fails_its_job_and_run(server, client, tmp_path: Path, unique):
    name = unique("data")
    _push_csv(server, name, b"x\n1\n")
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    spec = {"command": [sys.executable, str(script), "fail"], "params": {"lr": "0.1", "dataset": name}, "datasets": [name]}
    job = _wait(server, _api(server, "POST", "/jobs", json=spec)["id"])
    assert job["state"] == "failed"
    assert job["exit_code"] == 1
    log = requests.get(f"{server.url}/api/v1/jobs/{job['id']}/logs", headers=server.auth_headers(), timeout=30).text
    assert "stderr the model diverged" in log
    assert client.get_run(job["run_id"]).info.status == "FAILED"
