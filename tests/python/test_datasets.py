"""log_input: datasets attached to runs (name, digest, source, schema, profile, context)."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.types import ColSpec, Schema


def _inputs_by_name(client, run_id):
    run = client.get_run(run_id)
    return {di.dataset.name: di for di in run.inputs.dataset_inputs}


def test_log_input_pandas_dataset(client, experiment_id):
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0], "label": ["a", "b", "a"]})
    dataset = mlflow.data.from_pandas(
        df, source="s3://bucket/train.parquet", name="train-set", targets="y"
    )
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training", tags={"split": "train"})

    inputs = _inputs_by_name(client, run.info.run_id)
    assert set(inputs) == {"train-set"}
    got = inputs["train-set"]
    assert got.dataset.digest == dataset.digest
    assert got.dataset.source_type == dataset.source._get_source_type()
    assert json.loads(got.dataset.source) == json.loads(dataset.source.to_json())
    assert json.loads(got.dataset.schema) == json.loads(dataset._to_mlflow_entity().schema)
    assert json.loads(got.dataset.profile) == json.loads(dataset._to_mlflow_entity().profile)
    tags = {t.key: t.value for t in got.tags}
    assert tags["mlflow.data.context"] == "training"
    assert tags["split"] == "train"

    # The dataset can be rebuilt from what the server returned.
    source = mlflow.data.get_source(got)
    assert source.to_json() == dataset.source.to_json()


def test_log_input_meta_dataset_and_several_inputs(client, experiment_id):
    meta = MetaDataset(
        source=HTTPDatasetSource("https://example.com/data/eval.csv"),
        name="eval-set",
        schema=Schema([ColSpec("double", "feature"), ColSpec("string", "target")]),
    )
    df = pd.DataFrame({"a": [1, 2]})
    train = mlflow.data.from_pandas(df, source="file:///data/train.csv", name="train-small")
    with mlflow.start_run() as run:
        mlflow.log_input(meta, context="evaluation")
        mlflow.log_input(train, context="training")

    inputs = _inputs_by_name(client, run.info.run_id)
    assert set(inputs) == {"eval-set", "train-small"}
    got = inputs["eval-set"]
    assert got.dataset.digest == meta.digest
    assert got.dataset.source_type == "http"
    assert json.loads(got.dataset.source) == {"url": "https://example.com/data/eval.csv"}
    assert json.loads(got.dataset.schema) == json.loads(meta._to_mlflow_entity().schema)
    assert {t.key: t.value for t in got.tags}["mlflow.data.context"] == "evaluation"
    assert {t.key: t.value for t in inputs["train-small"].tags}["mlflow.data.context"] == "training"


def test_same_dataset_logged_to_two_runs(client, experiment_id):
    df = pd.DataFrame({"v": list(range(10))})
    dataset = mlflow.data.from_pandas(df, source="file:///data/v.csv", name="shared")
    run_ids = []
    for _ in range(2):
        with mlflow.start_run() as run:
            mlflow.log_input(dataset, context="training")
        run_ids.append(run.info.run_id)
    for run_id in run_ids:
        inputs = _inputs_by_name(client, run_id)
        assert inputs["shared"].dataset.digest == dataset.digest


def test_search_runs_returns_inputs(client, experiment_id):
    df = pd.DataFrame({"v": [1]})
    dataset = mlflow.data.from_pandas(df, source="file:///data/s.csv", name="searched")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    [found] = client.search_runs([experiment_id], filter_string=f"attributes.run_id = '{run.info.run_id}'")
    assert [di.dataset.name for di in found.inputs.dataset_inputs] == ["searched"]
