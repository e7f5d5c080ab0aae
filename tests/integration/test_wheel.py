"""The built wheel works on its own: installed into a clean virtual environment next to the
real `proto-plus` (import name `proto`) and `schema` distributions, used from a directory
outside the checkout.

The environment's dependencies are installed once and cached, keyed by pyproject.toml's
dependency list and the Python version (``~/.cache/edgeloop/wheel-venv/<key>``); each run
builds the wheel afresh and reinstalls only edgeloop into it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from edgeloop.processes import Child
from tests.support.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The distributions whose import names edgeloop once shadowed (`proto`, `schema`).
NEIGHBOURS = ["proto-plus", "schema"]
SHIPPED = sorted(p.name for p in (ROOT / "data" / "football-data").glob("*.csv"))


def _venv_key() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return hashlib.sha256(json.dumps([sys.version, dependencies, NEIGHBOURS]).encode()).hexdigest()[:16]


def _cached_venv() -> Path:
    """Built where it stays (a venv's scripts name its interpreter by absolute path); the
    caller holds the lock."""
    venv = _cache() / _venv_key()
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        _pip(venv, "install", *dependencies, *NEIGHBOURS)
        (venv / ".installed").touch()
    return venv


def _cache() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeloop" / "wheel-venv"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _clean_env(**values: str) -> dict[str, str]:
    """A shell's environment with nothing borrowed from the checkout or its virtualenv."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith("EDGELOOP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**keep, "EDGELOOP_CONFIG": os.devnull, **values}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # setuptools copies into build/lib and packs all of it: a file left there by an earlier
    # build (a module since deleted) would ride along.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("edgeloop-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel) -> Path:
    with open(_cache() / f"{_venv_key()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test run at a time builds, reinstalls and uses it
        venv = _cached_venv()
        _pip(venv, "install", "--no-deps", "--force-reinstall", str(wheel))
        yield venv


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory outside the checkout."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    assert ROOT not in path.parents
    return path


def _run(venv: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    exe = args[0] if args[0].startswith("/") else str(venv / "bin" / args[0])
    proc = subprocess.run([exe, *args[1:]], cwd=cwd, env=_clean_env(**env), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def test_the_wheel_installs_only_edgeloop_with_the_shipped_seasons(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        record = whl.read(f"{dist_info}/RECORD").decode().splitlines()
        top_level = whl.read(f"{dist_info}/top_level.txt").decode().split()
    installed = {line.split(",")[0].split("/")[0] for line in record} - {dist_info}
    assert installed == {"edgeloop"}
    assert top_level == ["edgeloop"]
    shipped = sorted(n.rsplit("/", 1)[1] for n in names
                     if n.startswith("edgeloop/data/football-data/") and n.endswith(".csv"))
    assert shipped == SHIPPED and len(shipped) > 20
    # the migrations travel with their non-Python files
    assert {"edgeloop/schema/migrations/env.py", "edgeloop/schema/migrations/script.py.mako"} <= set(names)


def test_edgeloop_imports_next_to_proto_plus_and_schema(venv, elsewhere, redis_url):
    code = """
import json, proto, schema
import edgeloop, edgeloop.proto.events_pb2, edgeloop.schema, edgeloop.workers
from edgeloop.marketdata.arrays import load_csv_window
print(json.dumps({
    "proto_plus": hasattr(proto, "Message") and hasattr(proto, "Field"),
    "schema_lib": hasattr(schema, "Schema") and hasattr(schema, "SchemaError"),
    "edgeloop": edgeloop.__file__,
    "event": edgeloop.proto.events_pb2.DESCRIPTOR.package,
    "celery_broker": edgeloop.workers.app.conf.broker_url,
    "matches": len(load_csv_window(["E0"]).event_ids),
}))
"""
    out = json.loads(_run(venv, ["python", "-c", code], elsewhere, EDGELOOP_REDIS_URL=redis_url).stdout)
    assert out["proto_plus"] and out["schema_lib"]
    assert Path(out["edgeloop"]).is_relative_to(venv)
    assert out["event"]
    assert out["celery_broker"] == redis_url  # edgeloop.celeryconfig was found
    assert out["matches"] > 7000  # the shipped E0 seasons, found from outside the checkout
    # pip's own view: nothing it installed is missing or in conflict
    _run(venv, ["python", "-m", "pip", "check"], elsewhere)


def test_the_commands_run_from_outside_the_checkout(venv, elsewhere, redis_url):
    assert "demo" in _run(venv, ["edgeloop", "--help"], elsewhere).stdout
    assert "--rounds" in _run(venv, ["edgeloop", "demo", "--help"], elsewhere).stdout

    # Given a SQLite database migrated by the installed package (its Alembic scripts)
    db = elsewhere / "edgeloop.db"
    settings = {"EDGELOOP_REDIS_URL": redis_url, "EDGELOOP_DATABASE_URL": f"sqlite:///{db}",
                "EDGELOOP_METRICS_PORT": "0", "EDGELOOP_PROMETHEUS_MULTIPROC_DIR": ""}
    _run(venv, ["edgeloop", "db", "upgrade"], elsewhere, **settings)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()
    # When the installed `celery` starts a worker on the edgeloop app
    worker = Child("wheel-worker", [str(venv / "bin" / "celery"), "-A", "edgeloop.workers", "worker",
                                    "--loglevel", "INFO", "-c", "1", "-n", "wheel@%h", "--without-mingle",
                                    "--without-gossip"], _clean_env(**settings), elsewhere, elsewhere)
    try:
        # Then it comes up, on the broker the settings name
        wait_until(lambda: "ready." in worker.log() or not worker.alive(), 90, 0.2, "the worker to be ready")
        assert worker.alive(), worker.tail(40)
        assert f"redis://127.0.0.1:6379/{redis_url.rsplit('/', 1)[1]}" in worker.log(), worker.tail(40)
    finally:
        worker.stop()
