"""The ML-service provider dates each prediction by its model's training end; the engine refuses late ones."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgeloop.backtester.engine import run_backtest
from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.strategy import Strategy
from edgeloop.core.errors import LookAheadError
from tests.support.market_fixture import ROWS, window


class FakeClient:
    def __init__(self, train_end: str, version: str = "outcome-v1") -> None:
        self.train_end, self.version, self.calls = train_end, version, 0

    def list_models(self):
        return [SimpleNamespace(version="outcome-v1", train_end=self.train_end)]

    def batch_predict(self, requests):
        self.calls += 1
        probs = {f"{h}-{a}": p for h, a, _, _, _, p in ROWS}
        out = []
        for r in requests:
            p = next(v for k, v in probs.items() if r.event_id.endswith(k))
            if p is None:
                continue
            k = ("home", "draw", "away").index(r.selection)
            out.append(SimpleNamespace(event_id=r.event_id, selection=r.selection, probability=p[k],
                                       confidence=0.5, model_version=self.version))
        return out


STRATEGY = Strategy(name="t", price_source="X", probability_source="model", min_edge=0.05, flat_stake=10)


def test_predictions_from_a_model_trained_before_the_window_are_used():
    client = FakeClient("2019-12-31T00:00:00Z")
    result = run_backtest(STRATEGY, window(), MLServiceProvider(client, chunk=4))
    assert client.calls == 4  # 15 requests in chunks of 4
    assert result.metrics.profit == 36.0 and result.model_version == "outcome-v1"


@pytest.mark.parametrize("train_end,version", [("2020-01-05T00:00:00Z", "outcome-v1"),  # trained on day 2
                                               ("2019-12-31T00:00:00Z", "unknown-v9")])  # undated
def test_predictions_not_provably_before_kickoff_are_refused(train_end, version):
    with pytest.raises(LookAheadError):
        run_backtest(STRATEGY, window(), MLServiceProvider(FakeClient(train_end, version)))
