"""Write-behind: the cache's stores run on a thread of their own, so an answer does not wait for
Redis to store it.

Storing 100 fetched answers costs Redis ~0.2 ms of script work and the caller its round trip; on
a busy machine the write alone often costs as much again, because the Redis process woken by it
runs on the writer's core first (``bench/cache.py``). Nothing in the answer depends on it. So
``submit`` hands the store to one thread per client and returns; the thread runs the stores in
order. What the cache promises about them (docs/cache.md, *Round trips*):

* **in order with this client's own lookups**: a lookup that goes to Redis first waits for the
  stores submitted before it of any key it asks for (``wait``), so a process never misses in
  Redis what it just fetched. A batch answered from level 1 does not wait, nor one asking for
  other keys;
* **other processes** asking for the same keys before the store has run find their
  single-flight lock still held (it is released by the store script, with the entries) and
  wait for the entries instead of calling the service;
* a failed store is counted (``bypass{reason="store_failed"}``) and releases its lock, as
  before; ``stats()`` and ``close()`` wait for the stores first.

The thread is made on first use, and again in a forked child (a thread does not survive a fork).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import AbstractSet, Callable, Iterable

log = logging.getLogger(__name__)


def _logged(job: Callable[[], object]) -> None:
    try:
        job()
    except Exception:  # noqa: BLE001 - a failed store must not fail the lookup that waits for it
        log.exception("prediction cache: a job of the writer thread failed")


class StoreWriter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        # The stores submitted and not known to have run, with their keys, oldest first.
        self._pending: list[tuple[Future[None], AbstractSet[bytes]]] = []

    def submit(self, store: Callable[[], object], keys: AbstractSet[bytes]) -> None:
        """Run ``store`` (of ``keys``) on the writer thread, after the stores submitted before
        it. It should count its own failures; an exception is logged, never raised to a waiter."""
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                # First use, or a forked child: the parent's thread is not here (and its
                # executor must not be shut down from the child).
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-store")
                self._pid = os.getpid()
                self._pending = []
            self._pending = [p for p in self._pending if not p[0].done()]
            self._pending.append((self._executor.submit(_logged, store), keys))

    def wait(self, keys: Iterable[bytes] | None = None) -> None:
        """Return once every store submitted so far of any of ``keys`` (None: of any key) has run."""
        if not self._pending or self._pid != os.getpid():
            return
        with self._lock:
            pending = self._pending
        for future, stored in reversed(pending):  # stores run in order: the newest that matters
            if not future.done() and (keys is None or not stored.isdisjoint(keys)):
                future.result()
                return

    def close(self) -> None:
        self.wait()
        with self._lock:
            if self._executor is not None and self._pid == os.getpid():
                self._executor.shutdown(wait=True)
            self._executor = None
