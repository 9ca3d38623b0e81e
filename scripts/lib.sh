# Shared by scripts/start and scripts/test: idempotent installation of what Cairn needs.
# shellcheck shell=bash

CAIRN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

APT_UPDATED=""
# apt_install PKG... installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The PostgreSQL server binaries for the embedded cluster (Cairn finds them itself).
ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    apt_install postgresql
  fi
}

# s3s-fs, the S3-compatible server that the S3 tests start (tests/src/s3.rs), in
# ~/.cargo/bin. Pinned: 0.15 and later need a newer rustc. Built once (about 3 minutes)
# outside the shared target directory; a lock keeps concurrent runs from building it twice.
S3S_FS_VERSION="0.14.1"
ensure_s3s_fs() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
  s3s_fs_ok() { [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "s3s-fs $S3S_FS_VERSION" ]; }
  s3s_fs_ok && return 0
  mkdir -p "$(dirname "$bin")"
  (
    flock 9 || exit 1
    s3s_fs_ok && exit 0
    log "installing s3s-fs $S3S_FS_VERSION for the S3 tests (about 3 minutes, once)"
    env -u CARGO_TARGET_DIR cargo install --locked --force "s3s-fs@$S3S_FS_VERSION" --features binary
  ) 9>"$bin.lock"
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    log "Rust is not installed: install rustup and Rust 1.95 or newer (https://rustup.rs), then run this again"
    exit 1
  fi
}

# A Python 3.10+ that can make venvs (Debian ships `venv`/`ensurepip` separately, in
# python3-venv). Prints its path.
python_for_venv() {
  local py attempt
  for attempt in 1 2; do
    for py in python3 python3.13 python3.12 python3.11 python3.10; do
      command -v "$py" >/dev/null || continue
      "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || continue
      if "$py" -c 'import ensurepip, venv' 2>/dev/null; then
        command -v "$py"
        return 0
      fi
    done
    [ "$attempt" = 1 ] && apt_install python3 python3-venv >&2
  done
  log "need Python 3.10 or newer with venv (Debian: apt-get install python3 python3-venv)"
  return 1
}

# The pinned `mlflow` client (and pytest) for the MLflow compatibility tests in tests/python.
# The venv lives outside the repository (CI runs from fresh clones) and is named after the
# hash of tests/python/requirements.txt: unchanged pins reuse it (no pip call at all), new
# pins make a new one. A marker file written last makes an interrupted install start over;
# a lock keeps two concurrent runs from installing into the same venv. Sets CAIRN_VENV.
ensure_python_venv() {
  local req="$CAIRN_ROOT/tests/python/requirements.txt" hash python
  hash="$(sha256sum "$req" | cut -c1-12)"
  CAIRN_VENV="${CAIRN_VENV_ROOT:-$HOME/.cache}/cairn-venv-$hash"
  export CAIRN_VENV
  [ -f "$CAIRN_VENV/.cairn-installed" ] && return 0
  python="$(python_for_venv)" || return 1
  mkdir -p "$(dirname "$CAIRN_VENV")"
  (
    flock 9 || exit 1
    [ -f "$CAIRN_VENV/.cairn-installed" ] && exit 0
    rm -rf "$CAIRN_VENV"
    log "creating $CAIRN_VENV with the pinned mlflow client (about a minute, once)"
    "$python" -m venv "$CAIRN_VENV" || exit 1
    "$CAIRN_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" || exit 1
    touch "$CAIRN_VENV/.cairn-installed"
  ) 9>"$CAIRN_VENV.lock"
}

# run_python_compat_tests [PYTEST ARGS...]: the MLflow-client compatibility suite
# (tests/python; paths in the arguments are relative to it). Target: Cairn at $CAIRN_BIN
# (default: the debug build, built here), or with CAIRN_COMPAT_TARGET=mlflow the reference
# `mlflow server` from the same venv. Any pytest failure fails, "no tests collected"
# (exit 5) included.
run_python_compat_tests() {
  local target="${CAIRN_COMPAT_TARGET:-cairn}" rc=0
  ensure_python_venv
  if [ -n "${CAIRN_BIN:-}" ] && [ "${CAIRN_BIN#/}" = "$CAIRN_BIN" ]; then
    CAIRN_BIN="$PWD/$CAIRN_BIN"  # pytest runs in tests/python
  fi
  if [ "$target" = cairn ] && [ -z "${CAIRN_BIN:-}" ]; then
    log "cargo build -p cairn"
    (cd "$CAIRN_ROOT" && cargo build --locked -p cairn)
    CAIRN_BIN="$CARGO_TARGET_DIR/debug/cairn"
  fi
  log "MLflow client compatibility tests (tests/python) against $target"
  (
    cd "$CAIRN_ROOT/tests/python" &&
      CAIRN_COMPAT_TARGET="$target" CAIRN_BIN="${CAIRN_BIN:-}" PYTHONDONTWRITEBYTECODE=1 \
        "$CAIRN_VENV/bin/python" -m pytest "$@"
  ) || rc=$?
  case "$rc" in
    0) return 0 ;;
    5) log "pytest collected no tests in tests/python: treating that as a failure" ;;
    *) log "MLflow client compatibility tests failed against $target (pytest exit status $rc)" ;;
  esac
  return "$rc"
}

# The dashboard's pinned front-end libraries, embedded by crates/cairn-server/build.rs.
ensure_web_assets() {
  local lock="$CAIRN_ROOT/web/package-lock.json" stamp="$CAIRN_ROOT/web/node_modules/.cairn-lock"
  [ -f "$stamp" ] && cmp -s "$lock" "$stamp" && return 0
  command -v npm >/dev/null || apt_install nodejs npm
  log "npm ci --prefix web"
  npm ci --prefix "$CAIRN_ROOT/web" --no-audit --no-fund && cp "$lock" "$stamp"
}

# Headless Chromium and its driver for the dashboard's browser tests.
ensure_browser() { apt_install chromium chromium-driver; }
