"""`edgeloop dead-letters list|replay`."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from itertools import islice

import click

from edgeloop.cli.ops import dry_run_option, emit_json, json_option
from edgeloop.core.redis_connect import client_for
from edgeloop.core.settings import get_settings
from edgeloop.services.dead_letters import DeadLetters


def _dead_letters():
    s = get_settings()
    return DeadLetters(client_for(s, socket_connect_timeout=3), s.dead_letter_stream), s


@click.group("dead-letters")
def dead_letters() -> None:
    """Events set aside because they could not be parsed, validated or stored."""


@dead_letters.command("list")
@click.option("--reason", default=None, help="Only letters with this reason code.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_cmd(reason: str | None, limit: int, as_json: bool) -> None:
    letters, _ = _dead_letters()
    shown = 0
    for letter in letters.iter(reason):
        if shown >= limit:
            break
        shown += 1
        payload = letter.payload.decode("utf-8", "replace")
        if as_json:
            click.echo(json.dumps({"id": letter.entry_id, "reason": letter.reason, "detail": letter.detail,
                                   "source_stream": letter.source_stream, "source_id": letter.source_id,
                                   "dead_at_ms": letter.dead_at_ms, "payload": payload}))
        else:
            when = datetime.fromtimestamp(letter.dead_at_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            click.echo(f"{letter.entry_id}  {when}  {letter.reason:<22} {letter.detail[:80]}  | {payload[:60]}")
    if not as_json:
        click.echo(f"{shown} shown, {letters.count()} in {letters.stream}")


@dead_letters.command("replay")
@click.option("--reason", default=None, help="Only letters with this reason code.")
@click.option("--limit", type=click.IntRange(1), default=None)
@dry_run_option
@json_option
def replay_cmd(reason: str | None, limit: int | None, dry_run: bool, as_json: bool) -> None:
    """Put letters back on the event stream (after fixing what made them fail)."""
    letters, s = _dead_letters()
    if dry_run:
        chosen = list(islice(letters.iter(reason), limit))
        by_reason = Counter(letter.reason for letter in chosen)
        if as_json:
            emit_json({"dry_run": True, "would_replay": len(chosen), "by_reason": dict(by_reason)})
        else:
            click.echo(f"would replay {len(chosen)} letters"
                       + (" (" + ", ".join(f"{r}: {n}" for r, n in by_reason.most_common()) + ")" if chosen else ""))
        return
    moved = letters.replay(s.stream_key, reason=reason, limit=limit, maxlen=s.stream_maxlen)
    emit_json({"replayed": moved}) if as_json else click.echo(f"replayed {moved} letters")


command = dead_letters
