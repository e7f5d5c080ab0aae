"""CPU time per ingested event, by process: the worker's consumer and flushers, the ML service,
and the PostgreSQL backends of each.

One ``IngestLoop`` (the stream consumer and its flusher threads, what a worker runs) in this
process drains ``--events`` events published beforehand (``bench/ingest.py``'s payloads) into a
scratch database, every event stored and confirmed by a real ML service (`edgeloop ml serve`, a
child process). The figures are CPU time (user + system, ``/proc/<pid>/stat``) per event of:

  * worker: this process while the loop drains the stream (its gRPC threads included; the
    events were published before the clock started, the completion poll is a query every 50 ms),
    and of it the consumer thread and the flusher threads;
  * ml: the ML service's process;
  * worker_pg / ml_pg: the PostgreSQL backends of each, told apart by ``application_name``.

CPU time moves much less with the machine's load than throughput does: compare two trees in
runs that alternate (``python bench/ingest_cpu.py`` in each). Rounds publish new events each time
into the same tables, after a warm-up round that is not counted (connections, the temporary
table, the gRPC channel); medians of the rounds are printed, with the events/s of wall time
(which does move with the load). With ``--json`` the last line is a JSON object.

    python bench/ingest_cpu.py [--events 20000] [--rounds 3] [--redis-db 2] [--pg-db edgeloop_bench_ingest_cpu] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
import redis  # noqa: E402

from bench._harness import ROOT, Child, cpu_seconds, emit, free_port, python  # noqa: E402
from bench.ingest import payloads, publish  # noqa: E402
from edgeloop.schema.db import upgrade  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402
from tests.support.services import drop_pg_database, pg_url, recreate_pg_database  # noqa: E402

DB_NAME = "edgeloop_bench_ingest_cpu"
APPS = {"worker_pg": "bench-cpu-worker", "ml_pg": "bench-cpu-ml"}
def backends(conn: psycopg.Connection, dbname: str) -> dict[str, list[int]]:
    rows = conn.execute("SELECT application_name, pid FROM pg_stat_activity WHERE datname = %s",
                        (dbname,)).fetchall()
    return {key: [pid for name, pid in rows if name == app] for key, app in APPS.items()}


class Snapshot:
    """CPU seconds of each process group at one moment (backends by pid: one that appears later
    counts from zero)."""

    def __init__(self, conn: psycopg.Connection, dbname: str, ml_pid: int) -> None:
        self.cpu = {"worker": cpu_seconds("self"), "ml": cpu_seconds(ml_pid)}
        self.pids = backends(conn, dbname)
        self.backend_cpu = {pid: cpu_seconds(pid) for pids in self.pids.values() for pid in pids}

    def minus(self, before: "Snapshot") -> dict[str, float]:
        out = {k: v - before.cpu[k] for k, v in self.cpu.items()}
        for key in APPS:
            # A backend that ended during the round is missing from both lists' sums: the
            # loop's pools keep their connections, so none does in practice.
            pids = set(self.pids[key]) | set(before.pids[key])
            out[key] = sum(self.backend_cpu.get(p, cpu_seconds(p)) - before.backend_cpu.get(p, 0.0) for p in pids)
        return out


def confirmed(conn: psycopg.Connection) -> int:
    # A stored result waits for its confirmation as a row of feedback_pending (docs/delivery.md).
    return conn.execute("SELECT (SELECT count(*) FROM backtest_results) - (SELECT count(*) FROM feedback_pending)"
                        ).fetchone()[0]


def drain(loop, conn: psycopg.Connection, target: int, timeout: float = 600) -> tuple[float, dict[str, float]]:
    """Run ``loop`` until ``target`` results are confirmed: the wall seconds it took, and the CPU
    seconds of its consumer thread and of its flusher threads (both started for this drain)."""
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), name="ingest", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        wait_until(lambda: confirmed(conn) >= target, timeout, 0.05, f"{target} confirmed")
        wall = time.monotonic() - started
        flushers = [t.native_id for t in threading.enumerate() if t.name.startswith("ingest-flush")]
        return wall, {"consumer": cpu_seconds(f"self/task/{thread.native_id}"),
                      "flushers": sum(cpu_seconds(f"self/task/{tid}") for tid in flushers)}
    finally:
        stop.set()
        thread.join(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2_000, help="events of the uncounted first round")
    ap.add_argument("--redis-db", type=int, default=2, help="a scratch Redis db (flushed)")
    ap.add_argument("--pg-db", default=DB_NAME, help="a scratch PostgreSQL database (dropped and recreated)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    db_url = recreate_pg_database(args.pg_db)
    upgrade(db_url)
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    grpc_port = free_port()
    # The default configuration, as bench/ingest.py's: nothing but where the services are.
    for key in [k for k in os.environ if k.startswith("EDGELOOP_")]:
        del os.environ[key]
    common = {"EDGELOOP_REDIS_URL": redis_url, "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
              "EDGELOOP_CONFIG": os.devnull}
    os.environ.update(common, EDGELOOP_DATABASE_URL=f"{db_url}?application_name={APPS['worker_pg']}")
    ml_env = {**os.environ, **common, "EDGELOOP_DATABASE_URL": f"{db_url}?application_name={APPS['ml_pg']}",
              "PYTHONPATH": str(ROOT)}
    log_dir = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    ml = Child("ml", [python(), "-m", "edgeloop", "ml", "serve", "--grpc-port", str(grpc_port), "--http-port",
                      str(free_port())], ml_env, log_dir)
    # Here, not at the top: the settings are read from the environment set just above.
    from edgeloop.services.ingest_loop import IngestLoop
    from edgeloop.services.runtime import reset_resources

    load = os.getloadavg()[0]
    rounds: dict[str, list[float]] = {k: [] for k in ("worker", "consumer", "flushers", "ml", "worker_pg", "ml_pg",
                                                      "per_s")}
    try:
        import grpc  # here: only to wait for the service

        grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{grpc_port}")).result(timeout=60)
        loop = IngestLoop("bench-cpu")
        with psycopg.connect(pg_url(args.pg_db), autocommit=True, application_name="bench-cpu-poll") as conn:
            publish(r, payloads(0, args.warmup))
            drain(loop, conn, args.warmup)
            done = args.warmup
            for _ in range(args.rounds):
                publish(r, payloads(done, args.events))
                done += args.events
                before = Snapshot(conn, args.pg_db, ml.proc.pid)
                wall, threads = drain(loop, conn, done)
                spent = Snapshot(conn, args.pg_db, ml.proc.pid).minus(before)
                spent.update(threads)
                for key, seconds in spent.items():
                    rounds[key].append(seconds / args.events * 1e6)
                rounds["per_s"].append(args.events / wall)
    finally:
        ml.stop()
        reset_resources()
        r.flushdb()
        drop_pg_database(args.pg_db)
    med = {k: round(statistics.median(v), 1) for k, v in rounds.items()}
    total = med["worker"] + med["ml"] + med["worker_pg"] + med["ml_pg"]
    print(f"ingest CPU per event, {args.rounds} rounds × {args.events:,} events (medians; load {load:.2f}):")
    print(f"  worker process (consumer + flushers)  {med['worker']:7.1f} µs   rounds "
          + " ".join(f"{v:.1f}" for v in rounds["worker"]))
    print(f"    of which the consumer thread         {med['consumer']:7.1f} µs")
    print(f"    of which the flusher threads         {med['flushers']:7.1f} µs")
    print(f"  PostgreSQL for the worker             {med['worker_pg']:7.1f} µs")
    print(f"  ML service process                    {med['ml']:7.1f} µs")
    print(f"  PostgreSQL for the ML service         {med['ml_pg']:7.1f} µs")
    print(f"  all                                   {total:7.1f} µs   ({1e6 / total * os.cpu_count():,.0f} events/s "
          f"on {os.cpu_count()} cores if all were busy; measured {med['per_s']:,.0f} events/s wall)")
    emit({"events": args.events, "rounds": args.rounds, "load_avg_1m": round(load, 2),
          **{f"{k}_cpu_us": med[k] for k in ("worker", "consumer", "flushers", "worker_pg", "ml", "ml_pg")},
          "worker_cpu_us_rounds": [round(v, 1) for v in rounds["worker"]],
          "all_cpu_us": round(total, 1), "per_s": med["per_s"]}, args.json)


if __name__ == "__main__":
    main()
