"""Web pages benchmark: latency of every page of `edgeloop web` over a big store.

On a scratch PostgreSQL database: 10,000 strategies, 100,000 results, evidence of each kind
for every strategy and five rankings each (tests/support/web_seed.py ``bulk``), plus the
demo-like rows. `edgeloop web` runs as its own process; each page is requested ``--repeat``
times after a first (cold) request, and the per-page p50 / p95 / max are printed next to a
baseline measured in the same run: the page's main SQL query alone, sent with psycopg to the
same database (what any page must pay at least). The target is < 200 ms per page.

The first view of a strategy page is the expensive one: it backtests the strategy on each of
its windows to draw the bankroll (and loads the windows' events); every later view reads the
curve from the cache. Both are printed, the first with the CPU the server spent on it.
`edgeloop web` parses the season files before it listens, so a first view finds its seasons
parsed: that cost moved to the start, printed too (the process's launch to its first answer).

    python bench/web.py [--strategies 10000] [--results 100000] [--repeat 30] [--json]
                        [--pg-db edgeloop_bench_web] [--redis-db N]

``--pg-db`` names the scratch database (dropped and created again, then dropped at the end; the
admin connection is ``EDGELOOP_TEST_PG_ADMIN_URL``), ``--redis-db`` the Redis db it flushes
(``EDGELOOP_TEST_REDIS_DB`` by default): give your own when others share the services.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
import redis  # noqa: E402

from bench._harness import Child, cpu_seconds, emit, free_port, python  # noqa: E402
from edgeloop.core.settings import Settings  # noqa: E402
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from tests.support import services, web_seed  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402

DB_NAME = "edgeloop_bench_web"
TOKEN = "bench"
TARGET_MS = 200.0

# page → the SQL a page cannot do without (the baseline)
PAGES = {
    "/strategies": "SELECT * FROM strategies ORDER BY composite_score DESC NULLS LAST, strategy_id LIMIT 50",
    "/strategies?page=100": "SELECT * FROM strategies ORDER BY composite_score DESC NULLS LAST, strategy_id "
                            "LIMIT 50 OFFSET 4950",
    "/strategies?page=200": "SELECT * FROM strategies ORDER BY composite_score DESC NULLS LAST, strategy_id "
                            "LIMIT 50 OFFSET 9950",
    "/strategies?status=active&page=20": "SELECT * FROM strategies WHERE status = 'active' "
                                         "ORDER BY composite_score DESC NULLS LAST, strategy_id LIMIT 50 OFFSET 950",
    "/strategies/bulk-005000": "SELECT * FROM backtest_results WHERE strategy_id = 'bulk-005000'",
    "/strategies/gen-001": "SELECT * FROM backtest_results WHERE strategy_id = 'gen-001'",
    "/discovery": "SELECT * FROM discovery_reports ORDER BY started_at DESC LIMIT 20",
    "/models": "SELECT job_id FROM ml_training_jobs ORDER BY created_at DESC LIMIT 100",
    "/pipeline": "SELECT count(*), min(received_at) FROM feedback_pending JOIN backtest_results ON id = result_id "
                 "WHERE rejected_batch_id IS NULL",
}


def get(url: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        assert response.status == 200
    return (time.perf_counter() - started) * 1000


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "max_ms": round(ordered[-1], 2)}


def baseline(url: str, sql: str, repeat: int) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        conn.execute(sql).fetchall()
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return summary(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", type=int, default=10_000)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--pg-db", default=DB_NAME, help="scratch database: dropped, created, dropped at the end")
    parser.add_argument("--redis-db", type=int, default=services.REDIS_DB, help="Redis db (flushed)")
    args = parser.parse_args()

    url = services.recreate_pg_database(args.pg_db)
    upgrade(url)
    redis_url = services.redis_url(args.redis_db)
    services.flush_redis(args.redis_db)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    settings = Settings(database_url=url, redis_url=redis_url)
    started = time.perf_counter()
    web_seed.seed(sessions, redis.Redis.from_url(redis_url), settings)
    web_seed.bulk(sessions, args.strategies, args.results)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"seeded {args.strategies:,} strategies and {args.results:,} results in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)

    port = free_port()
    env = {**os.environ, "EDGELOOP_DATABASE_URL": url, "EDGELOOP_REDIS_URL": redis_url,
           "EDGELOOP_ML_AUTH_TOKEN": TOKEN, "EDGELOOP_CONFIG": os.devnull, "EDGELOOP_LOG_LEVEL": "WARNING"}
    base = f"http://127.0.0.1:{port}"
    figures: dict = {"strategies": args.strategies, "results": args.results, "target_ms": TARGET_MS, "pages": {}}
    with tempfile.TemporaryDirectory() as logs:
        launched = time.perf_counter()
        child = Child("web", [python(), "-m", "edgeloop", "web", "--port", str(port)], env, Path(logs))
        try:
            wait_until(lambda: _answers(base), 30, what="edgeloop web")
            figures["start_s"] = round(time.perf_counter() - launched, 2)
            figures["start_cpu_s"] = round(cpu_seconds(child.proc.pid), 2)
            for path, sql in PAGES.items():
                cpu_before = cpu_seconds(child.proc.pid)
                cold = get(base + path)
                cold_cpu = cpu_seconds(child.proc.pid) - cpu_before
                warm = summary([get(base + path) for _ in range(args.repeat)])
                figures["pages"][path] = {"cold_ms": round(cold, 2), "cold_cpu_ms": round(cold_cpu * 1000), **warm,
                                          "baseline_sql": baseline(url, sql, args.repeat)}
        finally:
            child.stop()
    engine.dispose()
    services.drop_pg_database(args.pg_db)
    worst = max(p["p95_ms"] for p in figures["pages"].values())
    figures["worst_p95_ms"] = worst
    figures["within_target"] = worst < TARGET_MS

    print(f"{'page':<36} {'cold':>8} {'(CPU)':>7} {'p50':>8} {'p95':>8} {'max':>8}   {'SQL p50':>8}")
    for path, p in figures["pages"].items():
        print(f"{path:<36} {p['cold_ms']:>6.1f}ms {p['cold_cpu_ms']:>5}ms {p['p50_ms']:>6.1f}ms {p['p95_ms']:>6.1f}ms"
              f" {p['max_ms']:>6.1f}ms   {p['baseline_sql']['p50_ms']:>6.2f}ms")
    print(f"edgeloop web answered {figures['start_s']:.2f} s after its launch ({figures['start_cpu_s']:.2f} s CPU)")
    print(f"worst p95 {worst:.1f} ms: {'within' if worst < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target")
    emit(figures, args.json)


def _answers(base: str) -> bool:
    try:
        request = urllib.request.Request(base + "/strategies",
                                         headers={"Authorization": "Basic " + base64.b64encode(b"x:" + TOKEN.encode())
                                                  .decode()})
        with urllib.request.urlopen(request, timeout=5):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
