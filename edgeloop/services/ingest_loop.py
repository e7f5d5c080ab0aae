"""One stream consumer and its feedback flusher, on two threads, until told to stop.

Run by the Celery worker's bootstep (``edgeloop.workers.bootsteps``) and by
`edgeloop ingest run`, which consumes without a Celery worker. The consumer hands the results
of each batch it has stored (committed and acknowledged) to its flusher, which submits them to
the ML service from memory while the consumer reads, validates and stores the next batch: the
ML service's work overlaps the consumer's instead of adding to it. The flusher runs on two
threads (``FLUSH_THREADS``), so that two calls, each in its own transaction, can be in flight. At most two batches wait
in the handoff, so a slow ML service slows the consumer down rather than filling memory; what
is handed off and not yet submitted when the process dies is in the table, where any
flusher's read-back (at least every ``feedback_flush_interval_s``) finds it. The read-back
leaves out results younger than ``READ_BACK_MIN_AGE`` intervals: those are the ones in the
handoff, which would otherwise be read back and claimed twice, once by each path.

A process runs ``ingest_consumers_per_worker`` loops (``IngestLoop.of_process``), sharing one
flusher and so one backoff.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import queue
import threading
import time

from edgeloop.mlclient import get_ml_client
from edgeloop.services.feedback import FeedbackFlusher, Stored
from edgeloop.services.feedback_state import BackoffBoard
from edgeloop.services.ingest import BatchOutcome, StreamConsumer
from edgeloop.services.runtime import resources

log = logging.getLogger(__name__)


class IngestLoop:
    """A consumer on the calling thread and its flusher on a thread of its own."""

    HANDOFF_BATCHES = 2
    # Flusher threads taking batches from the handoff: while one waits for the ML service's
    # answer, the other claims, calls or marks, so a call's latency does not set the pace.
    # Each call is still one transaction of its own; the threads share the backoff.
    FLUSH_THREADS = 2
    # Results younger than this many flush intervals are left to the handoff by the read-back:
    # a handed-off result waits at most the flushes of the two batches ahead of it.
    READ_BACK_MIN_AGE = 5

    def __init__(self, name: str, flusher: FeedbackFlusher | None = None, read_back: bool = True) -> None:
        res = resources()
        self.settings = res.settings
        self.flusher = flusher or self.process_flusher(name)
        self.read_back = read_back  # whether one of this loop's flusher threads reads leftovers back
        self.consumer = StreamConsumer(client=res.redis, sessions=res.sessions, settings=res.settings, name=name)
        self._handoff: queue.Queue[Stored] = queue.Queue(maxsize=self.HANDOFF_BATCHES)
        self._stop = threading.Event()
        self.totals = BatchOutcome()  # what this loop did (`edgeloop ingest run` reports it)

    @staticmethod
    def process_flusher(name: str) -> FeedbackFlusher:
        res = resources()
        return FeedbackFlusher.clearing_cache(sessions=res.sessions, settings=res.settings,
                                              client_factory=get_ml_client, board=BackoffBoard(res.redis),
                                              name=f"{name}:{os.getpid()}")

    @classmethod
    def of_process(cls, prefix: str, consumers: int) -> list["IngestLoop"]:
        """The loops of one process (consumers ``prefix:0``, ``prefix:1`` …). They share one
        flusher, so the process has one backoff, shown and logged once, and one of them reads
        leftovers back."""
        flusher = cls.process_flusher(prefix)
        return [cls(f"{prefix}:{i}", flusher=flusher, read_back=i == 0) for i in range(consumers)]

    def after_batch(self, outcome: BatchOutcome) -> None:
        """Hand what the batch stored to the flusher; wait while it is two batches behind."""
        self.totals.add(dataclasses.replace(outcome, stored=[]))  # counts only: events go to the flusher
        while outcome.stored and not self._stop.is_set():
            try:
                self._handoff.put(outcome.stored, timeout=0.5)
                return
            except queue.Full:
                continue

    def flush_forever(self, stop: threading.Event, read_back: bool = True) -> None:
        """Submit what the consumer hands over; with ``read_back``, read back what is left over
        (an outage, another process's results) at least every ``feedback_flush_interval_s``."""
        interval = self.settings.feedback_flush_interval_s
        min_age = self.READ_BACK_MIN_AGE * interval
        last_read_back = 0.0
        while not stop.is_set():
            try:
                stored = self._handoff.get(timeout=min(interval, 0.5))
            except queue.Empty:
                stored = None
            try:
                if stored:
                    self.flusher.flush_stored(stored)
                if read_back and time.monotonic() - last_read_back >= interval:
                    last_read_back = time.monotonic()
                    self.flusher.flush_if_due(min_age_s=min_age)
            except Exception:  # noqa: BLE001 - the rows wait in the table; the thread must not die
                log.exception("feedback flusher %s failed; retrying in 1s", self.flusher.name)
                stop.wait(1.0)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop``. An error the consumer does not handle itself leaves its batch
        pending: the consumer starts again and reads it again, a delivery that counts towards
        ``max_deliveries``, so the thread neither dies nor spins on one entry for ever."""
        self._stop = stop
        # What the process holds by now (modules, settings, pools) lives as long as it does:
        # frozen, the collector no longer walks it. A full collection otherwise walks every
        # object of the process (~130,000 in a worker, ~50 ms) while the consumer's batches
        # keep setting one off.
        gc.freeze()
        flushers = [threading.Thread(target=self.flush_forever, args=(stop, self.read_back and i == 0), daemon=True,
                                     name=f"{threading.current_thread().name}-flush{i}")
                    for i in range(self.FLUSH_THREADS)]
        for flusher in flushers:
            flusher.start()
        try:
            while not stop.is_set():
                try:
                    self.consumer.ensure_groups()
                    self.consumer.run(stop, after_batch=self.after_batch)
                except Exception:  # noqa: BLE001 - a consumer thread must not die silently
                    log.exception("stream consumer %s crashed; restarting in 1s", self.consumer.name)
                    stop.wait(1.0)
        finally:
            for flusher in flushers:
                flusher.join(timeout=10)
