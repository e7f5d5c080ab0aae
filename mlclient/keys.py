"""Redis key layout of the prediction cache (pure functions, no I/O).

Every key starts with ``cache_prefix`` (default ``edgeloop:pred``). Text components are escaped
(``%`` and ``:``) so that ids containing ``:`` cannot make two different requests collide.

=====================================================  ==========================================
``{prefix}:p:{model}:{request}``                      one prediction (a framed ``Prediction``: ``codec.py``)
``{prefix}:e:{model}:{strategy}:{params_hash}``       one EvaluateStrategy answer
``{prefix}:ix:{strategy}``                            set of the keys above that belong to a strategy
``{prefix}:gen``                                      model generation, bumped on every promotion
``{prefix}:lock:{keyset_hash}``                       single-flight lock of one set of misses
``{prefix}:stats``                                    hash: hits / misses by kind, all processes
=====================================================  ==========================================

``model`` is the model token of the catalogue (see ``catalogue.py``), so an entry of an old
version is never looked up again once a new one is promoted. ``request`` is binary: the
serialized ``PredictionRequest`` (event, selection, strategy, a named model version), then,
if the caller gave one, a NUL and its features hash: empty for past events whose inputs are
fixed, or the caller's digest of the prices it holds for a live event, so new prices make a new
entry. That is level 1's key for the same prediction (``local.py``), so a lookup that misses
level 1 builds its Redis keys by one concatenation each. A serialized message never has a NUL
where a field starts (there is no field 0), so no request + hash can equal another request
(+ hash); the model part is escaped, so the first ``:`` after ``p:`` ends it.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from typing import Any, Iterable, Iterator, Mapping, Sequence, overload

from edgeloop.proto import ml_service_pb2 as pb

EMPTY = "-"

_serialize = pb.PredictionRequest.SerializeToString


def escape(part: str) -> str:
    """A key component: never empty, ``:`` and ``%`` percent-encoded."""
    if not part:
        return EMPTY
    if ":" in part or "%" in part:
        return part.replace("%", "%25").replace(":", "%3A")
    return part  # the common case, kept cheap


def request_key(request: pb.PredictionRequest, features_hash: str = "") -> bytes:
    """What identifies a prediction besides the model token: level 1's key, and the tail of
    its Redis key (one C call: ~half the cost of building a text key field by field)."""
    key = _serialize(request)
    return key + b"\0" + features_hash.encode() if features_hash else key


def request_keys(requests: Sequence[pb.PredictionRequest], features_hash: str | Sequence[str] = "") -> list[bytes]:
    """``request_key`` of every request of a batch; ``features_hash``: one for all, or one per request."""
    if isinstance(features_hash, str):
        if not features_hash:
            return list(map(_serialize, requests))
        suffix = b"\0" + features_hash.encode()
        return [_serialize(r) + suffix for r in requests]
    return [_serialize(r) + b"\0" + h.encode() if h else _serialize(r) for r, h in zip(requests, features_hash)]


def prediction_key_base(prefix: str, model: str) -> bytes:
    """What every prediction key of one model token starts with."""
    return f"{prefix}:p:{escape(model)}:".encode()


def prediction_key(
    prefix: str, model: str, event_id: str, selection: str, strategy_id: str = "", features_hash: str = "",
    model_version: str = "",
) -> bytes:
    request = pb.PredictionRequest(event_id=event_id, selection=selection, strategy_id=strategy_id,
                                   model_version=model_version)
    return prediction_key_base(prefix, model) + request_key(request, features_hash)


class HeadAndTails(Sequence[bytes]):
    """The Redis keys of a batch's predictions: one head (``prediction_key_base``) and each
    request's ``request_key``, a key built (one concatenation) only when used: a large lookup
    sends its keys packed from head and tails (``rawredis.pack_mget``) and builds only those of
    the keys Redis did not have."""

    __slots__ = ("head", "tails")

    def __init__(self, head: bytes, tails: Sequence[bytes]) -> None:
        self.head = head
        self.tails = tails

    def __len__(self) -> int:
        return len(self.tails)

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...

    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            head = self.head
            return [head + tail for tail in self.tails[i]]
        return self.head + self.tails[i]

    def __iter__(self) -> Iterator[bytes]:
        head = self.head
        return (head + tail for tail in self.tails)


def params_hash(params: Mapping[str, Any]) -> str:
    """Order-independent digest of a strategy's parameters (JSON with sorted keys)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def evaluation_key(prefix: str, model: str, strategy_id: str, params: Mapping[str, Any]) -> bytes:
    return f"{prefix}:e:{escape(model)}:{escape(strategy_id)}:{params_hash(params)}".encode()


def strategy_index_key(prefix: str, strategy_id: str) -> str:
    return f"{prefix}:ix:{escape(strategy_id)}"


def generation_key(prefix: str) -> str:
    return f"{prefix}:gen"


def stats_key(prefix: str) -> str:
    return f"{prefix}:stats"


def lock_key(prefix: str, keys: Iterable[bytes]) -> str:
    """One lock per *set* of missing keys: processes missing the same keys share it."""
    return lock_key_of_sorted(prefix, sorted(keys))


def lock_key_of_sorted(prefix: str, keys: list[bytes]) -> str:
    """``lock_key`` of keys already sorted and distinct: a digest of them joined, then of their
    lengths (binary keys may hold any byte, so no separator alone would tell the sets apart)."""
    digest = hashlib.sha1(b"".join(keys), usedforsecurity=False)
    digest.update(array("I", map(len, keys)).tobytes())
    return f"{lock_prefix(prefix)}{digest.hexdigest()[:24]}"


def lock_prefix(prefix: str) -> str:
    return f"{prefix}:lock:"


def entry_patterns(prefix: str) -> tuple[str, str]:
    """SCAN patterns matching every cache entry (for stats)."""
    return f"{prefix}:p:*", f"{prefix}:e:*"
