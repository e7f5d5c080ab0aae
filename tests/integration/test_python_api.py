"""The Python API at the package root: typed, loaded on first use, and the same code the CLI runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import redis

import edgeloop

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_import_edgeloop_loads_none_of_the_heavy_libraries():
    probe = ("import sys, edgeloop; heavy = [m for m in ('numpy', 'celery', 'grpc', 'sqlalchemy') if m in sys.modules];"
             "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == ""


def test_every_public_name_is_there_and_typed():
    assert set(edgeloop.__all__) >= {"backtest", "publish", "Settings", "get_settings", "MLClient", "Window"}
    for name in edgeloop.__all__:
        assert getattr(edgeloop, name) is not None
    assert (Path(edgeloop.__file__).parent / "py.typed").exists()
    with pytest.raises(AttributeError):
        edgeloop.no_such_thing  # noqa: B018


def test_backtest_then_publish_from_the_root(monkeypatch, redis_url):
    monkeypatch.setenv("EDGELOOP_REDIS_URL", redis_url)
    edgeloop.get_settings.cache_clear()
    strategy = edgeloop.load_strategy(ROOT / "examples" / "kaunitz.json")
    result = edgeloop.backtest(strategy, edgeloop.Window(date(2019, 7, 1), date(2020, 7, 31), ("E0",)))
    assert isinstance(result, edgeloop.BacktestResult) and result.metrics.total_bets > 0
    ids = edgeloop.publish([result])
    settings = edgeloop.get_settings()
    assert len(ids) == 1 and redis.Redis.from_url(redis_url).xlen(settings.stream_key) == 1


def test_all_lists_exactly_the_lazy_names():
    assert set(edgeloop.__all__) - {"__version__"} == set(edgeloop._API)
