"""Small helpers shared by the compatibility tests (imported as a plain module)."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException


@contextmanager
def raises_mlflow(error_code: str, match: str | None = None):
    """Expect the client to raise MlflowException carrying `error_code` (as the server
    sent it in `{"error_code": ...}`)."""
    with pytest.raises(MlflowException, match=match) as info:
        yield info
    got = info.value.error_code
    assert got == error_code, (
        f"expected error_code {error_code}, got {got}: {info.value.message[:500]}"
    )


def write_random_file(path: Path, size: int, chunk: int = 1 << 20) -> str:
    """Write `size` random bytes to `path`; return their sha256 hex digest."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            block = os.urandom(min(chunk, left))
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
