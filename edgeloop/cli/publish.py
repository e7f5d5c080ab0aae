"""`edgeloop publish [FILE]`: publish JSON-lines events from a file or standard input."""

from __future__ import annotations

import sys

import click

from edgeloop.core.errors import InvalidEvent
from edgeloop.core.events import parse_event
from edgeloop.producers import Publisher


@click.command("publish")
@click.argument("file", type=click.File("r"), default="-")
def publish(file) -> None:
    """Publish BacktestFinished events, one JSON object per line, from FILE (default: stdin).

    Each line is checked by the consumers' own rules first; invalid lines are reported and
    not sent (the exit status is then 1)."""
    publisher = Publisher()
    good: list[str] = []
    bad = 0
    for lineno, line in enumerate(file, 1):
        line = line.strip()
        if not line:
            continue
        try:
            parse_event(line, max_bytes=publisher.settings.max_event_bytes)
        except InvalidEvent as exc:
            bad += 1
            click.echo(f"line {lineno}: not published: {exc}", err=True)
            continue
        good.append(line)
    sent = publisher.publish_many(good)
    click.echo(f"published {sent} events" + (f", {bad} rejected" if bad else ""))
    if bad:
        sys.exit(1)


command = publish
