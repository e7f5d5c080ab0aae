"""What `edgeloop ml status` (alias `ml-status`) shows: the ML service, the client, the cache.

The command is a thin wrapper: ``for line in status_lines(): click.echo(line)`` (or
``json.dumps(status_report())`` for ``--json``). Nothing here raises for an unreachable
service or Redis: being able to say "down" is the point of a status command.
"""

from __future__ import annotations

from typing import Any

from edgeloop.errors import EdgeloopError
from edgeloop.settings import Settings, get_settings
from mlclient.cache import CachedMLClient, CacheStats, make_redis
from mlclient.client import MLClient


def status_report(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    client = MLClient(settings)
    report: dict[str, Any] = {"target": client.target}
    try:
        health = client.health()
        report["service"] = {
            "status": health.status,
            "version": health.version,
            "serving_models": dict(health.serving_models),
            "feedback_samples": health.feedback_samples,
            "uptime_s": round(health.uptime_s, 1),
        }
    except EdgeloopError as exc:
        report["service"] = {"status": "UNREACHABLE", "error": str(exc)}
    report["grpc_health_serving"] = client.is_serving()
    report["breaker"] = client.breaker.state
    cache = CachedMLClient(client, make_redis(settings), settings)
    try:
        report["cache"] = cache.stats().as_dict()
    finally:
        cache.close()
        client.close()
    return report


def status_lines(settings: Settings | None = None) -> list[str]:
    report = status_report(settings)
    service = report["service"]
    lines = [f"ML service at {report['target']}: {service['status']}"
             + (f" ({service['error']})" if "error" in service else "")]
    if "version" in service:
        models = ", ".join(f"{k} {v}" for k, v in sorted(service["serving_models"].items())) or "none"
        lines += [
            f"  version {service['version']}, up {service['uptime_s']:.0f} s, "
            f"{service['feedback_samples']} feedback samples",
            f"  serving: {models}",
        ]
    lines.append(f"  grpc.health.v1: {'SERVING' if report['grpc_health_serving'] else 'not serving'}; "
                 f"client circuit breaker {report['breaker']}")
    lines += CacheStats(**report["cache"]).lines()
    return lines
