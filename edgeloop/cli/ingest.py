"""`edgeloop ingest run`: stream consumers in the foreground, without a Celery worker."""

from __future__ import annotations

import signal
import threading

import click

from edgeloop.schema.db import require_migrated
from edgeloop.services.ingest import default_consumer_name
from edgeloop.services.ingest_loop import IngestLoop
from edgeloop.services.runtime import resources


@click.group("ingest")
def ingest() -> None:
    """The event stream consumer."""


@ingest.command("run")
@click.option("--consumers", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--name", default=None, help="Consumer name prefix (default: host-pid).")
def run_cmd(consumers: int, name: str | None) -> None:
    """Consume `backtests.finished` and flush feedback until interrupted."""
    require_migrated(resources().engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    prefix = name or default_consumer_name()
    loops = [IngestLoop(name=f"{prefix}:{i}") for i in range(consumers)]
    threads = [threading.Thread(target=loop.run, args=(stop,), daemon=True) for loop in loops]
    for t in threads:
        t.start()
    click.echo(f"consuming with {consumers} consumer(s); Ctrl-C stops", err=True)
    try:
        while any(t.is_alive() for t in threads) and not stop.is_set():
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    stop.set()
    for t in threads:
        t.join(timeout=10)


command = ingest
