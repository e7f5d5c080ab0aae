"""Point-in-time probabilities from the ML service, as a ``ProbabilityProvider``.

The service picks, for each event, the newest model version whose training data ends before
the event (``ModelVersion.train_end``); this adapter does not take that on trust: each
prediction is dated with its model version's ``train_end`` and the engine refuses any that
is not before the event's kick-off. A prediction from a version the registry does not list
is undated and refused the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import numpy as np

from edgeloop.backtester.probability import Predictions
from edgeloop.marketdata.arrays import PreEventArrays
from edgeloop.marketdata.csv import SELECTION_NAMES
from edgeloop.mlclient import get_cached_ml_client
from edgeloop.proto import ml_service_pb2 as pb


class MLServiceProvider:
    """Wraps anything with ``batch_predict(requests)`` (``edgeloop.mlclient.MLClient`` or the Redis-cached
    ``CachedMLClient``); ``list_models`` (default: the client's) names each version's training end."""

    def __init__(self, client: Any, chunk: int = 500, list_models: Callable[[], Iterable[Any]] | None = None) -> None:
        self.client = client
        self.chunk = chunk
        self.list_models = list_models or client.list_models

    @classmethod
    def from_settings(cls, settings=None) -> "MLServiceProvider":
        """Through the shared prediction cache (keyed by model version), as every worker does."""
        cached = get_cached_ml_client()
        return cls(cached, list_models=cached.client.list_models)

    def _train_end(self) -> dict[str, np.datetime64]:
        """Version → end of its training data, as naive UTC minutes (kick-offs are naive too)."""
        out: dict[str, np.datetime64] = {}
        for mv in self.list_models():
            if mv.train_end:
                end = datetime.fromisoformat(mv.train_end.replace("Z", "+00:00"))
                if end.tzinfo is not None:
                    end = end.astimezone(timezone.utc).replace(tzinfo=None)
                out[mv.version] = np.datetime64(end, "m")
        return out

    def predictions(self, window: PreEventArrays) -> Predictions:
        requests = [pb.PredictionRequest(event_id=eid, selection=sel)
                    for eid in window.event_ids for sel in SELECTION_NAMES]
        answers = []
        for start in range(0, len(requests), self.chunk):
            answers.extend(self.client.batch_predict(requests[start:start + self.chunk]))
        n = len(window)
        index = {eid: i for i, eid in enumerate(window.event_ids)}
        probs = np.full((n, 3), np.nan)
        made = np.full(n, np.datetime64("NaT"), dtype="datetime64[m]")
        versions: set[str] = set()
        train_end = self._train_end()
        for p in answers:
            i = index.get(p.event_id)
            if i is None or p.selection not in SELECTION_NAMES:
                continue
            k = SELECTION_NAMES.index(p.selection)
            probs[i, k] = p.probability
            versions.add(p.model_version)
            end = train_end.get(p.model_version, np.datetime64("NaT"))
            made[i] = end if np.isnat(made[i]) else max(made[i], end)
        return Predictions(event_ids=window.event_ids, probabilities=probs, available_at=made,
                           model_version=",".join(sorted(v for v in versions if v)))
