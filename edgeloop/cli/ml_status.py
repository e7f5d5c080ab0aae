"""`edgeloop ml status` (also installed as `ml-status`): one look at the loop's health.

Added to the ML service's `ml` group by ``edgeloop/cli/ml.py`` rather than defined there, so
the two modules can change independently.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from edgeloop.cli.ops import emit_json, require_ml, require_redis, sessions
from edgeloop.core.settings import get_settings
from edgeloop.core.streams import stream_backlog
from edgeloop.mlclient.cache import CachedMLClient
from edgeloop.schema.repository import count_unsubmitted

CONFIG_FIELDS = ("ml_grpc_target", "ml_timeout_s", "cache_ttl_s", "feedback_batch_size", "min_new_feedback",
                 "retraining_interval_hours", "ranking_interval_s", "discovery_interval_s", "activation_threshold",
                 "deactivation_threshold", "min_bets_for_activation", "min_state_s", "discovery_candidates")


def backlog_report(client, settings) -> dict:
    """Per stream partition: length, entries not yet delivered (lag) and delivered but unacknowledged."""
    out: dict = {key: asdict(stream_backlog(client, key, settings.consumer_group)) for key in settings.stream_keys}
    out["dead_letters"] = client.xlen(settings.dead_letter_stream)
    return out


@click.command("status")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(as_json: bool) -> None:
    """Health, serving models, cache statistics, configuration, stream backlog, pending feedback."""
    settings = get_settings()
    redis_client = require_redis(settings)
    client, health = require_ml()
    make_session = sessions(settings)
    with make_session() as s:
        pending = count_unsubmitted(s)
    cache = CachedMLClient(client=client).stats()
    out: dict[str, Any] = {"health": {"status": health.status, "version": health.version, "uptime_s": health.uptime_s,
                      "feedback_samples": health.feedback_samples, "serving": client.is_serving()},
           "serving_models": dict(health.serving_models), "cache": cache.as_dict(),
           "configuration": {k: getattr(settings, k) for k in CONFIG_FIELDS},
           "stream": backlog_report(redis_client, settings), "pending_feedback": pending}
    if as_json:
        emit_json(out)
        return
    h = out["health"]
    click.echo(f"ML service {settings.ml_grpc_target}: {h['status']} (version {h['version']}, up {h['uptime_s']:.0f} s, "
               f"{h['feedback_samples']} feedback samples)")
    for name, version in sorted(out["serving_models"].items()):
        click.echo(f"  serving {name}: {version}")
    for line in cache.lines():
        click.echo(line)
    for key, b in out["stream"].items():
        click.echo(f"stream {key}: {b}" if key == "dead_letters" else
                   f"stream {key}: {b['length']} entries, lag {b['lag']}, pending {b['pending']}")
    click.echo(f"pending feedback: {pending}")
    click.echo("configuration: " + ", ".join(f"{k}={v}" for k, v in out["configuration"].items()))
