"""A worker process of the acceptance tests: asks the cached client, reports what it saw.

Protocol on stdin/stdout, one JSON document per line: it reads the job
``{"requests": [[event_id, selection, strategy_id], …]}``, warms up (catalogue, Redis
connection) and prints ``ready``; on a ``go`` line it runs the batch and prints
``{"predictions": [base64 of serialized Prediction …], "counters": {…}}``. Settings come
from the environment (EDGELOOP_REDIS_URL, EDGELOOP_ML_GRPC_TARGET, EDGELOOP_CACHE_PREFIX).
"""

from __future__ import annotations

import base64
import json
import sys

from prometheus_client import REGISTRY

from edgeloop.mlclient import get_cached_ml_client
from edgeloop.proto import ml_service_pb2 as pb

COUNTERS = {
    "hits": ("edgeloop_prediction_cache_hits_total", {"kind": "prediction"}),
    "misses": ("edgeloop_prediction_cache_misses_total", {"kind": "prediction"}),
    "backend_calls": ("edgeloop_prediction_cache_backend_calls_total", {"kind": "prediction"}),
    "bypass_unavailable": ("edgeloop_prediction_cache_bypass_total", {"kind": "prediction", "reason": "redis_unavailable"}),
    "waits_filled": ("edgeloop_prediction_cache_singleflight_waits_total", {"outcome": "filled"}),
}


def main() -> None:
    job = json.loads(sys.stdin.readline())
    client = get_cached_ml_client()
    client.warm_up()
    requests = [pb.PredictionRequest(event_id=e, selection=s, strategy_id=st) for e, s, st in job["requests"]]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    predictions = client.batch_predict(requests)
    counters = {name: REGISTRY.get_sample_value(metric, labels) or 0.0 for name, (metric, labels) in COUNTERS.items()}
    print(json.dumps({
        "predictions": [base64.b64encode(p.SerializeToString()).decode() for p in predictions],
        "counters": counters,
    }), flush=True)


if __name__ == "__main__":
    main()
