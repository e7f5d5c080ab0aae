"""The ML service's SubmitBacktestFeedback, per event, against the bare COPY of the same rows.

One scratch PostgreSQL database, migrated; a real ML service built by ``create_server`` (port 0)
on it. Requests of ``--batch`` valid results (``tests.support.events.valid_event`` parsed the
way the consumer parses them, so the messages are what the workers send), each with new
backtest ids, serialised once beforehand. Figures, per event:

  * handler: the request's bytes parsed (``FromString``, as gRPC does) and the servicer's
    ``SubmitBacktestFeedback`` run to its answer: wall time and this thread's CPU time (the
    service's own cost; PostgreSQL's is in the wall time only);
  * duplicates: the same for requests whose every result is stored already (a redelivery);
  * grpc: the same requests through a real channel to the server (client and server in this
    process, so this is wall time with both sides' costs);
  * baseline, same run, same database: the same rows, prepared in memory beforehand, COPYed
    straight into ``ml_feedback_samples`` with one COPY and one commit per request (no
    validation, no fingerprints, no duplicate handling): what the store alone costs.

The runs alternate in rounds (handler, baseline, grpc) so that a neighbour's load falls on all
of them alike; medians of the per-round figures are printed. ``--profile`` prints a cProfile
of the handler instead of timing it. With ``--json`` the last line is a JSON object.

``valid_event``'s params repeat (about 2,000 distinct sets), as a strategy backtested on many
windows does; ``--distinct-params`` makes every set new, the service's worst case.

    python bench/ml_feedback.py [--batch 500] [--requests 10] [--rounds 5] [--distinct-params] [--json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench._harness import emit  # noqa: E402
from edgeloop.core.events import parse_event, validate_message  # noqa: E402
from edgeloop.core.settings import settings_with  # noqa: E402
from edgeloop.mlservice.server import create_server  # noqa: E402
from edgeloop.mlservice.strategy_model import params_fingerprint  # noqa: E402
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc  # noqa: E402
from edgeloop.schema.base import utcnow  # noqa: E402
from edgeloop.schema.db import upgrade  # noqa: E402
from tests.support.events import valid_event  # noqa: E402
from tests.support.services import drop_pg_database, pg_url, recreate_pg_database  # noqa: E402

DB_NAME = "edgeloop_bench_ml_feedback"


class _Context:
    """The servicer's context: only used when a handler fails, which the benchmark treats as fatal."""

    def set_trailing_metadata(self, metadata) -> None:
        pass

    def abort(self, code, message):
        raise SystemExit(f"benchmark: SubmitBacktestFeedback failed: {code} {message}")


class Requests:
    """Serialised requests of ``batch`` results each, with ids never used before in this run."""

    def __init__(self, batch: int, distinct_params: bool) -> None:
        self.batch = batch
        self.distinct_params = distinct_params
        self.next_id = 0

    def event(self, i: int) -> dict:
        event = valid_event(i)
        if self.distinct_params:  # another strategy each time (valid_event's min_edge has 4 decimals)
            event["params"]["min_edge"] = i % 1_000_000 / 1e7
        return event

    def make(self, n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            results = [parse_event(json.dumps(self.event(self.next_id + i))).message for i in range(self.batch)]
            self.next_id += self.batch
            out.append(pb.BacktestFeedbackRequest(results=results, batch_id=f"b{self.next_id}").SerializeToString())
        return out


def time_handler(servicer, payloads: list[bytes], expect_new: bool) -> tuple[float, float]:
    """(wall µs, CPU µs) per event of parsing and handling every payload."""
    ctx = _Context()
    events = 0
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    for payload in payloads:
        request = pb.BacktestFeedbackRequest.FromString(payload)
        answer = servicer.SubmitBacktestFeedback(request, ctx)
        events += len(request.results)
        if (answer.accepted if expect_new else answer.duplicates) != len(request.results):
            raise SystemExit(f"benchmark: unexpected answer accepted={answer.accepted} duplicates={answer.duplicates}")
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    return wall / events * 1e6, cpu / events * 1e6


def time_grpc(stub, payloads: list[bytes]) -> float:
    requests = [pb.BacktestFeedbackRequest.FromString(p) for p in payloads]
    events = sum(len(r.results) for r in requests)
    started = time.perf_counter()
    for request in requests:
        answer = stub.SubmitBacktestFeedback(request, timeout=60)
        if answer.accepted != len(request.results):
            raise SystemExit("benchmark: a gRPC request was not stored whole")
    return (time.perf_counter() - started) / events * 1e6


COPY_COLUMNS = ("backtest_id", "strategy_id", "strategy_name", "params", "window_start", "window_end", "method",
                "model_version", "metrics", "backtest_score", "params_key", "batch_id", "received_at")


def baseline_rows(payloads: list[bytes]) -> list[list[tuple]]:
    """The rows the service stores for these requests, built beforehand (not timed)."""
    out = []
    for payload in payloads:
        request = pb.BacktestFeedbackRequest.FromString(payload)
        now = utcnow()
        rows = []
        for msg in request.results:
            event = validate_message(msg)
            c = event.columns()
            rows.append((c["backtest_id"], c["strategy_id"], c["strategy_name"], Jsonb(c["params"]),
                         c["window_start"], c["window_end"], c["method"], c["model_version"],
                         Jsonb(dict(event.metrics)), float(event.backtest_score), params_fingerprint(event.params),
                         request.batch_id, now))
        out.append(rows)
    return out


def time_copy(conn: psycopg.Connection, batches: list[list[tuple]]) -> float:
    cols = ", ".join(COPY_COLUMNS)
    events = sum(len(b) for b in batches)
    started = time.perf_counter()
    for rows in batches:
        with conn.cursor() as cur, cur.copy(f"COPY ml_feedback_samples ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
    return (time.perf_counter() - started) / events * 1e6


def profile(servicer, payloads: list[bytes]) -> None:
    import cProfile  # here: only --profile needs it
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    time_handler(servicer, payloads, expect_new=True)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=500, help="results per request")
    ap.add_argument("--requests", type=int, default=10, help="requests per round and figure")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pg-db", default=DB_NAME, help="a scratch PostgreSQL database (dropped and recreated)")
    ap.add_argument("--distinct-params", action="store_true",
                    help="every event's params differ (valid_event's repeat: ~2,000 distinct sets)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the handler and stop")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    url = recreate_pg_database(args.pg_db)
    upgrade(url)
    server, port = create_server("127.0.0.1:0", settings_with(database_url=url, ml_max_batch_items=max(args.batch, 1000)))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
    stub = pb_grpc.MLServiceStub(channel)
    reqs = Requests(args.batch, args.distinct_params)
    try:
        servicer = server.servicer
        time_handler(servicer, reqs.make(2), expect_new=True)  # warm-up: connections, temp table, caches
        if args.profile:
            profile(servicer, reqs.make(args.requests))
            return
        figures: dict[str, list[float]] = {k: [] for k in ("handler_wall", "handler_cpu", "dup_wall", "dup_cpu",
                                                            "grpc_wall", "copy_wall")}
        with psycopg.connect(pg_url(args.pg_db).replace("postgresql+psycopg", "postgresql")) as conn:
            for _ in range(args.rounds):
                payloads = reqs.make(args.requests)
                wall, cpu = time_handler(servicer, payloads, expect_new=True)
                figures["handler_wall"].append(wall)
                figures["handler_cpu"].append(cpu)
                wall, cpu = time_handler(servicer, payloads, expect_new=False)
                figures["dup_wall"].append(wall)
                figures["dup_cpu"].append(cpu)
                figures["copy_wall"].append(time_copy(conn, baseline_rows(reqs.make(args.requests))))
                figures["grpc_wall"].append(time_grpc(stub, reqs.make(args.requests)))
        med = {k: round(statistics.median(v), 2) for k, v in figures.items()}
        n = args.batch
        params = "every params set new" if args.distinct_params else "valid_event's params"
        print(f"SubmitBacktestFeedback, {args.requests} requests × {n} results × {args.rounds} rounds, {params}"
              " (medians, µs/event)")
        print(f"  handler (new results)      {med['handler_wall']:8.2f} wall  {med['handler_cpu']:8.2f} CPU")
        print(f"  handler (all duplicates)   {med['dup_wall']:8.2f} wall  {med['dup_cpu']:8.2f} CPU")
        print(f"  through gRPC (new results) {med['grpc_wall']:8.2f} wall")
        print(f"  baseline: bare COPY        {med['copy_wall']:8.2f} wall")
        ratio = med["handler_wall"] / med["copy_wall"]
        print(f"  handler / bare COPY        {ratio:8.2f}x   ({1e6 / med['handler_wall']:,.0f} events/s"
              f" against {1e6 / med['copy_wall']:,.0f})")
        emit({"batch": n, "distinct_params": args.distinct_params, "handler_us": med["handler_wall"], "handler_cpu_us": med["handler_cpu"],
              "duplicates_us": med["dup_wall"], "duplicates_cpu_us": med["dup_cpu"], "grpc_us": med["grpc_wall"],
              "copy_us": med["copy_wall"], "handler_vs_copy": round(ratio, 2)}, args.json)
    finally:
        channel.close()
        server.stop(grace=1).wait(5)
        drop_pg_database(args.pg_db)


if __name__ == "__main__":
    main()
