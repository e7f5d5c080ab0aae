"""Ingest benchmark: events published → stored → confirmed by the ML service.

Runs, in one go, on a scratch PostgreSQL database and Redis db:
  1. edgeloop: a Celery worker whose stream consumers read in batches (50,000 events);
  2. feedback lag at a sustained publishing rate (default 2,000 events/s for 10 s);
  3. the naive design: one Celery task per event doing the same insert and submission
     (prefork, -c 2), on fewer events since it is slow.
and prints both rates and their ratio. With --json the last line is a JSON object.

    python bench/ingest.py [--events 50000] [--naive-events 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
import tempfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench._harness import ROOT, Child, emit, free_port, python  # noqa: E402
from edgeloop.schema.db import make_engine, upgrade  # noqa: E402
from edgeloop.schema.mlstore import FeedbackSample  # noqa: E402
from edgeloop.schema.pipeline import BacktestResult  # noqa: E402
from tests.support.events import valid_event  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402
from tests.support.services import drop_pg_database, recreate_pg_database  # noqa: E402

DB_NAME = "edgeloop_bench_ingest"
REDIS_URL = "redis://127.0.0.1:6379/9"


def submitted(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(BacktestResult)
                           .where(BacktestResult.ml_feedback_submitted.is_(True)))


def reset(engine, r: redis.Redis) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE backtest_results, feedback_batches, strategies, ml_feedback_samples "
                          "RESTART IDENTITY CASCADE"))
    r.flushdb()


def payloads(start: int, n: int, stamp: bool = False) -> list[str]:
    out = []
    for i in range(start, start + n):
        ev = valid_event(i)
        if stamp:
            ev["finished_at"] = datetime.now(timezone.utc).isoformat()
        out.append(json.dumps(ev, separators=(",", ":")))
    return out


def start_worker(env: dict[str, str], log_dir: Path, name: str, extra: list[str]) -> Child:
    return Child(name, [python(), "-m", "celery", "-A", "edgeloop.workers", "worker", "--loglevel", "INFO", "-n",
                        f"{name}@%h", "--without-mingle", "--without-gossip", *extra], env, log_dir)


def wait_ready(r: redis.Redis, stream: str, group: str, timeout: float = 60) -> None:
    """The consumer group exists once a worker's consumers are up."""
    def ready() -> bool:
        try:
            return any(g["name"].decode() == group for g in r.xinfo_groups(stream))
        except redis.ResponseError:
            return False
    wait_until(ready, timeout, 0.05, "worker consumers")


def run_edgeloop(env, engine, r, n: int, log_dir: Path, consumers: int) -> float:
    reset(engine, r)
    worker = start_worker({**env, "EDGELOOP_INGEST_CONSUMERS_PER_WORKER": str(consumers)}, log_dir, "bench-edgeloop",
                          ["-c", "1"])
    try:
        wait_ready(r, "backtests.finished", "edgeloop-ingest")
        data = payloads(0, n)
        t0 = time.monotonic()
        pipe = r.pipeline(transaction=False)
        for i, p in enumerate(data, 1):
            pipe.xadd("backtests.finished", {"event": p})
            if i % 500 == 0:
                pipe.execute()
        pipe.execute()
        wait_until(lambda: submitted(engine) >= n, 600, 0.1, f"{n} submitted")
        t1 = time.monotonic()
        return n / (t1 - t0)
    finally:
        worker.stop()


def run_lag(env, engine, r, rate: int, seconds: float, log_dir: Path, consumers: int) -> tuple[float, float]:
    reset(engine, r)
    worker = start_worker({**env, "EDGELOOP_INGEST_CONSUMERS_PER_WORKER": str(consumers)}, log_dir, "bench-lag",
                          ["-c", "1"])
    try:
        wait_ready(r, "backtests.finished", "edgeloop-ingest")
        total = int(rate * seconds)
        tick = 0.05  # publish rate/20 events every 50 ms
        per_tick = max(1, int(rate * tick))
        start = time.monotonic()
        sent = 0
        while sent < total:
            target = start + (sent // per_tick) * tick
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pipe = r.pipeline(transaction=False)
            for p in payloads(sent, min(per_tick, total - sent), stamp=True):
                pipe.xadd("backtests.finished", {"event": p})
            pipe.execute()
            sent += per_tick
        wait_until(lambda: submitted(engine) >= total, 300, 0.1, "lag run submitted")
        with engine.connect() as conn:
            rows = conn.execute(select(FeedbackSample.received_at, FeedbackSample.metrics,
                                       text("(select finished_at from backtest_results b where "
                                            "b.backtest_id = ml_feedback_samples.backtest_id)"))).all()
        lags = sorted((received - finished).total_seconds() for received, _, finished in rows)
        return lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    finally:
        worker.stop()


def run_naive(env, engine, r, n: int, log_dir: Path) -> float:
    reset(engine, r)
    worker = start_worker({**env, "EDGELOOP_INGEST_CONSUMERS_PER_WORKER": "0"}, log_dir, "bench-naive",
                          ["-c", "2", "-I", "bench.naive_tasks"])
    try:
        from celery import Celery

        app = Celery(broker=env["EDGELOOP_REDIS_URL"])
        app.conf.task_serializer = "json"
        wait_until(lambda: "ready" in worker.log(), 60, 0.05, "naive worker")
        data = payloads(0, n)
        t0 = time.monotonic()
        for p in data:
            app.send_task("bench.naive_ingest", args=[p], queue="edgeloop")
        wait_until(lambda: submitted(engine) >= n, 900, 0.1, f"{n} naive submitted")
        t1 = time.monotonic()
        return n / (t1 - t0)
    finally:
        worker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--naive-events", type=int, default=5_000)
    ap.add_argument("--lag-rate", type=int, default=2_000)
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    ap.add_argument("--consumers", type=int, default=1, help="stream consumers in the worker")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    db_url = recreate_pg_database(DB_NAME)
    upgrade(db_url)
    engine = make_engine(db_url)
    r = redis.Redis.from_url(REDIS_URL)
    grpc_port = free_port()
    env = {**os.environ, "EDGELOOP_REDIS_URL": REDIS_URL, "EDGELOOP_DATABASE_URL": db_url,
           "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{grpc_port}", "EDGELOOP_CONFIG": os.devnull,
           "EDGELOOP_FEEDBACK_BATCH_SIZE": "500", "PYTHONPATH": str(ROOT)}
    log_dir = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    ml = Child("ml", [python(), "-m", "edgeloop", "ml", "serve", "--grpc-port", str(grpc_port), "--http-port",
                      str(free_port())], env, log_dir)
    try:
        import grpc

        grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{grpc_port}")).result(timeout=60)
        ours = run_edgeloop(env, engine, r, args.events, log_dir, args.consumers)
        print(f"edgeloop (stream consumer, batches): {ours:,.0f} events/s over {args.events:,} events", flush=True)
        lag_p50, lag_p99 = run_lag(env, engine, r, args.lag_rate, args.lag_seconds, log_dir, args.consumers)
        print(f"feedback lag at {args.lag_rate:,} events/s: p50 {lag_p50:.3f} s, p99 {lag_p99:.3f} s", flush=True)
        naive = run_naive(env, engine, r, args.naive_events, log_dir)
        print(f"naive (one Celery task per event, prefork -c 2): {naive:,.0f} events/s over "
              f"{args.naive_events:,} events", flush=True)
        ratio = ours / naive
        print(f"ratio: {ratio:.1f}x")
        emit({"events": args.events, "events_per_s": round(ours, 1), "naive_events": args.naive_events,
              "naive_events_per_s": round(naive, 1), "ratio": round(ratio, 2), "lag_rate": args.lag_rate,
              "lag_p50_s": round(lag_p50, 4), "lag_p99_s": round(lag_p99, 4)}, args.json)
    finally:
        ml.stop()
        engine.dispose()
        r.flushdb()
        drop_pg_database(DB_NAME)


if __name__ == "__main__":
    main()
