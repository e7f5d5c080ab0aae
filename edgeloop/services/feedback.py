"""Feedback flush: stored results the ML service has not confirmed → SubmitBacktestFeedback.

Each call runs in its own short transaction: claim a batch, make one call, mark what the
service confirmed, commit. A consumer submits the results it has just stored from what it
still holds (``flush_stored``: their row ids and serialised events; the claim reads back ids
only); the oldest unconfirmed results in the table, whoever stored them, are read back and
submitted by ``flush_if_due`` (results left behind by an outage, or stored by a process that
died). Either way the events go out as the bytes stored (``event_pb``), never decoded and
serialised again (``edgeloop.mlclient.client.feedback_request_bytes``), and rows are claimed
and marked by row id. On PostgreSQL the rows are claimed ``FOR UPDATE SKIP LOCKED``, so
flushers on many workers take disjoint batches, and no row stays locked for longer than the
one call that carries it. A result is marked submitted only after the service confirmed it (the
response lists the backtest ids it holds). If the call fails the transaction rolls back and the
rows wait; the service stores each backtest id once, so even a batch sent twice (a crash after
the call, before the commit) is counted once.

A failed call is classified by what it means (``verdict``), before anything is set aside:

* INVALID_ARGUMENT: the service refused the data. The batch is halved and each half tried on
  its own until the refused result is alone; only that result is set aside as *rejected*.
* RESOURCE_EXHAUSTED "larger than max": the request is over the service's message limit. The
  batch is halved until it fits; a single result that still does not fit is refused data.
* anything else (UNAVAILABLE, DEADLINE_EXCEEDED, UNAUTHENTICATED, PERMISSION_DENIED,
  UNIMPLEMENTED, INTERNAL, UNKNOWN, …): not the data's fault. Nothing is set aside; the
  flusher backs off and retries, counting the failure by code, logging once per change of
  state and publishing it for `edgeloop feedback status` (``edgeloop/services/feedback_state.py``).
"""

from __future__ import annotations

import enum
import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Sequence

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core import metrics
from edgeloop.core.errors import EdgeloopError, FeedbackDeferred, MLMessageTooLarge
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import FeedbackBatchStatus
from edgeloop.mlclient.cache import invalidate_strategies
from edgeloop.schema.base import as_utc
from edgeloop.schema.pipeline import FeedbackBatch
from edgeloop.schema.repository import claim_ids, claim_unsubmitted, mark_processed, reject
from edgeloop.services.feedback_state import Backoff, BackoffBoard
from edgeloop.services.runtime import resources

if TYPE_CHECKING:  # the Protocol only: importing edgeloop.mlclient would load gRPC
    from edgeloop.mlclient.protocol import MLServiceClient

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    REFUSED = "reject"  # the service refused the data: narrow down to the result and set it aside
    TOO_LARGE = "split"  # over the message limit: halve; a single result that does not fit is refused
    BACK_OFF = "back_off"  # not the data's fault: set nothing aside, retry later


# The only code that says "this data is wrong". Anything not known to be about the data waits:
# setting aside results because of a token mismatch or a deployment would lose them silently.
REFUSAL_CODES = frozenset({"INVALID_ARGUMENT"})


def verdict(exc: Exception) -> Verdict:
    """What a failed SubmitBacktestFeedback means for the results it carried (pure)."""
    if isinstance(exc, MLMessageTooLarge):
        return Verdict.TOO_LARGE
    if isinstance(exc, EdgeloopError) and exc.code in REFUSAL_CODES:
        return Verdict.REFUSED
    return Verdict.BACK_OFF


@dataclass(frozen=True, slots=True)
class FlushResult:
    submitted: int  # confirmed by the service
    rejected: int  # refused by the service, set aside
    rows: int  # looked at


@dataclass
class _Tally:
    submitted: int = 0
    rejected: int = 0
    rows: int = 0


class Unconfirmed(NamedTuple):
    """A stored result the ML service has not confirmed, with its event as stored: what a
    consumer hands its flusher for each result it has just stored, and what a claim reads back.
    A named tuple: one is made per event, and a frozen dataclass costs several times more."""
    id: int  # row id in backtest_results
    backtest_id: str
    strategy_id: str
    received_at: datetime
    event: bytes  # the serialised BacktestFinished (``event_pb``)


Stored = Sequence[Unconfirmed]  # results just stored (committed), oldest first


def _code(exc: Exception) -> str:
    return getattr(exc, "code", None) or type(exc).__name__


def invalidate_strategy_cache(strategy_ids: Iterable[str]) -> None:
    """Feedback about a strategy makes its cached strategy-scoped answers stale."""
    invalidate_strategies(resources().cache_redis, list(strategy_ids))


class FeedbackFlusher:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: Settings,
        client_factory: Callable[[], MLServiceClient],
        on_submitted: Callable[[Iterable[str]], None] | None = None,
        board: BackoffBoard | None = None,
        name: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.client_factory = client_factory
        self.on_submitted = on_submitted  # e.g. clear cached entries of these strategies
        self.board = board  # where `edgeloop feedback status` sees this flusher's backoff
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
        self.backoff: Backoff | None = None  # set while backing off
        self._retry_at = 0.0
        self._failures = 0
        self._answered = 0  # calls the service answered: only an answer ends a backoff
        self._split_logged = False
        self._state = threading.Lock()  # the backoff state, when several threads flush with this flusher

    @classmethod
    def clearing_cache(cls, *, sessions: sessionmaker[Session], settings: Settings,
                       client_factory: Callable[[], MLServiceClient], board: BackoffBoard | None = None,
                       name: str | None = None) -> "FeedbackFlusher":
        """The flusher every process uses: confirmed feedback clears the strategies' cached answers."""
        return cls(sessions=sessions, settings=settings, client_factory=client_factory,
                   on_submitted=invalidate_strategy_cache, board=board, name=name)

    def flush_once(self, limit: int | None = None, stored: Stored | None = None,
                   received_before: datetime | None = None) -> FlushResult:
        """Submit the oldest batch of unconfirmed results (see the module's docstring): of
        those in ``stored`` when given, sent from memory; else read back, of those received
        before ``received_before`` when given.

        Raises ``FeedbackDeferred`` when the service did not take it for a reason that is not
        the data; what was confirmed before that stays confirmed, nothing is set aside. A
        result set aside as *rejected* (a ``feedback_batches`` row with the error) does not
        block later batches; `edgeloop feedback status` counts them and
        `edgeloop feedback retry-rejected` puts them back in line.
        """
        limit = limit or self.settings.feedback_batch_size
        tally = _Tally()
        # Depth first, first half first: the oldest results go first, as in one call.
        todo: list[list[int] | None] = [None]  # None: the oldest pending; a list: these row ids
        while todo:
            todo.extend(reversed(self._flush_batch(limit, todo.pop(), tally, stored, received_before)))
        return FlushResult(tally.submitted, tally.rejected, tally.rows)

    def _flush_batch(self, limit: int, ids: list[int] | None, tally: _Tally, stored: Stored | None,
                     received_before: datetime | None) -> list[list[int]]:
        """One transaction around one call. Returns the halves to try next when the batch has to
        be narrowed down, else []."""
        with self.sessions.begin() as session:
            rows = self._claim(session, limit, ids, stored, received_before)
            if ids is None:
                tally.rows = len(rows)
            if not rows:
                return []
            try:
                confirmed = self._submit(session, rows)
            except EdgeloopError as exc:  # every failed call; verdict() says what it means
                return self._failed(session, rows, exc, tally)
            self._answered += 1
            metrics.FEEDBACK_BATCH_SIZE.observe(len(rows))
        metrics.FEEDBACK_SUBMITTED.inc(len(confirmed))
        tally.submitted += len(confirmed)
        strategies = {r.strategy_id for r in rows if r.backtest_id in confirmed}
        if self.on_submitted is not None and strategies:
            try:
                self.on_submitted(strategies)
            except Exception:  # noqa: BLE001 - cache invalidation must not undo a confirmed submit
                log.exception("after-submit hook failed")
        return []

    @staticmethod
    def _claim(session: Session, limit: int, ids: list[int] | None, stored: Stored | None,
               received_before: datetime | None) -> list[Unconfirmed]:
        if stored is None:
            return [Unconfirmed(r.id, r.backtest_id, r.strategy_id, r.received_at, r.event_pb)
                    for r in claim_unsubmitted(session, limit, ids=ids, received_before=received_before)]
        held = {r.id: r for r in stored}
        return [held[i] for i in claim_ids(session, ids if ids is not None else list(held))[:limit]]

    def _failed(self, session: Session, rows: list[Unconfirmed], exc: Exception, tally: _Tally) -> list[list[int]]:
        meaning = verdict(exc)
        code = _code(exc)
        if meaning is Verdict.BACK_OFF:
            metrics.FEEDBACK_FAILED.labels(code=code, action="back_off").inc()
            raise FeedbackDeferred(str(exc), code) from exc
        if meaning is Verdict.REFUSED:
            self._answered += 1  # a refusal of the data is an answer: the service takes feedback
        if len(rows) == 1:
            metrics.FEEDBACK_FAILED.labels(code=code, action="reject").inc()
            self._reject(session, rows[0], exc)
            tally.rejected += 1
            return []
        metrics.FEEDBACK_FAILED.labels(code=code, action="split").inc()
        if meaning is Verdict.TOO_LARGE and not self._split_logged:
            self._split_logged = True  # once per flusher: it recurs with every large batch
            log.warning("feedback: a batch of %d is over the ML service's message limit; sending it in halves "
                        "(lower feedback_batch_size or raise the service's ml_max_message_bytes): %s", len(rows), exc)
        else:
            log.debug("feedback: batch of %d failed (%s); trying halves", len(rows), exc)
        mid = len(rows) // 2
        return [[r.id for r in rows[:mid]], [r.id for r in rows[mid:]]]

    def _submit(self, session: Session, rows: list[Unconfirmed]) -> set[str]:
        """One SubmitBacktestFeedback call; marks what the service confirmed. Nothing is written
        before the call: on SQLite a write would take the database lock, and an ML service
        storing into the same file would wait on us."""
        batch_key = uuid.uuid4().hex
        started = time.perf_counter()
        response = self.client_factory().submit_backtest_feedback([r.event for r in rows], batch_key)
        metrics.FEEDBACK_SUBMIT_SECONDS.observe(time.perf_counter() - started)
        confirmed = set(response.stored_backtest_ids) & {r.backtest_id for r in rows}
        now = datetime.now(timezone.utc)
        _new_batch(session, batch_key=batch_key, size=len(confirmed), status=FeedbackBatchStatus.SUBMITTED,
                   submitted_at=now)
        mark_processed(session, [r.id for r in rows if r.backtest_id in confirmed])
        observe = metrics.FEEDBACK_LAG_SECONDS.observe
        lags: dict[datetime, float] = {}  # the results of one consumer batch share their received_at
        for r in rows:
            if r.backtest_id in confirmed:
                lag = lags.get(r.received_at)
                if lag is None:
                    lag = lags[r.received_at] = (now - as_utc(r.received_at)).total_seconds()
                observe(lag)
        if len(confirmed) < len(rows):
            log.warning("ML service did not confirm %d results of batch %s", len(rows) - len(confirmed), batch_key)
        return confirmed

    def _reject(self, session: Session, row: Unconfirmed, error: Exception) -> None:
        batch_id = _new_batch(session, batch_key=uuid.uuid4().hex, size=1, status=FeedbackBatchStatus.REJECTED,
                              last_error=str(error)[:2000])
        reject(session, row.id, batch_id)
        log.error("ML service refused result %s: %s", row.backtest_id, error)

    def flush_all(self, budget_s: float = 5.0, min_age_s: float = 0.0) -> int:
        """Flush batches until none is left or the time budget is spent; with ``min_age_s``,
        only of the results received at least that long ago."""
        total, deadline = 0, time.monotonic() + budget_s
        received_before = datetime.now(timezone.utc) - timedelta(seconds=min_age_s) if min_age_s else None
        while time.monotonic() < deadline:
            result = self.flush_once(received_before=received_before)
            total += result.submitted
            if result.rows < self.settings.feedback_batch_size:
                break
        return total

    def flush_stored(self, stored: Stored) -> int:
        """Submit results this process has just stored (committed), from the events it holds,
        ``feedback_batch_size`` per call, unless backing off: then they wait in the table for
        ``flush_if_due``. A result another flusher took meanwhile is skipped (locked or
        already confirmed)."""
        def flush() -> int:
            size = self.settings.feedback_batch_size
            return sum(self.flush_once(size, stored[i:i + size]).submitted for i in range(0, len(stored), size))
        return self._unless_backing_off(flush) if stored else 0

    def flush_if_due(self, min_age_s: float = 0.0) -> int:
        """``flush_all`` (of the results at least ``min_age_s`` old) unless a recent failure put
        us in backoff (exponential with jitter, capped at ``feedback_retry_max_s``). Never raises
        for a service that does not take feedback; logs once when the state changes, not on
        every retry."""
        return self._unless_backing_off(lambda: self.flush_all(min_age_s=min_age_s))

    def _unless_backing_off(self, flush: Callable[[], int]) -> int:
        if time.monotonic() < self._retry_at:
            return 0
        answered = self._answered
        try:
            n = flush()
        except FeedbackDeferred as exc:
            with self._state:
                self._failures += 1
                delay = min(self.settings.feedback_retry_max_s, 0.25 * 2 ** min(self._failures, 16))
                delay *= 0.5 + random.random() / 2
                self._retry_at = time.monotonic() + delay
                self._backing_off(exc, delay)
            return 0
        if self._answered == answered:
            return n  # no call was made (nothing to send): that says nothing of the service
        with self._state:
            self._failures = 0
            if self.backoff is not None:
                log.warning("feedback: the ML service takes feedback again, after %.0f s of %s",
                            time.time() - self.backoff.since, self.backoff.code)
                self.backoff = None
                if self.board is not None:
                    self.board.clear(self.name)
        return n

    def _backing_off(self, exc: FeedbackDeferred, delay: float) -> None:
        now = time.time()
        changed = self.backoff is None or self.backoff.code != exc.code
        since = now if changed or self.backoff is None else self.backoff.since
        self.backoff = Backoff(self.name, exc.code or "UNKNOWN", since, now + delay, str(exc)[:500])
        if changed:
            log.warning("feedback: backing off: %s (nothing set aside; retrying every %.0f s at most): %s",
                        exc.code, self.settings.feedback_retry_max_s, exc)
        if self.board is not None:
            self.board.publish(self.backoff)


def _new_batch(session: Session, **values: Any) -> int:
    """A ``feedback_batches`` row; its id."""
    return int(session.execute(insert(FeedbackBatch.__table__).values(attempts=1, **values)
                               .returning(FeedbackBatch.__table__.c.id)).scalar_one())
