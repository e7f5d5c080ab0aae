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


from mlservice import notify, registry
from mlservice.context import ServiceContext
from mlservice.features import build_features
from mlservice.market import load_market
from mlservice.outcome_model import MODEL_NAME as OUTCOME, OutcomeModel, evaluate, walk_forward
from mlservice.predictor import OutcomePredictor

log = logging.getLogger("edgeloop.mlservice.training")
TOLERANCE = 1e-9  # "at least as good": equal scores keep the newer version


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
