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

from datetime import date
from typing import Any, Protocol, Sequence

import numpy as np
from sqlalchemy import select

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
    ``cutoff``."""
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


def _samples(ctx: ServiceContext) -> tuple[list[str], list[dict], list[str], np.ndarray]:
    with ctx.sessions() as s:
        rows = s.execute(select(FeedbackSample.backtest_id, FeedbackSample.params, FeedbackSample.params_key,
                                FeedbackSample.window_start, FeedbackSample.window_end,
                                FeedbackSample.backtest_score, FeedbackSample.metrics)
                         .order_by(FeedbackSample.id)).all()
    return samples_of(rows, label_cutoff(ctx))


def samples_of(rows: Sequence[SampleRow], cutoff: date) -> tuple[list[str], list[dict], list[str], np.ndarray]:
    """(backtest ids, canonical params, their fingerprints, labels) of the later-window samples
    before ``cutoff``, in the backtester's parameter language."""
    keep = later_window_rows([r.params_key for r in rows], [r.window_start for r in rows],
                             [r.window_end for r in rows], cutoff)
    ids, params, fingerprints, scores, metrics = [], [], [], [], []
    for i in keep:
        r = rows[i]
        try:
            params.append(canonical_params(r.params))
        except InvalidRequest:
            continue
        ids.append(r.backtest_id)
        fingerprints.append(r.params_key)
        scores.append(r.backtest_score)
        metrics.append(r.metrics or {})
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
    ids, params, fingerprints, Y = _samples(ctx)
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
