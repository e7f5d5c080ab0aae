"""GetPrediction / BatchPredict: point-in-time outcome predictions from the serving versions.

The predictor holds one immutable snapshot (features of every known match + the serving
outcome versions) and swaps it whole after a training job or a rollback, so a request never
sees half of an update. The snapshot also holds every known match's answer from the serving
versions (``Answers``: probabilities, confidence, version, features hash, the default rule's
advice), computed with one matrix product per version when it is made: a request only looks
its rows up, so that a call costs no numpy work of its own (a dozen small numpy calls cost a
single prediction more than the rest of the service did). A named ``model_version`` is
computed per request, as it is asked for.

A request with the ``strategy_id`` of a backtested strategy (one with feedback) gets that
strategy's own rule as its recommendation: its selections, price source, odds range,
minimum confidence, side and minimum edge. Other requests get the default rule of
``outcome_model.recommendation``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from sqlalchemy import select

from edgeloop.core.errors import InvalidRequest, ModelNotTrained, NotFound
from edgeloop.mlservice import registry
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.features import FeatureSet, build_features
from edgeloop.mlservice.market import load_market
from edgeloop.mlservice.outcome_model import MODEL_NAME, OutcomeModel, ServingOutcome, backs, confidence
from edgeloop.mlservice.strategy_model import canonical_params
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.mlstore import FeedbackSample

SELECTION_INDEX = {"home": 0, "h": 0, "draw": 1, "d": 1, "away": 2, "a": 2}
SELECTION_NAMES = ("home", "draw", "away")
MAX_ID_LEN = 128


STRATEGY_RULES_TTL_S = 60.0


def strategy_recommendation(p: float, confidence: float, price: float, selection: str,
                            params: dict[str, Any]) -> str:
    """The strategy's own betting rule (``edgeloop.backtester.engine.decide``) for one selection."""
    if selection not in params["selections"] or not np.isfinite(price) or confidence < params["min_confidence"]:
        return "none"
    if not params["min_odds"] <= price <= params["max_odds"]:
        return "none"
    if params["side"] == "lay":
        return "lay" if (1.0 - p * price) / (price - 1.0) > params["min_edge"] else "none"
    return "back" if p * price - 1.0 > params["min_edge"] else "none"


class NoModelForEvent(ModelNotTrained):
    """No outcome version was trained strictly before the event (point in time)."""


@dataclass(frozen=True)
class Answers:
    """Every row's point-in-time answer from the serving versions, as plain Python values."""

    probs: list[list[float]]  # row -> [home, draw, away]; NaN where no version is old enough
    confidence: list[float]
    versions: list[str]  # row -> the serving version used; "" where none is old enough
    backs: list[list[bool]]  # row -> the default rule's advice per selection (True: "back")
    hashes: list[str]  # row -> features hash

    @classmethod
    def compute(cls, fs: FeatureSet, serving: ServingOutcome, min_edge: float, hashes: list[str]) -> "Answers":
        probs, which = serving.predict_rows(fs, np.arange(len(fs)))
        names = [v[1] for v in serving.versions]
        return cls(probs=probs.tolist(), confidence=confidence(probs).tolist(),
                   versions=[names[k] if k >= 0 else "" for k in which.tolist()],
                   backs=backs(probs, fs.best_prices, min_edge).tolist(), hashes=hashes)


@dataclass(frozen=True)
class Snapshot:
    features: FeatureSet
    serving: ServingOutcome
    made_monotonic: float
    answers: Answers

    @property
    def version_ids(self) -> tuple[str, ...]:
        return tuple(v[1] for v in self.serving.versions)


# How often a request checks whether the serving versions changed (another replica's training
# job, `edgeloop ml rollback`): one small query, so replicas converge within this many seconds.
REGISTRY_POLL_S = 2.0
# An unknown event id rebuilds the features (matches imported since) at most this often.
FEATURES_STALE_S = 30.0


class OutcomePredictor:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._named: OrderedDict[str, tuple[np.datetime64, OutcomeModel]] = OrderedDict()
        self._named_lock = threading.Lock()
        self._checked_monotonic = 0.0
        self._rules: dict[str, tuple[float, dict[str, Any] | None]] = {}

    # --- state ---------------------------------------------------------------------------

    def refresh(self, features: FeatureSet | None = None) -> Snapshot:
        """Re-read the serving versions (and the matches, unless ``features`` are given)."""
        with self._lock:
            if features is None:
                features = build_features(load_market(self.ctx))
            rows = registry.serving_versions(self.ctx.sessions, MODEL_NAME)
            serving = ServingOutcome([
                (np.datetime64(r.train_end.date(), "D"), r.version, OutcomeModel.from_bytes(r.artifact, r.version))
                for r in rows if r.train_end is not None
            ])
            old = self._snapshot
            # The hashes depend on the features only: a new serving version keeps them.
            hashes = old.answers.hashes if old is not None and old.features is features else features.row_hashes()
            answers = Answers.compute(features, serving, self.ctx.settings.ml_recommend_min_edge, hashes)
            self._snapshot = Snapshot(features, serving, time.monotonic(), answers)
            self._checked_monotonic = time.monotonic()
            return self._snapshot

    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            return self.refresh()
        if time.monotonic() - self._checked_monotonic > REGISTRY_POLL_S:
            self._checked_monotonic = time.monotonic()
            if registry.serving_version_ids(self.ctx.sessions, MODEL_NAME) != snap.version_ids:
                return self.refresh(snap.features)
        return snap

    def _named_version(self, version: str) -> tuple[np.datetime64, OutcomeModel]:
        with self._named_lock:
            hit = self._named.get(version)
        if hit is None:
            row = registry.get_version(self.ctx.sessions, version)
            if row.model_name != MODEL_NAME or row.train_end is None:
                raise InvalidRequest(f"model_version {version!r} is not an outcome model version")
            hit = (np.datetime64(row.train_end.date(), "D"),
                   OutcomeModel.from_bytes(registry.load_artifact(self.ctx.sessions, version), version))
            with self._named_lock:  # a small LRU: versions are immutable, so caching them is safe
                self._named[version] = hit
                while len(self._named) > 64:
                    self._named.popitem(last=False)
        return hit

    def strategy_params(self, strategy_id: str) -> dict[str, Any] | None:
        """The newest backtested parameters of ``strategy_id`` (from its feedback), if any."""
        hit = self._rules.get(strategy_id)
        if hit is not None and time.monotonic() - hit[0] < STRATEGY_RULES_TTL_S:
            return hit[1]
        with self.ctx.sessions() as s:
            raw = s.scalars(select(FeedbackSample.params).where(FeedbackSample.strategy_id == strategy_id)
                            .order_by(FeedbackSample.id.desc()).limit(1)).first()
        try:
            params = canonical_params(raw) if raw is not None else None
        except InvalidRequest:
            params = None  # a producer's own parameter language: the default rule applies
        if len(self._rules) > 10_000:
            self._rules.clear()
        self._rules[strategy_id] = (time.monotonic(), params)
        return params

    # --- requests ------------------------------------------------------------------------

    def predict(self, requests: Sequence[pb.PredictionRequest], into: Any = None) -> Sequence[pb.Prediction]:
        """The predictions of ``requests``, in order. ``into``: the repeated ``Prediction`` field
        of a response to add them to (each message is built in place there, not built and then
        copied in); it is returned."""
        snap = self.snapshot()
        fs, answers = snap.features, snap.answers
        index, versions = fs.index, answers.versions
        n = len(requests)
        ids = [""] * n
        rows = [0] * n
        sels = [0] * n
        later = []  # requests checked once all are valid: named versions, events no version serves
        for i, r in enumerate(requests):
            event_id = r.event_id
            if not event_id or len(event_id) > MAX_ID_LEN:
                raise InvalidRequest(f"{_where(i, n)}: event_id must be 1–{MAX_ID_LEN} characters")
            sel = SELECTION_INDEX.get(r.selection)
            if sel is None:
                sel = SELECTION_INDEX.get(r.selection.strip().lower())
                if sel is None:
                    raise InvalidRequest(f"{_where(i, n)}: selection {r.selection!r} is not one of home, draw, away")
            row = index.get(event_id)
            if row is None and time.monotonic() - snap.made_monotonic > FEATURES_STALE_S:
                self.refresh()  # matches may have been imported since: start over with them
                return self.predict(requests, into)
            if row is None:
                raise NotFound(f"{_where(i, n)}: unknown event {event_id!r} (import its league-season first)")
            ids[i], rows[i], sels[i] = event_id, row, sel
            if r.model_version or not versions[row]:
                later.append(i)

        # A named version (rare) is computed here; every other answer is the snapshot's.
        named: dict[int, list[float]] = {}
        for i in later:
            r, row = requests[i], rows[i]
            if r.model_version:  # an explicit version must still be from before the event
                train_end, model = self._named_version(r.model_version)
                if train_end >= fs.dates[row]:
                    raise InvalidRequest(
                        f"model_version {r.model_version} was trained on data up to {train_end}, not before "
                        f"event {r.event_id} ({fs.dates[row]}): that would be looking into the future")
                named[i] = model.predict_proba(fs.X[row:row + 1])[0].tolist()
            else:
                raise NoModelForEvent(f"no outcome model version was trained before {fs.dates[row]} "
                                      f"(event {r.event_id}); run a training job")

        min_edge = self.ctx.settings.ml_recommend_min_edge
        out = pb.BatchPredictResponse().predictions if into is None else into
        add = out.add
        probs_of, confidence_of, backs_of, hashes = answers.probs, answers.confidence, answers.backs, answers.hashes
        for i, (r, event_id, row, sel) in enumerate(zip(requests, ids, rows, sels)):
            probs = named.get(i) if named else None
            if probs is None:
                p, conf, version, back = probs_of[row][sel], confidence_of[row], versions[row], backs_of[row][sel]
            else:
                p, conf, version = probs[sel], float(confidence(np.array([probs]))[0]), r.model_version
                back = bool(backs(np.array(probs), fs.best_prices[row], min_edge)[sel])
            strategy_id = r.strategy_id
            rule = self.strategy_params(strategy_id) if strategy_id else None
            if rule is None:
                advice = "back" if back else "none"
            else:
                source = fs.prices.get(rule["price_source"])
                price = float(source[row, sel]) if source is not None else float("nan")
                advice = strategy_recommendation(p, conf, price, SELECTION_NAMES[sel], rule)
            add(event_id=event_id, selection=SELECTION_NAMES[sel], probability=p, confidence=conf,
                recommendation=advice, model_version=version, features_hash=hashes[row])
        return out


def _where(i: int, n: int) -> str:
    """How an error names the request it is about."""
    return f"requests[{i}]" if n > 1 else "request"
