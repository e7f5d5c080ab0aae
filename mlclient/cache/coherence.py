"""Keeping every process's level 1 coherent: one pub/sub subscriber thread per process.

``invalidation.py`` publishes on ``{prefix}:inval`` whenever it makes shared entries stale:

* ``g <generation>``: a model was promoted or rolled back (the generation is Redis's time of the
  publication, in ns: ``redis_scripts.PUBLISH_GENERATION``);
  the process forgets its model catalogue (the keys of the new answers name a new token) and
  empties level 1;
* ``s <time ns> <JSON list of strategy ids>``: feedback about these strategies; their entries
  leave level 1.

**The bound.** The thread sends ``PING <monotonic time>`` on its subscriber connection every
quarter of ``cache_local_bound_s``. Redis answers a ping after every message it delivered to
that connection before it, in order, so once the pong of a ping sent at *t* is read, every
invalidation published before *t* has been applied. Level 1 serves only while the last pong
read is of a ping sent less than ``cache_local_bound_s`` ago (``serving()``): an invalidation
published at *t* is in effect everywhere by *t* + bound, or that process's level 1 has stopped
answering. The same rule covers Redis going away (no pong: level 1 stops within the bound and
is emptied once the connection error is seen), a subscriber that fell behind, and a process
too busy to read. After the subscription is (re)made, level 1 and the catalogue are emptied:
what was published while nobody listened is lost to pub/sub.

Why pub/sub rather than Redis client tracking (RESP2 redirect, BCAST, or redis-py's
``CacheConfig``): see docs/cache.md, measured by ``bench/cache_coherence.py``. In short,
tracking has no heartbeat (a hung Redis leaves level 1 serving, unbounded), it speaks in keys
(a store of 1,000 entries announces 1,000 keys to each process that read them, or to every
process with BCAST; pub/sub sends nothing for a store), a process's own store evicts the answers
it just kept, and a ``CacheConfig`` hit costs as much redis-py as a GET.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from typing import Iterable

import redis

from edgeloop.mlclient import metrics
from edgeloop.mlclient.cache.local import LocalCache
from edgeloop.mlclient.catalogue import ModelCatalogue

log = logging.getLogger(__name__)

GENERATION = b"g"
STRATEGIES = b"s"


def channel(prefix: str) -> str:
    return f"{prefix}:inval"


def strategies_message(strategy_ids: Iterable[str]) -> str:
    return f"s {time.time_ns()} {json.dumps(list(strategy_ids))}"


class Coherence:
    """The subscriber of one process: applies invalidations to ``local`` and says whether it may serve."""

    def __init__(self, client: redis.Redis, prefix: str, local: LocalCache, catalogue: ModelCatalogue,
                 bound_s: float) -> None:
        self.client = client
        self.channel = channel(prefix)
        self.local = local
        self.catalogue = catalogue
        self.bound_s = bound_s
        self.ping_every_s = bound_s / 4
        self._pinged_at = -1e18  # send time of the newest ping whose pong was read
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        # Publish-to-applied delays of the invalidations this process received (seconds), for
        # the tests and bench/cache.py; the histogram is the operator's view.
        self.delays: collections.deque[float] = collections.deque(maxlen=10_000)

    def serving(self) -> bool:
        """True while level 1 may answer (see the module docstring); starts the thread if needed."""
        if time.monotonic() - self._pinged_at < self.bound_s:
            return True
        self.start()
        return False

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pinged_at = -1e18
                self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="cache-invalidation", daemon=True)
            self._thread.start()

    def wait_serving(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.serving():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(2)

    # --- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            pubsub = self.client.pubsub()
            try:
                self._listen(pubsub)
            except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                self._pinged_at = -1e18
                self.local.clear()
                log.debug("prediction cache: invalidation channel lost (%s); level 1 off until it is back", exc)
                stop.wait(min(1.0, self.bound_s * 5))
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - a connection that failed may not close cleanly
                    pass

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        pubsub.subscribe(self.channel)
        subscribed = False
        next_ping = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                pubsub.ping(repr(now))
                next_ping = now + self.ping_every_s
            message = pubsub.get_message(timeout=max(0.0, next_ping - time.monotonic()))
            if message is None:
                continue
            kind = message["type"]
            if kind == "pong":
                if subscribed:
                    self._pinged_at = float(message["data"])
            elif kind == "subscribe":
                # Whatever was published while nobody listened is lost: start empty.
                self.local.clear()
                self.catalogue.expire()
                subscribed = True
            elif kind == "message":
                self._apply(message["data"])

    def _apply(self, data: bytes) -> None:
        kind, _, rest = data.partition(b" ")
        if kind == GENERATION:
            generation = int(rest)
            self.catalogue.observe_generation(generation)
            self.catalogue.expire()
            self.local.clear()
            sent_ns = generation
        elif kind == STRATEGIES:
            sent, _, ids = rest.partition(b" ")
            self.local.invalidate_strategies(json.loads(ids))
            sent_ns = int(sent)
        else:
            return
        delay = max(0.0, (time.time_ns() - sent_ns) / 1e9)
        self.delays.append(delay)
        metrics.CACHE_INVALIDATION_DELAY.observe(delay)
