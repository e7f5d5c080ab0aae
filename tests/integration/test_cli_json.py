"""Every `edgeloop` command's `--json` prints JSON (real PostgreSQL, Redis and ML service; the
commands run as an operator runs them, in their own process).

``CASES`` names one invocation per command; the first test checks that it names every command
there is, so a new command without a case (or without ``--json``) fails here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone

import click
import pytest
import redis

from edgeloop.cli import cli
from edgeloop.core.settings import settings_with
from edgeloop.mlservice.server import create_server
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.mlstore import ModelVersion
from edgeloop.schema.repository import ensure_strategies
from edgeloop.processes import free_port
from tests.support.events import valid_event
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

DATA_DIR = ROOT / "data" / "football-data"
# `edgeloop demo` parses its own options (edgeloop/demo/__main__.py) and writes a report folder.
WITHOUT_JSON = {"demo"}

# command path → (arguments after it, standard input); each must print JSON with --json
CASES: dict[str, tuple[list[str], str | None]] = {
    "backtest": (["--strategy", "{strategy}", "--from", "2019-08-01", "--to", "2020-05-31"], None),
    "config show": ([], None),
    "data import": (["{season_file}"], None),
    "data list": ([], None),
    "db status": ([], None),
    "db upgrade": ([], None),
    "dead-letters list": ([], None),
    "dead-letters replay": (["--dry-run"], None),
    "discover": ([], None),
    "feedback retrain": ([], None),
    "feedback retry-rejected": ([], None),
    "feedback status": ([], None),
    "feedback submit": ([], None),
    "ml jobs": ([], None),
    "ml models": (["--all"], None),
    "ml rollback": (["m-old"], None),
    "ml status": ([], None),
    "ml train": (["--model", "strategy"], None),
    "publish": ([], json.dumps(valid_event(1)) + "\n"),
    "strategies activate": (["s-1", "--dry-run"], None),
    "strategies deactivate": (["s-1"], None),
    "strategies list": ([], None),
    "strategies show": (["s-1"], None),
    "tasks list": ([], None),
    "tasks run": (["edgeloop.rankings.refresh"], None),
}
# long-running commands: the JSON line they print once they listen (or, for `ingest run`, when stopped)
SERVERS = {"ml serve": ["--grpc-port", "0", "--http-port", "0"], "web": ["--port", "0"], "ingest run": []}


def leaf_commands(group: click.Group, ctx: click.Context, prefix: str = "") -> dict[str, click.Command]:
    out = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            out.update(leaf_commands(command, ctx, path + " "))
        else:
            out[path] = command
    return out


def test_every_command_has_json_and_a_case_here():
    commands = leaf_commands(cli, click.Context(cli))
    without = {path for path, c in commands.items() if not any("--json" in p.opts for p in c.params)}
    assert without == WITHOUT_JSON
    assert set(CASES) | set(SERVERS) == set(commands) - WITHOUT_JSON


@pytest.fixture
def cli_env(env, tmp_path):
    """A store with one strategy and a retired model version, a dead letter, a real ML service on port 0."""
    engine = make_engine(env["EDGELOOP_DATABASE_URL"])
    with make_sessionmaker(engine).begin() as s:
        ensure_strategies(s, [{"strategy_id": "s-1", "name": "one", "params": {"min_edge": 0.05}}])
        s.add(ModelVersion(model_name="strategy", version="m-old", status="retired", slot="", sample_count=0,
                           metrics={}, config={}, artifact=b"", created_at=datetime.now(timezone.utc)))
    engine.dispose()
    redis.Redis.from_url(env["EDGELOOP_REDIS_URL"]).xadd("backtests.dead", {"reason": "not_json", "payload": "{oops"})
    settings = settings_with(data_dir=str(DATA_DIR), ml_market_source="csv")
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    strategy = tmp_path / "strategy.json"
    strategy.write_text(json.dumps({"name": "flat max", "min_edge": 0.02, "price_source": "MAX"}))
    yield {**env, "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{port}", "EDGELOOP_DATA_DIR": str(DATA_DIR),
           "EDGELOOP_ML_MARKET_SOURCE": "csv"}, {"strategy": str(strategy),
                                                 "season_file": str(sorted(DATA_DIR.glob("E0*.csv"))[-1])}
    server.stop(1).wait()


@pytest.mark.parametrize("path", sorted(CASES))
def test_json_output_parses(cli_env, path):
    env, files = cli_env
    args, stdin = CASES[path]
    proc = subprocess.run([sys.executable, "-m", "edgeloop", *path.split(), *[a.format(**files) for a in args],
                           "--json"], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr[-2000:]
    for line in lines:  # one JSON document per line (a list command may print several)
        json.loads(line)


@pytest.mark.parametrize("path", sorted(SERVERS))
def test_long_running_commands_print_json(cli_env, path):
    env, _ = cli_env
    env = {**env, "EDGELOOP_WEB_PORT": str(free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "edgeloop", *path.split(), *SERVERS[path], "--json"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        if path == "ingest run":  # it reports what it did when it stops
            assert proc.stderr.readline().startswith("consuming")
            proc.send_signal(signal.SIGTERM)
        line = proc.stdout.readline()
        document = json.loads(line)
        assert isinstance(document, dict) and document
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
