"""The process's ML clients: the plain gRPC client and the cached client in front of it.

Each is made on first use (``per_process.PerProcess``), so a Celery prefork child makes its
own after the fork. They live here rather than beside their classes because the cached client
is made from the plain one, and forgetting the plain one must forget the cached one too: this
module imports both, and ``client.py`` and ``cache.py`` import neither.
"""

from __future__ import annotations

from edgeloop.mlclient.cache import CachedMLClient
from edgeloop.mlclient.client import MLClient
from edgeloop.mlclient.per_process import PerProcess

_client: PerProcess[MLClient] = PerProcess(MLClient, close=MLClient.close)
_cached: PerProcess[CachedMLClient] = PerProcess(lambda: CachedMLClient(get_ml_client()), close=CachedMLClient.close)


def get_ml_client() -> MLClient:
    """The process's client, created on first use (after any fork)."""
    return _client.get()


def get_cached_ml_client() -> CachedMLClient:
    """The process's cached client, created on first use (after any fork)."""
    return _cached.get()


def reset_ml_client() -> None:
    """Forget both clients (after a fork, or when settings changed); the next call makes new ones."""
    _client.reset()
    _cached.reset()

