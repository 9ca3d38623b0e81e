"""Experiments through the official client: create, get, get-by-name, search (filter,
order, pagination), rename, delete/restore, tags."""

from __future__ import annotations

import mlflow
from mlflow.entities import ViewType

from compat_helpers import raises_mlflow


def test_create_and_get_experiment(client, unique):
    name = unique("exp-create")
    exp_id = client.create_experiment(name, tags={"team": "vision", "owner": "pytest"})
    assert isinstance(exp_id, str) and exp_id

    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.tags["team"] == "vision"
    assert exp.tags["owner"] == "pytest"
    assert exp.artifact_location  # the server chooses it
    assert isinstance(exp.creation_time, int) and exp.creation_time > 0
    assert isinstance(exp.last_update_time, int) and exp.last_update_time > 0


def test_get_experiment_by_name(client, unique):
    name = unique("exp-by-name")
    exp_id = client.create_experiment(name)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    assert exp.experiment_id == exp_id
    assert exp.name == name
    # A missing name is not an error for the client: it answers None.
    assert client.get_experiment_by_name(unique("no-such-experiment")) is None


def test_fluent_set_experiment_creates_then_reuses(unique):
    name = unique("exp-fluent")
    created = mlflow.set_experiment(name)
    again = mlflow.set_experiment(name)
    assert created.experiment_id == again.experiment_id
    assert mlflow.get_experiment_by_name(name).experiment_id == created.experiment_id


def test_default_experiment_exists(client):
    exp = client.get_experiment("0")
    assert exp.name == "Default"


def test_duplicate_experiment_name_is_rejected(client, unique):
    name = unique("exp-dup")
    client.create_experiment(name)
    with raises_mlflow("RESOURCE_ALREADY_EXISTS"):
        client.create_experiment(name)


def test_get_unknown_experiment(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.get_experiment("987654321")


def test_search_experiments_filter_and_order(client, unique):
    prefix = unique("exp-search")
    ids = {}
    for suffix in ("b", "a", "c"):
        ids[suffix] = client.create_experiment(f"{prefix}-{suffix}", tags={"letter": suffix})

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert [e.name for e in found] == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [e.name for e in found] == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]

    found = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%' AND tags.letter = 'b'"
    )
    assert [e.experiment_id for e in found] == [ids["b"]]

    found = client.search_experiments(filter_string=f"name = '{prefix}-c'")
    assert [e.experiment_id for e in found] == [ids["c"]]

    # ILIKE is case-insensitive.
    found = client.search_experiments(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert {e.experiment_id for e in found} == set(ids.values())


def test_search_experiments_pagination(client, unique):
    prefix = unique("exp-page")
    names = [f"{prefix}-{i:02d}" for i in range(7)]
    for name in names:
        client.create_experiment(name)

    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_experiments(
            filter_string=f"name LIKE '{prefix}-%'",
            order_by=["name ASC"],
            max_results=3,
            page_token=token,
        )
        pages += 1
        assert len(page) <= 3
        seen.extend(e.name for e in page)
        token = page.token
        if not token:
            break
        assert pages < 10, "pagination does not terminate"
    assert seen == names
    assert pages == 3


def test_rename_experiment(client, unique):
    old, new = unique("exp-old"), unique("exp-new")
    exp_id = client.create_experiment(old)
    client.rename_experiment(exp_id, new)
    assert client.get_experiment(exp_id).name == new
    assert client.get_experiment_by_name(new).experiment_id == exp_id
    assert client.get_experiment_by_name(old) is None


def test_delete_and_restore_experiment(client, unique):
    name = unique("exp-delete")
    exp_id = client.create_experiment(name)

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = client.search_experiments(filter_string=f"name = '{name}'")
    assert active == []
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{name}'"
    )
    assert [e.experiment_id for e in deleted] == [exp_id]
    every = client.search_experiments(view_type=ViewType.ALL, filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in every] == [exp_id]

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    active = client.search_experiments(filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in active] == [exp_id]


def test_experiment_tags(client, unique):
    exp_id = client.create_experiment(unique("exp-tags"))
    client.set_experiment_tag(exp_id, "stage", "dev")
    client.set_experiment_tag(exp_id, "dotted.key/with-slash", "x")
    assert client.get_experiment(exp_id).tags == {"stage": "dev", "dotted.key/with-slash": "x"}

    client.set_experiment_tag(exp_id, "stage", "prod")  # overwrite
    assert client.get_experiment(exp_id).tags["stage"] == "prod"

    client.delete_experiment_tag(exp_id, "stage")
    assert client.get_experiment(exp_id).tags == {"dotted.key/with-slash": "x"}

    mlflow.set_experiment(experiment_id=exp_id)
    mlflow.set_experiment_tags({"a": "1", "b": "2"})
    tags = client.get_experiment(exp_id).tags
    assert tags["a"] == "1" and tags["b"] == "2"
