"""Training the strategy model on later-window labels, judged against the serving champion.

The strategy model predicts how a strategy does on data *after* the data it was chosen on, so
its labels are later-window scores: a training sample is a backtest of a strategy (by its
parameter fingerprint) on a window that starts after another window it was backtested on ended
(discovery backtests each candidate on its selection window, then the passing ones on the
validation window; the re-check adds newer windows). A strategy's result on the window it was
chosen on is never a label: it is the luck the selection picked.

And the model never sees the validation window's results: only labels from windows that end
before the current validation window starts (``edgeloop.services.windows.Windows.label_cutoff``)
are used, so the confidence a discovery run's verdict reads comes from a model that never saw
that window. Until windows roll forward past some validated results (walk-forward, as seasons
are imported) there may be no such labels: then nothing is trained, and discovery judges with
the prior confidence.

Champion/challenger, one slot: both are scored on the held-out samples (a fixed hash-chosen
share of backtest ids that no strategy version ever trains on) by Spearman rank correlation
between predicted and true score; the challenger serves if it is ≥ the champion's. All fitting
happens before the one transaction that records the outcome.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from datetime import date
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
from sqlalchemy import Engine, Text, cast, exists, select
from sqlalchemy.orm import aliased

from edgeloop.core.errors import ConfigurationError, InvalidRequest
from edgeloop.core.statuses import ModelStatus
from edgeloop.mlservice import notify, registry
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.strategy_model import MODEL_NAME as STRATEGY, StrategyModel, canonical_params, spearman, training_labels
from edgeloop.mlservice.strategy_service import StrategyService, holdout_mask
from edgeloop.mlservice.training import Skipped
from edgeloop.schema.base import utcnow
from edgeloop.schema.mlstore import FeedbackSample
from edgeloop.services.windows import current_windows

TOLERANCE = 1e-9  # "at least as good": equal scores keep the newer version
MIN_HELD_OUT = 5  # fewer held-out strategy samples than this cannot rank anything
MIN_TRAIN_SAMPLES = 10


def later_window_rows(keys: Sequence[str], starts: Sequence[date], ends: Sequence[date], cutoff: date) -> list[int]:
    """Indices of the samples that are later-window results: the same strategy (fingerprint)
    has a result on a window that ended before this one started, and this one ends before
    ``cutoff``. (``stored_samples`` asks the database the same question.)"""
    first_end: dict[str, date] = {}
    for k, e in zip(keys, ends):
        first_end[k] = min(first_end.get(k, e), e)
    return [i for i, (k, s, e) in enumerate(zip(keys, starts, ends)) if first_end[k] < s and e < cutoff]


def label_cutoff(ctx: ServiceContext) -> date:
    try:
        return current_windows(ctx.settings).label_cutoff
    except ConfigurationError as exc:
        raise Skipped(f"no windows to take labels from: {exc}") from None


class SampleRow(Protocol):
    """A stored feedback sample, as ``samples_of`` reads it."""

    backtest_id: str
    params: dict[str, Any]
    params_key: str
    window_start: date
    window_end: date
    backtest_score: float
    metrics: dict[str, Any] | None


Samples = tuple[list[str], list[dict], list[str], np.ndarray]


def stored_samples(engine: Engine, cutoff: date) -> Samples:
    """``samples_of`` the stored feedback samples, the later-window ones chosen by the database:
    a sample whose strategy (``params_key``, indexed) has a result on a window that ended before
    this one started (``later_window_rows``' rule as an EXISTS). Only those rows are read, their
    JSON as text and decoded here: reading every row, each one's params and metrics decoded by
    the driver, measured twice the CPU (half the rows are chosen-on results, which need none of
    it; docs/ml-service.md, the benchmark)."""
    sample, earlier = FeedbackSample, aliased(FeedbackSample)
    query = (select(sample.backtest_id, cast(sample.params, Text), sample.params_key, sample.backtest_score,
                    cast(sample.metrics, Text))
             .where(sample.window_end < cutoff,
                    exists().where(earlier.params_key == sample.params_key, earlier.window_end < sample.window_start))
             .order_by(sample.id))
    # 100,000 samples are a few hundred thousand new containers: the collector's full passes
    # over a heap that keeps growing measured ~15% of this load.
    with _collector_paused():
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return _labelled(())
        ids, params_texts, keys, scores, metrics_texts = zip(*rows)
        # A strategy with labels on several windows sends the same params text each time: each
        # distinct text is decoded and put through the backtester's checks once.
        distinct = list(dict.fromkeys(params_texts))
        canonical = dict(zip(distinct, map(_canonical_or_none, _json_values(distinct))))
        return _labelled(zip(ids, map(canonical.__getitem__, params_texts), keys, scores,
                             _json_values(metrics_texts)))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile (process-wide; back on after, unless it was
    off already). What is built here holds no cycles, so nothing waits for it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _json_values(texts: Sequence[str | None]) -> list[Any]:
    """Each JSON text decoded (None for SQL NULL), in one ``json.loads`` of them all as an array:
    per text, the decoder's set-up and its re-creating the same keys cost more than the
    decoding (twice the CPU for the params of 100,000 samples)."""
    values = json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
    if len(values) != len(texts):  # a text that is not one JSON value (never written by a JSON column)
        raise ValueError(f"{len(texts)} JSON texts decoded as {len(values)} values")
    return values


def _canonical_or_none(params: Any) -> dict[str, Any] | None:
    """The canonical params, or None for params the backtester refuses (a producer's own
    parameter language)."""
    try:
        return canonical_params(params)
    except InvalidRequest:
        return None


def samples_of(rows: Sequence[SampleRow], cutoff: date) -> Samples:
    """(backtest ids, canonical params, their fingerprints, labels) of the later-window samples
    before ``cutoff``, in the backtester's parameter language."""
    keep = later_window_rows([r.params_key for r in rows], [r.window_start for r in rows],
                             [r.window_end for r in rows], cutoff)
    chosen = (rows[i] for i in keep)
    return _labelled((r.backtest_id, _canonical_or_none(r.params), r.params_key, r.backtest_score, r.metrics)
                     for r in chosen)


def _labelled(rows: Iterable[tuple[str, dict[str, Any] | None, str, float, Any]]) -> Samples:
    """(backtest id, canonical params or None, params_key, score, metrics) rows as training
    samples; those without canonical params (refused by the backtester) are left out."""
    ids, params, fingerprints, scores, metrics = [], [], [], [], []
    for backtest_id, canonical, key, score, sample_metrics in rows:
        if canonical is None:
            continue
        ids.append(backtest_id)
        params.append(canonical)
        fingerprints.append(key)
        scores.append(score)
        metrics.append(sample_metrics or {})
    return ids, params, fingerprints, training_labels(scores, metrics)


def _held_out_score(model: StrategyModel, params: list[dict], fingerprints: list[str], Y: np.ndarray) -> float:
    return spearman(model.estimate(params, fingerprints).of("backtest_score"), Y[:, 0]) if params else float("nan")


def fit_challenger(train_p: list[dict], train_fps: list[str], train_Y: np.ndarray, test_p: list[dict],
                   test_fps: list[str], test_Y: np.ndarray) -> tuple[StrategyModel, dict[str, float]]:
    """The model fitted on the training samples, its residual spread and metrics from the
    held-out ones (when there are at least ``MIN_HELD_OUT``)."""
    model = StrategyModel.fit(train_p, train_Y, seed=len(train_p), fingerprints=train_fps)
    metrics: dict[str, float] = {"n_train": float(len(train_p)), "n_held_out": float(len(test_p))}
    if len(test_p) >= MIN_HELD_OUT:
        est = model.estimate(test_p, fingerprints=test_fps)
        model = model.with_residual_std(np.std(test_Y - est.mean, axis=0))
        metrics.update(spearman_held_out=spearman(est.of("backtest_score"), test_Y[:, 0]),
                       mae_held_out=float(np.mean(np.abs(est.of("backtest_score") - test_Y[:, 0]))))
    return model, metrics


def train_strategy(ctx: ServiceContext, strategies: StrategyService, job_id: str, force: bool) -> list[str]:
    ids, params, fingerprints, Y = stored_samples(ctx.engine, label_cutoff(ctx))
    held = holdout_mask(ids, ctx.settings.ml_holdout_fraction)
    train_p = [p for p, h in zip(params, held) if not h]
    train_fps = [f for f, h in zip(fingerprints, held) if not h]
    test_fps = [f for f, h in zip(fingerprints, held) if h]
    test_p = [p for p, h in zip(params, held) if h]
    with ctx.sessions() as s:
        champion = registry.serving_in_slot(s, STRATEGY, "")
        champion_version, champion_n = (champion.version, champion.sample_count) if champion else ("", 0)
    if len(train_p) < MIN_TRAIN_SAMPLES:
        raise Skipped(f"{len(train_p)} usable later-window samples before the label cutoff outside the held-out "
                      f"share; the strategy model needs {MIN_TRAIN_SAMPLES}")
    new = len(train_p) - champion_n
    if champion and not force and new < ctx.settings.min_new_feedback:
        raise Skipped(f"{new} new feedback samples since {champion_version}, fewer than min_new_feedback "
                      f"({ctx.settings.min_new_feedback}); force to train anyway")
    # The champion is read only now: a skipped run (beat's usual case) never unpacks it.
    champion_model = StrategyModel.from_bytes(champion.artifact, champion_version) if champion else None
    model, metrics = fit_challenger(train_p, train_fps, Y[~held], test_p, test_fps, Y[held])
    status, note = ModelStatus.SERVING, "first strategy model"
    if champion_model is not None:
        challenger = metrics.get("spearman_held_out", float("nan"))
        old = (_held_out_score(champion_model, test_p, test_fps, Y[held]) if len(test_p) >= MIN_HELD_OUT
               else float("nan"))
        if np.isnan(challenger) and not np.isnan(old):
            status, note = ModelStatus.REJECTED, f"too few held-out samples to compare with {champion_version}"
        elif np.isnan(old) or challenger >= old - TOLERANCE:
            note = f"held-out Spearman {challenger:.3f} ≥ champion {champion_version} {old:.3f}"
        else:
            status, note = ModelStatus.REJECTED, f"held-out Spearman {challenger:.3f} < champion {champion_version} {old:.3f}"
    cand = registry.Candidate(
        model_name=STRATEGY, slot="", train_start=None, train_end=utcnow(), sample_count=len(train_p),
        # A NaN Spearman (constant scores) is "not measured": JSON, and so PostgreSQL's jsonb, has no NaN.
        metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
        config={"holdout_fraction": ctx.settings.ml_holdout_fraction,
                "label_cutoff": label_cutoff(ctx).isoformat(), "labels": "later-window scores"},
        artifact=model.to_bytes(), job_id=job_id)
    with ctx.sessions.begin() as s:
        registry.serving_in_slot(s, STRATEGY, "")  # lock the slot
        version = registry.record(s, cand, status, note).version
    if status == ModelStatus.SERVING:
        strategies.refresh()
        notify.models_changed(ctx.settings)
    return [version]
