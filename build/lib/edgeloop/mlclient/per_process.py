"""One lazily made object per process: the ML client, the cached client.

Made on first use, so a process that forks (Celery prefork) makes its own in the child; a
child that inherited one made before the fork (no ``reset``) gets a fresh one too, because
the owner's pid is checked. The inherited object is dropped without ``close()``: closing a
gRPC channel or a socket that belongs to the parent would disturb the parent.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    def __init__(self, make: Callable[[], T], close: Callable[[T], None] | None = None) -> None:
        self._make = make
        self._close = close
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid = 0

    def get(self) -> T:
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value, self._pid = self._make(), os.getpid()
            return self._value

    def reset(self) -> None:
        """Forget the object (closing it if this process made it); the next ``get`` makes a new one."""
        with self._lock:
            value, self._value = self._value, None
            if value is not None and self._close is not None and self._pid == os.getpid():
                try:
                    self._close(value)
                except Exception:  # noqa: BLE001 - a resource half-broken by a fork may not close cleanly
                    pass
