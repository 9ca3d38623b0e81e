"""mlflow.pyfunc.log_model of a tiny pure-Python model, loaded back by `runs:/` and
`models:/` URIs and used to predict. In MLflow 3 this goes through the logged-models
endpoints and the artifact proxy."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature

PIP_REQUIREMENTS = ["mlflow==3.17.2", "pandas"]  # skip requirement inference: faster


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input.apply(lambda column: column + self.n)


def test_pyfunc_log_model_and_load_by_run_uri(client, experiment_id, tmp_path):
    model_input = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0]})
    signature = infer_signature(model_input, model_input + 5)
    with mlflow.start_run() as run:
        mlflow.log_param("n", 5)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=AddN(5),
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
        )
    run_id = run.info.run_id
    assert info.run_id == run_id

    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    pd.testing.assert_frame_equal(loaded.predict(model_input), model_input + 5)

    # The logged model is a first-class object in MLflow 3: by its models:/ URI too.
    assert info.model_id
    by_id = mlflow.pyfunc.load_model(info.model_uri)
    pd.testing.assert_frame_equal(by_id.predict(model_input), model_input + 5)
    logged = client.get_logged_model(info.model_id)
    assert logged.source_run_id == run_id
    assert logged.experiment_id == experiment_id
    assert logged.name == "model"
    assert str(logged.status) in ("READY", "LoggedModelStatus.READY")

    # The model's files can be downloaded like any artifact.
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{run_id}/model", dst_path=str(tmp_path / "dl")
    )
    files = {p.name for p in Path(local).iterdir()}
    assert "MLmodel" in files
    assert "python_model.pkl" in files


def test_two_models_in_one_run(client, experiment_id):
    model_input = pd.DataFrame({"x": [0.0, 1.0]})
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="plus-one", python_model=AddN(1), pip_requirements=PIP_REQUIREMENTS)
        mlflow.pyfunc.log_model(name="plus-two", python_model=AddN(2), pip_requirements=PIP_REQUIREMENTS)
    run_id = run.info.run_id
    one = mlflow.pyfunc.load_model(f"runs:/{run_id}/plus-one")
    two = mlflow.pyfunc.load_model(f"runs:/{run_id}/plus-two")
    assert list(one.predict(model_input)["x"]) == [1.0, 2.0]
    assert list(two.predict(model_input)["x"]) == [2.0, 3.0]

    found = client.search_logged_models(experiment_ids=[experiment_id])
    assert {m.name for m in found} >= {"plus-one", "plus-two"}
