"""The model registry with the official client: register a logged pyfunc model, load it back by
`models:/name/version` and `models:/name@alias`, aliases, legacy stages, tags, rename, delete,
searches with filters and pagination, and the error codes client code relies on."""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd
from compat_helpers import raises_mlflow
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from test_models import PIP_REQUIREMENTS, AddN


def _log_model(n: int) -> str:
    """Logs AddN(n) in a new run of the current experiment; returns the run id."""
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 0.5 + n / 100)
        mlflow.pyfunc.log_model(name="model", python_model=AddN(n), pip_requirements=PIP_REQUIREMENTS)
    return run.info.run_id


def test_register_and_load_by_version_and_alias(client, experiment_id, unique):
    name = unique("adder")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    run_one = _log_model(1)
    run_two = _log_model(2)

    first = mlflow.register_model(f"runs:/{run_one}/model", name)
    assert isinstance(first, ModelVersion)
    assert first.version == "1"
    assert first.run_id == run_one
    assert first.status == "READY"
    second = mlflow.register_model(f"runs:/{run_two}/model", name)
    assert second.version == "2"

    by_version = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert list(by_version.predict(frame)["x"]) == [2.0, 3.0]
    latest = mlflow.pyfunc.load_model(f"models:/{name}/latest")
    assert list(latest.predict(frame)["x"]) == [3.0, 4.0]

    client.set_registered_model_alias(name, "champion", "1")
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(champion.predict(frame)["x"]) == [2.0, 3.0]
    client.set_registered_model_alias(name, "champion", "2")
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(champion.predict(frame)["x"]) == [3.0, 4.0]

    by_alias = client.get_model_version_by_alias(name, "champion")
    assert by_alias.version == "2"
    assert by_alias.aliases == ["champion"]
    model = client.get_registered_model(name)
    assert model.aliases == {"champion": "2"}
    client.delete_registered_model_alias(name, "champion")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.get_model_version_by_alias(name, "champion")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.set_registered_model_alias(name, "v1", "1")

    # The version points at the logged model's artifacts: nothing was copied.
    assert first.source.startswith("models:/m-"), "register_model registers the logged model"
    logged = client.get_logged_model(first.source.removeprefix("models:/"))
    assert logged.source_run_id == run_one
    assert client.get_model_version_download_uri(name, "1") == logged.artifact_location


def test_registered_model_crud_tags_and_rename(client, unique):
    name = unique("crud")
    created = client.create_registered_model(name, tags={"team": "risk"}, description="first")
    assert isinstance(created, RegisteredModel)
    assert created.tags == {"team": "risk"}
    assert created.description == "first"
    with raises_mlflow("RESOURCE_ALREADY_EXISTS"):
        client.create_registered_model(name)

    client.update_registered_model(name, description="second")
    client.set_registered_model_tag(name, "owner", "ana")
    client.delete_registered_model_tag(name, "team")
    got = client.get_registered_model(name)
    assert got.description == "second"
    assert got.tags == {"owner": "ana"}

    version = client.create_model_version(name, "s3://bucket/model", tags={"k": "v"}, description="d")
    assert version.version == "1"
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.delete_model_version_tag(name, "1", "k")
    client.update_model_version(name, "1", description="better")
    got = client.get_model_version(name, "1")
    assert got.tags == {"validated": "yes"}
    assert got.description == "better"

    new_name = unique("renamed")
    client.rename_registered_model(name, new_name)
    assert client.get_registered_model(new_name).description == "second"
    assert client.get_model_version(new_name, "1").name == new_name
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model(name)

    client.delete_model_version(new_name, "1")
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_model_version(new_name, "1")
    client.delete_registered_model(new_name)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model(new_name)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_model_version(new_name, "7")


def test_transition_stage_and_latest_versions(client, unique):
    name = unique("staged")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, "s3://bucket/model")
    # The stages API is deprecated in the client (its warnings are filtered in pytest.ini).
    client.transition_model_version_stage(name, "1", "Production")
    moved = client.transition_model_version_stage(name, "2", "production", archive_existing_versions=True)
    assert moved.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["2"]
    every = client.get_latest_versions(name)
    assert sorted((v.current_stage, v.version) for v in every) == [
        ("Archived", "1"), ("None", "3"), ("Production", "2"),
    ]
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.transition_model_version_stage(name, "3", "Shipped")


def test_search_with_filters_and_pagination(client, unique):
    prefix = unique("search")
    names = [f"{prefix}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        client.create_registered_model(name, tags={"parity": "even" if i % 2 == 0 else "odd"})
        client.create_model_version(name, f"s3://bucket/{name}")
    client.create_model_version(names[0], "s3://bucket/second")

    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", max_results=2)
    seen = [m.name for m in found]
    while found.token:
        found = client.search_registered_models(
            filter_string=f"name LIKE '{prefix}-%'", max_results=2, page_token=found.token
        )
        seen += [m.name for m in found]
    assert seen == names

    even = client.search_registered_models(
        filter_string=f"name ILIKE '{prefix.upper()}-%' AND tags.parity = 'even'",
        order_by=["name DESC"],
    )
    assert [m.name for m in even] == [names[4], names[2], names[0]]
    assert all(m.latest_versions for m in even), "latest_versions come with every model"

    versions = client.search_model_versions(f"name = '{names[0]}'", order_by=["version_number ASC"])
    assert [v.version for v in versions] == ["1", "2"]
    page = client.search_model_versions(f"name LIKE '{prefix}-%'", max_results=4)
    assert len(page) == 4 and page.token
    rest = client.search_model_versions(f"name LIKE '{prefix}-%'", max_results=4, page_token=page.token)
    assert len(rest) == 2 and not rest.token
    by_source = client.search_model_versions(f"source_path = 's3://bucket/{names[3]}'")
    assert [(v.name, v.version) for v in by_source] == [(names[3], "1")]

    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_registered_models(filter_string="metrics.acc > 1")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_model_versions("name > 'a'")


def test_search_versions_by_run_id(client, experiment_id, unique):
    name = unique("by-run")
    run_id = _log_model(3)
    mlflow.register_model(f"runs:/{run_id}/model", name)
    found = client.search_model_versions(f"run_id = '{run_id}'")
    assert [(v.name, v.version, v.run_id) for v in found] == [(name, "1", run_id)]
