"""`edgeloop ingest run`: stream consumers in the foreground, without a Celery worker."""

from __future__ import annotations

import dataclasses
import signal
import threading

import click

from edgeloop.cli.ops import emit_json, json_option
from edgeloop.schema.db import require_migrated
from edgeloop.services.ingest import BatchOutcome, default_consumer_name
from edgeloop.services.ingest_loop import IngestLoop
from edgeloop.services.runtime import resources


@click.group("ingest")
def ingest() -> None:
    """The event stream consumer."""


@ingest.command("run")
@click.option("--consumers", type=click.IntRange(1, 16), default=None,
              help="Consumer threads (default: ingest_consumers_per_worker, at least 1).")
@click.option("--name", default=None, help="Consumer name prefix (default: host-pid).")
@json_option
def run_cmd(consumers: int | None, name: str | None, as_json: bool) -> None:
    """Consume `backtests.finished` and flush feedback until interrupted."""
    require_migrated(resources().engine)
    consumers = consumers or max(1, resources().settings.ingest_consumers_per_worker)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    prefix = name or default_consumer_name()
    loops = IngestLoop.of_process(prefix, consumers)
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
    totals = BatchOutcome()
    for loop in loops:
        totals.add(loop.totals)
    if as_json:  # what this run did, once it stops
        emit_json({"consumers": consumers, **dataclasses.asdict(totals)})
    else:
        click.echo(f"stopped: {totals.read} read, {totals.inserted} stored, {totals.duplicates} duplicates, "
                   f"{sum(totals.dead.values())} dead-lettered", err=True)


command = ingest
