"""The fixed and per-item cost of one prediction call to the ML service, client and server.

    python bench/rpc_cost.py [--json] [--rounds N] [--rate-limit]

Starts the real ML service as ``bench/cache.py`` does (``edgeloop ml serve`` on port 0, over a
SQLite database of the last N Premier League seasons, its outcome models trained), then times
GetPrediction, BatchPredict of 100 and BatchPredict of 1,000 through ``MLClient``, the sizes
interleaved call by call so that load that comes and goes weighs on each alike. For each size:
the median and p90 wall time of a call, and the CPU time of one call in the service process
(``/proc/<pid>/stat``) and in this one (``time.process_time``): CPU time hardly moves with
other load on the machine, wall time does. ``--auth`` and ``--rate-limit`` turn on the bearer
token and the token bucket (set high enough never to refuse) as in docker-compose.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._harness import cpu_seconds  # noqa: E402
from bench.cache import SELECTIONS, prepare_database, train  # noqa: E402
from edgeloop.core.settings import Settings  # noqa: E402
from edgeloop.mlclient.client import MLClient  # noqa: E402
from edgeloop.proto import ml_service_pb2 as pb  # noqa: E402

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=400, help="calls of each size (default 400)")
    parser.add_argument("--seasons", type=int, default=5)
    parser.add_argument("--auth", action="store_true", help="require a bearer token, as a deployment may")
    parser.add_argument("--rate-limit", action="store_true", help="per-client token buckets on, as in docker-compose")
    parser.add_argument("--profile", default="", help="py-spy the service for the timed part into this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgeloop-rpc-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        events = prepare_database(db_url, args.seasons)
        env = {**os.environ, "EDGELOOP_DATABASE_URL": db_url, "EDGELOOP_CONFIG": os.devnull,
               "EDGELOOP_PROMETHEUS_MULTIPROC_DIR": ""}
        extra: dict[str, str] = {}
        if args.auth:
            extra["EDGELOOP_ML_AUTH_TOKEN"] = "bench-token"
        if args.rate_limit:
            extra |= {"EDGELOOP_ML_RATE_LIMIT_PER_S": "1000000", "EDGELOOP_ML_RATE_LIMIT_BURST": "1000000"}
        env |= extra
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgeloop", "ml", "serve", "--grpc-port", "0", "--http-port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "gRPC on" in line:
                    break
            target = line.split("gRPC on ", 1)[1].split(",", 1)[0].strip()
            settings = Settings(database_url=db_url, ml_grpc_target=target,
                                ml_auth_token=extra.get("EDGELOOP_ML_AUTH_TOKEN", ""))
            ml = MLClient(settings)
            train(ml)
            first = min(m.train_end for m in ml.list_models("outcome") if m.status == "serving")[:10]
            keys = [(e, s) for e, day in events if day > first for s in SELECTIONS]
            reqs = [pb.PredictionRequest(event_id=e, selection=s) for e, s in keys]
            sizes = {"single": 1, "batch_100": 100, "batch_1000": 1000}
            calls = {
                "single": lambda i: ml.get_prediction(keys[i % len(keys)][0], keys[i % len(keys)][1]),
                "batch_100": lambda i: ml.batch_predict(reqs[(i * 100) % 2000:(i * 100) % 2000 + 100]),
                "batch_1000": lambda i: ml.batch_predict(reqs[(i % 2) * 1000:(i % 2) * 1000 + 1000]),
            }
            for i in range(50):  # warm: channel, snapshot, registry poll, allocator
                for call in calls.values():
                    call(i)
            s0 = cpu_seconds(proc.pid)
            time.sleep(2.0)
            idle_ms_per_s = (cpu_seconds(proc.pid) - s0) / 2.0 * 1000
            wall: dict[str, list[float]] = {k: [] for k in calls}
            server_cpu = dict.fromkeys(calls, 0.0)
            client_cpu = dict.fromkeys(calls, 0.0)
            spy = None
            if args.profile:
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "500",
                                        "-f", "raw", "-o", args.profile, "-p", str(proc.pid), "--threads"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            for i in range(args.rounds):
                for name, call in calls.items():
                    s0, c0, t0 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
                    call(i)
                    t1, c1, s1 = time.perf_counter(), time.process_time(), cpu_seconds(proc.pid)
                    wall[name].append((t1 - t0) * 1000)
                    client_cpu[name] += c1 - c0
                    server_cpu[name] += s1 - s0
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            ml.close()
        finally:
            proc.terminate()
            proc.wait(30)

    result: dict[str, float | int | str] = {"rounds": args.rounds, "auth": args.auth, "rate_limit": args.rate_limit,
                                            "server_idle_cpu_ms_per_s": round(idle_ms_per_s, 2)}
    for name in calls:
        w = sorted(wall[name])
        result[f"{name}_p50_ms"] = round(statistics.median(w), 3)
        result[f"{name}_p90_ms"] = round(w[int(0.9 * len(w))], 3)
        result[f"{name}_server_cpu_ms"] = round(server_cpu[name] / args.rounds * 1000, 3)
        result[f"{name}_client_cpu_ms"] = round(client_cpu[name] / args.rounds * 1000, 3)
    print(f"one call to the ML service ({args.rounds} of each size, interleaved; auth {args.auth}, "
          f"rate limit {args.rate_limit}); CPU per call")
    for name, n in sizes.items():
        print(f"  {name:11s} ({n:4d})  p50 {result[f'{name}_p50_ms']:6.3f} ms  p90 {result[f'{name}_p90_ms']:6.3f} ms"
              f"   server CPU {result[f'{name}_server_cpu_ms']:6.3f} ms   client CPU {result[f'{name}_client_cpu_ms']:6.3f} ms")
    print(f"  the service idle: {idle_ms_per_s:.1f} ms CPU a second")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
