"""One stream consumer and its feedback flusher on one thread, until told to stop.

Run by the Celery worker's bootstep (``edgeloop.workers.bootsteps``) and by
`edgeloop ingest run`, which consumes without a Celery worker. Each consumer submits the
results of a batch to the ML service right after storing them, from the events it holds, and
reads back whatever is left unconfirmed at least every ``feedback_flush_interval_s``.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from edgeloop.mlclient import get_ml_client
from edgeloop.services.feedback import FeedbackFlusher
from edgeloop.services.feedback_state import BackoffBoard
from edgeloop.services.ingest import BatchOutcome, StreamConsumer
from edgeloop.services.runtime import resources

log = logging.getLogger(__name__)


class IngestLoop:
    """A consumer and its flusher on one thread."""

    def __init__(self, name: str) -> None:
        res = resources()
        self.settings = res.settings
        self.flusher = FeedbackFlusher.clearing_cache(sessions=res.sessions, settings=res.settings,
                                                      client_factory=get_ml_client, board=BackoffBoard(res.redis),
                                                      name=f"{name}:{os.getpid()}")
        self.consumer = StreamConsumer(client=res.redis, sessions=res.sessions, settings=res.settings, name=name)
        self._last_flush = 0.0

    def after_batch(self, outcome: BatchOutcome) -> None:
        """Submit what the batch stored, from memory; read back what is left over (an outage,
        another process's results) at least every ``feedback_flush_interval_s``."""
        if outcome.stored:
            self.flusher.flush_stored(outcome.stored)
        now = time.monotonic()
        if now - self._last_flush >= self.settings.feedback_flush_interval_s:
            self._last_flush = now
            self.flusher.flush_if_due()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop``. An error the consumer does not handle itself leaves its batch
        pending: the consumer starts again and reads it again, a delivery that counts towards
        ``max_deliveries``, so the thread neither dies nor spins on one entry for ever."""
        while not stop.is_set():
            try:
                self.consumer.ensure_groups()
                self.consumer.run(stop, after_batch=self.after_batch)
            except Exception:  # noqa: BLE001 - a consumer thread must not die silently
                log.exception("stream consumer %s crashed; restarting in 1s", self.consumer.name)
                stop.wait(1.0)
