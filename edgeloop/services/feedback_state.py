"""Which feedback flushers are backing off, and why, where `edgeloop feedback status` reads it.

One Redis hash, ``edgeloop:feedback:backoff``, a field per flusher that is backing off. Redis
rather than a database row: every worker and the CLI already reach it; no migration; and it
keeps writes off the store of record, where on SQLite every write takes the database lock that
the ML service (storing feedback into the same file) needs. One hash rather than a key per
flusher: one HGETALL reads it, and it is a single key on Redis Cluster.

A flusher writes its field when it starts backing off and on every retry while it does (so
``next_try_at`` is current), and deletes it when feedback goes through again. Each field
carries its own expiry, a little after the next try: a worker that died mid-backoff stops
being reported instead of "backing off" for ever, and the key's TTL, renewed by every write,
lets Redis drop the hash itself once nobody writes it. Losing it (an eviction, a Redis restart)
loses only the report: the next retry writes it again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass

import redis

log = logging.getLogger(__name__)

KEY = "edgeloop:feedback:backoff"
GRACE_S = 60.0  # how long past its next try a silent flusher is still reported


@dataclass(frozen=True, slots=True)
class Backoff:
    flusher: str  # host:pid:thread of the flusher
    code: str  # gRPC status code's name of the last failure
    since: float  # epoch seconds: when this flusher started backing off for this code
    next_try_at: float  # epoch seconds
    error: str  # the last failure's message

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return (f"backing off: {self.code} since {since} ({now - self.since:.0f} s), "
                f"next try in {max(0.0, self.next_try_at - now):.0f} s: {self.error}")


class BackoffBoard:
    """Reads and writes the hash. Redis errors are logged, never raised: reporting a backoff
    must not turn into a reason to stop flushing."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def publish(self, state: Backoff) -> None:
        expires = state.next_try_at + GRACE_S
        value = json.dumps({**asdict(state), "expires_at": expires})
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(KEY, state.flusher, value)
            pipe.expire(KEY, int(expires - time.time()) + 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("feedback backoff state not published: %s", exc)

    def clear(self, flusher: str) -> None:
        try:
            self.client.hdel(KEY, flusher)
        except redis.RedisError as exc:
            log.debug("feedback backoff state not cleared: %s", exc)

    def read(self, now: float | None = None) -> list[Backoff]:
        """Flushers backing off now, oldest first (raises ``redis.RedisError``: the caller says
        the state is unknown)."""
        now = time.time() if now is None else now
        out = []
        for raw in self.client.hgetall(KEY).values():
            fields = json.loads(raw)
            if fields.pop("expires_at") >= now:
                out.append(Backoff(**fields))
        return sorted(out, key=lambda b: (b.since, b.flusher))
