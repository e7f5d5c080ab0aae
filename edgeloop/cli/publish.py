"""`edgeloop publish [FILE]`: publish JSON-lines events from a file or standard input."""

from __future__ import annotations

import sys

import click

from edgeloop.cli.ops import emit_json, json_option
from edgeloop.core.errors import InvalidEvent
from edgeloop.producers import Publisher


@click.command("publish")
@click.argument("file", type=click.File("r"), default="-")
@json_option
def publish(file, as_json: bool) -> None:
    """Publish BacktestFinished events, one JSON object per line, from FILE (default: stdin).

    Each line is checked by the consumers' own rules; invalid lines are reported and not
    sent (the exit status is then 1)."""
    publisher = Publisher()
    rejected: list[dict] = []
    lines = [(n, line.strip()) for n, line in enumerate(file, 1) if line.strip()]

    def report(position: int, exc: InvalidEvent) -> None:
        lineno = lines[position][0]
        rejected.append({"line": lineno, "reason": exc.reason, "detail": exc.detail})
        if not as_json:
            click.echo(f"line {lineno}: not published: {exc}", err=True)

    # The publisher validates each line by the consumers' own rules, once.
    sent = publisher.publish_many((text for _, text in lines), on_invalid=report)
    if as_json:
        emit_json({"published": sent, "rejected": rejected})
    else:
        click.echo(f"published {sent} events" + (f", {len(rejected)} rejected" if rejected else ""))
    if rejected:
        sys.exit(1)


command = publish
