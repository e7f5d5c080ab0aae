"""Ingest benchmark: events published → stored → confirmed by the ML service, against the limit
the store alone allows, in one run on one scratch PostgreSQL database and Redis db.

  1. the store-only limit: one process reads the stream in batches of 500, inserts each batch
     with one bulk insert (COPY, as edgeloop does) and acknowledges it. No validation, no ML
     service: what PostgreSQL and Redis allow on this machine today;
  2. the default configuration: `celery -A edgeloop.workers worker -c 2` (the README's command)
     with no settings beyond the three URLs, every event stored and confirmed by a real ML
     service (`edgeloop ml serve`); the worker's peak resident memory;
  3. the naive design: one Celery task per event (prefork -c 2) with per-process resources
     (``bench/naive_tasks.py``), on fewer events since it is slow;
  4. feedback lag at half the store limit for ``--lag-seconds`` (default configuration):
     p50/p99 of the events published in the first and in the last 10 s. The payloads are
     built before the run and stamped as they are sent, so that the publisher's own CPU
     (a few µs an event, ``publish``) takes little from the pipeline's two cores;
  5. scaling: two default workers against one (``--events`` each).

Rates are events over the wall time from the first publish to the last confirmation (the limit
is timed from its first read: its publishing is not counted, which favours the limit). With
--json the last line is a JSON object.

    python bench/ingest.py [--events 50000] [--naive-events 5000] [--lag-seconds 60] [--json]
                           [--redis-db 9] [--pg-db edgeloop_bench_ingest]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench._harness import ROOT, Child, emit, free_port, python  # noqa: E402
from edgeloop.schema.bulk import insert_ignoring_duplicates  # noqa: E402
from edgeloop.schema.db import make_engine, upgrade  # noqa: E402
from edgeloop.schema.pipeline import BacktestResult  # noqa: E402
from tests.support.events import valid_event  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402
from tests.support.services import drop_pg_database, recreate_pg_database  # noqa: E402

DB_NAME = "edgeloop_bench_ingest"
STREAM, GROUP = "backtests.finished", "edgeloop-ingest"
WORKER_COMMAND = ["-m", "celery", "-A", "edgeloop.workers", "worker", "-c", "2"]  # the README's


def submitted(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(BacktestResult)
                           .where(BacktestResult.ml_feedback_submitted.is_(True)))


def all_submitted(engine, n: int) -> bool:
    """Whether ``n`` results are stored and confirmed. Polled every 0.1 s during a run, so it
    first asks what is answered at once (nothing waiting in ``feedback_pending``, and the highest
    id); only then counts the table, which is a scan of every row stored so far."""
    with engine.connect() as conn:
        waiting, top = conn.execute(text(
            "SELECT (SELECT count(*) FROM feedback_pending), "
            "(SELECT max(id) FROM backtest_results)")).one()
    return waiting == 0 and (top or 0) >= n and submitted(engine) >= n


def reset(engine, r: redis.Redis) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE backtest_results, feedback_pending, feedback_batches, strategies, ml_feedback_samples "
                          "RESTART IDENTITY CASCADE"))
    r.flushdb()


def payloads(start: int, n: int) -> list[str]:
    return [json.dumps(valid_event(i), separators=(",", ":")) for i in range(start, start + n)]


_STAMP = "@finished_at@"


def stampable(start: int, n: int) -> list[tuple[str, str]]:
    """Payloads built ahead, split where ``finished_at`` goes: stamping one as it is sent is
    then a concatenation, not a dict, a JSON encoding and a seeded random generator (~30 µs)."""
    out = []
    for i in range(start, start + n):
        head, tail = json.dumps({**valid_event(i), "finished_at": _STAMP}, separators=(",", ":")).split(f"\"{_STAMP}\"")
        out.append((head, tail))
    return out


# XADD of many payloads in one call. The entries are those of one XADD each, and Redis does the
# same work; what the script saves is the publisher's own CPU (~12 µs an entry through a
# redis-py pipeline, ~1.5 µs this way), which on a 2-core machine would otherwise be taken from
# the pipeline under test. Producers run on the backtesting machines, not beside the workers.
_XADD_MANY = "for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'event', ARGV[i]) end return #ARGV"


def publish(r: redis.Redis, data: list[str]) -> None:
    xadd_many = r.register_script(_XADD_MANY)
    for i in range(0, len(data), 500):
        xadd_many(keys=[STREAM], args=data[i:i + 500])


class Worker:
    """A worker started as a user starts it, with its peak resident memory sampled."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str, extra: tuple[str, ...] = ()) -> None:
        self.child = Child(name, [python(), *WORKER_COMMAND, "-n", f"{name}@%h", *extra], env, log_dir)
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:  # the main process: it runs the stream consumer
                status = Path(f"/proc/{self.child.proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)

    def stop(self) -> None:
        self._stop.set()
        self.child.stop()


def wait_ready(r: redis.Redis, consumers: int = 1, timeout: float = 90) -> None:
    """The workers' consumers are up once the group has that many consumers."""
    def ready() -> bool:
        try:
            return sum(g["consumers"] for g in r.xinfo_groups(STREAM) if g["name"].decode() == GROUP) >= consumers
        except redis.ResponseError:
            return False
    wait_until(ready, timeout, 0.05, "worker consumers")


def run_store_limit(engine, r: redis.Redis, n: int) -> float:
    """Read 500 at a time, one bulk insert per batch, ack: no validation, no ML service."""
    reset(engine, r)
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    publish(r, payloads(0, n))
    table = BacktestResult.__table__
    done = 0
    t0 = time.monotonic()
    while done < n:
        reply = r.xreadgroup(GROUP, "limit", {STREAM: ">"}, count=500, block=1000)
        entries = reply[0][1] if reply else []
        now = datetime.now(timezone.utc)
        rows = []
        for entry_id, fields in entries:
            raw = fields[b"event"]
            ev = json.loads(raw)
            m = ev["metrics"]
            rows.append({"backtest_id": ev["backtest_id"], "strategy_id": ev["strategy_id"],
                         "strategy_name": ev["strategy_name"], "params": ev["params"],
                         "window_start": ev["window_start"], "window_end": ev["window_end"], "method": ev["method"],
                         "total_bets": m["total_bets"], "roi": m["roi"], "profit": m["profit"],
                         "win_rate": m["win_rate"], "profit_factor": m["profit_factor"],
                         "sharpe_ratio": m["sharpe_ratio"], "max_drawdown": m["max_drawdown"],
                         "extra_metrics": {}, "backtest_score": 0.5,
                         "event_pb": raw, "stream_entry_id": entry_id.decode(), "received_at": now})
        with engine.begin() as conn:
            insert_ignoring_duplicates(conn, table, rows, "backtest_id")
        r.xack(STREAM, GROUP, *[e for e, _ in entries])
        done += len(entries)
    return n / (time.monotonic() - t0)


def run_default(env, engine, r, n: int, log_dir: Path, workers: int = 1) -> tuple[float, float]:
    """Events/s stored and confirmed, and the peak resident memory of a worker's main process."""
    reset(engine, r)
    procs = [Worker(env, log_dir, f"bench-default{i}") for i in range(workers)]
    try:
        wait_ready(r, workers)
        data = payloads(0, n)
        t0 = time.monotonic()
        publish(r, data)
        wait_until(lambda: all_submitted(engine, n), 900, 0.1, f"{n} submitted")
        return n / (time.monotonic() - t0), max(w.peak_rss_mb for w in procs)
    finally:
        for w in procs:
            w.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def run_lag(env, engine, r, rate: int, seconds: float, log_dir: Path) -> dict[str, float]:
    """Publish at ``rate`` for ``seconds``; lag = stored by the ML service − published."""
    reset(engine, r)
    worker = Worker(env, log_dir, "bench-lag")
    try:
        wait_ready(r)
        total = int(rate * seconds)
        ahead = stampable(0, total)
        tick = 0.02
        per_tick = max(1, int(rate * tick))
        start = time.monotonic()
        sent = 0
        while sent < total:
            delay = start + (sent // per_tick) * tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = json.dumps(datetime.now(timezone.utc).isoformat())
            publish(r, [head + stamp + tail for head, tail in ahead[sent:sent + per_tick]])
            sent += per_tick
        behind = time.monotonic() - start - seconds  # how late the publisher itself was
        wait_until(lambda: all_submitted(engine, total), 600, 0.2, "lag run submitted")
        with engine.connect() as conn:
            rows = conn.execute(text(
                "select b.finished_at, s.received_at from ml_feedback_samples s "
                "join backtest_results b using (backtest_id)")).all()
        first_t = min(f for f, _ in rows)
        last_t = max(f for f, _ in rows)
        first = [(s - f).total_seconds() for f, s in rows if (f - first_t).total_seconds() < 10]
        last = [(s - f).total_seconds() for f, s in rows if (last_t - f).total_seconds() < 10]
        return {"lag_rate": rate, "lag_seconds": seconds, "publisher_late_s": round(behind, 2),
                "lag_first10_p50_s": round(percentile(first, 0.5), 4),
                "lag_first10_p99_s": round(percentile(first, 0.99), 4),
                "lag_last10_p50_s": round(percentile(last, 0.5), 4),
                "lag_last10_p99_s": round(percentile(last, 0.99), 4)}
    finally:
        worker.stop()


def run_naive(env, engine, r, n: int, log_dir: Path) -> float:
    reset(engine, r)
    worker = Child("bench-naive", [python(), *WORKER_COMMAND, "-n", "bench-naive@%h", "-I", "bench.naive_tasks",
                                          "--loglevel", "INFO"],
                   {**env, "EDGELOOP_INGEST_CONSUMERS_PER_WORKER": "0"}, log_dir)
    try:
        from celery import Celery

        app = Celery(broker=env["EDGELOOP_REDIS_URL"])
        app.conf.task_serializer = "json"
        wait_until(lambda: "ready" in worker.log(), 90, 0.05, "naive worker")
        data = payloads(0, n)
        t0 = time.monotonic()
        with app.producer_or_acquire() as producer:
            for p in data:
                app.send_task("bench.naive_ingest", args=[p], queue="edgeloop", producer=producer)
        wait_until(lambda: all_submitted(engine, n), 900, 0.1, f"{n} naive submitted")
        return n / (time.monotonic() - t0)
    finally:
        worker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--naive-events", type=int, default=5_000)
    ap.add_argument("--lag-seconds", type=float, default=60.0, help="0 skips the lag run")
    ap.add_argument("--lag-rate", type=int, default=0, help="events/s for the lag run (default: half the limit)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the two-worker run")
    ap.add_argument("--redis-db", type=int, default=9, help="a scratch Redis db (flushed)")
    ap.add_argument("--pg-db", default=DB_NAME, help="a scratch PostgreSQL database (dropped and created: "
                                                     "give each concurrent run its own)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    db_url = recreate_pg_database(args.pg_db)
    upgrade(db_url)
    engine = make_engine(db_url)
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    r = redis.Redis.from_url(redis_url)
    grpc_port = free_port()
    # The default configuration: nothing but where Redis, the database and the ML service are.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELOOP_")}
    env.update({"EDGELOOP_REDIS_URL": redis_url, "EDGELOOP_DATABASE_URL": db_url,
                "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{grpc_port}", "EDGELOOP_CONFIG": os.devnull,
                "PYTHONPATH": str(ROOT)})
    log_dir = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    ml = Child("ml", [python(), "-m", "edgeloop", "ml", "serve", "--grpc-port", str(grpc_port), "--http-port",
                      str(free_port())], env, log_dir)
    figures: dict[str, object] = {"events": args.events, "load_avg_1m": round(os.getloadavg()[0], 2)}
    try:
        import grpc

        grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{grpc_port}")).result(timeout=60)
        limit = run_store_limit(engine, r, args.events)
        figures["store_limit_per_s"] = round(limit, 1)
        print(f"store-only limit (XREADGROUP 500, one bulk insert, XACK; no validation, no ML): "
              f"{limit:,.0f} events/s", flush=True)
        ours, rss = run_default(env, engine, r, args.events, log_dir)
        figures.update(default_per_s=round(ours, 1), default_of_limit=round(ours / limit, 3),
                       worker_peak_rss_mb=round(rss, 1))
        print(f"default configuration (celery -A edgeloop.workers worker -c 2, no settings): {ours:,.0f} events/s "
              f"stored and confirmed = {ours / limit:.0%} of the limit; worker peak RSS {rss:.0f} MB", flush=True)
        naive = run_naive(env, engine, r, args.naive_events, log_dir)
        figures.update(naive_events=args.naive_events, naive_per_s=round(naive, 1),
                       naive_of_limit=round(naive / limit, 3), default_vs_naive=round(ours / naive, 2))
        print(f"naive (one Celery task per event, per-process pool, -c 2): {naive:,.0f} events/s = "
              f"{naive / limit:.1%} of the limit; default/naive {ours / naive:.1f}x", flush=True)
        if args.lag_seconds > 0:
            rate = args.lag_rate or int(limit / 2)
            lag = run_lag(env, engine, r, rate, args.lag_seconds, log_dir)
            figures.update(lag)
            print(f"feedback lag at {rate:,} events/s for {args.lag_seconds:.0f} s: first 10 s p50 "
                  f"{lag['lag_first10_p50_s']:.3f} s p99 {lag['lag_first10_p99_s']:.3f} s; last 10 s p50 "
                  f"{lag['lag_last10_p50_s']:.3f} s p99 {lag['lag_last10_p99_s']:.3f} s "
                  f"(publisher {lag['publisher_late_s']:.1f} s late)", flush=True)
        if not args.no_scaling:
            two, _ = run_default(env, engine, r, args.events, log_dir, workers=2)
            one, _ = run_default(env, engine, r, args.events, log_dir, workers=1)
            figures.update(one_worker_per_s=round(one, 1), two_workers_per_s=round(two, 1),
                           two_vs_one=round(two / one, 2))
            print(f"scaling: two default workers {two:,.0f} events/s, one {one:,.0f} (same run): "
                  f"{two / one:.2f}x", flush=True)
        figures["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        emit(figures, args.json)
    finally:
        ml.stop()
        engine.dispose()
        r.flushdb()
        drop_pg_database(args.pg_db)


if __name__ == "__main__":
    main()
