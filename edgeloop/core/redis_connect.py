"""Every edgeloop Redis client comes from here, so one URL format works everywhere.

``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py as they are. A Sentinel
group is named the way Celery and kombu name it, so the same ``EDGELOOP_REDIS_URL`` serves
the broker, the result backend, the event stream, the locks and the cache:

    sentinel://[:password@]host1:26379/0;sentinel://host2:26379;sentinel://host3:26379

(the database and password are read from the first URL; ``EDGELOOP_REDIS_SENTINEL_MASTER``
names the group). The client asks the sentinels for the current master on every new
connection, so after a failover the next command goes to the promoted replica; a command
in flight when the old master went away raises ``ConnectionError`` like any Redis outage,
which every caller already retries or waits out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from edgeloop.core.errors import ConfigurationError

if TYPE_CHECKING:  # settings.py imports this module
    from edgeloop.core.settings import Settings

SENTINEL_PORT = 26379

# A Redis that cannot take this command now but may later: away or slow (connection, timeout,
# LOADING), full under noeviction (OOM: the main Redis must never evict, so it refuses writes
# instead), a replica that was the master a moment ago (READONLY), a master that lost its
# replicas (MASTERDOWN), a slot in migration (TRYAGAIN). MISCONF (a failed snapshot refusing
# writes) has no class of its own in redis-py.
_TRANSIENT_CLASSES = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
)


def is_transient(exc: BaseException) -> bool:
    """True for a Redis error worth backing off and retrying (see ``_TRANSIENT_CLASSES``)."""
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("MISCONF")


def sentinel_node_options() -> dict[str, Any]:
    """How to talk to one sentinel: short timeouts and no retries, so that a dead sentinel is
    skipped for the next one at once (redis-py's default retries a refused connection with
    backoff, which made every new connection wait ~4 s per dead sentinel listed first).
    Also given to kombu and Celery's result backend as ``sentinel_kwargs``."""
    return {"socket_connect_timeout": 1.0, "socket_timeout": 1.0, "retry": Retry(NoBackoff(), 0)}


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def sentinel_nodes(url: str) -> tuple[list[tuple[str, int]], int, str | None, str | None]:
    """(sentinel addresses, db, username, password) of a ``sentinel://…;sentinel://…`` URL."""
    parts = [urlsplit(u.strip()) for u in url.split(";") if u.strip()]
    nodes = [(p.hostname, p.port or SENTINEL_PORT) for p in parts if p.scheme == "sentinel" and p.hostname]
    if not parts or len(nodes) < len(parts):
        raise ConfigurationError(f"not a Sentinel URL list (sentinel://host:port;sentinel://…): {url!r}")
    first = parts[0]
    db_text = first.path.strip("/") or "0"
    if not db_text.isdigit():
        raise ConfigurationError(f"Redis database must be a number, not {db_text!r}: {url!r}")
    user = unquote(first.username) if first.username else None
    password = unquote(first.password) if first.password else None
    return nodes, int(db_text), user, password


def connect(url: str, master: str = "mymaster", **options: Any) -> redis.Redis:
    """A client for ``url``; ``options`` are redis-py's (timeouts, retry, health checks)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    nodes, db, user, password = sentinel_nodes(url)
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_node_options())
    client: redis.Redis = sentinel.master_for(master, db=db, username=user, password=password, **options)
    return client


def slot_owner(url: str, key: str, **options: Any) -> redis.Redis:
    """A client of the Redis Cluster node (reached through ``url``, any node) that serves ``key``'s
    slot: commands on keys of that slot, multi-key ones and scripts included, work on it as on a
    single Redis. Resolved once; a slot moved by a failover or resharding is not followed."""
    # Only a cluster-configured cache needs redis-py's cluster client, which is heavy to import.
    from redis.cluster import RedisCluster

    seed = urlsplit(url)
    cluster = RedisCluster.from_url(url, socket_connect_timeout=options.get("socket_connect_timeout"))
    try:
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        host, port = node.host, int(node.port)
    finally:
        cluster.close()
    return redis.Redis(host=host, port=port, ssl=seed.scheme == "rediss",
                       username=unquote(seed.username) if seed.username else None,
                       password=unquote(seed.password) if seed.password else None, **options)


def client_for(settings: Settings, url: str | None = None, **options: Any) -> redis.Redis:
    """``connect`` with the settings' Redis URL (or ``url``) and Sentinel group name."""
    return connect(url or settings.redis_url, settings.redis_sentinel_master, **options)
