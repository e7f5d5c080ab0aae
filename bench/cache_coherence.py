"""Level-1 coherence, the two candidates measured side by side: the pub/sub channel the cache
ships (``mlclient/cache/coherence.py``) against Redis server-assisted client-side caching.

    python bench/cache_coherence.py [--json] [--rounds N] [--readers N]
                                    [--redis-server PATH] [--redis74-server PATH]

Part 1, on the machine's ``redis-server`` (7.0 here): four reader processes, each with a level 1
kept coherent by one of

* ``pubsub``: the shipped ``Coherence`` (``{prefix}:inval`` + a ping lease of the bound);
* ``tracking-keys``: ``CLIENT TRACKING on REDIRECT <id>`` on every connection of the process's
  pool (Redis remembers each key the process read and sends one invalidation per key written),
  the invalidations arriving as RESP2 pub/sub messages on ``__redis__:invalidate`` of one
  subscriber connection (``TrackingCoherence`` below);
* ``tracking-bcast``: ``CLIENT TRACKING on REDIRECT <own id> BCAST PREFIX …`` on that subscriber
  connection (every key written under the cache's entry prefixes and the generation key is
  announced to every process, read or not); ``tracking-bcast-lease`` adds the shipped ping
  lease on that connection (outage only);
* ``tracking-keys-noloop``: ``tracking-keys`` with NOLOOP (not told of its own writes), for the
  coverage check only.

The writer is the product's own code: ``invalidate_strategies`` (feedback about a strategy:
its entries deleted, plus a publication) and ``mark_models_changed`` (a promotion: the
generation key set, plus a publication); the tracking variants see the key changes, the
pub/sub variant the publication. Measured: write → entry gone from each reader's level 1
(p50/p99 over rounds × readers, times taken on the one machine's realtime clock), the messages
and bytes a store of 1,000 entries, a strategy with 1,000 entries and a promotion send, whether
each case is covered (including an entry the process fetched and stored itself), and how long a
reader takes to stop serving level 1 when Redis hangs (SIGSTOP) or dies (SIGKILL).

Part 2, on a Redis >= 7.4 when one is given (``--redis74-server`` or
``EDGELOOP_REDIS74_SERVER``; redis-py refuses ``CacheConfig`` on older servers): redis-py's
``CacheConfig`` (RESP3) against our level 1 in the same run: a single hit, a batch of 1,000
with 90% hits (level 1 warm), write → invalidation seen in 4 reader processes, and what a reader
answers while Redis hangs. Without such a server: "not measured".

Every server is the bench's own, on a free port, removed afterwards. ``--json`` ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from edgeloop.core.settings import Settings  # noqa: E402
from edgeloop.mlclient import keys as cache_keys  # noqa: E402
from edgeloop.mlclient.cache import invalidate_strategies, make_redis, mark_models_changed  # noqa: E402
from edgeloop.mlclient.cache.coherence import Coherence  # noqa: E402
from edgeloop.mlclient.cache.local import LocalCache  # noqa: E402
from edgeloop.mlclient.cache.store import EntryStore  # noqa: E402
from edgeloop.mlclient.catalogue import ModelCatalogue  # noqa: E402
from edgeloop.mlclient.rawredis import RawRedis  # noqa: E402
from edgeloop.processes import free_port  # noqa: E402

PREFIX = "edgeloop:pred"
VALUE = b"v" * 120  # a serialized Prediction is ~100-130 bytes
BOUND_S = 0.1  # cache_local_bound_s
INVALIDATE_CHANNEL = "__redis__:invalidate"
METHODS = ("pubsub", "tracking-keys", "tracking-bcast")


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def entry_key(i: int, strategy: str = "", tag: str = "r") -> bytes:
    return cache_keys.prediction_key(PREFIX, "g0123456789ab", f"E0-{tag}{i}-Home-Away", "home", strategy)


# --- a redis-server of the bench's own --------------------------------------------------------
class Server:
    """A redis-server on a free port that the bench can stop (SIGSTOP), kill and start again."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_timeout=1)
        for _ in range(250):
            with contextlib.suppress(redis.ConnectionError):
                probe.ping()
                return
            time.sleep(0.02)
        raise SystemExit(f"{self.binary} did not start")

    def version(self) -> str:
        return str(redis.Redis(port=self.port).info("server")["redis_version"])

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)


@contextlib.contextmanager
def server(binary: str) -> Iterator[Server]:
    s = Server(binary)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def binary_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    version = out.split("v=", 1)[1].split()[0]
    return tuple(int(p) for p in version.split("."))


# --- server-assisted tracking as a level-1 coherence mechanism --------------------------------
class KeyedLevel1(LocalCache):
    """Level 1 with what tracking needs beyond ``LocalCache``: dropping single keys. It records
    when the keys being watched were all gone (the bench's measurement), at O(keys dropped) a
    message so that 1,000 one-key messages cost what they would in a real level 1."""

    def __init__(self) -> None:
        super().__init__(100_000, 64 * 2**20, 60)
        self.remaining: set[bytes] = set()
        self.gone_at: int | None = None

    def watch(self, keys: list[bytes]) -> None:
        self.remaining = {k for k, v in zip(keys, self.get_many(keys)) if v is not None}
        self.gone_at = None if self.remaining else time.time_ns()

    def _gone(self) -> None:
        if not self.remaining and self.gone_at is None:
            self.gone_at = time.time_ns()

    def drop_keys(self, keys: Sequence[bytes]) -> None:
        with self._lock:
            self.epoch += 1
            for key in keys:
                entry = self._data.pop(key, None)
                if entry is not None:
                    self._forget(key, entry)
        if self.remaining:
            self.remaining.difference_update(keys)
            self._gone()

    def clear(self) -> None:
        super().clear()
        self.remaining = set()
        self._gone()

    def invalidate_strategies(self, strategy_ids):  # type: ignore[no-untyped-def]
        dropped = super().invalidate_strategies(strategy_ids)
        if self.remaining:
            still = list(self.remaining)
            self.remaining = {k for k, v in zip(still, self.get_many(still)) if v is not None}
            self._gone()
        return dropped


class TrackingCoherence:
    """Level-1 coherence by Redis client tracking, over RESP2 (works on Redis 6+).

    One subscriber connection per process: ``CLIENT ID``, then (``bcast``) ``CLIENT TRACKING on
    REDIRECT <its own id> BCAST PREFIX {prefix}:p: PREFIX {prefix}:e: PREFIX {prefix}:gen``, then
    ``SUBSCRIBE __redis__:invalidate``. In the keys mode, each connection of the process's data
    pool runs ``CLIENT TRACKING on REDIRECT <subscriber id>`` when it connects (``data_client``).
    An invalidation names keys: the generation key empties level 1 (a promotion), other keys are
    dropped; a null one (FLUSHDB) empties it. Tracking has no heartbeat: level 1 serves while the
    subscriber connection is up; ``lease_s`` adds the shipped ping lease on the same connection.
    """

    def __init__(self, port: int, prefix: str, local: KeyedLevel1, catalogue: ModelCatalogue, bcast: bool,
                 lease_s: float | None = None) -> None:
        self.port = port
        self.prefix = prefix
        self.gen_key = cache_keys.generation_key(prefix).encode()
        self.local = local
        self.catalogue = catalogue
        self.bcast = bcast
        self.lease_s = lease_s
        self.client_id: int | None = None
        self.connected = False
        self.messages = 0
        self.keys_received = 0
        self._pinged_at = -1e18
        self._stop = threading.Event()
        self._up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cache-tracking", daemon=True)
        self._thread.start()

    def serving(self) -> bool:
        if self.lease_s is not None:
            return time.monotonic() - self._pinged_at < self.lease_s
        return self.connected

    def wait_up(self, timeout_s: float) -> bool:
        return self._up.wait(timeout_s)

    def data_client(self, noloop: bool = False) -> redis.Redis:
        """A client whose every connection is tracked, its invalidations sent to the subscriber."""
        coherence = self

        class TrackedConnection(redis.Connection):
            def on_connect_check_health(self, check_health: bool = True) -> None:  # what connect() runs
                super().on_connect_check_health(check_health)
                self.send_command("CLIENT", "TRACKING", "on", "REDIRECT", coherence.client_id,
                                  *(("NOLOOP",) if noloop else ()))
                if self.read_response() != b"OK":
                    raise redis.ConnectionError("CLIENT TRACKING refused")

        pool = redis.ConnectionPool(connection_class=TrackedConnection, port=self.port, socket_timeout=0.25)
        return redis.Redis(connection_pool=pool)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = redis.Connection(port=self.port, protocol=2, socket_timeout=1, socket_connect_timeout=0.25)
            try:
                self._listen(conn)
            except (redis.RedisError, OSError):
                self.connected = False
                self._pinged_at = -1e18
                self.local.clear()
                self._stop.wait(0.1)
            finally:
                with contextlib.suppress(Exception):
                    conn.disconnect()

    def _listen(self, conn: redis.Connection) -> None:
        conn.connect()
        conn.send_command("CLIENT", "ID")
        client_id = int(conn.read_response())
        args: list[Any] = ["CLIENT", "TRACKING", "on", "REDIRECT", client_id]
        if self.bcast:
            args.append("BCAST")
            for part in ("p:", "e:", "gen"):
                args += ["PREFIX", f"{self.prefix}:{part}"]
        conn.send_command(*args)
        conn.read_response()
        conn.send_command("SUBSCRIBE", INVALIDATE_CHANNEL)
        conn.read_response()
        # Invalidations sent while nobody listened are lost: start empty, as the shipped path does.
        self.local.clear()
        self.catalogue.expire()
        self.client_id = client_id
        self.connected = True
        self._up.set()
        next_ping = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self.lease_s is not None and now >= next_ping:
                conn.send_command("PING", repr(now))
                next_ping = now + self.lease_s / 4
            wait = max(0.0, next_ping - time.monotonic()) if self.lease_s is not None else 0.05
            if not conn.can_read(timeout=wait):
                continue
            message = conn.read_response()
            if message[0] == b"pong":
                self._pinged_at = float(message[1])
            elif message[0] == b"message":
                self._apply(message[2])

    def _apply(self, keys: list[bytes] | None) -> None:
        self.messages += 1
        if keys is None or self.gen_key in keys:
            self.keys_received += len(keys or ())
            self.catalogue.expire()
            self.local.clear()
            return
        self.keys_received += len(keys)
        self.local.drop_keys(keys)


# --- the reader processes ---------------------------------------------------------------------
class _Reader:
    """One process's level 1 and its coherence, driven by the bench over a pipe."""

    def __init__(self, method: str, server_port: int) -> None:
        url = f"redis://127.0.0.1:{server_port}/0"
        self.method = method
        self.local = KeyedLevel1()
        self.catalogue = ModelCatalogue(lambda name: [], 5)
        self.tracking: TrackingCoherence | None = None
        self.coherence: Coherence | None = None
        self.cc: redis.Redis | None = None
        if method == "pubsub":
            client = make_redis(Settings(redis_url=url, cache_redis_url=url))
            self.coherence = Coherence(client, PREFIX, self.local, self.catalogue, BOUND_S)
            self.coherence.start()
            assert self.coherence.wait_serving(5)
            self.data = client
        elif method.startswith("tracking"):
            self.tracking = TrackingCoherence(server_port, PREFIX, self.local, self.catalogue,
                                              bcast="bcast" in method, lease_s=BOUND_S if "lease" in method else None)
            assert self.tracking.wait_up(5)
            self.data = (self.tracking.data_client(noloop=method.endswith("noloop")) if "keys" in method
                         else redis.Redis(port=server_port, socket_timeout=0.25))
        elif method == "cacheconfig":
            # redis-py's client-side cache (RESP3, Redis >= 7.4): imported here, Part 2 only.
            from redis.cache import CacheConfig

            self.cc = redis.Redis(port=server_port, protocol=3, cache_config=CacheConfig(max_size=100_000),
                                  socket_timeout=0.25)
            self.data = self.cc
        self.store = EntryStore(self.data, RawRedis(self.data), PREFIX, 3600)

    def serving(self) -> bool:
        if self.coherence is not None:
            return self.coherence.serving()
        if self.tracking is not None:
            return self.tracking.serving()
        return True

    def fill(self, keys: list[bytes], strategy: str) -> int:
        """A lookup as the cache makes it: the generation and the keys read from Redis, kept in level 1."""
        if self.cc is not None:
            self.watch_cc = keys
            self.cc_gen = self.cc.get(cache_keys.generation_key(PREFIX))
            return sum(self.cc.get(k) is not None for k in keys)
        epoch = self.local.epoch
        values = self.data.mget([cache_keys.generation_key(PREFIX), *keys])[1:]
        self.local.put_many([(k, v, strategy) for k, v in zip(keys, values) if v is not None], epoch)
        self.local.watch(keys)
        return sum(v is not None for v in self.local.get_many(keys))

    def gone_at(self, timeout_s: float) -> int | None:
        """When the watched entries left level 1 (None: not within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        if self.cc is not None:  # it applies invalidations only when used: poll it every 0.5 ms
            gen_key = cache_keys.generation_key(PREFIX)
            while time.monotonic() < deadline:
                if self.cc.get(gen_key) != self.cc_gen or all(self.cc.get(k) is None for k in self.watch_cc):
                    return time.time_ns()
                time.sleep(0.0005)
            return None
        while self.local.gone_at is None and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.local.gone_at

    def own_store(self, keys: list[bytes], strategy: str) -> int:
        """A miss fetched and stored by this process, then kept in level 1 (as the cache does);
        how many of them are still in level 1 50 ms later."""
        epoch = self.local.epoch
        self.data.mget(keys)  # the miss (tracked in the keys mode)
        self.store.store({k: (VALUE, strategy) for k in keys})
        self.local.put_many([(k, VALUE, strategy) for k in keys], epoch)
        time.sleep(0.05)
        return self.held(keys)

    def held(self, keys: list[bytes]) -> int:
        return sum(v is not None for v in self.local.get_many(keys))

    def counters(self) -> tuple[int, int]:
        if self.tracking is not None:
            return self.tracking.messages, self.tracking.keys_received
        if self.coherence is not None:
            return len(self.coherence.delays), 0
        return 0, 0

    def stops_serving(self, timeout_s: float) -> int | None:
        """When level 1 stopped answering (polled every 0.5 ms; None: not within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.serving():
                return time.time_ns()
            time.sleep(0.0005)
        return None

    def cc_answers(self, key: str, seconds: float) -> tuple[int, int]:
        """(answers, errors) of GET ``key`` through CacheConfig over ``seconds``."""
        answers = errors = 0
        assert self.cc is not None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                if self.cc.get(key) is not None:
                    answers += 1
            except redis.RedisError:
                errors += 1
            time.sleep(0.001)
        return answers, errors

    def recovered(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.serving():
                return True
            time.sleep(0.01)
        return False


def _reader_main(pipe: multiprocessing.connection.Connection, method: str, port: int) -> None:
    reader = _Reader(method, port)
    pipe.send("ready")
    while True:
        name, args = pipe.recv()
        if name == "stop":
            pipe.send(None)
            return
        pipe.send(getattr(reader, name)(*args))


class Readers:
    """``n`` reader processes of one method (forked from this process, which holds no thread)."""

    def __init__(self, n: int, method: str, port: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes = []
        self.procs = []
        for _ in range(n):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_reader_main, args=(theirs, method, port), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(20) or pipe.recv() != "ready":
                raise SystemExit(f"a {method} reader did not start")

    def send(self, name: str, *args: Any) -> None:
        for pipe in self.pipes:
            pipe.send((name, args))

    def gather(self, timeout_s: float = 30) -> list[Any]:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout_s):
                raise SystemExit("a reader did not answer")
            out.append(pipe.recv())
        return out

    def call(self, name: str, *args: Any) -> list[Any]:
        self.send(name, *args)
        return self.gather()

    def close(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs):
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("stop", ()))
            proc.join(5)
            if proc.is_alive():
                proc.kill()


@contextlib.contextmanager
def readers(n: int, method: str, port: int) -> Iterator[Readers]:
    r = Readers(n, method, port)
    try:
        yield r
    finally:
        r.close()


# --- the measurements -------------------------------------------------------------------------
def store(client: redis.Redis, entries: dict[str, tuple[bytes, str]]) -> None:
    EntryStore(client, RawRedis(client), PREFIX, 3600).store(entries)


def invalidation_rounds(srv: Server, method: str, n_readers: int, rounds: int) -> dict:
    """Write → entry gone from level 1 in every reader, alternating strategy feedback and promotion."""
    writer = redis.Redis(port=srv.port)
    delays: dict[str, list[float]] = {"strategy": [], "promotion": []}
    missed = 0
    with readers(n_readers, method, srv.port) as rs:
        for r in range(rounds):
            kind = "strategy" if r % 2 == 0 else "promotion"
            strategy = f"s-{r}" if kind == "strategy" else ""
            round_keys = [entry_key(i, strategy, f"r{r}-") for i in range(10)]
            store(writer, {k: (VALUE, strategy) for k in round_keys})
            time.sleep(0.02)  # BCAST announces the store itself: let that pass before level 1 is filled
            assert all(held == 10 for held in rs.call("fill", round_keys, strategy)), "level 1 not filled"
            time.sleep(0.002)
            t0 = time.time_ns()
            if strategy:
                invalidate_strategies(writer, [strategy], PREFIX)
            else:
                mark_models_changed(writer, PREFIX)
            for gone in rs.call("gone_at", 1.0):
                if gone is None:
                    missed += 1
                else:
                    delays[kind].append((gone - t0) / 1e6)
    writer.close()
    both = delays["strategy"] + delays["promotion"]
    return {"p50_ms": _pct(both, 0.5), "p99_ms": _pct(both, 0.99), "max_ms": _pct(both, 1.0),
            "strategy_p50_ms": _pct(delays["strategy"], 0.5), "promotion_p50_ms": _pct(delays["promotion"], 0.5),
            "samples": len(both), "not_within_1s": missed}


def _output_bytes(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


def write_costs(srv: Server, method: str, n_readers: int) -> dict:
    """What a store of 1,000 entries (first read as misses by every reader), a strategy with
    1,000 entries (held by every reader) and a promotion send to the readers."""
    writer = redis.Redis(port=srv.port)
    out: dict[str, Any] = {}
    with readers(n_readers, method, srv.port) as rs:
        times, server_bytes, messages, keys_seen = [], [], [], []
        for rep in range(5):
            batch = [entry_key(i, "s-cost" if i < 100 else "", f"cost{rep}-") for i in range(1000)]
            rs.call("fill", batch, "")  # all misses: what a lookup before the store does (and tracks)
            time.sleep(0.05)
            before_msgs = rs.call("counters")
            before_bytes = _output_bytes(writer)
            t = time.perf_counter()
            store(writer, {k: (VALUE, "s-cost" if i < 100 else "") for i, k in enumerate(batch)})
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(0.3)
            server_bytes.append(_output_bytes(writer) - before_bytes)
            after = rs.call("counters")
            messages.append(statistics.mean(a[0] - b[0] for a, b in zip(after, before_msgs)))
            keys_seen.append(statistics.mean(a[1] - b[1] for a, b in zip(after, before_msgs)))
        out["store_1000_ms"] = round(statistics.median(times), 3)
        out["store_1000_server_bytes"] = int(statistics.median(server_bytes))
        out["store_1000_messages_per_reader"] = statistics.median(messages)
        out["store_1000_keys_per_reader"] = statistics.median(keys_seen)

        strategy_keys = [entry_key(i, "s-big", "big-") for i in range(1000)]
        store(writer, {k: (VALUE, "s-big") for k in strategy_keys})
        time.sleep(0.05)
        rs.call("fill", strategy_keys, "s-big")
        time.sleep(0.05)
        before_msgs = rs.call("counters")
        before_bytes = _output_bytes(writer)
        t = time.perf_counter()
        t0 = time.time_ns()
        invalidate_strategies(writer, ["s-big"], PREFIX)
        out["strategy_1000_ms"] = round((time.perf_counter() - t) * 1000, 3)
        gone = rs.call("gone_at", 2.0)
        # write → the strategy's 1,000 entries gone from every reader's level 1
        out["strategy_1000_gone_max_ms"] = (round(max(g - t0 for g in gone) / 1e6, 3)
                                            if all(g is not None for g in gone) else None)
        time.sleep(0.1)
        out["strategy_1000_server_bytes"] = _output_bytes(writer) - before_bytes
        after = rs.call("counters")
        out["strategy_1000_messages_per_reader"] = statistics.mean(a[0] - b[0] for a, b in zip(after, before_msgs))
        out["strategy_1000_keys_per_reader"] = statistics.mean(a[1] - b[1] for a, b in zip(after, before_msgs))

        rs.call("fill", [entry_key(0, "", "gen-")], "")
        before_msgs = rs.call("counters")
        before_bytes = _output_bytes(writer)
        mark_models_changed(writer, PREFIX)
        time.sleep(0.2)
        out["promotion_server_bytes"] = _output_bytes(writer) - before_bytes
        after = rs.call("counters")
        out["promotion_messages_per_reader"] = statistics.mean(a[0] - b[0] for a, b in zip(after, before_msgs))
        stats = writer.info("stats")
        out["server_tracking_keys"] = stats.get("tracking_total_keys")
        out["server_tracking_items"] = stats.get("tracking_total_items")
    writer.close()
    return out


def coverage(srv: Server, method: str) -> dict:
    """Which invalidations reach level 1, including an entry the process fetched and stored itself."""
    writer = redis.Redis(port=srv.port)
    out: dict[str, Any] = {}
    with readers(1, method, srv.port) as rs:
        own = [entry_key(i, "s-own", "own-") for i in range(20)]
        out["own_store_kept"] = rs.call("own_store", own, "s-own")[0]
        invalidate_strategies(writer, ["s-own"], PREFIX)
        time.sleep(0.3)
        out["own_store_stale_after_invalidation"] = rs.call("held", own)[0]
        # Held from a read, then feedback, then a promotion.
        for kind, strategy in (("strategy", "s-cov"), ("promotion", "")):
            ks = [entry_key(i, strategy, f"cov-{kind}-") for i in range(20)]
            store(writer, {k: (VALUE, strategy) for k in ks})
            time.sleep(0.02)  # as in invalidation_rounds
            rs.call("fill", ks, strategy)
            if strategy:
                invalidate_strategies(writer, [strategy], PREFIX)
            else:
                mark_models_changed(writer, PREFIX)
            time.sleep(0.3)
            out[f"{kind}_stale_after_invalidation"] = rs.call("held", ks)[0]
    writer.close()
    return out


def outage(srv: Server, method: str, n_readers: int) -> dict:
    """Redis hung (SIGSTOP for 2 s), then killed: how long until each reader's level 1 stops answering."""
    out: dict[str, Any] = {}
    writer = redis.Redis(port=srv.port)
    with readers(n_readers, method, srv.port) as rs:
        ks = [entry_key(i, "", "out-") for i in range(10)]
        store(writer, {k: (VALUE, "") for k in ks})
        rs.call("fill", ks, "")
        for name, sig in (("hung", signal.SIGSTOP), ("killed", signal.SIGKILL)):
            rs.send("stops_serving", 2.0)
            time.sleep(0.05)
            t0 = time.time_ns()
            if sig == signal.SIGKILL:
                srv.kill()
            else:
                srv.signal(sig)
            stopped = rs.gather()
            ms = [(s - t0) / 1e6 for s in stopped if s is not None]
            out[f"{name}_stops_serving_max_ms"] = round(max(ms), 1) if ms else None
            out[f"{name}_still_serving_after_2s"] = sum(s is None for s in stopped)
            if sig == signal.SIGSTOP:
                srv.signal(signal.SIGCONT)
                out["serving_again_after_hang"] = sum(rs.call("recovered", 5.0))
        srv.start()  # same port, for what follows
        out["serving_again_after_restart"] = sum(rs.call("recovered", 5.0))
    writer.close()
    return out


def part_1(binary: str, n_readers: int, rounds: int) -> dict:
    out: dict[str, Any] = {}
    with server(binary) as srv:
        out["redis_version"] = srv.version()
        for method in METHODS:
            m: dict[str, Any] = {}
            m["invalidation"] = invalidation_rounds(srv, method, n_readers, rounds)
            m["cost"] = write_costs(srv, method, n_readers)
            m["coverage"] = coverage(srv, method)
            m["outage"] = outage(srv, method, n_readers)
            out[method] = m
        out["tracking-keys-noloop"] = {"coverage": coverage(srv, "tracking-keys-noloop")}
        # Tracking has no heartbeat; the shipped ping lease can ride on its subscriber connection.
        out["tracking-bcast-lease"] = {"outage": outage(srv, "tracking-bcast-lease", n_readers)}
    return out


# --- Part 2: redis-py CacheConfig on Redis >= 7.4 ---------------------------------------------
def _timed(fn: Callable[[], Any], out: list[float]) -> None:
    t = time.perf_counter()
    fn()
    out.append((time.perf_counter() - t) * 1000)


def part_2(binary: str, n_readers: int, rounds: int, batches: int = 18, singles: int = 4000) -> dict:
    # redis-py's client-side cache: imported here because Part 2 runs only with a Redis >= 7.4.
    from redis.cache import CacheConfig

    out: dict[str, Any] = {}
    with server(binary) as srv:
        out["redis_version"] = srv.version()
        url = srv.url
        plain = make_redis(Settings(redis_url=url, cache_redis_url=url))
        raw = RawRedis(plain)
        cc = redis.Redis(port=srv.port, protocol=3, cache_config=CacheConfig(max_size=100_000), socket_timeout=0.25)
        local = LocalCache(100_000, 64 * 2**20, 60)
        coherence = Coherence(plain, PREFIX, local, ModelCatalogue(lambda name: [], 5), BOUND_S)
        coherence.start()
        assert coherence.wait_serving(5)

        n_cold = 100 * (2 * batches + 1)
        hot = [entry_key(i, "", "hot-") for i in range(900)]
        cold = [entry_key(i, "", "cold-") for i in range(n_cold)]
        store(plain, {k: (VALUE, "") for k in hot + cold})
        local.put_many([(k, v, "") for k, v in zip(hot, raw.execute(("MGET", *hot))[0])], local.epoch)
        for k in hot:
            cc.get(k)

        def ours(batch: list[bytes]) -> list:
            if not coherence.serving():
                return raw.execute(("MGET", *batch))[0]
            epoch = local.epoch
            values = local.get_many(batch)
            missing = [i for i, v in enumerate(values) if v is None]
            if missing:
                got = raw.execute(("MGET", *(batch[i] for i in missing)))[0]
                for i, v in zip(missing, got):
                    values[i] = v
                local.put_many([(batch[i], v, "") for i, v in zip(missing, got) if v is not None], epoch)
            return values

        t_ours, t_cc_get, t_cc_mget, t_l2 = [], [], [], []
        for r in range(batches):
            for fn, times, part in ((ours, t_ours, 0), (lambda b: [cc.get(k) for k in b], t_cc_get, 1),
                                    (cc.mget, t_cc_mget, 2)):
                batch = hot + cold[(3 * r + part) * 100 % n_cold:][:100]
                _timed(lambda: fn(batch), times)
            batch = hot + cold[-100:]
            _timed(lambda: raw.execute(("MGET", *batch)), t_l2)
        out["batch_1000_90pct_ms"] = {
            "ours_level1": round(statistics.median(t_ours), 3),
            "cacheconfig_get_each": round(statistics.median(t_cc_get), 3),
            "cacheconfig_mget": round(statistics.median(t_cc_mget), 3),
            "redis_only_mget": round(statistics.median(t_l2), 3),
        }
        h_ours, h_cc, h_l2 = [], [], []
        for i in range(singles):
            k = hot[i % 900]
            _timed(lambda: coherence.serving() and local.get_many([k]), h_ours)
            _timed(lambda: cc.get(k), h_cc)
            _timed(lambda: raw.execute(("GET", k)), h_l2)
        out["hit_ms"] = {name: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99)}
                         for name, v in (("ours_level1", h_ours), ("cacheconfig", h_cc), ("redis_get", h_l2))}
        coherence.close()
        cc.close()
        plain.close()
        # Invalidation across processes, same server, same rounds.
        out["invalidation"] = {m: invalidation_rounds(srv, m, n_readers, rounds) for m in ("pubsub", "cacheconfig")}
        out["cacheconfig_outage"] = cacheconfig_outage(srv)
    return out


def cacheconfig_outage(srv: Server) -> dict:
    """What a CacheConfig client answers from its cache while Redis hangs (1 s) and after it is killed."""
    writer = redis.Redis(port=srv.port)
    k = entry_key(0, "", "cc-out-")
    writer.set(k, VALUE)
    out: dict[str, Any] = {}
    with readers(1, "cacheconfig", srv.port) as rs:
        rs.call("fill", [k], "")
        srv.signal(signal.SIGSTOP)
        answers, errors = rs.call("cc_answers", k, 1.0)[0]
        srv.signal(signal.SIGCONT)
        out["hung_1s_answers"], out["hung_1s_errors"] = answers, errors
        srv.kill()
        answers, errors = rs.call("cc_answers", k, 1.0)[0]
        out["killed_1s_answers"], out["killed_1s_errors"] = answers, errors
    srv.start()
    return out


# --- output -----------------------------------------------------------------------------------
def default_redis74() -> str | None:
    path = os.environ.get("EDGELOOP_REDIS74_SERVER") or str(Path.home() / ".cache/edgeloop/redis74/redis-server")
    return path if Path(path).exists() else None


def report(result: dict) -> None:
    p1 = result["part_1"]
    print(f"level-1 coherence, {result['readers']} reader processes, {result['rounds']} rounds "
          f"(Part 1 on Redis {p1['redis_version']})")
    for method in METHODS:
        m = p1[method]
        inv, cost, cov, out = m["invalidation"], m["cost"], m["coverage"], m["outage"]
        print(f"  {method:15} write → gone p50 {inv['p50_ms']} ms p99 {inv['p99_ms']} ms max {inv['max_ms']} ms "
              f"({inv['samples']} samples, {inv['not_within_1s']} not within 1 s)")
        print(f"  {'':15} store of 1,000: {cost['store_1000_messages_per_reader']:g} messages / "
              f"{cost['store_1000_keys_per_reader']:g} keys per reader, {cost['store_1000_server_bytes']:,} bytes out, "
              f"{cost['store_1000_ms']} ms; strategy of 1,000: {cost['strategy_1000_messages_per_reader']:g} messages "
              f"/ {cost['strategy_1000_keys_per_reader']:g} keys, {cost['strategy_1000_server_bytes']:,} bytes, all gone "
              f"in {cost['strategy_1000_gone_max_ms']} ms; "
              f"promotion: {cost['promotion_messages_per_reader']:g} message(s)")
        print(f"  {'':15} coverage: own stored entry kept {cov['own_store_kept']}/20, stale after feedback "
              f"{cov['own_store_stale_after_invalidation']}; read entries stale after feedback "
              f"{cov['strategy_stale_after_invalidation']}, after promotion {cov['promotion_stale_after_invalidation']}")
        print(f"  {'':15} Redis hung: stops serving in {out['hung_stops_serving_max_ms']} ms (still serving after "
              f"2 s: {out['hung_still_serving_after_2s']}); killed: {out['killed_stops_serving_max_ms']} ms")
    cov = p1["tracking-keys-noloop"]["coverage"]
    print(f"  tracking-keys-noloop  own stored entry kept {cov['own_store_kept']}/20, stale after feedback "
          f"{cov['own_store_stale_after_invalidation']}")
    out = p1["tracking-bcast-lease"]["outage"]
    print(f"  tracking-bcast + the ping lease: Redis hung: stops serving in {out['hung_stops_serving_max_ms']} ms; "
          f"killed: {out['killed_stops_serving_max_ms']} ms")
    p2 = result["part_2"]
    if isinstance(p2, str):
        print(f"  CacheConfig: {p2}")
        return
    print(f"  Part 2 on Redis {p2['redis_version']}: hit p50/p99 (ms) " + ", ".join(
        f"{k} {v['p50']}/{v['p99']}" for k, v in p2["hit_ms"].items()))
    print("  batch 1,000 at 90% hits (ms): " + ", ".join(f"{k} {v}" for k, v in p2["batch_1000_90pct_ms"].items()))
    for m, inv in p2["invalidation"].items():
        print(f"  {m:15} write → gone p50 {inv['p50_ms']} ms p99 {inv['p99_ms']} ms ({inv['not_within_1s']} not within 1 s)")
    print(f"  CacheConfig while Redis hangs 1 s: {p2['cacheconfig_outage']}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--rounds", type=int, default=100, help="invalidation rounds per method")
    parser.add_argument("--readers", type=int, default=4, help="reader processes")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"), help="Redis for Part 1")
    parser.add_argument("--redis74-server", default=default_redis74(),
                        help="a redis-server >= 7.4 for Part 2 (default: $EDGELOOP_REDIS74_SERVER or "
                             "~/.cache/edgeloop/redis74/redis-server)")
    args = parser.parse_args(argv)
    if not args.redis_server:
        raise SystemExit("no redis-server: pass --redis-server")
    result: dict[str, Any] = {"readers": args.readers, "rounds": args.rounds}
    result["part_1"] = part_1(args.redis_server, args.readers, args.rounds)
    if not args.redis74_server:  # also "" given on purpose
        result["part_2"] = "not measured: no redis-server >= 7.4 (--redis74-server or EDGELOOP_REDIS74_SERVER)"
    elif binary_version(args.redis74_server) < (7, 4):
        result["part_2"] = f"not measured: {args.redis74_server} is older than 7.4"
    else:
        result["part_2"] = part_2(args.redis74_server, args.readers, args.rounds)
    report(result)
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
