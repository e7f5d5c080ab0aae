"""Backtests where they run: the CLI (table, --json, --publish, database source) and Celery workers."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import redis

from edgeloop.core.events import EVENT_FIELD, parse_event
from edgeloop.core.settings import get_settings
from edgeloop.marketdata.store import import_paths
from edgeloop.schema.db import make_engine

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KAUNITZ = ROOT / "examples" / "kaunitz.json"


def edgeloop(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgeloop", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def stream_events(redis_url: str) -> list:
    r = redis.Redis.from_url(redis_url)
    return [parse_event(fields[EVENT_FIELD.encode()]) for _, fields in r.xrange(get_settings().stream_key)]


def test_cli_prints_a_table_and_publishes_the_same_numbers_as_an_event(env, redis_url):
    window = ["--from", "2019-08-01", "--to", "2020-07-31", "--league", "E0"]
    table = edgeloop(env, "backtest", "--strategy", str(KAUNITZ), *window)
    assert table.returncode == 0, table.stderr
    assert "2019-20" in table.stdout and "ROI (yield)" in table.stdout

    out = edgeloop(env, "backtest", "--strategy", str(KAUNITZ), *window, "--publish", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    (event,) = stream_events(redis_url)
    assert event.message.backtest_id == result["backtest_id"] and result["stream_entry_id"]
    assert event.window_start == date(2019, 8, 1) and event.window_end == date(2020, 7, 31)
    assert event.metrics["total_bets"] == result["metrics"]["total_bets"] > 0
    assert event.metrics["profit"] == result["metrics"]["profit"]
    assert 0 <= event.metrics["backtest_score"] <= 1
    assert event.params["price_source"] == "MAX" and event.message.method == "market_baseline"


def test_cli_reads_the_database_after_import_with_the_same_result(env):
    engine = make_engine(env["EDGELOOP_DATABASE_URL"])
    import_paths(engine, [ROOT / "data" / "football-data" / "E0_2019-20.csv"])
    engine.dispose()
    window = ["--from", "2019-08-01", "--to", "2020-07-31", "--json"]
    from_db = json.loads(edgeloop(env, "backtest", "--strategy", str(KAUNITZ), *window, "--source", "db").stdout)
    from_csv = json.loads(edgeloop(env, "backtest", "--strategy", str(KAUNITZ), *window).stdout)
    assert from_db["metrics"] == from_csv["metrics"] and from_db["seasons"] == from_csv["seasons"]


def test_cli_errors_are_one_line(env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"side": "sideways"}')
    out = edgeloop(env, "backtest", "--strategy", str(bad), "--from", "2019-08-01", "--to", "2020-07-31")
    assert out.returncode == 1 and "side must be one of back, lay" in out.stderr and "Traceback" not in out.stderr
    bad.write_text('{"side": "lay", "selections": ["draw"], "price_source": "avg"}')
    out = edgeloop(env, "backtest", "--strategy", str(bad), "--from", "2019-08-01", "--to", "2020-07-31")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "a lay needs an exchange price (price_source BFE or BFEC): AVG is a back price" in out.stderr
    out = edgeloop(env, "backtest", "--strategy", str(KAUNITZ), "--from", "2019-13-01", "--to", "2020-07-31")
    assert out.returncode == 2 and "not an ISO date" in out.stderr


@pytest.mark.slow
def test_a_group_of_backtests_runs_on_a_worker_and_publishes_one_event_each(env, redis_url, tmp_path):
    from tests.support.processes import celery_worker
    from edgeloop.workers.backtest_tasks import run_many

    strategies = [{"name": f"k{i}", "price_source": "max", "min_edge": 0.02 * i} for i in range(1, 4)]
    strategies.append({"name": "broken", "min_edge": 99})  # a permanent error, not a failed group
    worker_env = {**env, "EDGELOOP_INGEST_CONSUMERS_PER_WORKER": "0", "PYTHONPATH": str(ROOT)}
    with celery_worker(worker_env, "bt", tmp_path, concurrency=2) as worker:
        results = run_many(strategies, date(2018, 7, 1), date(2020, 7, 31), ["E0"]).apply_async().get(timeout=120)
        assert worker.alive(), worker.log()
    ok = [r for r in results if r["ok"]]
    assert len(ok) == 3 and "min_edge must be in" in results[3]["error"]
    events = stream_events(redis_url)
    assert sorted(e.message.backtest_id for e in events) == sorted(r["backtest_id"] for r in ok)
    assert [e.metrics["total_bets"] for e in sorted(events, key=lambda e: e.message.strategy_name)] == \
        [r["total_bets"] for r in ok]
