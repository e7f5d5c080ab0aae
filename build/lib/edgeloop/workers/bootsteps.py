"""Worker bootstep: every `celery -A edgeloop.workers worker` also consumes the event stream.

The consumers run as threads of the worker's main process, next to the pool: events are
never turned into one Celery message each (that design manages ~1,000 events/s on two
cores; reading the stream in batches is an order of magnitude faster), yet scaling out is
still "start another worker". Each consumer flushes feedback to the ML service right after
it stores a batch, and at least every ``feedback_flush_interval_s`` while idle.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import bootsteps
from celery.exceptions import WorkerShutdown

from edgeloop.core.errors import DatabaseNotMigrated

from edgeloop.mlclient import get_ml_client
from edgeloop.schema.db import require_migrated
from edgeloop.workers.feedback import FeedbackFlusher
from edgeloop.workers.feedback_state import BackoffBoard
from edgeloop.workers.ingest import BatchOutcome, StreamConsumer
from edgeloop.workers.observability import serve_worker_metrics
from edgeloop.workers.runtime import resources

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
        now = time.monotonic()
        if outcome.inserted or now - self._last_flush >= self.settings.feedback_flush_interval_s:
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


class StreamIngest(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, parent) -> None:
        res = resources()
        try:
            require_migrated(res.engine)  # refuse to run against an old schema
        except DatabaseNotMigrated as exc:
            log.critical("edgeloop worker refuses to start: %s", exc)
            raise WorkerShutdown(1) from None
        serve_worker_metrics(res.settings, res.redis)
        for i in range(res.settings.ingest_consumers_per_worker):
            loop = IngestLoop(name=f"{parent.hostname}:{i}")
            t = threading.Thread(target=loop.run, args=(self.stop_event,), name=f"edgeloop-ingest-{i}", daemon=True)
            t.start()
            self.threads.append(t)
        log.info("edgeloop: %d stream consumer(s) started", len(self.threads))

    def stop(self, parent) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)
