"""Prometheus metrics of the ML service (``edgeloop_ml_…``), on the default registry.

Labels are few and bounded: the RPC name (a fixed set) and the gRPC status code.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# RPC latency is edgeloop.core.metrics.ML_RPC_SECONDS (side="server"), shared with the client.
RPC_TOTAL = Counter("edgeloop_ml_rpc_total", "ML service RPCs by outcome", ["method", "code"])
FEEDBACK_ACCEPTED = Counter("edgeloop_ml_feedback_accepted_total", "Feedback samples newly stored")
FEEDBACK_DUPLICATES = Counter("edgeloop_ml_feedback_duplicates_total", "Feedback samples already stored")
FEEDBACK_SAMPLES = Gauge("edgeloop_ml_feedback_samples", "Feedback samples in the store (at the last health check)")
PREDICTIONS = Counter("edgeloop_ml_predictions_total", "Selections predicted")
TRAINING_JOBS = Counter("edgeloop_ml_training_jobs_total", "Training jobs by outcome", ["model", "outcome"])
TRAINING_SECONDS = Histogram(
    "edgeloop_ml_training_seconds", "Duration of training jobs", ["model"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
RATE_LIMITED = Counter(
    "edgeloop_ml_rate_limited_total", "Calls refused by a client's rate limit (RESOURCE_EXHAUSTED)", ["method"]
)
TRAINING_DEDUPLICATED = Counter(
    "edgeloop_ml_training_deduplicated_total",
    "TrainModels requests answered with the job already queued or running for the same model and force flag",
)
HTTP_CONNECTIONS_REFUSED = Counter(
    "edgeloop_ml_http_connections_refused_total",
    "HTTP API connections closed unserved because every handler thread was busy and the queue full",
)
