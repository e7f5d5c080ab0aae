"""Feedback flush: stored results the ML service has not confirmed → SubmitBacktestFeedback.

A batch is taken, submitted and marked inside one database transaction. On PostgreSQL the
rows are locked ``FOR UPDATE SKIP LOCKED``, so flushers on many workers take disjoint
batches; a result is marked submitted only after the service confirmed it (the response
lists the backtest ids it holds). If the call fails the transaction rolls back and the
rows wait for the next flush; the service stores each backtest id once, so even a batch
sent twice (a crash after the call, before the commit) is counted once.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from sqlalchemy.orm import Session, sessionmaker

from edgeloop import metrics
from edgeloop.errors import MLServiceError, MLServiceUnavailable
from edgeloop.settings import Settings
from proto import events_pb2
from schema.base import as_utc
from schema.pipeline import FeedbackBatch
from schema.repository import mark_processed, recent_unprocessed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlushResult:
    submitted: int  # confirmed by the service
    rejected: int  # refused by the service, set aside
    rows: int  # looked at


def _message(event_pb: bytes) -> events_pb2.BacktestFinished:
    return events_pb2.BacktestFinished.FromString(event_pb)


def invalidate_strategy_cache(strategy_ids: Iterable[str]) -> None:
    """Feedback about a strategy makes its cached strategy-scoped answers stale."""
    from mlclient.cache import invalidate_strategies
    from workers.runtime import resources

    invalidate_strategies(resources().cache_redis, list(strategy_ids))


class FeedbackFlusher:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: Settings,
        client_factory: Callable[[], object],
        on_submitted: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.client_factory = client_factory
        self.on_submitted = on_submitted  # e.g. clear cached entries of these strategies
        self._retry_at = 0.0
        self._failures = 0

    @classmethod
    def clearing_cache(cls, *, sessions: sessionmaker[Session], settings: Settings,
                       client_factory: Callable[[], object]) -> "FeedbackFlusher":
        """The flusher every process uses: confirmed feedback clears the strategies' cached answers."""
        return cls(sessions=sessions, settings=settings, client_factory=client_factory,
                   on_submitted=invalidate_strategy_cache)

    def flush_once(self, limit: int | None = None) -> FlushResult:
        """Submit one batch of unconfirmed results.

        Raises ``MLServiceUnavailable`` when the service cannot be reached (nothing is marked).
        A batch the service refuses outright (a permanent error) is retried one result at a
        time, and a result refused on its own is set aside as *rejected* (a ``feedback_batches``
        row with the error) instead of blocking every later batch; `edgeloop feedback status`
        counts them and `edgeloop feedback retry-rejected` puts them back in line.
        """
        limit = limit or self.settings.feedback_batch_size
        rejected = 0
        with self.sessions.begin() as session:
            rows = recent_unprocessed(session, limit, lock=True)
            if not rows:
                return FlushResult(0, 0, 0)
            try:
                confirmed = self._submit(session, rows)
            except MLServiceError as exc:
                log.warning("ML service refused a batch of %d (%s); submitting one by one", len(rows), exc)
                confirmed = set()
                for row in rows:
                    try:
                        confirmed |= self._submit(session, [row])
                    except MLServiceError as one:
                        self._reject(session, row, one)
                        rejected += 1
            strategies = {r.strategy_id for r in rows if r.backtest_id in confirmed}
        metrics.FEEDBACK_SUBMITTED.inc(len(confirmed))
        metrics.FEEDBACK_BATCH_SIZE.observe(len(rows))
        if self.on_submitted is not None and strategies:
            try:
                self.on_submitted(strategies)
            except Exception:  # noqa: BLE001 - cache invalidation must not undo a confirmed submit
                log.exception("after-submit hook failed")
        return FlushResult(len(confirmed), rejected, len(rows))

    def _submit(self, session: Session, rows: list) -> set[str]:
        """One SubmitBacktestFeedback call; marks what the service confirmed. Nothing is written
        before the call: on SQLite a write would take the database lock, and an ML service
        storing into the same file would wait on us."""
        batch_key = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            response = self.client_factory().submit_backtest_feedback([_message(r.event_pb) for r in rows], batch_key)
        except MLServiceUnavailable:
            metrics.FEEDBACK_FAILED.labels("unavailable").inc()
            raise
        except MLServiceError:
            metrics.FEEDBACK_FAILED.labels("refused").inc()
            raise
        metrics.FEEDBACK_SUBMIT_SECONDS.observe(time.perf_counter() - started)
        confirmed = set(response.stored_backtest_ids) & {r.backtest_id for r in rows}
        now = datetime.now(timezone.utc)
        batch = FeedbackBatch(batch_key=batch_key, size=len(confirmed), status="submitted", attempts=1,
                              submitted_at=now)
        session.add(batch)
        session.flush()
        mark_processed(session, confirmed, batch.id)
        for r in rows:
            if r.backtest_id in confirmed:
                metrics.FEEDBACK_LAG_SECONDS.observe((now - as_utc(r.received_at)).total_seconds())
        if len(confirmed) < len(rows):
            log.warning("ML service did not confirm %d results of batch %s", len(rows) - len(confirmed), batch_key)
        return confirmed

    def _reject(self, session: Session, row, error: Exception) -> None:
        batch = FeedbackBatch(batch_key=uuid.uuid4().hex, size=1, status="rejected", attempts=1,
                              last_error=str(error)[:2000])
        session.add(batch)
        session.flush()
        row.feedback_batch_id = batch.id
        log.error("ML service refused result %s: %s", row.backtest_id, error)

    def flush_all(self, budget_s: float = 5.0) -> int:
        """Flush batches until none is left or the time budget is spent."""
        total, deadline = 0, time.monotonic() + budget_s
        while time.monotonic() < deadline:
            result = self.flush_once()
            total += result.submitted
            if result.rows < self.settings.feedback_batch_size:
                break
        return total

    def flush_if_due(self) -> int:
        """``flush_all`` unless a recent failure put us in backoff (exponential with jitter,
        capped at ``feedback_retry_max_s``). Never raises for an unreachable service."""
        if time.monotonic() < self._retry_at:
            return 0
        try:
            n = self.flush_all()
        except MLServiceUnavailable as exc:
            self._failures += 1
            delay = min(self.settings.feedback_retry_max_s, 0.25 * 2 ** min(self._failures, 16))
            self._retry_at = time.monotonic() + delay * (0.5 + random.random() / 2)
            log.warning("feedback: ML service unavailable (%s); next try in %.1fs", exc, delay)
            return 0
        self._failures = 0
        return n
