"""The dead-letter stream: events that could not be parsed, validated or stored.

Each entry keeps every field of the original stream entry (as ``f:<name>``), where it came
from and why it was set aside, so that after a fix (of the producer or of the consumer) one
command replays it exactly as it was published.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import redis

from edgeloop.core.events import EVENT_FIELD

ORIGINAL_PREFIX = b"f:"  # a letter's copy of the original entry's fields
LEGACY_PAYLOAD = b"payload"  # letters written by hand (or by older consumers) carry only the event


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str
    reason: str
    detail: str
    original: dict[bytes, bytes]  # the stream entry's fields, as published
    source_stream: str
    source_id: str
    dead_at_ms: int

    @property
    def payload(self) -> bytes:
        return self.original.get(EVENT_FIELD.encode(), b"")


def dead_letter_fields(*, reason: str, detail: str, original: dict[bytes, bytes], source_stream: str,
                       source_id: str, consumer: str) -> dict[bytes | str, bytes | str]:
    fields: dict[bytes | str, bytes | str] = {
        "reason": reason,
        "detail": detail[:1000],
        "source_stream": source_stream,
        "source_id": source_id,
        "consumer": consumer,
        "dead_at_ms": str(int(time.time() * 1000)),
    }
    fields.update((ORIGINAL_PREFIX + name, value) for name, value in original.items())
    return fields


def _original(fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    kept = {k[len(ORIGINAL_PREFIX):]: v for k, v in fields.items() if k.startswith(ORIGINAL_PREFIX)}
    if not kept and LEGACY_PAYLOAD in fields:
        kept = {EVENT_FIELD.encode(): fields[LEGACY_PAYLOAD]}
    return kept


def _s(fields: dict[bytes, bytes], key: str) -> str:
    return fields.get(key.encode(), b"").decode("utf-8", "replace")


class DeadLetters:
    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.stream = stream

    def count(self) -> int:
        return self.client.xlen(self.stream)

    def iter(self, reason: str | None = None, batch: int = 500) -> Iterator[DeadLetter]:
        start = "-"
        while True:
            entries = self.client.xrange(self.stream, min=start, count=batch)
            if not entries:
                return
            for entry_id, fields in entries:
                letter = DeadLetter(
                    entry_id=entry_id.decode(),
                    reason=_s(fields, "reason"),
                    detail=_s(fields, "detail"),
                    original=_original(fields),
                    source_stream=_s(fields, "source_stream"),
                    source_id=_s(fields, "source_id"),
                    dead_at_ms=int(_s(fields, "dead_at_ms") or 0),
                )
                if reason is None or letter.reason == reason:
                    yield letter
            start = "(" + entries[-1][0].decode()

    def replay(self, target_stream: str, reason: str | None = None, limit: int | None = None,
               maxlen: int | None = None) -> int:
        """Move letters back onto the event stream; each move (XADD + XDEL) is one transaction,
        so a crash mid-replay neither loses nor duplicates a letter."""
        moved = 0
        for letter in list(self.iter(reason)):
            if limit is not None and moved >= limit:
                break
            pipe = self.client.pipeline(transaction=True)
            target = letter.source_stream or target_stream
            pipe.xadd(target, letter.original or {EVENT_FIELD: b""}, maxlen=maxlen, approximate=True)
            pipe.xdel(self.stream, letter.entry_id)
            pipe.execute()
            moved += 1
        return moved
