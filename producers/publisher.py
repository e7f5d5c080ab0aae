"""Publish `BacktestFinished` events: one XADD each, or many pipelined.

A producer in another language does the same with one command::

    redis-cli XADD backtests.finished '*' event '{"schema_version":1,"backtest_id":"…",…}'
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Callable, Iterable, Mapping

import redis

from edgeloop.core.errors import InvalidEvent
from edgeloop.core.events import EVENT_FIELD, encode_event, parse_event
from edgeloop.core.redis_connect import client_for
from edgeloop.core.settings import Settings, get_settings
from edgeloop.proto import events_pb2

Event = events_pb2.BacktestFinished | Mapping[str, Any] | str


def partition_for(strategy_id: str, keys: list[str]) -> str:
    """The stream key for a strategy: stable across processes and machines (crc32, not hash())."""
    if len(keys) == 1:
        return keys[0]
    return keys[zlib.crc32(strategy_id.encode()) % len(keys)]


def _payload(event: Event, max_bytes: int) -> tuple[str, str]:
    """(strategy id, JSON payload), validated by the consumer's own rules: an event the
    consumers would dead-letter raises ``InvalidEvent`` here and is not sent."""
    if isinstance(event, events_pb2.BacktestFinished):
        payload = encode_event(event)
    elif isinstance(event, str):
        payload = event
    else:
        payload = json.dumps(dict(event), separators=(",", ":"))
    parsed = parse_event(payload, max_bytes=max_bytes)
    return parsed.message.strategy_id, payload


class Publisher:
    def __init__(self, client: redis.Redis | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.client = client or client_for(self.settings)
        self.keys = self.settings.stream_keys

    def publish(self, event: Event) -> str:
        """XADD one event; returns the stream entry id. Raises ``InvalidEvent`` for an event
        the consumers would refuse (with the same limit on its size)."""
        sid, payload = _payload(event, self.settings.max_event_bytes)
        entry = self.client.xadd(partition_for(sid, self.keys), {EVENT_FIELD: payload},
                                 maxlen=self.settings.stream_maxlen, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else entry

    def publish_many(self, events: Iterable[Event], chunk: int = 500,
                     on_invalid: Callable[[int, InvalidEvent], None] | None = None) -> int:
        """Pipelined XADD, ``chunk`` per round trip; returns how many were sent. An invalid
        event raises ``InvalidEvent`` and stops the run there (what came before it in its chunk
        is not sent), unless ``on_invalid`` is given: then it is told the event's position
        (from 0) and why, and the event is skipped."""
        count = 0
        pipe = self.client.pipeline(transaction=False)
        for position, event in enumerate(events):
            try:
                sid, payload = _payload(event, self.settings.max_event_bytes)
            except InvalidEvent as exc:
                if on_invalid is None:
                    raise
                on_invalid(position, exc)
                continue
            pipe.xadd(partition_for(sid, self.keys), {EVENT_FIELD: payload},
                      maxlen=self.settings.stream_maxlen, approximate=True)
            count += 1
            if count % chunk == 0:
                pipe.execute()
        pipe.execute()
        return count
