"""Prometheus metrics of the pipeline (workers, ingest consumers, producers of feedback).

Names follow Prometheus conventions: counters end in ``_total``, histograms carry their
unit, labels are few and bounded. Celery's prefork children write to
``PROMETHEUS_MULTIPROC_DIR`` (set by ``workers/__init__.py`` before prometheus_client is
imported) and the worker's main process serves the aggregate.
"""

from __future__ import annotations

import functools
import platform
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from edgeloop import __version__

# What runs where, Prometheus's ``*_info`` idiom: a gauge at 1 whose labels are the facts.
BUILD_INFO = Gauge("edgeloop_build_info", "The edgeloop version and Python of this process (always 1)",
                   ["version", "python"], multiprocess_mode="max")
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

# One histogram for both ends of every ML service call, so that a dashboard can put the
# service's own time beside what its clients wait (network, queueing, gRPC retries).
ML_RPC_SECONDS = Histogram(
    "edgeloop_ml_rpc_duration_seconds",
    "Latency of ML service calls: as the service handles them (side=server) and as a client waits, "
    "gRPC retries included (side=client)",
    ["side", "rpc"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@functools.cache
def rpc_latency(side: str, rpc: str) -> Any:
    """``ML_RPC_SECONDS`` of one side and RPC, looked up once: ``labels`` costs more than the
    observation, on every call of both sides (a bounded set: two sides, the RPC names). On
    first use, so that an RPC never called exports no series."""
    return ML_RPC_SECONDS.labels(side=side, rpc=rpc)


EVENTS_INGESTED = Counter("edgeloop_events_ingested_total", "Valid events stored for the first time")
EVENTS_DUPLICATE = Counter("edgeloop_events_duplicate_total", "Valid events whose backtest id was already stored")
EVENTS_DEAD_LETTERED = Counter(
    "edgeloop_events_dead_lettered_total", "Events moved to the dead-letter stream", ["reason"]
)
EVENTS_CLAIMED = Counter("edgeloop_events_claimed_total", "Pending entries claimed from a presumed-dead consumer")
INGEST_BATCH_SIZE = Histogram(
    "edgeloop_ingest_batch_size", "Entries per ingest batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000)
)
INGEST_BATCH_SECONDS = Histogram("edgeloop_ingest_batch_seconds", "Time to validate, store and acknowledge a batch")
INGEST_ERRORS = Counter("edgeloop_ingest_errors_total", "Ingest batches that failed and will be retried", ["kind"])

FEEDBACK_SUBMITTED = Counter("edgeloop_feedback_submitted_total", "Results confirmed by the ML service")
# code: the gRPC status code's name (a bounded set); action: back_off | split | reject
FEEDBACK_FAILED = Counter(
    "edgeloop_feedback_failed_total", "Failed SubmitBacktestFeedback calls, by gRPC code and what the flusher did",
    ["code", "action"],
)
FEEDBACK_BATCH_SIZE = Histogram(
    "edgeloop_feedback_batch_size", "Results per SubmitBacktestFeedback call", buckets=(1, 10, 25, 50, 100, 250, 500, 1000)
)
FEEDBACK_SUBMIT_SECONDS = Histogram("edgeloop_feedback_submit_seconds", "Latency of SubmitBacktestFeedback")
FEEDBACK_LAG_SECONDS = Histogram(
    "edgeloop_feedback_lag_seconds",
    "From a result's arrival in the store to the ML service's confirmation",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

# Stream backlog, pending and dead-letter gauges are collected at scrape time from Redis
# (workers/observability.py), not kept here.
