"""Runs through the official client: start/end, status, names, nested runs, tags,
update, delete/restore, system tags."""

from __future__ import annotations

import time

import mlflow
from mlflow.entities import RunStatus, ViewType

from compat_helpers import raises_mlflow


def test_start_and_end_run(client, experiment_id):
    before = int(time.time() * 1000) - 5_000
    with mlflow.start_run(run_name="first-run") as run:
        run_id = run.info.run_id
        assert len(run_id) == 32
        assert run.info.experiment_id == experiment_id
        assert run.info.status == "RUNNING"
        assert run.info.lifecycle_stage == "active"
        assert run.info.end_time is None or run.info.end_time == 0
        assert mlflow.active_run().info.run_id == run_id

    got = client.get_run(run_id)
    after = int(time.time() * 1000) + 5_000
    assert got.info.run_id == run_id
    assert got.info.run_name == "first-run"
    assert got.data.tags["mlflow.runName"] == "first-run"
    assert got.info.status == "FINISHED"
    assert before <= got.info.start_time <= got.info.end_time <= after
    assert got.info.artifact_uri
    assert got.info.experiment_id == experiment_id


def test_run_keeps_system_tags(client, experiment_id):
    with mlflow.start_run() as run:
        pass
    tags = client.get_run(run.info.run_id).data.tags
    # The fluent API sends these with runs/create; the server must keep them.
    assert "mlflow.user" in tags
    assert "mlflow.source.name" in tags
    assert "mlflow.source.type" in tags
    # A run created without a name gets one (the client or the server picks it).
    assert tags.get("mlflow.runName")
    assert client.get_run(run.info.run_id).info.run_name == tags["mlflow.runName"]


def test_end_run_with_failed_and_killed_status(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.end_run(status="FAILED")
    assert client.get_run(run.info.run_id).info.status == "FAILED"

    run2 = client.create_run(experiment_id)
    client.set_terminated(run2.info.run_id, status="KILLED")
    got = client.get_run(run2.info.run_id)
    assert got.info.status == "KILLED"
    assert got.info.end_time and got.info.end_time >= got.info.start_time


def test_exception_in_run_context_marks_run_failed(client, experiment_id):
    run_id = None
    try:
        with mlflow.start_run() as run:
            run_id = run.info.run_id
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert client.get_run(run_id).info.status == "FAILED"


def test_update_run_status_and_name(client, experiment_id):
    run = client.create_run(experiment_id, run_name="before")
    run_id = run.info.run_id
    assert run.info.status == "RUNNING"

    client.update_run(run_id, name="after")
    got = client.get_run(run_id)
    assert got.info.run_name == "after"
    assert got.data.tags["mlflow.runName"] == "after"

    client.update_run(run_id, status="SCHEDULED")
    assert client.get_run(run_id).info.status == "SCHEDULED"

    client.set_terminated(run_id)  # FINISHED by default
    got = client.get_run(run_id)
    assert got.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert got.info.end_time >= got.info.start_time


def test_create_run_with_explicit_start_time_and_tags(client, experiment_id):
    start = 1_700_000_000_123
    run = client.create_run(experiment_id, start_time=start, tags={"k": "v"}, run_name="explicit")
    got = client.get_run(run.info.run_id)
    assert got.info.start_time == start
    assert got.data.tags["k"] == "v"
    assert got.info.run_name == "explicit"


def test_nested_runs(client, experiment_id):
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-1", nested=True) as child1:
            pass
        with mlflow.start_run(run_name="child-2", nested=True) as child2:
            with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                pass
        assert mlflow.active_run().info.run_id == parent.info.run_id

    parent_id = parent.info.run_id
    for child in (child1, child2):
        tags = client.get_run(child.info.run_id).data.tags
        assert tags["mlflow.parentRunId"] == parent_id
    assert client.get_run(grandchild.info.run_id).data.tags["mlflow.parentRunId"] == (
        child2.info.run_id
    )
    assert "mlflow.parentRunId" not in client.get_run(parent_id).data.tags
    assert client.get_parent_run(child1.info.run_id).info.run_id == parent_id
    assert client.get_parent_run(parent_id) is None

    children = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        order_by=["attributes.run_name ASC"],
    )
    assert [r.info.run_name for r in children] == ["child-1", "child-2"]


def test_run_tags_set_overwrite_delete(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "team", "a")
    client.set_tag(run_id, "with.dots/and-slash", "yes")
    client.set_tag(run_id, "team", "b")
    tags = client.get_run(run_id).data.tags
    assert tags["team"] == "b"
    assert tags["with.dots/and-slash"] == "yes"

    client.delete_tag(run_id, "team")
    assert "team" not in client.get_run(run_id).data.tags

    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.delete_tag(run_id, "never-set")

    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({"x": "1", "y": "2"})
        mlflow.set_tag("z", 3)
    tags = client.get_run(run_id).data.tags
    assert (tags["x"], tags["y"], tags["z"]) == ("1", "2", "3")


def test_long_tag_value_round_trips(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    value = "v" * 5000
    client.set_tag(run_id, "long", value)
    assert client.get_run(run_id).data.tags["long"] == value


def test_resume_run_by_id(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_param("p", "1")
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_param("q", "2")
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"p": "1", "q": "2"}
    assert got.info.status == "FINISHED"


def test_delete_and_restore_run(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="doomed").info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id]) == []
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [run_id]
    assert [r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL)] == [run_id]

    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]


def test_logging_to_deleted_run_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_metric(run_id, "m", 1.0)
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_param(run_id, "p", "1")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.set_tag(run_id, "t", "1")


def test_unknown_run_id(client):
    missing = "0123456789abcdef0123456789abcdef"
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_run(missing)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.log_metric(missing, "m", 1.0)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.set_terminated(missing)


def test_create_run_in_unknown_experiment(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.create_run("987654321")
