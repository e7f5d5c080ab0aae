"""Per-process resources: the database engine, the session factory and the Redis client.

Created on first use, so in a Celery prefork child they are made after the fork
(``workers/signals.py`` resets them in ``worker_process_init``); an engine or socket
inherited across a fork would be shared by two processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.redis_connect import client_for
from edgeloop.core.settings import Settings, get_settings
from edgeloop.mlclient.cache import make_redis
from edgeloop.schema.db import make_engine, make_sessionmaker


@dataclass
class Resources:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def redis(self) -> Redis:
        return client_for(self.settings, health_check_interval=30, socket_timeout=10, socket_connect_timeout=5)

    @cached_property
    def cache_redis(self) -> Redis:
        """The prediction cache's Redis (``cache_redis_url``), which may evict; never for state."""
        return make_redis(self.settings)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        for name in ("redis", "cache_redis"):
            if name in self.__dict__:
                self.__dict__[name].close()


_lock = threading.Lock()
_resources: Resources | None = None


def resources() -> Resources:
    global _resources
    with _lock:
        if _resources is None:
            _resources = Resources(get_settings())
        return _resources


def reset_resources(close: bool = True) -> None:
    """Forget this process's resources. After a fork pass ``close=False``: the parent still
    owns the inherited connections, and closing them here would close them for it too."""
    global _resources
    with _lock:
        if _resources is not None and close:
            _resources.close()
        elif _resources is not None and "engine" in _resources.__dict__:
            _resources.engine.dispose(close=False)
        _resources = None
