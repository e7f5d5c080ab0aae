"""The worker's Prometheus endpoint.

Celery's prefork children each count in their own process; with ``PROMETHEUS_MULTIPROC_DIR``
set (``EDGELOOP_PROMETHEUS_MULTIPROC_DIR``; ``workers/__init__.py`` exports it before
prometheus_client is imported) they write to files there and the main process serves the
sum. The stream backlog and pending counts are read from Redis at scrape time, so they
are right even when no consumer is running.
"""

from __future__ import annotations

import logging
import os

import redis
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily

from edgeloop.core.settings import Settings
from edgeloop.core.streams import stream_backlog
from edgeloop.mlclient import get_cached_ml_client
from edgeloop.mlclient.metrics import CacheStatsCollector

log = logging.getLogger(__name__)


class StreamCollector:
    """``edgeloop_stream_backlog`` and ``edgeloop_stream_pending`` per partition, from XINFO GROUPS."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def collect(self):
        backlog = GaugeMetricFamily("edgeloop_stream_backlog", "Entries not yet delivered to the consumer group",
                                    labels=["stream"])
        pending = GaugeMetricFamily("edgeloop_stream_pending", "Entries delivered but not yet acknowledged",
                                    labels=["stream"])
        dead = GaugeMetricFamily("edgeloop_dead_letters", "Entries in the dead-letter stream")
        try:
            for key in self.settings.stream_keys:
                b = stream_backlog(self.client, key, self.settings.consumer_group)
                backlog.add_metric([key], b.lag)
                pending.add_metric([key], b.pending)
            dead.add_metric([], self.client.xlen(self.settings.dead_letter_stream))
        except redis.RedisError as exc:  # a scrape must not fail because Redis is away
            log.warning("stream metrics unavailable: %s", exc)
            return
        yield backlog
        yield pending
        yield dead


def serve_worker_metrics(settings: Settings, client: redis.Redis) -> None:
    if not settings.metrics_port:
        return
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    registry.register(StreamCollector(client, settings))

    registry.register(CacheStatsCollector(lambda: get_cached_ml_client().stats()))
    try:
        start_http_server(settings.metrics_port, addr="127.0.0.1" if settings.metrics_bind_local else "0.0.0.0",
                          registry=registry)
        log.info("metrics on :%d/metrics", settings.metrics_port)
    except OSError as exc:  # another worker on this host has the port; its endpoint covers the streams
        log.warning("metrics port %d not available (%s); this worker serves no /metrics", settings.metrics_port, exc)
