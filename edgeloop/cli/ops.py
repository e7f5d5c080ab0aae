"""What the operator commands share: checks that a service is reachable (one clear error
instead of a hang or a traceback), a progress line for ``--wait``, and JSON output."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

import click
import redis

from edgeloop.core.errors import MLServiceUnavailable, ServiceUnavailable
from edgeloop.core.redis_connect import client_for
from edgeloop.core.settings import Settings
from edgeloop.schema.db import make_engine, make_sessionmaker, require_migrated


def require_redis(settings: Settings):
    """The Redis client, after a PING (Redis is the Celery broker and holds the stream)."""
    client = client_for(settings, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise ServiceUnavailable(f"cannot reach Redis at {settings.redis_url}: {exc}") from None
    return client


def require_ml(client=None):
    """The ML client, after a HealthCheck (fails fast: the deadline is the client's)."""
    # Here, not at the top: the ML client loads gRPC, and the read-only commands that import
    # this module (`strategies list|show`) must not.
    from edgeloop.mlclient import get_ml_client

    client = client or get_ml_client()
    try:
        health = client.health()
    except MLServiceUnavailable as exc:
        raise MLServiceUnavailable(f"cannot reach the ML service at {client.target}: {exc}") from None
    return client, health


def sessions(settings: Settings):
    """A session factory on the database, after a check that it answers and is migrated."""
    engine = make_engine(settings.database_url)
    require_migrated(engine)
    return make_sessionmaker(engine)


def on_terminal() -> bool:
    """Progress is drawn only for a person watching: stderr is a terminal (a pipe or a log gets none)."""
    return sys.stderr.isatty()


class Progress:
    """One line rewritten in place on a terminal; nothing when stderr is not one."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and on_terminal()
        self.last = ""
        self.started = time.monotonic()

    def update(self, text: str) -> None:
        if not self.enabled or text == self.last:
            return
        self.last = text
        click.echo(f"\r\x1b[2K[{time.monotonic() - self.started:6.1f}s] {text}", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self.last:
            click.echo("", err=True)


def poll(check: Callable[[], tuple[bool, str]], timeout_s: float, progress: Progress, interval_s: float = 0.5,
         what: str = "the operation") -> None:
    """Call ``check`` (→ (finished, progress text)) until it is finished or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            finished, text = check()
            progress.update(text)
            if finished:
                return
            if time.monotonic() > deadline:
                raise click.ClickException(f"gave up waiting for {what} after {timeout_s:.0f} s (it goes on)")
            time.sleep(interval_s)
    finally:
        progress.done()


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
