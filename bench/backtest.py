"""Backtester benchmark.

1. One strategy over ten seasons of one league (E0 2015-16 … 2024-25, 3,800 events) once the
   data and probabilities are loaded: the vectorised engine (flat and Kelly staking) beside a
   plain per-event Python loop computing the same bets (the baseline), with the ratio.
2. 200 strategies through Celery end to end (``--workers N`` worker processes started here,
   default 2; one task per strategy, each storing its result and publishing its
   BacktestFinished event), wall time from sending the group to the last result. It uses a
   scratch SQLite database and Redis db 10 on 127.0.0.1:6379 (``EDGELOOP_BENCH_REDIS_URL``),
   emptied before and after; skipped (null) when that Redis does not answer or with
   ``--workers 0``.

``--json`` ends the output with one line, a JSON object with ``one_strategy_ms``,
``one_strategy_kelly_ms``, ``loop_baseline_ms``, ``ratio`` and ``strategies_200_s``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeloop.backtester.engine import run_backtest  # noqa: E402
from edgeloop.backtester.strategy import Strategy  # noqa: E402
from edgeloop.marketdata.arrays import load_window  # noqa: E402

START, END = date(2015, 7, 1), date(2025, 6, 30)
REDIS_URL = os.environ.get("EDGELOOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
# A bankroll no loss of these seasons exhausts, so the loop baseline need not track it.
STRATEGY = Strategy(name="bench-kaunitz", price_source="MAX", market_probability_source="AVG", min_edge=0.02,
                    initial_bankroll=10_000)


def timed_ms(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def loop_baseline(window, strategy: Strategy) -> tuple[int, float]:
    """The same flat-stake strategy the obvious way: one Python iteration per event."""
    avg, mx, results = window.price("AVG").tolist(), window.price("MAX").tolist(), window.results.tolist()
    bets, profit = 0, 0.0
    for a, m, r in zip(avg, mx, results):
        if any(math.isnan(x) for x in a) or r < 0 or sum(1 / x for x in m) < 1:  # the engine skips arbitrage maxima
            continue
        implied = [1 / x for x in a]
        total = sum(implied)
        for k in range(3):
            p = implied[k] / total
            if not math.isnan(m[k]) and p * m[k] - 1 > strategy.min_edge:
                bets += 1
                profit += (m[k] - 1) * strategy.flat_stake if r == k else -strategy.flat_stake
    return bets, profit


def through_workers(n_workers: int, n_strategies: int = 200) -> float:
    import redis

    from edgeloop.core.settings import get_settings
    from edgeloop.schema.db import upgrade

    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        upgrade(db_url)
        # Before the Celery app is imported: it reads the broker from the settings once.
        os.environ.update(EDGELOOP_REDIS_URL=REDIS_URL, EDGELOOP_DATABASE_URL=db_url, EDGELOOP_CONFIG=os.devnull)
        get_settings.cache_clear()
        scratch = redis.Redis.from_url(REDIS_URL)
        scratch.flushdb()
        try:
            return _time_group(n_workers, n_strategies)
        finally:
            scratch.flushdb()


def _time_group(n_workers: int, n_strategies: int) -> float:
    from edgeloop.workers.backtest_tasks import run_many

    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGELOOP_INGEST_CONSUMERS_PER_WORKER": "0"}
    log = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "wb")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "edgeloop.workers", "worker", "-c", str(n_workers),
                               "--loglevel", "WARNING", "-n", f"bench-{os.getpid()}@%h", "--without-mingle",
                               "--without-gossip"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        strategies = [{"name": f"bench-{i}", "price_source": "MAX", "min_edge": round(0.001 * i, 3),
                       "staking": "kelly" if i % 2 else "flat"} for i in range(n_strategies)]
        # Warm-up: each pool process loads and caches the window once, as a long-running worker would.
        run_many(strategies[:n_workers * 2], START, END, publish=False).apply_async().get(timeout=300)
        t = time.perf_counter()
        results = run_many(strategies, START, END).apply_async().get(timeout=600)
        elapsed = time.perf_counter() - t
        assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:1]
        return elapsed
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)


def redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--workers", type=int, default=None,
                    help="Celery processes for the 200-strategy run (default 2 when Redis answers; 0 skips it)")
    args = ap.parse_args()

    window = load_window(["E0"], START, END)  # loaded and cached once, as in a worker
    vectorised = run_backtest(STRATEGY, window)
    bets, profit = loop_baseline(window, STRATEGY)
    assert (bets, round(profit, 6)) == (vectorised.metrics.total_bets, round(vectorised.metrics.profit, 6)), \
        "baseline and engine disagree"
    kelly = Strategy(**{**STRATEGY.params(), "name": "bench-kelly", "staking": "kelly",
                        "selections": list(STRATEGY.selections)})
    one_ms = timed_ms(lambda: run_backtest(STRATEGY, window), args.repeat)
    kelly_ms = timed_ms(lambda: run_backtest(kelly, window), args.repeat)
    loop_ms = timed_ms(lambda: loop_baseline(window, STRATEGY), max(5, args.repeat // 5))
    if args.workers is None:
        args.workers = 2 if redis_reachable() else 0
    strategies_200_s = through_workers(args.workers) if args.workers else None

    print(f"one strategy, {len(window)} events, {len(set(window.seasons))} seasons of E0, {bets} bets")
    print(f"  engine (flat, full metrics)   {one_ms:8.2f} ms   (target < 20 ms)")
    print(f"  engine (Kelly, compounding)   {kelly_ms:8.2f} ms")
    print(f"  plain per-event Python loop   {loop_ms:8.2f} ms   (bets and profit only)")
    print(f"  ratio loop / engine           {loop_ms / one_ms:8.1f}x")
    if strategies_200_s is not None:
        print(f"200 strategies through {args.workers} Celery processes: {strategies_200_s:.2f} s (target < 10 s)")
    else:
        print("200 strategies through workers: not run (Redis not reachable, or --workers 0)")
    if args.json:
        print(json.dumps({"one_strategy_ms": round(one_ms, 3), "one_strategy_kelly_ms": round(kelly_ms, 3),
                          "loop_baseline_ms": round(loop_ms, 3), "ratio": round(loop_ms / one_ms, 2),
                          "strategies_200_s": None if strategies_200_s is None else round(strategies_200_s, 3),
                          "events": len(window), "bets": bets}))


if __name__ == "__main__":
    main()
