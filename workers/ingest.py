"""The stream consumer: Redis stream → validated results in the store → XACK.

Delivery contract (at-least-once in, exactly-once effect):

1. Entries are read through a consumer group, ``ingest_batch_size`` at a time, from every
   partition of the stream (``Settings.stream_keys``).
2. Each entry is parsed and validated; an invalid one is set aside for the dead-letter
   stream with its reason.
3. Valid results are inserted in one statement, ``ON CONFLICT (backtest_id) DO NOTHING``,
   and committed.
4. Only then are the dead letters written and every entry of the batch acknowledged, in one
   Redis transaction (MULTI), so a dead letter is never written without its ack or the
   other way round.

A crash anywhere before 4 leaves the entries pending: this consumer re-reads its own
pending entries when it restarts, and any other consumer claims entries that stayed idle
longer than ``claim_idle_ms`` (XAUTOCLAIM). A crash between 3 and 4 makes the entries come
back once more, and the unique backtest id makes the second insert a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import redis
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, InterfaceError
from sqlalchemy.orm import Session, sessionmaker

from edgeloop import metrics
from edgeloop.errors import InvalidEvent, ServiceUnavailable, TransientError
from edgeloop.redis_connect import is_transient
from edgeloop.events import EVENT_FIELD, ParsedEvent, encode_event, parse_event
from edgeloop.settings import Settings
from proto import events_pb2
from schema.repository import ensure_strategies, insert_results
from workers.dead_letters import dead_letter_fields

log = logging.getLogger(__name__)

REQUIRED_METRIC_COLUMNS = ("roi", "profit", "win_rate", "profit_factor", "sharpe_ratio", "max_drawdown")
Entry = tuple[str, str, dict[bytes, bytes]]  # (stream, entry id, fields)


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 100000}"


def result_row(event: ParsedEvent, entry_id: str, now: datetime) -> dict[str, Any]:
    m = event.metrics
    extra = {k: v for k, v in m.items() if k not in REQUIRED_METRIC_COLUMNS and k != "total_bets"}
    return {
        **event.columns(),
        "total_bets": int(m["total_bets"]),
        **{k: m[k] for k in REQUIRED_METRIC_COLUMNS},
        "extra_metrics": extra,
        "backtest_score": event.backtest_score,
        "ml_feedback_submitted": False,
        "event_pb": event.message.SerializeToString(),
        "stream_entry_id": entry_id,
        "finished_at": event.finished_at,
        "received_at": now,
    }


@dataclass
class BatchOutcome:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    dead: dict[str, int] = field(default_factory=dict)


class StreamConsumer:
    """One consumer of the group. Many may run in one process (threads) and on many machines."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        sessions: sessionmaker[Session],
        settings: Settings,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.settings = settings
        self.name = name or default_consumer_name()
        self.keys = settings.stream_keys
        self.group = settings.consumer_group
        self._own_pending = True  # first read our own pending entries (a restart after a crash)
        self._next_claim = 0.0

    # --- Redis side ---------------------------------------------------------------------
    def ensure_groups(self) -> None:
        """Create the group on every partition; from id 0 so events published before the
        first worker started are not skipped."""
        for key in self.keys:
            try:
                self.client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _read(self, block_ms: int) -> list[Entry]:
        count = self.settings.ingest_batch_size
        if self._own_pending:
            reply = self.client.xreadgroup(self.group, self.name, {k: "0" for k in self.keys}, count=count)
            entries = [(s.decode(), i.decode(), f) for s, items in reply for i, f in items if f]
            # Pending entries trimmed from the stream meanwhile come back without fields: there
            # is nothing left to store, so acknowledge them or they stay pending for ever.
            for stream, items in reply:
                gone = [i for i, f in items if not f]
                if gone:
                    self.client.xack(stream, self.group, *gone)
            if entries:
                return entries
            self._own_pending = False
        reply = self.client.xreadgroup(self.group, self.name, {k: ">" for k in self.keys}, count=count,
                                       block=block_ms)
        return [(s.decode(), i.decode(), f) for s, items in reply or [] for i, f in items]

    def claim_abandoned(self) -> list[Entry]:
        """XAUTOCLAIM entries idle longer than ``claim_idle_ms`` (their consumer is presumed dead)."""
        claimed: list[Entry] = []
        for key in self.keys:
            start = "0-0"
            while len(claimed) < self.settings.ingest_batch_size:
                reply = self.client.xautoclaim(key, self.group, self.name, self.settings.claim_idle_ms,
                                               start_id=start, count=self.settings.ingest_batch_size)
                start, items = reply[0], reply[1]
                claimed.extend((key, i.decode(), f) for i, f in items if f is not None)
                # Entries deleted from the stream while pending (trimmed) come back as ids we
                # can only acknowledge; Redis 7 drops them from the PEL itself.
                if start in (b"0-0", "0-0"):
                    break
        if claimed:
            metrics.EVENTS_CLAIMED.inc(len(claimed))
            log.info("claimed %d abandoned entries", len(claimed))
        return claimed

    # --- one batch ------------------------------------------------------------------------
    def process(self, entries: list[Entry]) -> BatchOutcome:
        started = time.perf_counter()
        outcome = BatchOutcome(read=len(entries))
        now = datetime.now(timezone.utc)
        rows: dict[str, dict[str, Any]] = {}
        strategies: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for stream, entry_id, fields in entries:
            payload = fields.get(EVENT_FIELD.encode())
            try:
                if payload is None:
                    raise InvalidEvent("missing_event_field", f"entry has no {EVENT_FIELD!r} field")
                event = parse_event(payload, max_bytes=self.settings.max_event_bytes)
            except InvalidEvent as exc:
                dead.append(dead_letter_fields(reason=exc.reason, detail=exc.detail, payload=payload or b"",
                                               source_stream=stream, source_id=entry_id, consumer=self.name))
                continue
            rows.setdefault(event.message.backtest_id, result_row(event, entry_id, now))
            strategies.append({"strategy_id": event.message.strategy_id,
                               "name": event.message.strategy_name, "params": event.params})

        inserted = self._store(list(rows.values()), strategies, dead)
        outcome.inserted = len(inserted)
        outcome.duplicates = len(entries) - len(dead) - len(inserted)
        self._dead_letter_and_ack(entries, dead)
        for letter in dead:
            outcome.dead[letter["reason"]] = outcome.dead.get(letter["reason"], 0) + 1
            metrics.EVENTS_DEAD_LETTERED.labels(letter["reason"]).inc()
        metrics.EVENTS_INGESTED.inc(outcome.inserted)
        metrics.EVENTS_DUPLICATE.inc(outcome.duplicates)
        metrics.INGEST_BATCH_SIZE.observe(len(entries))
        metrics.INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)
        return outcome

    def _store(self, rows: list[dict[str, Any]], strategies: list[dict[str, Any]],
               dead: list[dict[str, Any]]) -> set[str]:
        if not rows:
            return set()
        try:
            with self.sessions.begin() as session:
                ensure_strategies(session, strategies)
                return insert_results(session, rows)
        except (DataError, IntegrityError) as exc:
            # A row the database refuses (a value too long, …) must not block the batch:
            # store row by row and dead-letter the ones refused.
            log.warning("batch insert refused (%s); storing row by row", type(exc).__name__)
            return self._store_one_by_one(rows, dead)

    def _store_one_by_one(self, rows: list[dict[str, Any]], dead: list[dict[str, Any]]) -> set[str]:
        inserted: set[str] = set()
        for row in rows:
            try:
                with self.sessions.begin() as session:
                    ensure_strategies(session, [{"strategy_id": row["strategy_id"], "name": row["strategy_name"],
                                                 "params": row["params"]}])
                    inserted |= insert_results(session, [row])
            except (DataError, IntegrityError) as exc:
                # Replay may put it on any partition: the consumer reads them all.
                dead.append(dead_letter_fields(
                    reason="store_rejected", detail=str(getattr(exc, "orig", exc)).splitlines()[0],
                    payload=encode_event(events_pb2.BacktestFinished.FromString(row["event_pb"])).encode(),
                    source_stream=self.keys[0],
                    source_id=row["stream_entry_id"], consumer=self.name))
        return inserted

    def _dead_letter_and_ack(self, entries: list[Entry], dead: list[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for letter in dead:
            pipe.xadd(self.settings.dead_letter_stream, letter, maxlen=self.settings.dead_letter_maxlen,
                      approximate=True)
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id, _ in entries:
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        pipe.execute()

    # --- the loop -------------------------------------------------------------------------
    def poll_once(self, block_ms: int | None = None) -> BatchOutcome:
        """Claim abandoned entries when due, else read new ones; process what came."""
        now = time.monotonic()
        entries: list[Entry] = []
        if now >= self._next_claim:
            self._next_claim = now + self.settings.claim_idle_ms / 2000.0
            entries = self.claim_abandoned()
        if not entries:
            entries = self._read(self.settings.ingest_block_ms if block_ms is None else block_ms)
        if not entries:
            return BatchOutcome()
        try:
            outcome = self.process(entries)
        except (OperationalError, InterfaceError) as exc:
            self._own_pending = True  # our entries stay pending; read them again when it is back
            raise ServiceUnavailable(f"database: {str(exc.orig).strip().splitlines()[0]}") from exc
        return outcome

    def run(self, stop: threading.Event, after_batch: Callable[[BatchOutcome], None] | None = None) -> None:
        """Consume until ``stop`` is set, calling ``after_batch`` after every poll (even an
        empty one); transient failures back off (up to 30 s) and retry."""
        backoff = 0.0
        while not stop.is_set():
            try:
                if backoff:
                    self.ensure_groups()  # the stream may have been deleted while we were away
                outcome = self.poll_once()
                backoff = 0.0
                if after_batch is not None:
                    after_batch(outcome)
            except (redis.RedisError, TransientError) as exc:
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    self.ensure_groups()
                    continue
                # A full main Redis (OOM under noeviction), READONLY, MISCONF…: there, but
                # refusing for now, like one that is away.
                if isinstance(exc, redis.RedisError) and not is_transient(exc):
                    raise
                self._own_pending = True
                backoff = min(30.0, max(0.5, backoff * 2))
                metrics.INGEST_ERRORS.labels(type(exc).__name__).inc()
                log.warning("ingest consumer %s: %s; retrying in %.1fs", self.name, exc, backoff)
                stop.wait(backoff)
