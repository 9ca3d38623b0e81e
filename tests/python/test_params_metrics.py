"""Params (immutable once logged) and metrics (steps, timestamps, non-finite values,
full history with pagination)."""

from __future__ import annotations

import math
import sys
import time

import mlflow
from mlflow.entities import Metric

from compat_helpers import raises_mlflow

FLOAT_MAX = sys.float_info.max


def test_log_params(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_param("layers", 3)
        mlflow.log_param("name", "resnet")
        mlflow.log_params({"batch": 32, "optimizer": "adam", "dotted.key/x": "ok"})
    params = client.get_run(run.info.run_id).data.params
    assert params == {
        "lr": "0.01",
        "layers": "3",
        "name": "resnet",
        "batch": "32",
        "optimizer": "adam",
        "dotted.key/x": "ok",
    }


def test_relogging_same_param_value_is_allowed(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p", "same")
    client.log_param(run_id, "p", "same")
    assert client.get_run(run_id).data.params == {"p": "same"}


def test_changing_a_param_value_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p", "1")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_param(run_id, "p", "2")
    # log_params goes through log-batch: same rule, same error code.
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        with mlflow.start_run(run_id=run_id):
            mlflow.log_params({"p": "3"})
    assert client.get_run(run_id).data.params == {"p": "1"}


def test_long_param_value(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    value = "x" * 6000  # MLflow allows up to 6000 characters
    client.log_param(run_id, "long", value)
    assert client.get_run(run_id).data.params["long"] == value


def test_metrics_with_steps_and_timestamps(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    t0 = 1_700_000_000_000
    client.log_metric(run_id, "loss", 1.5, timestamp=t0, step=0)
    client.log_metric(run_id, "loss", 0.75, timestamp=t0 + 1000, step=1)
    client.log_metric(run_id, "loss", 0.25, timestamp=t0 + 2000, step=2)
    client.log_metric(run_id, "acc", 0.5)  # default timestamp (now) and step 0

    history = client.get_metric_history(run_id, "loss")
    got = sorted((m.step, m.timestamp, m.value) for m in history)
    assert got == [(0, t0, 1.5), (1, t0 + 1000, 0.75), (2, t0 + 2000, 0.25)]
    assert all(m.key == "loss" for m in history)

    run = client.get_run(run_id)
    # run.data.metrics holds the latest value per key (highest step).
    assert run.data.metrics == {"loss": 0.25, "acc": 0.5}
    [acc] = client.get_metric_history(run_id, "acc")
    assert acc.step == 0
    assert abs(acc.timestamp - int(time.time() * 1000)) < 600_000


def test_latest_metric_is_highest_step_not_last_logged(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "m", 10.0, timestamp=1000, step=5)
    client.log_metric(run_id, "m", 20.0, timestamp=2000, step=1)
    assert client.get_run(run_id).data.metrics["m"] == 10.0
    assert len(client.get_metric_history(run_id, "m")) == 2


def test_same_step_logged_twice_keeps_both_points(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=3)
    client.log_metric(run_id, "m", 2.0, timestamp=2000, step=3)
    history = client.get_metric_history(run_id, "m")
    assert sorted(m.value for m in history) == [1.0, 2.0]
    # Same step: the later timestamp wins.
    assert client.get_run(run_id).data.metrics["m"] == 2.0


def test_large_step_and_negative_values(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    big_step = 2**40
    client.log_metric(run_id, "m", -123.456, timestamp=1_700_000_000_000, step=big_step)
    [point] = client.get_metric_history(run_id, "m")
    assert point.step == big_step
    assert point.value == -123.456
    assert point.timestamp == 1_700_000_000_000


def test_fluent_log_metrics(client, experiment_id):
    with mlflow.start_run() as run:
        for step in range(5):
            mlflow.log_metric("train_loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"a": 1.0, "b": 2.0}, step=7)
    run_id = run.info.run_id
    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]
    metrics = client.get_run(run_id).data.metrics
    assert metrics == {"train_loss": 0.2, "a": 1.0, "b": 2.0}
    assert [m.step for m in client.get_metric_history(run_id, "b")] == [7]


def _is_pos_inf(v):
    # MLflow's SQL store clamps infinities to the largest double; either is a round trip.
    return v == math.inf or v == FLOAT_MAX


def _is_neg_inf(v):
    return v == -math.inf or v == -FLOAT_MAX


def test_nan_and_infinities_round_trip(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "nan", float("nan"), timestamp=1, step=0)
    client.log_metric(run_id, "pinf", float("inf"), timestamp=1, step=0)
    client.log_metric(run_id, "ninf", float("-inf"), timestamp=1, step=0)
    client.log_batch(
        run_id,
        metrics=[
            Metric("batch_mixed", float("nan"), 1, 0),
            Metric("batch_mixed", float("inf"), 2, 1),
            Metric("batch_mixed", float("-inf"), 3, 2),
            Metric("batch_mixed", 1.25, 4, 3),
        ],
    )

    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert _is_pos_inf(metrics["pinf"]), metrics["pinf"]
    assert _is_neg_inf(metrics["ninf"]), metrics["ninf"]
    assert metrics["batch_mixed"] == 1.25

    [nan_point] = client.get_metric_history(run_id, "nan")
    assert math.isnan(nan_point.value)
    [pinf_point] = client.get_metric_history(run_id, "pinf")
    assert _is_pos_inf(pinf_point.value)
    [ninf_point] = client.get_metric_history(run_id, "ninf")
    assert _is_neg_inf(ninf_point.value)

    by_step = {m.step: m.value for m in client.get_metric_history(run_id, "batch_mixed")}
    assert math.isnan(by_step[0])
    assert _is_pos_inf(by_step[1])
    assert _is_neg_inf(by_step[2])
    assert by_step[3] == 1.25


def test_metric_history_of_unknown_key_is_empty(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    assert client.get_metric_history(run_id, "never-logged") == []


def test_metric_history_pages_past_25000_points(client, experiment_id):
    """The client asks for 25,000 points a page and follows next_page_token."""
    run_id = client.create_run(experiment_id).info.run_id
    n = 26_500
    t0 = 1_700_000_000_000
    points = [Metric("long", float(i) * 0.5, t0 + i, i) for i in range(n)]
    client.log_batch(run_id, metrics=points)  # the client sends 1000 per request

    history = client.get_metric_history(run_id, "long")
    assert len(history) == n
    by_step = {m.step: m for m in history}
    assert len(by_step) == n, "a point came back twice or was lost between pages"
    for i in (0, 1, 24_999, 25_000, 25_001, n - 1):
        m = by_step[i]
        assert (m.key, m.value, m.timestamp) == ("long", i * 0.5, t0 + i)
    assert client.get_run(run_id).data.metrics["long"] == (n - 1) * 0.5
