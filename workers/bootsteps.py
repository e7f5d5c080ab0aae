"""Worker bootstep: every `celery -A edgeloop.workers worker` also consumes the event stream.

The consumers (``edgeloop.services.ingest_loop.IngestLoop``) run as threads of the worker's
main process, next to the pool: events are never turned into one Celery message each (that
design manages ~1,000 events/s on two cores; reading the stream in batches is an order of
magnitude faster), yet scaling out is still "start another worker".
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps
from celery.exceptions import WorkerShutdown

from edgeloop.core.errors import DatabaseNotMigrated
from edgeloop.schema.db import require_migrated
from edgeloop.services.ingest_loop import IngestLoop
from edgeloop.services.runtime import resources
from edgeloop.workers.observability import serve_worker_metrics

log = logging.getLogger(__name__)


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
        for i, loop in enumerate(IngestLoop.of_process(parent.hostname, res.settings.ingest_consumers_per_worker)):
            t = threading.Thread(target=loop.run, args=(self.stop_event,), name=f"edgeloop-ingest-{i}", daemon=True)
            t.start()
            self.threads.append(t)
        log.info("edgeloop: %d stream consumer(s) started", len(self.threads))

    def stop(self, parent) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)
