"""Artifacts through the tracking server's proxy (`mlflow-artifacts:/`): upload, list and
download byte-exact, including one file of 100 MiB."""

from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path

import mlflow

from compat_helpers import sha256_file, write_random_file

BIG_FILE_SIZE = 100 * 1024 * 1024 + 12_345  # > 100 MB and not a multiple of any chunk size


def _listing(client, run_id, path=None):
    # An empty file's size may come back as 0 or be omitted (proto3 default): same thing.
    return {
        (f.path, f.is_dir, None if f.is_dir else (f.file_size or 0))
        for f in client.list_artifacts(run_id, path)
    }


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_run_artifact_uri_is_proxied(client, experiment_id):
    run = client.create_run(experiment_id)
    # The server hands out an mlflow-artifacts: URI, so the client goes through its proxy.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri


def test_log_artifact_and_download(client, experiment_id, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("hello, artifact\n" * 100)
    binary = tmp_path / "all-bytes.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")

    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src))
        mlflow.log_artifact(str(binary), artifact_path="data/bin")
        mlflow.log_artifact(str(empty))
    run_id = run.info.run_id

    assert _listing(client, run_id) == {
        ("hello.txt", False, src.stat().st_size),
        ("empty.txt", False, 0),
        ("data", True, None),
    }
    assert _listing(client, run_id, "data") == {("data/bin", True, None)}
    assert _listing(client, run_id, "data/bin") == {("data/bin/all-bytes.bin", False, 16384)}

    out = tmp_path / "out"
    out.mkdir()
    got = Path(client.download_artifacts(run_id, "hello.txt", str(out)))
    assert got.read_bytes() == src.read_bytes()
    got = Path(client.download_artifacts(run_id, "data/bin/all-bytes.bin", str(out)))
    assert got.read_bytes() == binary.read_bytes()
    got = Path(client.download_artifacts(run_id, "empty.txt", str(out)))
    assert got.read_bytes() == b""


def test_log_artifacts_directory_round_trip(client, experiment_id, tmp_path):
    src = tmp_path / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "config.json").write_text(json.dumps({"lr": 0.1}))
    (src / "nested" / "b.csv").write_text("x,y\n1,2\n")
    (src / "nested" / "deeper" / "c.bin").write_bytes(os.urandom(70_000))
    (src / "nested" / "name with spaces.txt").write_text("spaces")

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="bundle")
    run_id = run.info.run_id

    assert _listing(client, run_id) == {("bundle", True, None)}
    assert _listing(client, run_id, "bundle") == {
        ("bundle/a.txt", False, 1),
        ("bundle/config.json", False, len(json.dumps({"lr": 0.1}))),
        ("bundle/nested", True, None),
    }
    assert {p for p, _, _ in _listing(client, run_id, "bundle/nested")} == {
        "bundle/nested/b.csv",
        "bundle/nested/deeper",
        "bundle/nested/name with spaces.txt",
    }

    # Download the whole directory, and the whole run.
    out = tmp_path / "out"
    out.mkdir()
    got = Path(client.download_artifacts(run_id, "bundle", str(out)))
    assert _tree(got) == _tree(src)
    everything = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all")))
    assert _tree(everything / "bundle") == _tree(src)

    # And one file through a runs:/ URI.
    one = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{run_id}/bundle/nested/deeper/c.bin", dst_path=str(tmp_path / "one")
    )
    assert filecmp.cmp(one, src / "nested" / "deeper" / "c.bin", shallow=False)


def test_list_artifacts_of_missing_path_and_empty_run(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    assert client.list_artifacts(run_id) == []
    assert client.list_artifacts(run_id, "no/such/dir") == []


def test_log_text_and_dict(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_text("some text\nwith lines", "notes/readme.txt")
        mlflow.log_dict({"a": [1, 2, 3], "b": {"c": "d"}}, "cfg/config.json")
    run_id = run.info.run_id
    artifact_uri = client.get_run(run_id).info.artifact_uri
    assert mlflow.artifacts.load_text(f"{artifact_uri}/notes/readme.txt") == "some text\nwith lines"
    assert mlflow.artifacts.load_dict(f"{artifact_uri}/cfg/config.json") == {
        "a": [1, 2, 3],
        "b": {"c": "d"},
    }


def test_overwriting_an_artifact_replaces_it(client, experiment_id, tmp_path):
    f = tmp_path / "v.txt"
    with mlflow.start_run() as run:
        f.write_text("first version")
        mlflow.log_artifact(str(f))
        f.write_text("second, longer version")
        mlflow.log_artifact(str(f))
    got = client.download_artifacts(run.info.run_id, "v.txt", str(tmp_path / "out"))
    assert Path(got).read_text() == "second, longer version"


def test_large_artifact_100mb_round_trip(client, experiment_id, tmp_path):
    src = tmp_path / "big.bin"
    digest = write_random_file(src, BIG_FILE_SIZE)

    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), artifact_path="large")
    run_id = run.info.run_id

    assert _listing(client, run_id, "large") == {("large/big.bin", False, BIG_FILE_SIZE)}
    src.unlink()  # keep the disk use down: only the digest is needed now

    out = tmp_path / "out"
    out.mkdir()
    got = Path(client.download_artifacts(run_id, "large/big.bin", str(out)))
    assert got.stat().st_size == BIG_FILE_SIZE
    assert sha256_file(got) == digest
