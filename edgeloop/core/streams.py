"""How far a consumer group is behind on a Redis stream: read by the workers' metrics endpoint
and by ``edgeloop ml status``."""

from __future__ import annotations

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class StreamBacklog:
    length: int  # entries in the stream
    lag: int  # entries not yet delivered to the group
    pending: int  # entries delivered and not yet acknowledged


def stream_backlog(client: redis.Redis, key: str, group: str) -> StreamBacklog:
    """The backlog of ``group`` on ``key`` (all zero while the stream does not exist). Where
    Redis cannot say the lag (no such group yet, or an entry was deleted inside the group's
    range), it is the stream's length: an upper bound."""
    try:
        groups = client.xinfo_groups(key)
    except redis.ResponseError:  # no such stream yet
        return StreamBacklog(0, 0, 0)
    length = int(client.xlen(key))
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == group:
            lag = g.get("lag")
            return StreamBacklog(length, int(lag if lag is not None else length), int(g["pending"]))
    return StreamBacklog(length, length, 0)
