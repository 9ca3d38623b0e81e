"""Dataset versions record the schema of their tabular files: a Parquet file written by
pandas/pyarrow (read from its footer by Cairn) and a CSV file; a broken Parquet file gets
its error recorded without refusing the version. Cairn's native API, so `cairn_only`."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.cairn_only


def _push(server, name: str, files: dict[str, bytes]) -> dict:
    headers = server.auth_headers()
    manifest = []
    for path, content in files.items():
        sha = hashlib.sha256(content).hexdigest()
        resp = requests.put(f"{server.url}/api/v1/blobs/{sha}", data=content, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        manifest.append({"path": path, "size": len(content), "sha256": sha})
    resp = requests.post(f"{server.url}/api/v1/datasets/{name}/versions", json={"files": manifest}, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_parquet_and_csv_schemas_are_recorded(server, unique):
    frame = pd.DataFrame(
        {
            "id": pd.Series([1, 2, 3], dtype="int64"),
            "score": [0.5, 0.25, 1.0],
            "label": ["cat", "dog", "cat"],
            "ok": [True, False, True],
            "day": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
        }
    )
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    version = _push(
        server,
        unique("tab"),
        {"train.parquet": parquet.getvalue(), "eval.csv": frame.to_csv(index=False).encode(), "broken.parquet": b"not parquet at all"},
    )
    files = version["schema"]["files"]
    pq = files["train.parquet"]
    assert pq["format"] == "parquet"
    assert pq["rows"] == 3
    assert {c["name"]: c["type"] for c in pq["columns"]} == {
        "id": "integer",
        "score": "float",
        "label": "string",
        "ok": "boolean",
        "day": "timestamp",
    }
    csv = files["eval.csv"]
    assert (csv["format"], csv["rows"]) == ("csv", 3)
    assert [c["name"] for c in csv["columns"]] == ["id", "score", "label", "ok", "day"]
    assert files["broken.parquet"]["error"].startswith("not a Parquet file")
