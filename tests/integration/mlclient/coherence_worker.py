"""A worker process of the coherence tests: reads through the two-level cache in a loop.

Protocol on stdin/stdout, one JSON document per line: it reads the job
``{"requests": [[event_id, selection, strategy_id], …], "evaluate": [[strategy_id, params], …]}``,
warms up (catalogue, the invalidation channel, level 1 filled by a first round) and prints
``ready``; on ``go`` it runs rounds until ``stop``, then prints
``{"rounds": [[start, end, [model versions], backend calls, level-1 hits], …], "delays": […]}``
(wall-clock times, so the test can compare them with the time an invalidation was published).
Settings come from the environment (EDGELOOP_REDIS_URL, EDGELOOP_ML_GRPC_TARGET, EDGELOOP_CACHE_PREFIX).
"""

from __future__ import annotations

import json
import sys
import threading
import time

from prometheus_client import REGISTRY

from edgeloop.mlclient import get_cached_ml_client
from edgeloop.proto import ml_service_pb2 as pb


def _counter(name: str) -> float:
    return sum(REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0 for kind in ("prediction", "evaluation"))


def main() -> None:
    job = json.loads(sys.stdin.readline())
    client = get_cached_ml_client()
    client.warm_up()
    assert client.coherence is not None and client.coherence.wait_serving(10), "invalidation channel not up"
    requests = [pb.PredictionRequest(event_id=e, selection=s, strategy_id=st) for e, s, st in job["requests"]]
    evaluate = [(sid, params) for sid, params in job.get("evaluate", [])]

    def one_round() -> list:
        calls, local = _counter("edgeloop_prediction_cache_backend_calls_total"), \
            _counter("edgeloop_prediction_cache_local_hits_total")
        start = time.time()
        versions = {p.model_version for p in client.batch_predict(requests)}
        versions |= {client.evaluate_strategy(sid, params).model_version for sid, params in evaluate}
        end = time.time()
        return [start, end, sorted(versions),
                _counter("edgeloop_prediction_cache_backend_calls_total") - calls,
                _counter("edgeloop_prediction_cache_local_hits_total") - local]

    one_round()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    rounds = []
    while not stop.is_set():
        rounds.append(one_round())
        time.sleep(0.002)  # four readers share two cores with Redis and the service
    print(json.dumps({"rounds": rounds, "delays": list(client.coherence.delays)}), flush=True)


if __name__ == "__main__":
    main()
