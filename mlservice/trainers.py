"""The outcome model's trainer: fit, judge against the serving champion, record. Where outcome
models get promoted (the strategy model's trainer is ``strategy_training``).

Champion/challenger per slot, slot = season S: the challenger (its regularisation tuned
walk-forward) and the champion are judged on the seasons *before* S, by the log-loss of their
lineages there (``outcome_selection``): nothing of S decides which version serves S. A
challenger fitted on exactly the champion's data is not recorded.

All fitting happens before the one transaction that records the outcome, so a trainer that
raises has changed nothing.
"""

from __future__ import annotations

import logging

from edgeloop.core.statuses import ModelStatus
from edgeloop.mlservice import notify, registry
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.features import build_features
from edgeloop.mlservice.market import load_market
from edgeloop.mlservice.outcome_model import MODEL_NAME as OUTCOME, OutcomeModel
from edgeloop.mlservice.outcome_selection import Lineages, decide
from edgeloop.mlservice.predictor import OutcomePredictor

log = logging.getLogger("edgeloop.mlservice.training")


def train_outcome(ctx: ServiceContext, predictor: OutcomePredictor, job_id: str, force: bool) -> list[str]:
    fs = build_features(load_market(ctx, fresh=True))
    lineages = Lineages.fit(fs)  # all fitting before the transaction
    recorded: list[str] = []
    with ctx.sessions.begin() as s:
        rows = {row.slot: row for row in registry.serving_rows(s, OUTCOME)}  # locked until commit
        champions = {slot: OutcomeModel.from_bytes(row.artifact, row.version) for slot, row in rows.items()}
        for d in decide(lineages, fs, champions):
            v, champion = d.version, rows.get(d.season)
            if champion is not None and (champion.config or {}).get("data_hash") == v.data_hash and not force:
                continue  # same data, same C, same fit: nothing to record
            cand = registry.Candidate(
                model_name=OUTCOME, slot=v.season, train_start=v.train_start, train_end=v.train_end,
                sample_count=v.sample_count, metrics={**v.metrics, "choice_seasons": float(len(d.judged_on))},
                config={"data_hash": v.data_hash, "held_out_season": v.season, "chosen_on": list(d.judged_on)},
                artifact=v.model.to_bytes(), job_id=job_id)
            status = ModelStatus.SERVING if d.serve else ModelStatus.REJECTED
            recorded.append(registry.record(s, cand, status, d.note).version)
    predictor.refresh(fs)
    if recorded:
        notify.models_changed(ctx.settings)
    return recorded
