"""Redis key layout of the prediction cache (pure functions, no I/O).

Every key starts with ``cache_prefix`` (default ``edgeloop:pred``). Components are escaped
(``%`` and ``:``) so that ids containing ``:`` cannot make two different requests collide.

=====================================================  ==========================================
``{prefix}:p:{model}:{features}:{event}:{selection}:{strategy}``  one prediction (serialized ``Prediction``)
``{prefix}:e:{model}:{strategy}:{params_hash}``       one EvaluateStrategy answer
``{prefix}:ix:{strategy}``                            set of the keys above that belong to a strategy
``{prefix}:gen``                                      model generation, bumped on every promotion
``{prefix}:lock:{keyset_hash}``                       single-flight lock of one set of misses
``{prefix}:stats``                                    hash: hits / misses by kind, all processes
=====================================================  ==========================================

``model`` is the model version the service will answer with (see ``catalogue.py``), so an
entry of an old version is never looked up again once a new one is promoted. ``features`` is
the caller's features hash: empty (``-``) for past events whose inputs are fixed, or the
caller's digest of the prices it holds for a live event, so new prices make a new entry.
"""

from __future__ import annotations

import hashlib
import json
import operator
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

EMPTY = "-"

_EVENT_ID = operator.attrgetter("event_id")
_SELECTION = operator.attrgetter("selection")
_STRATEGY_ID = operator.attrgetter("strategy_id")
_MODEL_VERSION = operator.attrgetter("model_version")


def escape(part: str) -> str:
    """A key component: never empty, ``:`` and ``%`` percent-encoded."""
    if not part:
        return EMPTY
    if ":" in part or "%" in part:
        return part.replace("%", "%25").replace(":", "%3A")
    return part  # the common case, kept cheap: a batch builds thousands of keys


def prediction_key(
    prefix: str, model: str, event_id: str, selection: str, strategy_id: str = "", features_hash: str = ""
) -> str:
    return prediction_key_base(prefix, model, features_hash) + prediction_key_tail(event_id, selection, strategy_id)


# A batch shares prefix, model and usually the features hash: build that part once.
def prediction_key_base(prefix: str, model: str, features_hash: str = "") -> str:
    return f"{prefix}:p:{escape(model)}:{escape(features_hash)}:"


def prediction_key_tail(event_id: str, selection: str, strategy_id: str = "") -> str:
    tail = f"{event_id}:{selection}:{strategy_id or EMPTY}"
    if event_id and selection and tail.count(":") == 2 and "%" not in tail:
        return tail  # nothing to escape: the common case, one check instead of three
    return f"{escape(event_id)}:{escape(selection)}:{escape(strategy_id)}"


class _PredictionRequest(Protocol):  # proto.ml_service_pb2.PredictionRequest
    event_id: str
    selection: str
    model_version: str
    strategy_id: str


def prediction_keys(
    prefix: str,
    model: Callable[[str], str],
    requests: Sequence[_PredictionRequest],
    features_hash: str | Sequence[str] = "",
) -> list[str]:
    """``prediction_key`` of every request of a batch; ``model`` maps a request's
    ``model_version`` ("": none named) to the model part. ``features_hash``: one for all, or
    one per request.

    Built for the whole batch at once: a lookup builds one key per request, and helper calls
    and checks per key cost ~0.3 ms a 1,000 (``bench/cache.py``). The keys are first built
    without escaping, which is right when every event, selection and strategy is free of ':'
    and '%' and the first two are not empty; that is checked once on the whole batch: every
    key has at least its base's colons (the prefix's + 4: the base's parts are escaped) + 2,
    so exactly that many in total means none has more, and an empty event or selection makes
    '::'. Otherwise (or with a '%' or '::' in a base) every key is built the careful way.
    """
    if isinstance(features_hash, str):
        parts = zip(map(_EVENT_ID, requests), map(_SELECTION, requests), map(_STRATEGY_ID, requests))
        versions = list(map(_MODEL_VERSION, requests))
        if not any(versions):  # the common case: one base for all (fields read by C loops)
            b = prediction_key_base(prefix, model(""), features_hash)
            out = [f"{b}{event}:{selection}:{strategy or EMPTY}" for event, selection, strategy in parts]
        else:
            bases = {version: prediction_key_base(prefix, model(version), features_hash) for version in set(versions)}
            out = [f"{bases[version]}{event}:{selection}:{strategy or EMPTY}"
                   for version, (event, selection, strategy) in zip(versions, parts)]
        joined = "\n".join(out)
        if joined.count(":") == (prefix.count(":") + 6) * len(out) and "%" not in joined and "::" not in joined:
            return out
        features_hash = [features_hash] * len(requests)
    return [
        prediction_key(prefix, model(r.model_version), r.event_id, r.selection, r.strategy_id, h)
        for r, h in zip(requests, features_hash, strict=True)
    ]


def params_hash(params: Mapping[str, Any]) -> str:
    """Order-independent digest of a strategy's parameters (JSON with sorted keys)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def evaluation_key(prefix: str, model: str, strategy_id: str, params: Mapping[str, Any]) -> str:
    return f"{prefix}:e:{escape(model)}:{escape(strategy_id)}:{params_hash(params)}"


def strategy_index_key(prefix: str, strategy_id: str) -> str:
    return f"{prefix}:ix:{escape(strategy_id)}"


def generation_key(prefix: str) -> str:
    return f"{prefix}:gen"


def stats_key(prefix: str) -> str:
    return f"{prefix}:stats"


def lock_key(prefix: str, keys: Iterable[str]) -> str:
    """One lock per *set* of missing keys: processes missing the same keys share it."""
    return lock_key_of_sorted(prefix, sorted(keys))


def lock_key_of_sorted(prefix: str, keys: list[str]) -> str:
    """``lock_key`` of keys already sorted and distinct."""
    digest = hashlib.sha1("\n".join(keys).encode(), usedforsecurity=False).hexdigest()[:24]
    return f"{lock_prefix(prefix)}{digest}"


def lock_prefix(prefix: str) -> str:
    return f"{prefix}:lock:"


def entry_patterns(prefix: str) -> tuple[str, str]:
    """SCAN patterns matching every cache entry (for stats)."""
    return f"{prefix}:p:*", f"{prefix}:e:*"
