"""The stream consumer: Redis stream → validated results in the store → XACK.

Delivery contract (at-least-once in, exactly-once effect; every entry ends stored or
dead-lettered, whatever its bytes):

1. Entries are read through a consumer group, ``ingest_batch_size`` at a time, from every
   partition of the stream (``Settings.stream_keys``).
2. Each entry is parsed and validated; an entry that fails for any reason (invalid, or an
   error nobody foresaw while converting it) is set aside for the dead-letter stream with its
   reason. One entry never fails its batch.
3. Valid results are inserted in one statement, ``ON CONFLICT (backtest_id) DO NOTHING``,
   and committed. When the database refuses the batch's data, rows are stored one by one and
   the refused ones dead-lettered as ``store_rejected``; when it is down, the batch is held
   in memory and retried after a backoff, without being redelivered.
4. Only then are the dead letters written and every entry of the batch acknowledged, in one
   Redis transaction (MULTI), so a dead letter is never written without its ack or the
   other way round.

A crash anywhere before 4 leaves the entries pending: this consumer re-reads its own
pending entries when it restarts, and any other consumer takes over entries that stayed idle
longer than ``claim_idle_ms`` (XCLAIM, which does not count a delivery). Pending entries are
then read, and so counted as delivered again, one at a time and processed alone, so an entry
that kills the process (out of memory, a native crash) is the only one whose count keeps
growing; past ``max_deliveries`` it is dead-lettered as ``poison`` without being processed
again. A crash between 3 and 4
makes the entries come back once more, and the unique backtest id makes the second insert a
no-op.
"""

from __future__ import annotations

import logging
import operator
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import redis
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core import metrics
from edgeloop.core.errors import InvalidEvent, ServiceUnavailable, TransientError
from edgeloop.core.events import EVENT_FIELD, ParsedEvent, parse_event
from edgeloop.core.redis_connect import is_transient
from edgeloop.core.settings import Settings
import edgeloop.schema.failures as failures
from edgeloop.schema.repository import ensure_strategies, insert_results
from edgeloop.services.dead_letters import dead_letter_fields
from edgeloop.services.feedback import Unconfirmed

log = logging.getLogger(__name__)

REQUIRED_METRIC_COLUMNS = ("roi", "profit", "win_rate", "profit_factor", "sharpe_ratio", "max_drawdown")
Entry = tuple[str, str, dict[bytes, bytes]]  # (stream, entry id, fields)
_EVENT_KEY = EVENT_FIELD.encode()
_NOT_EXTRA = frozenset((*REQUIRED_METRIC_COLUMNS, "total_bets"))
_required_metrics = operator.itemgetter(*REQUIRED_METRIC_COLUMNS)


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 100000}"


def result_row(event: ParsedEvent, entry_id: str, now: datetime) -> dict[str, Any]:
    m = event.metrics
    # Every event has the required metrics (parse_event checks it); most have no other.
    extra = {k: v for k, v in m.items() if k not in _NOT_EXTRA} if len(m) > len(_NOT_EXTRA) else {}
    return {
        **event.columns(),
        "total_bets": int(m["total_bets"]),
        **dict(zip(REQUIRED_METRIC_COLUMNS, _required_metrics(m))),
        "extra_metrics": extra,
        "backtest_score": event.backtest_score,
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
    # The results inserted now (committed and acknowledged once ``poll_once`` returns), with
    # their row ids and serialised events: the feedback flusher sends them without reading
    # them back.
    stored: list[Unconfirmed] = field(default_factory=list)

    def add(self, other: "BatchOutcome") -> "BatchOutcome":
        self.read += other.read
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.stored.extend(other.stored)
        for reason, n in other.dead.items():
            self.dead[reason] = self.dead.get(reason, 0) + n
        return self


class StreamConsumer:
    """One consumer of the group. Many may run in one process (threads) and on many machines."""

    KNOWN_STRATEGIES_MAX = 100_000

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
        # A batch the store could not take (database down): retried from memory, so waiting
        # for the database does not count as a delivery towards ``max_deliveries``.
        self._held: tuple[list[Entry], bool] | None = None
        # Strategy ids this consumer has seen committed to ``strategies``. edgeloop never deletes
        # a strategy row, so a known one needs no insert: most batches then write no strategy row
        # at all (a bulk insert that changes nothing still costs PostgreSQL a quarter of the
        # results' insert).
        self._known_strategies: set[str] = set()

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

    def _read(self, block_ms: int) -> tuple[list[Entry], bool]:
        """The next entries, and whether they were delivered before (our own pending ones)."""
        if self._own_pending:
            redelivered = self._read_own_pending()
            if redelivered:
                return [redelivered], True
            self._own_pending = False
        reply = self.client.xreadgroup(self.group, self.name, {k: ">" for k in self.keys},
                                       count=self.settings.ingest_batch_size, block=block_ms)
        return [(s.decode(), i.decode(), f) for s, items in reply or [] for i, f in items], False

    def _read_own_pending(self) -> Entry | None:
        """The oldest entry this consumer holds without an ack, read alone.

        Reading a pending entry counts a delivery; reading them one at a time, one stream at
        a time, means that when the process dies only the entry it was processing has its
        count grown, and its batch-mates never approach ``max_deliveries``.
        """
        for key in self.keys:
            while True:
                reply = self.client.xreadgroup(self.group, self.name, {key: "0"}, count=1)
                items = reply[0][1] if reply else []
                if not items:
                    break
                entry_id, fields = items[0]
                if fields:
                    return key, entry_id.decode(), fields
                # Trimmed from the stream while pending: nothing left to store, so acknowledge
                # it or it stays pending for ever.
                self.client.xack(key, self.group, entry_id)
        return None

    def delivery_counts(self, entries: list[Entry]) -> dict[str, int]:
        """How often the group delivered each entry (XPENDING), this delivery included."""
        counts: dict[str, int] = {}
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id, _ in entries:
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            ordered = sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
            rows = self.client.xpending_range(stream, self.group, min=ordered[0], max=ordered[-1],
                                              count=len(ids) + 1000, consumername=self.name)
            counts.update((r["message_id"].decode(), r["times_delivered"]) for r in rows)
        return counts

    def _touch_held(self) -> None:
        """Reset the idle time of a held batch (XCLAIM JUSTID does not count a delivery), so
        that no other consumer claims it while we wait for the database."""
        if self._held is None:
            return
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id, _ in self._held[0]:
            by_stream.setdefault(stream, []).append(entry_id)
        try:
            for stream, ids in by_stream.items():
                self.client.xclaim(stream, self.group, self.name, 0, ids, justid=True)
        except redis.RedisError as exc:
            log.debug("could not refresh held entries: %s", exc)

    def claim_abandoned(self) -> int:
        """Take over up to a batch of entries idle longer than ``claim_idle_ms`` (their
        consumer is presumed dead); they are then read as our own pending entries, one at a
        time. XCLAIM JUSTID does not count a delivery: a claimed batch whose new owner dies
        before reaching an entry has not delivered that entry again."""
        claimed = 0
        idle, limit = self.settings.claim_idle_ms, self.settings.ingest_batch_size
        for key in self.keys:
            start = "-"
            while (want := limit - claimed) > 0:
                rows = self.client.xpending_range(key, self.group, min=start, max="+", count=want, idle=idle)
                if not rows:
                    break
                # Our own idle entries are already ours (read by ``_read_own_pending``).
                ids = [r["message_id"] for r in rows if r["consumer"].decode() != self.name]
                # XCLAIM checks the idle time again, so of two consumers claiming at once only
                # one takes each entry. Entries trimmed from the stream meanwhile are dropped
                # from the pending list by Redis 7, or acknowledged when read (``_read_own_pending``).
                if ids:
                    claimed += len(self.client.xclaim(key, self.group, self.name, idle, ids, justid=True))
                if len(rows) < want:
                    break
                start = "(" + rows[-1]["message_id"].decode()
        if claimed:
            metrics.EVENTS_CLAIMED.inc(claimed)
            log.info("claimed %d abandoned entries", claimed)
        return claimed

    # --- one batch ------------------------------------------------------------------------
    def _letter(self, entry: Entry, reason: str, detail: str) -> dict[bytes | str, bytes | str]:
        stream, entry_id, fields = entry
        return dead_letter_fields(reason=reason, detail=detail, original=fields, source_stream=stream,
                                  source_id=entry_id, consumer=self.name)

    def _convert(self, fields: dict[bytes, bytes]) -> ParsedEvent:
        payload = fields.get(_EVENT_KEY)
        if payload is None:
            raise InvalidEvent("missing_event_field", f"entry has no {EVENT_FIELD!r} field")
        return parse_event(payload, max_bytes=self.settings.max_event_bytes)

    def process(self, entries: list[Entry]) -> BatchOutcome:
        started = time.perf_counter()
        outcome = BatchOutcome(read=len(entries))
        now = datetime.now(timezone.utc)
        rows: dict[str, dict[str, Any]] = {}
        origin: dict[str, Entry] = {}
        dead: list[dict[bytes | str, bytes | str]] = []
        for entry in entries:
            try:
                event = self._convert(entry[2])
                row = result_row(event, entry[1], now)
            except InvalidEvent as exc:
                dead.append(self._letter(entry, exc.reason, exc.detail))
                continue
            except MemoryError:
                raise  # not this entry's verdict; if it is, the delivery count will say so
            except Exception as exc:  # noqa: BLE001 - one entry must never fail its batch
                log.warning("entry %s %s: unexpected %s while converting it", entry[0], entry[1],
                            type(exc).__name__, exc_info=True)
                dead.append(self._letter(entry, f"unexpected_error:{type(exc).__name__}", str(exc)))
                continue
            if row["backtest_id"] not in rows:
                rows[row["backtest_id"]] = row
                origin[row["backtest_id"]] = entry

        inserted = self._store(list(rows.values()), origin, dead)
        outcome.inserted = len(inserted)
        stored = []
        for backtest_id, row_id in inserted.items():
            row = rows[backtest_id]
            stored.append(Unconfirmed(row_id, backtest_id, row["strategy_id"], now, row["event_pb"]))
        stored.sort()  # by row id, the first field: oldest first
        outcome.stored = stored
        outcome.duplicates = len(entries) - len(dead) - len(inserted)
        self._dead_letter_and_ack(entries, dead)
        for letter in dead:
            reason = str(letter["reason"])
            outcome.dead[reason] = outcome.dead.get(reason, 0) + 1
            metrics.EVENTS_DEAD_LETTERED.labels(reason).inc()
        metrics.EVENTS_INGESTED.inc(outcome.inserted)
        metrics.EVENTS_DUPLICATE.inc(outcome.duplicates)
        metrics.INGEST_BATCH_SIZE.observe(len(entries))
        metrics.INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)
        return outcome

    def process_redelivered(self, entries: list[Entry]) -> BatchOutcome:
        """Entries read before without an ack: past ``max_deliveries`` they are poison;
        the others are processed one by one, so that only a culprit's count keeps growing."""
        counts = self.delivery_counts(entries)
        limit = self.settings.max_deliveries
        poison = [e for e in entries if counts.get(e[1], 1) > limit]
        outcome = BatchOutcome()
        if poison:
            letters = [self._letter(e, "poison", f"delivered {counts[e[1]]} times without being stored or "
                                                 f"dead-lettered (max_deliveries {limit})") for e in poison]
            self._dead_letter_and_ack(poison, letters)
            log.error("%d poison entries dead-lettered (first: %s %s)", len(poison), poison[0][0], poison[0][1])
            metrics.EVENTS_DEAD_LETTERED.labels("poison").inc(len(poison))
            outcome.add(BatchOutcome(read=len(poison), dead={"poison": len(poison)}))
        first_time = [e for e in entries if counts.get(e[1], 1) <= 1]
        if first_time:
            outcome.add(self.process(first_time))
        for entry in entries:
            if 1 < counts.get(entry[1], 1) <= limit:
                outcome.add(self.process([entry]))
        return outcome

    def _insert(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        known = self._known_strategies
        with self.sessions.begin() as session:
            ensure_strategies(session, [{"strategy_id": r["strategy_id"], "name": r["strategy_name"],
                                         "params": r["params"]} for r in rows if r["strategy_id"] not in known])
            inserted = insert_results(session, rows)
        if len(known) > self.KNOWN_STRATEGIES_MAX:
            known.clear()  # bounded memory; forgetting one only costs an insert that changes nothing
        known.update(r["strategy_id"] for r in rows)  # committed
        return inserted

    def _store(self, rows: list[dict[str, Any]], origin: dict[str, Entry],
               dead: list[dict[bytes | str, bytes | str]]) -> dict[str, int]:
        """Backtest id → row id of each result inserted now."""
        if not rows:
            return {}
        try:
            return self._insert(rows)
        except Exception as exc:  # noqa: BLE001 - classified below; only data errors go further
            self._raise_unless_data(exc)
            log.warning("batch insert refused (%s); storing row by row", failures.message(exc))
        inserted: dict[str, int] = {}
        for row in rows:
            try:
                inserted.update(self._insert([row]))
            except Exception as exc:  # noqa: BLE001 - as above
                self._raise_unless_data(exc)
                dead.append(self._letter(origin[row["backtest_id"]], "store_rejected", failures.message(exc)))
        return inserted

    @staticmethod
    def _raise_unless_data(exc: Exception) -> None:
        kind = failures.classify(exc)
        if kind is failures.StoreFailure.UNAVAILABLE:
            raise ServiceUnavailable(f"database: {failures.message(exc)}") from exc
        if kind is not failures.StoreFailure.DATA:
            raise exc

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
        """Retry a held batch, else claim abandoned entries when due, else read new ones;
        process what came."""
        if self._held is not None:
            (entries, redelivered), self._held = self._held, None
        else:
            entries, redelivered = self._next_entries(self.settings.ingest_block_ms if block_ms is None else block_ms)
        if not entries:
            return BatchOutcome()
        try:
            return self.process_redelivered(entries) if redelivered else self.process(entries)
        except (redis.RedisError, TransientError) as exc:
            if isinstance(exc, TransientError) or is_transient(exc):
                self._held = (entries, redelivered)
            else:
                self._own_pending = True
            raise
        except BaseException:
            self._own_pending = True  # read them again: the delivery count decides their fate
            raise

    def _next_entries(self, block_ms: int) -> tuple[list[Entry], bool]:
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.settings.claim_idle_ms / 2000.0
            if self.claim_abandoned():
                self._own_pending = True
        return self._read(block_ms)

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
                backoff = min(30.0, max(0.5, backoff * 2))
                metrics.INGEST_ERRORS.labels(type(exc).__name__).inc()
                log.warning("ingest consumer %s: %s; retrying in %.1fs", self.name, exc, backoff)
                self._wait(stop, backoff)

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Back off, keeping a held batch ours (well within ``claim_idle_ms``)."""
        deadline = time.monotonic() + seconds
        step = self.settings.claim_idle_ms / 3000.0
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            self._touch_held()
            stop.wait(min(left, step))
