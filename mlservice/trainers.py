"""Trainers: fit a model, judge it against the serving champion, record it. Where models get promoted.

Champion/challenger, per slot, on held-out data neither version was fitted on:

* outcome, slot = season S: both versions were trained on events before S; they are compared
  by log-loss on S's played events (re-computed for the champion now, since S may have more
  results than when the champion was trained). The challenger serves if its log-loss is
  ≤ the champion's; a challenger fitted on exactly the champion's data is not recorded.
* strategy, one slot: both are scored on the held-out samples (a fixed hash-chosen share of
  backtest ids that no strategy version ever trains on) by Spearman rank correlation between
  predicted and true score; the challenger serves if it is ≥ the champion's.

All fitting happens before the one transaction that records the outcome, so a trainer that
raises has changed nothing.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import select

from edgeloop.core.errors import InvalidRequest
from edgeloop.mlservice import notify, registry
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.features import build_features
from edgeloop.mlservice.market import load_market
from edgeloop.mlservice.outcome_model import MODEL_NAME as OUTCOME, OutcomeModel, evaluate, walk_forward
from edgeloop.mlservice.predictor import OutcomePredictor
from edgeloop.mlservice.training import Skipped
from edgeloop.mlservice.strategy_model import MODEL_NAME as STRATEGY, StrategyModel, canonical_params, spearman, training_labels
from edgeloop.mlservice.strategy_service import StrategyService, holdout_mask
from edgeloop.schema.base import utcnow
from edgeloop.schema.mlstore import FeedbackSample

log = logging.getLogger("edgeloop.mlservice.training")
TOLERANCE = 1e-9  # "at least as good": equal scores keep the newer version
MIN_HELD_OUT = 5  # fewer held-out strategy samples than this cannot rank anything
MIN_TRAIN_SAMPLES = 10


def train_outcome(ctx: ServiceContext, predictor: OutcomePredictor, job_id: str, force: bool) -> list[str]:
    fs = build_features(load_market(ctx, fresh=True))
    trained = walk_forward(fs)
    recorded: list[str] = []
    with ctx.sessions.begin() as s:
        for v in trained:
            champion = registry.serving_in_slot(s, OUTCOME, v.season)
            if champion is not None and (champion.config or {}).get("data_hash") == v.data_hash and not force:
                continue  # same data, same fit: nothing to record
            cand = registry.Candidate(
                model_name=OUTCOME, slot=v.season, train_start=v.train_start, train_end=v.train_end,
                sample_count=v.sample_count, metrics=v.metrics,
                config={"data_hash": v.data_hash, "held_out_season": v.season}, artifact=v.model.to_bytes(),
                job_id=job_id)
            status, note = "serving", "first version of its season"
            if champion is not None:
                held_out = fs.seasons == v.season
                champ_score = evaluate(OutcomeModel.from_bytes(champion.artifact), fs, held_out).get("logloss")
                new_score = v.metrics.get("logloss")
                if champ_score is None or new_score is None:
                    status, note = "rejected", f"no held-out events of {v.season} to compare with {champion.version}"
                elif new_score <= champ_score + TOLERANCE:
                    note = f"log-loss {new_score:.5f} ≤ champion {champion.version} {champ_score:.5f} on {v.season}"
                else:
                    status, note = "rejected", (f"log-loss {new_score:.5f} > champion {champion.version} "
                                                f"{champ_score:.5f} on {v.season}")
            recorded.append(registry.record(s, cand, status, note).version)
    predictor.refresh(fs)
    if recorded:
        notify.models_changed(ctx.settings)
    return recorded


def _strategy_samples(ctx: ServiceContext) -> tuple[list[str], list[dict], list[str], np.ndarray]:
    """(backtest ids, canonical params, their fingerprints, labels) of every sample in the
    backtester's parameter language."""
    with ctx.sessions() as s:
        rows = s.execute(select(FeedbackSample.backtest_id, FeedbackSample.params, FeedbackSample.params_key,
                                FeedbackSample.backtest_score, FeedbackSample.metrics)
                         .order_by(FeedbackSample.id)).all()
    ids, params, fingerprints, scores, metrics = [], [], [], [], []
    for backtest_id, p, key, score, m in rows:
        try:
            params.append(canonical_params(p))
        except InvalidRequest:
            continue
        ids.append(backtest_id)
        fingerprints.append(key)
        scores.append(score)
        metrics.append(m or {})
    return ids, params, fingerprints, training_labels(scores, metrics)


def _held_out_score(model: StrategyModel, params: list[dict], fingerprints: list[str], Y: np.ndarray) -> float:
    return spearman(model.estimate(params, fingerprints).of("backtest_score"), Y[:, 0]) if params else float("nan")


def train_strategy(ctx: ServiceContext, strategies: StrategyService, job_id: str, force: bool) -> list[str]:
    ids, params, fingerprints, Y = _strategy_samples(ctx)
    held = holdout_mask(ids, ctx.settings.ml_holdout_fraction)
    train_p = [p for p, h in zip(params, held) if not h]
    train_fps = [f for f, h in zip(fingerprints, held) if not h]
    test_fps = [f for f, h in zip(fingerprints, held) if h]
    test_p = [p for p, h in zip(params, held) if h]
    with ctx.sessions() as s:
        champion = registry.serving_in_slot(s, STRATEGY, "")
        champion_version, champion_n = (champion.version, champion.sample_count) if champion else ("", 0)
    if len(train_p) < MIN_TRAIN_SAMPLES:
        raise Skipped(f"{len(train_p)} usable feedback samples outside the held-out share; "
                      f"the strategy model needs {MIN_TRAIN_SAMPLES}")
    new = len(train_p) - champion_n
    if champion and not force and new < ctx.settings.min_new_feedback:
        raise Skipped(f"{new} new feedback samples since {champion_version}, fewer than min_new_feedback "
                      f"({ctx.settings.min_new_feedback}); force to train anyway")
    # The champion is read only now: a skipped run (beat's usual case) never unpacks it.
    champion_model = StrategyModel.from_bytes(champion.artifact) if champion else None
    model = StrategyModel.fit(train_p, Y[~held], seed=len(train_p), fingerprints=train_fps)
    metrics: dict[str, float] = {"n_train": float(len(train_p)), "n_held_out": float(len(test_p))}
    if len(test_p) >= MIN_HELD_OUT:
        est = model.estimate(test_p, fingerprints=test_fps)
        model = model.with_residual_std(np.std(Y[held] - est.mean, axis=0))
        metrics.update(spearman_held_out=spearman(est.of("backtest_score"), Y[held, 0]),
                       mae_held_out=float(np.mean(np.abs(est.of("backtest_score") - Y[held, 0]))))
    status, note = "serving", "first strategy model"
    if champion_model is not None:
        new = metrics.get("spearman_held_out", float("nan"))
        old = (_held_out_score(champion_model, test_p, test_fps, Y[held]) if len(test_p) >= MIN_HELD_OUT
               else float("nan"))
        if np.isnan(new) and not np.isnan(old):
            status, note = "rejected", f"too few held-out samples to compare with {champion_version}"
        elif np.isnan(old) or new >= old - TOLERANCE:
            note = f"held-out Spearman {new:.3f} ≥ champion {champion_version} {old:.3f}"
        else:
            status, note = "rejected", f"held-out Spearman {new:.3f} < champion {champion_version} {old:.3f}"
    cand = registry.Candidate(
        model_name=STRATEGY, slot="", train_start=None, train_end=utcnow(), sample_count=len(train_p),
        # A NaN Spearman (constant scores) is "not measured": JSON, and so PostgreSQL's jsonb, has no NaN.
        metrics={k: v for k, v in metrics.items() if np.isfinite(v)}, config={"holdout_fraction": ctx.settings.ml_holdout_fraction}, artifact=model.to_bytes(),
        job_id=job_id)
    with ctx.sessions.begin() as s:
        registry.serving_in_slot(s, STRATEGY, "")  # lock the slot
        version = registry.record(s, cand, status, note).version
    if status == "serving":
        strategies.refresh()
        notify.models_changed(ctx.settings)
    return [version]
