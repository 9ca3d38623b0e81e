"""log_batch: mixed content, client-side chunking, and the server's per-request limits
(1000 metrics, 100 params, 100 tags, 1000 entries in all) with their error code."""

from __future__ import annotations

import mlflow
from mlflow.entities import Metric, Param, RunTag

from compat_helpers import raises_mlflow


def _store(client):
    # The REST store under MlflowClient: one log_batch call = one runs/log-batch request.
    # MlflowClient.log_batch splits oversized batches itself, so the server's limits can
    # only be reached through the store.
    return client._tracking_client.store


def test_log_batch_metrics_params_tags(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("m1", 0.1, 1000, 0), Metric("m1", 0.2, 2000, 1), Metric("m2", 5.0, 1000, 0)],
        params=[Param("p1", "a"), Param("p2", "b")],
        tags=[RunTag("t1", "x"), RunTag("t2", "y")],
    )
    run = client.get_run(run_id)
    assert run.data.metrics == {"m1": 0.2, "m2": 5.0}
    assert run.data.params == {"p1": "a", "p2": "b"}
    assert run.data.tags["t1"] == "x" and run.data.tags["t2"] == "y"
    assert sorted(m.value for m in client.get_metric_history(run_id, "m1")) == [0.1, 0.2]


def test_log_batch_at_the_limits_is_accepted(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    store = _store(client)
    store.log_batch(run_id, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(1000)],
                    params=[], tags=[])
    store.log_batch(run_id, metrics=[], params=[Param(f"p{i}", str(i)) for i in range(100)],
                    tags=[RunTag(f"t{i}", str(i)) for i in range(100)])
    # 100 params + 100 tags + 800 metrics = 1000 entries: allowed.
    store.log_batch(
        run_id,
        metrics=[Metric("n", float(i), 1000 + i, i) for i in range(800)],
        params=[Param(f"q{i}", str(i)) for i in range(100)],
        tags=[RunTag(f"u{i}", str(i)) for i in range(100)],
    )
    run = client.get_run(run_id)
    assert len(client.get_metric_history(run_id, "m")) == 1000
    assert len(client.get_metric_history(run_id, "n")) == 800
    assert len(run.data.params) == 200
    assert sum(1 for k in run.data.tags if k[0] in "tu" and k[1:].isdigit()) == 200


def test_log_batch_over_1000_metrics_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    metrics = [Metric("m", float(i), 1000 + i, i) for i in range(1001)]
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        _store(client).log_batch(run_id, metrics=metrics, params=[], tags=[])
    # Nothing of a refused batch is stored.
    assert client.get_metric_history(run_id, "m") == []


def test_log_batch_over_100_params_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        _store(client).log_batch(
            run_id, metrics=[], params=[Param(f"p{i}", "v") for i in range(101)], tags=[]
        )
    assert client.get_run(run_id).data.params == {}


def test_log_batch_over_100_tags_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        _store(client).log_batch(
            run_id, metrics=[], params=[], tags=[RunTag(f"t{i}", "v") for i in range(101)]
        )
    assert "t0" not in client.get_run(run_id).data.tags


def test_log_batch_over_1000_entries_in_all_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        _store(client).log_batch(
            run_id,
            metrics=[Metric("m", float(i), 1000 + i, i) for i in range(950)],
            params=[Param(f"p{i}", "v") for i in range(51)],
            tags=[],
        )


def test_client_log_batch_splits_large_batches(client, experiment_id):
    """MlflowClient.log_batch itself chunks 2500 metrics and 250 params into legal requests."""
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("m", float(i), 1000 + i, i) for i in range(2500)],
        params=[Param(f"p{i:03d}", str(i)) for i in range(250)],
    )
    assert len(client.get_metric_history(run_id, "m")) == 2500
    assert len(client.get_run(run_id).data.params) == 250


def test_fluent_log_params_metrics_tags_use_log_batch(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_params({f"p{i}": i for i in range(150)})
        mlflow.log_metrics({f"m{i}": float(i) for i in range(150)}, step=2)
        mlflow.set_tags({f"t{i}": i for i in range(150)})
    data = client.get_run(run.info.run_id).data
    assert len(data.params) == 150 and data.params["p149"] == "149"
    assert len(data.metrics) == 150 and data.metrics["m149"] == 149.0
    assert data.tags["t149"] == "149"


def test_log_batch_changing_param_is_rejected(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, params=[Param("p", "1")])
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_batch(run_id, params=[Param("p", "2")])
    assert client.get_run(run_id).data.params == {"p": "1"}


def test_log_batch_to_unknown_run(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.log_batch("0123456789abcdef0123456789abcdef", metrics=[Metric("m", 1.0, 1, 0)])
