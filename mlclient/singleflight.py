"""Single flight across processes: many workers missing the same keys cause one backend call.

The first process to miss a set of keys takes a Redis lock named after that set
(``SET lock token NX PX``, unless a key of the set is there by then: a holder stored the set
meanwhile; the prediction cache takes it with its lookup, in the same round trip, when it
can, and tells ``run`` how that went), calls the service and stores the answers (the cache's store
script releases the lock in the same command; ``run`` releases it otherwise); the others, finding
the lock taken, poll the keys (one MGET plus an EXISTS of the lock per poll, backing off
from 1 ms to 20 ms) until the answers are there. A waiter fetches by itself when the lock
disappears with keys still missing (the holder failed or crashed: its lock has a TTL) or when
its patience (the lock's TTL) runs out, so a lost lock holder costs time, never an answer.

Polling rather than pub/sub keeps waiters stateless (no subscriber connection per process)
and survives a holder that dies between storing and publishing; the cost is a few MGETs
during the wait of a backend call.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import redis

from edgeloop.core.redis_scripts import COMPARE_AND_DELETE, LOCK_UNLESS_STORED
from edgeloop.mlclient import metrics
from edgeloop.mlclient.rawredis import RawRedis



class _Tokens:
    """Lock tokens no other holder has: random per process, then counted (``uuid4`` or a random
    token each time costs a system call, ~10-30 µs on a busy machine, against ~1)."""

    def __init__(self) -> None:
        self._pid = 0
        self._base = ""
        self._count = itertools.count()

    def __call__(self) -> str:
        if self._pid != os.getpid():  # first use, or a forked child: not its parent's tokens
            self._pid = os.getpid()
            self._base = os.urandom(12).hex()
        return f"{self._base}{next(self._count)}"


new_token = _Tokens()


@dataclass
class Lock:
    """A held lock. Whoever stores the answers may release it in the same command (the
    cache's store script does) and say so; otherwise ``run`` releases it."""

    key: str
    token: str
    released: bool = False


# Fetch the given keys' values and store them; the lock is None when fetching without it. The
# values are the fetched answers (the cache's: as the service sent them); those polled from Redis
# are the stored bytes.
FetchAndStore = Callable[[Sequence[bytes], "Lock | None"], dict[bytes, Any]]


class SingleFlight:
    def __init__(self, client: redis.Redis, poll_min_s: float = 0.001, poll_max_s: float = 0.02) -> None:
        self._raw = RawRedis(client)
        self._release = client.register_script(COMPARE_AND_DELETE)
        self._acquire = client.register_script(LOCK_UNLESS_STORED)
        self.poll_min_s = poll_min_s
        self.poll_max_s = poll_max_s

    def release(self, lock: Lock) -> None:
        """Release ``lock`` if it is still ours; never raises (else it expires by its TTL)."""
        try:
            self._raw.evalsha(self._release, [lock.key], [lock.token])
        except redis.exceptions.RedisError:
            pass
        lock.released = True

    def run(
        self,
        lock_key: str,
        keys: Sequence[bytes],
        fetch_and_store: FetchAndStore,
        lock_ttl_s: float,
        taken: bool | None = None,
        token: str | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> dict[bytes, Any]:
        """Values of ``keys``: fetched by us under the lock, or stored by whoever holds it.

        ``taken``: whether the caller already tried ``SET NX`` on the lock, with ``token``, and
        got it (None: not tried, ``run`` tries). ``meanwhile`` runs while Redis answers the
        first ``SET NX`` made here."""
        found: dict[bytes, Any] = {}
        remaining = list(keys)
        token = token or new_token()
        deadline = time.monotonic() + lock_ttl_s
        delay = self.poll_min_s
        px = max(1, int(lock_ttl_s * 1000))
        while True:
            if taken is None:
                # Not taken if a holder of this set stored it since the caller looked: then the
                # first poll below finds the keys.
                taken = bool(self._raw.evalsha(self._acquire, [lock_key, remaining[0]], [token, px], meanwhile))
                meanwhile = None
            if taken:
                lock = Lock(lock_key, token)
                try:
                    found.update(fetch_and_store(remaining, lock))
                finally:
                    if not lock.released:
                        self.release(lock)
                return found
            # Someone else is fetching this key set: wait for its answers.
            while True:
                time.sleep(delay)
                delay = min(delay * 2, self.poll_max_s)
                values, locked = self._raw.execute(("MGET", *remaining), ("EXISTS", lock_key))
                found.update((k, v) for k, v in zip(remaining, values) if v is not None)
                remaining = [k for k, v in zip(remaining, values) if v is None]
                if not remaining:
                    metrics.CACHE_SINGLEFLIGHT_WAITS.labels(outcome="filled").inc()
                    return found
                if time.monotonic() > deadline:
                    metrics.CACHE_SINGLEFLIGHT_WAITS.labels(outcome="timeout").inc()
                    found.update(fetch_and_store(remaining, None))
                    return found
                if not locked:
                    break  # the holder is gone with keys still missing: take over (the remainder)
            # Take over the *remaining* keys under the original set's lock name, so the
            # other waiters of this set still find one of us holding it.
            taken = None
