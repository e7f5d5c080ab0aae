"""Where a strategy's probabilities come from, and the checks that keep the future out.

Two sources:

* **market** (the baseline): the prices of one source with the bookmaker's margin removed
  proportionally, ``p_i = (1/o_i) / Σ_j (1/o_j)``. Proportional de-margining is the simple,
  standard choice; it slightly over-rates long shots (favourite–long-shot bias), which the
  ML outcome model is there to beat.
* **model**: point-in-time ``Predictions`` aligned with the window's events, from the ML
  service (through any ``ProbabilityProvider``, e.g. the ML client) or an array. Each
  prediction states ``available_at``, when the information behind it was fixed (the end of
  the model's training data, or the time it was made). One that is not strictly earlier than
  its event's kick-off is look-ahead and the whole run is refused: a backtest with one leaked
  prediction is not a smaller problem than one with many, it is an untrustworthy number.

A provider only ever receives ``PreEventArrays``: it cannot see results through the engine.

``min_confidence`` is judged on ``forecast_confidence`` of the probabilities, whichever the
source: a provider's own notion of confidence is not used, so the parameter means the same
for market and model strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edgeloop.core.errors import LookAheadError
from edgeloop.marketdata.arrays import PreEventArrays


def demargin(prices: np.ndarray) -> np.ndarray:
    """``(n, 3)`` decimal odds → ``(n, 3)`` probabilities summing to 1; NaN rows where any
    price is missing (a partial quote has no defined margin)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = 1.0 / prices
        return implied / implied.sum(axis=1, keepdims=True)


def forecast_confidence(probabilities: np.ndarray) -> np.ndarray:
    """``(n, 3)`` probabilities → ``(n,)`` certainty about each match, ``1 − H / ln 3`` with H
    the entropy: 0 for (⅓, ⅓, ⅓), 1 for a certain outcome; NaN where a probability is missing.
    The same formula as the ML service's prediction confidence."""
    p = np.asarray(probabilities, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    h = np.where(np.isfinite(p).all(axis=1), h, np.nan)
    return np.clip(1.0 - h / np.log(3.0), 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Predictions:
    """Probabilities for the three selections of each event.

    ``event_ids`` (n,) name the events; ``probabilities`` (n, 3) home/draw/away, NaN where
    there is no prediction; ``available_at`` (n,) datetime64, when each prediction's
    information was fixed; ``model_version`` names the model(s) for the published event.
    """

    event_ids: np.ndarray
    probabilities: np.ndarray
    available_at: np.ndarray
    model_version: str = ""

    def __post_init__(self) -> None:
        n = len(self.event_ids)
        probs = np.asarray(self.probabilities, dtype=float)
        if probs.shape != (n, 3):
            raise ValueError(f"probabilities must have shape ({n}, 3), got {probs.shape}")
        if len(self.available_at) != n:
            raise ValueError(f"available_at must have {n} entries, got {len(self.available_at)}")
        finite = probs[np.isfinite(probs)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError("probabilities must be in [0, 1]")


@runtime_checkable
class ProbabilityProvider(Protocol):
    """Anything that predicts a window's events from what is known before each kick-off,
    e.g. the ML client's point-in-time BatchPredict. Missing predictions are NaN rows."""

    def predictions(self, window: PreEventArrays) -> Predictions: ...


@dataclass(frozen=True, slots=True)
class AlignedProbabilities:
    probabilities: np.ndarray  # (n, 3) aligned with the window, NaN = none
    model_version: str = ""


def market_probabilities(window: PreEventArrays, source: str) -> AlignedProbabilities:
    return AlignedProbabilities(demargin(window.price(source)))


def align_predictions(window: PreEventArrays, predictions: Predictions) -> AlignedProbabilities:
    """Reorder ``predictions`` to the window's events and refuse any that is not point-in-time."""
    n = len(window)
    index = {eid: i for i, eid in enumerate(window.event_ids)}
    rows = np.fromiter((index.get(e, -1) for e in predictions.event_ids), dtype=np.int64,
                       count=len(predictions.event_ids))
    known = rows >= 0
    rows = rows[known]
    src = np.asarray(predictions.probabilities, dtype=float)[known]
    made = np.asarray(predictions.available_at).astype("datetime64[m]")[known]
    has = np.isfinite(src).all(axis=1)
    kickoff = window.kickoffs[rows]
    late = has & ~(made < kickoff)
    if late.any():
        i = int(np.flatnonzero(late)[0])
        raise LookAheadError(
            f"{int(late.sum())} prediction(s) use information from at or after their event's kick-off, "
            f"e.g. {window.event_ids[rows[i]]} (kick-off {kickoff[i]}) predicted with data to {made[i]}; "
            "a backtest may only use predictions from models trained before each event")
    probs = np.full((n, 3), np.nan)
    probs[rows[has]] = src[has]
    return AlignedProbabilities(probs, predictions.model_version)
