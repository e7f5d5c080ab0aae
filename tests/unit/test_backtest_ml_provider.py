"""The ML-service provider dates each prediction by its model's training end; the engine refuses late ones."""

from __future__ import annotations

import pytest

from edgeloop.backtester.engine import run_backtest
from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.strategy import Strategy
from edgeloop.core.errors import LookAheadError
from edgeloop.marketdata.csv import SELECTION_NAMES
from edgeloop.proto import ml_service_pb2 as pb
from tests.support.market_fixture import ROWS, window
from tests.support.ml import FakeMLClient


def market_probability(request: pb.PredictionRequest, version: str) -> float | None:
    """The fixture's probability of the requested selection (None: the row has none)."""
    probs = next(p for h, a, _, _, _, p in ROWS if request.event_id.endswith(f"{h}-{a}"))
    return None if probs is None else probs[SELECTION_NAMES.index(request.selection)]


def fake_client(train_end: str, version: str = "outcome-v1") -> FakeMLClient:
    """Serves ``version``; the registry lists outcome-v1, trained until ``train_end``."""
    client = FakeMLClient(version, probability=market_probability)
    client.models = [pb.ModelVersion(model_name="outcome", version="outcome-v1", status="serving", train_end=train_end)]
    return client


STRATEGY = Strategy(name="t", price_source="X", probability_source="model", min_edge=0.05, flat_stake=10)


def test_predictions_from_a_model_trained_before_the_window_are_used():
    client = fake_client("2019-12-31T00:00:00Z")
    result = run_backtest(STRATEGY, window(), MLServiceProvider(client, chunk=4))
    assert client.batch_calls == [4, 4, 4, 3]  # 15 requests in chunks of 4
    assert result.metrics.profit == 36.0 and result.model_version == "outcome-v1"


@pytest.mark.parametrize("train_end,version", [("2020-01-05T00:00:00Z", "outcome-v1"),  # trained on day 2
                                               ("2019-12-31T00:00:00Z", "unknown-v9")])  # undated
def test_predictions_not_provably_before_kickoff_are_refused(train_end, version):
    with pytest.raises(LookAheadError):
        run_backtest(STRATEGY, window(), MLServiceProvider(fake_client(train_end, version)))
