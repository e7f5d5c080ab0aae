"""Redis leases: a key set with ``SET NX PX`` holding a random token, released only by the
holder (compare-and-delete in Lua, so a lease that expired and was taken by someone else is
never deleted by its previous owner).

Used for the lifecycle's status changes (a ranking refresh and a discovery run do not decide
about the same strategy at once).
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import redis

from edgeloop.core.errors import ServiceUnavailable, TransientError
from edgeloop.core.redis_connect import is_transient
from edgeloop.core.redis_scripts import COMPARE_AND_DELETE



class LockBusy(TransientError):
    """Someone else holds the lease; try again later."""


class Lease:
    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = uuid.uuid4().hex

    def acquire(self) -> bool:
        try:
            return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except redis.RedisError as exc:
            if is_transient(exc):  # e.g. a full main Redis refusing writes: wait, do not fail for good
                raise ServiceUnavailable(f"cannot take lease {self.key} in Redis: {exc}") from exc
            raise

    def release(self) -> None:
        self.client.eval(COMPARE_AND_DELETE, 1, self.key, self.token)


@contextmanager
def try_lease(client: redis.Redis, name: str, ttl_s: float, wait_s: float = 0.0) -> Iterator[Lease | None]:
    """Hold ``edgeloop:lock:<name>`` for the block if it is free within ``wait_s``; None if not
    (someone else works on it: a redelivered or duplicated message, say)."""
    held = Lease(client, f"edgeloop:lock:{name}", ttl_s)
    deadline = time.monotonic() + wait_s
    while not held.acquire():
        if time.monotonic() >= deadline:
            yield None
            return
        time.sleep(0.05)
    try:
        yield held
    finally:
        held.release()


@contextmanager
def lease(client: redis.Redis, name: str, ttl_s: float, wait_s: float = 0.0) -> Iterator[Lease]:
    """Hold ``edgeloop:lock:<name>`` for the block; ``LockBusy`` if it is not free within ``wait_s``."""
    with try_lease(client, name, ttl_s, wait_s) as held:
        if held is None:
            raise LockBusy(f"{name} is locked by another process")
        yield held
