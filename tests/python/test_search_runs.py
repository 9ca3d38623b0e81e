"""search_runs with the MLflow filter grammar, ordering, max_results and page tokens."""

from __future__ import annotations

import uuid

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

from compat_helpers import raises_mlflow

# name, params, metrics, tags, final status, start_time
RUNS = {
    "r1": ("alpha-1", {"model": "a", "lr": "0.1"}, {"acc": 0.9, "loss": 0.3}, {"team": "vision"}, "FINISHED", 1_000),
    "r2": ("alpha-2", {"model": "b", "lr": "0.01"}, {"acc": 0.7, "loss": 0.5}, {"team": "nlp"}, "FAILED", 2_000),
    "r3": ("Beta-3", {"model": "a", "lr": "0.001"}, {"acc": 0.4, "loss": 0.9}, {"team": "vision"}, "RUNNING", 3_000),
    "r4": ("gamma-4", {"model": "c"}, {"acc": 0.95}, {}, "KILLED", 4_000),
}


@pytest.fixture(scope="module")
def corpus(server):
    """One experiment with four different runs; returns (experiment_id, {label: run_id})."""
    client = MlflowClient()
    exp_id = client.create_experiment(f"search-runs-{uuid.uuid4().hex[:10]}")
    ids = {}
    for label, (name, params, metrics, tags, status, start) in RUNS.items():
        run = client.create_run(exp_id, start_time=start, run_name=name)
        run_id = run.info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, start + 10, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if status != "RUNNING":
            client.set_terminated(run_id, status=status, end_time=start + 500)
        ids[label] = run_id
    return exp_id, ids


def _search(corpus, filter_string="", order_by=None, **kwargs):
    exp_id, ids = corpus
    by_id = {v: k for k, v in ids.items()}
    runs = MlflowClient().search_runs([exp_id], filter_string=filter_string, order_by=order_by, **kwargs)
    return [by_id[r.info.run_id] for r in runs]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > 0.5", {"r1", "r2", "r4"}),
        ("metrics.acc >= 0.9 AND params.model = 'a'", {"r1"}),
        ("metrics.loss < 0.6", {"r1", "r2"}),  # r4 has no loss: not matched
        ("metrics.acc = 0.4", {"r3"}),
        ("metrics.acc != 0.4", {"r1", "r2", "r4"}),
        ("params.model = 'a'", {"r1", "r3"}),
        ("params.model != 'a'", {"r2", "r4"}),
        ("params.lr LIKE '0.0%'", {"r2", "r3"}),
        ("params.`lr` = '0.1'", {"r1"}),
        ("tags.team = 'vision'", {"r1", "r3"}),
        ("tags.team != 'vision'", {"r2"}),  # runs without the tag are not matched
        ("tags.team ILIKE 'VIS%'", {"r1", "r3"}),
        ("tags.team LIKE 'VIS%'", set()),  # LIKE is case-sensitive
        ("tags.`mlflow.runName` LIKE 'alpha%'", {"r1", "r2"}),
        ("tags.mlflow.runName = 'gamma-4'", {"r4"}),
        ("attributes.run_name = 'alpha-2'", {"r2"}),
        ("attributes.run_name ILIKE 'beta%'", {"r3"}),
        ("attributes.run_name LIKE '%-4'", {"r4"}),
        ("attributes.status = 'FAILED'", {"r2"}),
        ("attributes.status != 'RUNNING'", {"r1", "r2", "r4"}),
        ("status = 'KILLED'", {"r4"}),  # no prefix means attributes
        ("attributes.start_time > 2500", {"r3", "r4"}),
        ("attributes.start_time >= 2000 AND attributes.start_time <= 3000", {"r2", "r3"}),
        ("metrics.acc > 0.5 and tags.team = 'vision'", {"r1"}),  # AND is case-insensitive
        ("params.model = 'a' AND metrics.acc < 0.5 AND tags.team = 'vision'", {"r3"}),
        ("params.model = 'zzz'", set()),
        ("", {"r1", "r2", "r3", "r4"}),
    ],
)
def test_search_runs_filters(corpus, filter_string, expected):
    assert set(_search(corpus, filter_string)) == expected


def test_search_runs_run_id_in(corpus):
    _, ids = corpus
    got = _search(corpus, f"attributes.run_id IN ('{ids['r1']}', '{ids['r3']}')")
    assert set(got) == {"r1", "r3"}
    got = _search(corpus, f"attributes.run_id NOT IN ('{ids['r1']}', '{ids['r3']}')")
    assert set(got) == {"r2", "r4"}


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["r4", "r3", "r2", "r1"]),  # default: newest start_time first
        (["attributes.start_time ASC"], ["r1", "r2", "r3", "r4"]),
        (["attributes.start_time DESC"], ["r4", "r3", "r2", "r1"]),
        (["start_time ASC"], ["r1", "r2", "r3", "r4"]),
        (["metrics.acc DESC"], ["r4", "r1", "r2", "r3"]),
        (["metrics.acc"], ["r3", "r2", "r1", "r4"]),  # ascending by default
        (["metrics.loss ASC"], ["r1", "r2", "r3", "r4"]),  # missing values last
        (["params.model ASC", "metrics.acc DESC"], ["r1", "r3", "r2", "r4"]),
        (["params.lr DESC", "attributes.start_time ASC"], ["r1", "r2", "r3", "r4"]),
        (["tags.team ASC", "attributes.start_time DESC"], ["r2", "r3", "r1", "r4"]),
    ],
)
def test_search_runs_order_by(corpus, order_by, expected):
    assert _search(corpus, order_by=order_by) == expected


def test_search_runs_max_results(corpus):
    exp_id, _ = corpus
    page = MlflowClient().search_runs([exp_id], order_by=["attributes.start_time ASC"], max_results=3)
    assert len(page) == 3
    assert page.token
    rest = MlflowClient().search_runs(
        [exp_id], order_by=["attributes.start_time ASC"], max_results=3, page_token=page.token
    )
    assert len(rest) == 1
    assert not rest.token


def test_search_runs_returns_full_run_data(corpus):
    exp_id, ids = corpus
    [run] = MlflowClient().search_runs([exp_id], filter_string="attributes.run_name = 'alpha-1'")
    assert run.info.run_id == ids["r1"]
    assert run.info.status == "FINISHED"
    assert run.info.start_time == 1_000
    assert run.info.end_time == 1_500
    assert run.data.params == {"model": "a", "lr": "0.1"}
    assert run.data.metrics == {"acc": 0.9, "loss": 0.3}
    assert run.data.tags["team"] == "vision"


def test_fluent_search_runs_dataframe(corpus):
    exp_id, ids = corpus
    df = mlflow.search_runs(
        experiment_ids=[exp_id], filter_string="params.model = 'a'", order_by=["metrics.acc DESC"]
    )
    assert list(df["run_id"]) == [ids["r1"], ids["r3"]]
    assert list(df["metrics.acc"]) == [0.9, 0.4]
    assert list(df["params.model"]) == ["a", "a"]
    assert list(df["tags.team"]) == ["vision", "vision"]
    assert list(df["status"]) == ["FINISHED", "RUNNING"]


def test_search_runs_across_experiments(client, unique):
    e1 = client.create_experiment(unique("multi-a"))
    e2 = client.create_experiment(unique("multi-b"))
    r1 = client.create_run(e1).info.run_id
    r2 = client.create_run(e2).info.run_id
    got = {r.info.run_id for r in client.search_runs([e1, e2])}
    assert got == {r1, r2}
    assert [r.info.run_id for r in client.search_runs([e2])] == [r2]


def test_search_runs_pagination_250_runs_by_100(client, unique):
    exp_id = client.create_experiment(unique("paging"))
    base = 1_600_000_000_000
    created = [
        client.create_run(exp_id, start_time=base + i, run_name=f"run-{i:03d}").info.run_id
        for i in range(250)
    ]

    pages = []
    token = None
    while True:
        page = client.search_runs(
            [exp_id], order_by=["attributes.start_time ASC"], max_results=100, page_token=token
        )
        pages.append([r.info.run_id for r in page])
        token = page.token
        if not token:
            break
        assert len(pages) < 10, "pagination does not terminate"
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [run_id for p in pages for run_id in p] == created

    # The default order pages too, without duplicates or gaps.
    seen = []
    token = None
    for _ in range(10):
        page = client.search_runs([exp_id], max_results=100, page_token=token)
        seen.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            break
    assert len(seen) == 250 and set(seen) == set(created)

    # A filter applies before paging.
    filtered = client.search_runs(
        [exp_id], filter_string="attributes.run_name LIKE 'run-1%'", max_results=100
    )
    assert len(filtered) == 100
    assert {r.info.run_name for r in filtered} == {f"run-{i}" for i in range(100, 200)}


@pytest.mark.parametrize(
    "bad_filter",
    [
        "metrics.acc >> 0.5",
        "metrics.acc > 'abc'",
        "params.model = a",  # unquoted string
        "foo.bar = 'x'",  # unknown entity type
        "attributes.nope = 'x'",  # unknown attribute
        "params.model IN ('a', 'b')",  # IN is only for attributes such as run_id
        "params.model = 'a' OR params.model = 'b'",  # no OR in MLflow's grammar
    ],
)
def test_search_runs_bad_filter(client, corpus, bad_filter):
    exp_id, _ = corpus
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_runs([exp_id], filter_string=bad_filter)


def test_search_runs_bad_order_by(client, corpus):
    exp_id, _ = corpus
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_runs([exp_id], order_by=["metrics.acc SIDEWAYS"])


def test_search_runs_view_type(client, unique):
    exp_id = client.create_experiment(unique("view"))
    alive = client.create_run(exp_id).info.run_id
    dead = client.create_run(exp_id).info.run_id
    client.delete_run(dead)
    assert {r.info.run_id for r in client.search_runs([exp_id])} == {alive}
    assert {r.info.run_id for r in client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)} == {dead}
    assert {r.info.run_id for r in client.search_runs([exp_id], run_view_type=ViewType.ALL)} == {alive, dead}
