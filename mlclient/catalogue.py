"""Which model version will answer a request, known *before* looking in the cache.

A cache key must carry the model version, but the service chooses the version of a
point-in-time prediction itself (the newest version trained only on data before the event),
from the event's start time, which the caller does not send. So the key carries a **model
token** instead:

* a request that names ``model_version`` uses that version: it never changes meaning;
* otherwise the token is ``g`` + a digest of the model's catalogue (``ListModels``: every
  version with its status and training window). Whatever version the service picks for an
  event is a function of that catalogue, so the same token means the same answer, and any
  promotion, rollback or new version makes a new token: no old entry is looked up again
  (they expire by TTL). The price is that a promotion cools the whole cache of that model,
  which happens at retraining time, not per request.

The catalogue is fetched with ``ListModels`` and kept in process, tagged with the Redis
**model generation** (``{prefix}:gen``) seen before it was fetched. Every cache lookup reads
the generation in the same round trip as the entries; a different value means someone
promoted a model, so the lookup is redone with a fresh catalogue. Whoever promotes (the
training job, ``edgeloop ml rollback``) calls ``edgeloop.mlclient.cache.mark_models_changed`` *after*
the new version serves. Two safety nets bound the staleness when nobody bumps it: the
catalogue is refetched after ``cache_catalogue_ttl_s``, and an answer from a version the
catalogue does not list bumps the generation itself (and is not stored).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TypeGuard

from edgeloop.core.errors import MLServiceUnavailable
from edgeloop.proto import ml_service_pb2 as pb

Fetch = Callable[[str], Iterable[pb.ModelVersion]]


def fingerprint(models: Iterable[pb.ModelVersion]) -> str:
    rows = sorted(f"{m.version}|{m.status}|{m.train_start}|{m.train_end}" for m in models)
    return "g" + hashlib.sha256("\n".join(rows).encode()).hexdigest()[:12]


@dataclass
class _Entry:
    token: str
    status: dict[str, str]  # version -> status
    fetched_at: float
    generation: int | None


class ModelCatalogue:
    def __init__(self, fetch: Fetch, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._generation: int | None = None  # the newest generation seen in Redis

    def _fresh(self, entry: _Entry | None) -> TypeGuard[_Entry]:
        return entry is not None and entry.generation == self._generation and self._clock() - entry.fetched_at < self._ttl_s

    def _entry(self, model_name: str) -> _Entry:
        # Every cache hit asks: first without the lock (a dict read and two comparisons, which
        # the lock would not make more current: an expire() may as well come just after it).
        entry = self._entries.get(model_name)
        if self._fresh(entry):
            return entry
        with self._lock:
            entry = self._entries.get(model_name)
            if self._fresh(entry):
                return entry
            generation = self._generation  # read *before* the fetch: a later bump is noticed
        try:
            models = list(self._fetch(model_name))
        except MLServiceUnavailable:
            # The service is down, so nothing can have been promoted since (the generation
            # still matches): keep answering hits with the catalogue we have.
            if entry is not None and entry.generation == generation:
                return entry
            raise
        entry = _Entry(fingerprint(models), {m.version: m.status for m in models}, self._clock(), generation)
        with self._lock:
            self._entries[model_name] = entry
        return entry

    def token(self, model_name: str, model_version: str = "") -> str:
        """The key component for a request of ``model_name`` naming ``model_version`` (or not)."""
        return model_version if model_version else self._entry(model_name).token

    def status_of(self, model_name: str, version: str) -> str | None:
        """The version's status in the catalogue (``serving``, ``retired``…), None if unlisted."""
        return self._entry(model_name).status.get(version)

    @property
    def generation(self) -> int | None:
        """The newest generation seen in Redis (None before the first lookup)."""
        return self._generation

    def observe_generation(self, generation: int) -> bool:
        """Record the generation read with a lookup; True if the tokens used for it are still valid."""
        with self._lock:
            if generation == self._generation:
                return True
            self._generation = generation
            return False

    def expire(self) -> None:
        with self._lock:
            self._entries.clear()
