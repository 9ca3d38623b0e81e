"""Compatibility tests with the unmodified `mlflow` client (pinned in requirements.txt).

The session starts the server under test on a free port with a fresh data directory and
points the client at it through the environment (`MLFLOW_TRACKING_URI`, and for Cairn
`MLFLOW_TRACKING_TOKEN`):

* `CAIRN_COMPAT_TARGET=cairn` (default): `$CAIRN_BIN serve` (embedded PostgreSQL), with an
  API token created through `POST /api/v1/tokens`. `CAIRN_COMPAT_STORAGE_URL=s3://...`
  puts its artifacts on an S3-compatible store (credentials from the `AWS_*` variables).
* `CAIRN_COMPAT_TARGET=mlflow`: the reference `mlflow server` from the same venv (sqlite,
  proxied artifacts, no auth). Every test must pass there: that is what validates the
  tests. Tests of Cairn-only behaviour carry the `cairn_only` marker and are skipped there.

Other knobs: `CAIRN_COMPAT_KEEP=1` keeps the server's temp dir (data and log);
`CAIRN_COMPAT_STARTUP_TIMEOUT` (s, default 90); `CAIRN_COMPAT_REQUEST_TIMEOUT` (s, default 60,
the client's per-request timeout; retries are off so a broken server fails fast).

Run: `tests/python/run [PYTEST ARGS]` (see that script), or `./scripts/test` for everything.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

TARGET = os.environ.get("CAIRN_COMPAT_TARGET", "cairn").strip().lower()
if TARGET not in ("cairn", "mlflow"):
    raise pytest.UsageError(f"CAIRN_COMPAT_TARGET must be 'cairn' or 'mlflow', not {TARGET!r}")

ADMIN_PASSWORD = "pytest-admin-" + uuid.uuid4().hex[:12]
STARTUP_TIMEOUT_S = float(os.environ.get("CAIRN_COMPAT_STARTUP_TIMEOUT", "90"))
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 80

# The client must fail fast against a broken server instead of retrying for minutes; and it
# must not try to phone home (no network here). Set before any test imports the client's
# request machinery.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = os.environ.get("CAIRN_COMPAT_REQUEST_TIMEOUT", "60")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
# The server is local: never send the client's requests through a configured HTTP proxy.
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(_hosts + ["127.0.0.1", "localhost"])
os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
os.environ.pop("MLFLOW_RUN_ID", None)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cairn_only: behaviour the reference mlflow server does not have (e.g. auth); "
        "skipped when CAIRN_COMPAT_TARGET=mlflow",
    )


def pytest_collection_modifyitems(config, items):
    if TARGET != "mlflow":
        return
    skip = pytest.mark.skip(reason="cairn_only: the reference mlflow server has no such behaviour")
    for item in items:
        if "cairn_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"compat target: {TARGET}"


@dataclass
class Server:
    """The server under test, as the tests see it."""

    target: str
    url: str
    token: str | None  # API token (Cairn); None for the reference server
    admin_user: str | None
    admin_password: str | None
    log_path: Path
    data_dir: Path

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, *, headers=None, body: bytes | None = None, timeout=5.0):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with status {proc.returncode} before it was ready; "
                f"last lines of its log {log_path}:\n{_tail(log_path)}"
            )
        try:
            status, body = _http("GET", url, timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(
        f"{what} was not ready at {url} within {STARTUP_TIMEOUT_S:.0f} s ({last}); "
        f"last lines of its log {log_path}:\n{_tail(log_path)}"
    )


def _stop(
    proc: subprocess.Popen, what: str, log_path: Path, *, require_clean_exit: bool,
    group: bool = False,
) -> None:
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"{what} did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM; "
                f"last lines of its log:\n{_tail(log_path)}"
            )
        if require_clean_exit and proc.returncode != 0:
            raise RuntimeError(
                f"{what} exited with status {proc.returncode} after SIGTERM (expected 0); "
                f"last lines of its log:\n{_tail(log_path)}"
            )
    elif require_clean_exit:
        raise RuntimeError(
            f"{what} had already exited (status {proc.returncode}) before the end of the "
            f"session; last lines of its log:\n{_tail(log_path)}"
        )


def _cairn_binary() -> Path:
    explicit = os.environ.get("CAIRN_BIN")
    if explicit:
        path = Path(explicit)
    else:
        target_dir = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/cairn-target")
        path = Path(target_dir) / "debug" / "cairn"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise pytest.UsageError(
            f"no cairn binary at {path}: build it (`cargo build -p cairn`) and set CAIRN_BIN"
        )
    return path


def _start_cairn(tmp: Path, log_path: Path):
    binary = _cairn_binary()
    port = _free_port()
    data_dir = tmp / "data"
    env = dict(os.environ)
    for k in ("DATABASE_URL", "DATABASE_URL_FILE", "CAIRN_STORAGE_URL", "CAIRN_CONFIG",
              "CAIRN_LISTEN", "CAIRN_DATA_DIR", "CAIRN_ADMIN_PASSWORD_FILE"):
        env.pop(k, None)
    env["CAIRN_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    # Local deployments are served by this venv's Python (it has mlflow and uvicorn).
    env["CAIRN_SERVING_PYTHON"] = sys.executable
    env.setdefault("RUST_LOG", "info")
    args = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
    # Artifacts on an S3-compatible store instead of the data dir (AWS_* from the caller).
    storage_url = os.environ.get("CAIRN_COMPAT_STORAGE_URL")
    if storage_url:
        args += ["--storage-url", storage_url]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        args,
        cwd=tmp,  # no stray cairn.toml from the caller's directory
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url + "/readyz", log_path, f"cairn serve ({binary})")
        basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        status, body = _http(
            "POST",
            url + "/api/v1/tokens",
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
            body=json.dumps({"name": "pytest"}).encode(),
            timeout=30.0,
        )
        if status not in (200, 201):
            raise RuntimeError(f"POST /api/v1/tokens answered {status}: {body[:500]!r}")
        token = json.loads(body)["token"]
    except BaseException:
        _stop(proc, "cairn serve", log_path, require_clean_exit=False)
        raise
    server = Server("cairn", url, token, "admin", ADMIN_PASSWORD, log_path, data_dir)
    return proc, server


def _start_mlflow(tmp: Path, log_path: Path):
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    port = _free_port()
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("MLFLOW_") and k not in ("MLFLOW_DISABLE_TELEMETRY",):
            env.pop(k)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            str(mlflow_cli), "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
            "--artifacts-destination", str(tmp / "artifacts"),
            "--serve-artifacts",
        ],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url + "/health", log_path, "mlflow server")
    except BaseException:
        _stop(proc, "mlflow server", log_path, require_clean_exit=False, group=True)
        _kill_group(proc)
        raise
    return proc, Server("mlflow", url, None, None, None, log_path, tmp)


def _kill_group(proc: subprocess.Popen) -> None:
    """`mlflow server` runs uvicorn/gunicorn workers in its own session: end them too."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_FINAL_LOG_TAIL: tuple[str, str] | None = None  # (heading, text), kept for the summary


@pytest.fixture(scope="session", autouse=True)
def server(request):
    """Start the server under test once per session and point the client at it."""
    tmp = Path(tempfile.mkdtemp(prefix=f"cairn-compat-{TARGET}-"))
    # Reachable by the `postgres` user, so Cairn (as root) keeps its cluster in the data dir.
    tmp.chmod(0o755)
    log_path = tmp / "server.log"
    if TARGET == "cairn":
        proc, srv = _start_cairn(tmp, log_path)
    else:
        proc, srv = _start_mlflow(tmp, log_path)
    os.environ["MLFLOW_TRACKING_URI"] = srv.url
    if srv.token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = srv.token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    global _FINAL_LOG_TAIL
    try:
        yield srv
    finally:
        try:
            _stop(
                proc, f"{TARGET} server", log_path,
                require_clean_exit=(TARGET == "cairn"), group=(TARGET == "mlflow"),
            )
        finally:
            if TARGET == "mlflow":
                _kill_group(proc)
            _FINAL_LOG_TAIL = (f"last lines of the {TARGET} server log ({log_path})", srv.log_tail())
            if not os.environ.get("CAIRN_COMPAT_KEEP"):
                shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_active_run_leaks():
    """A test that fails inside `with mlflow.start_run()` still ends its run; a test that
    forgot to end one does not leak it into the next test."""
    import mlflow

    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def client():
    from mlflow import MlflowClient

    return MlflowClient()


@pytest.fixture
def unique():
    """unique("exp") -> "exp-<hex>": names that never collide between tests and runs."""

    def make(prefix: str = "pytest") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def experiment_id(client, unique):
    """A fresh experiment for one test, also made the fluent API's current experiment."""
    import mlflow

    exp_id = client.create_experiment(unique("exp"))
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On any failure, show the end of the server's log (set CAIRN_COMPAT_KEEP=1 to keep it
    and the data directory)."""
    failed = terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")
    if failed and _FINAL_LOG_TAIL is not None:
        heading, text = _FINAL_LOG_TAIL
        terminalreporter.section(heading)
        terminalreporter.write_line(text)
