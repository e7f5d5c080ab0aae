"""SQLite durability benchmark: what ``synchronous=FULL`` costs the stream consumer.

edgeloop runs SQLite in WAL mode with ``synchronous=FULL``: the log is synced at every commit,
so a commit (after which the entries are acknowledged) survives a power loss. The baseline is
``synchronous=NORMAL``, which syncs only at checkpoints: faster, but the last commits before a
power loss can roll back after their entries were acknowledged.

One ``StreamConsumer`` (``edgeloop/services/ingest.py``, no Celery, no ML service) drains events
published beforehand to a Redis db of its own (``EDGELOOP_BENCH_REDIS_URL``, default db 11 on
127.0.0.1:6379, emptied before and after) into a fresh SQLite file under ``--dir`` (default
``var/bench``: a disk, as a tmpfs would make every sync free). Two batch sizes: the default
500 (a backlog) and 1 (a trickle, one commit per event: the cost of one sync). Rounds
alternate the two modes; each figure is the median over ``--rounds``.

    python bench/sqlite_durability.py [--events 20000] [--trickle-events 500] [--rounds 3] [--json]

``--json`` ends the output with one line: a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402

from bench._harness import emit  # noqa: E402
from edgeloop.core.settings import Settings  # noqa: E402
from edgeloop.producers import Publisher  # noqa: E402
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from edgeloop.schema.pipeline import BacktestResult  # noqa: E402
from tests.support.events import valid_event  # noqa: E402
from edgeloop.services.ingest import StreamConsumer  # noqa: E402

REDIS_URL = os.environ.get("EDGELOOP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
MODES = {"NORMAL": 1, "FULL": 2}  # PRAGMA synchronous reads back as a number


def ingest_rate(mode: str, n: int, batch: int, folder: Path, r: redis.Redis) -> float:
    """Events/s for one consumer storing ``n`` published events, ``batch`` per commit."""
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix=f'{mode.lower()}-', dir=folder)) / 'edgeloop.db'}"
    upgrade(url)
    engine = make_engine(url)
    if mode != "FULL":
        # Runs after make_engine's own listener on every new connection: the baseline's pragma wins.
        event.listen(engine, "connect", lambda conn, _: conn.execute(f"PRAGMA synchronous={mode}"))
    with engine.connect() as conn:
        in_force = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert in_force == MODES[mode], f"PRAGMA synchronous is {in_force}, wanted {mode}"
    sessions = make_sessionmaker(engine)
    r.flushdb()
    settings = Settings(redis_url=REDIS_URL, database_url=url, ingest_batch_size=batch)
    consumer = StreamConsumer(client=r, sessions=sessions, settings=settings, name="bench")
    consumer.ensure_groups()
    Publisher(r, settings).publish_many(valid_event(i) for i in range(n))
    try:
        t0 = time.perf_counter()
        while consumer.poll_once(block_ms=1).read:
            pass
        elapsed = time.perf_counter() - t0
        with sessions() as s:
            stored = s.scalar(select(func.count()).select_from(BacktestResult))
        assert stored == n, f"{stored} of {n} stored"
        return n / elapsed
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events per backlog run (batches of 500)")
    ap.add_argument("--trickle-events", type=int, default=500, help="events per trickle run (one per commit)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=ROOT / "var" / "bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    os.environ["EDGELOOP_CONFIG"] = os.devnull  # never a developer's config.yaml
    args.dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sqlite-durability-", dir=args.dir))
    r = redis.Redis.from_url(REDIS_URL)
    rates: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for batch, n in ((500, args.events), (1, args.trickle_events)):
                for mode in MODES:
                    rates.setdefault((mode, batch), []).append(ingest_rate(mode, n, batch, folder, r))
    finally:
        r.flushdb()
        shutil.rmtree(folder)

    med = {key: statistics.median(values) for key, values in rates.items()}
    figures: dict[str, float | int] = {"events": args.events, "trickle_events": args.trickle_events,
                                       "rounds": args.rounds}
    for batch, label in ((500, "backlog (batches of 500)"), (1, "trickle (one event per commit)")):
        normal, full = med[("NORMAL", batch)], med[("FULL", batch)]
        # The extra time per commit is the sync FULL adds: (1/full - 1/normal) per event × events per commit.
        sync_ms = (1 / full - 1 / normal) * batch * 1000
        print(f"{label}: NORMAL {normal:,.0f} events/s, FULL {full:,.0f} events/s, "
              f"FULL/NORMAL {full / normal:.2f}, {sync_ms:+.2f} ms per commit", flush=True)
        key = "batch500" if batch == 500 else "batch1"
        figures.update({f"{key}_normal_events_per_s": round(normal, 1), f"{key}_full_events_per_s": round(full, 1),
                        f"{key}_ratio": round(full / normal, 3), f"{key}_sync_ms_per_commit": round(sync_ms, 3)})
    print(f"ratio (FULL/NORMAL, batches of 500): {figures['batch500_ratio']:.2f}")
    emit(figures, args.json)


if __name__ == "__main__":
    main()
