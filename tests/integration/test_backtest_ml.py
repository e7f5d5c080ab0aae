"""A walk-forward backtest on the ML service's point-in-time predictions, against a real server."""

from __future__ import annotations

from datetime import date

import pytest

from backtester.ml_provider import MLServiceProvider
from backtester.run import Window, backtest
from backtester.strategy import Strategy
from tests.integration.ml.conftest import channel, ml_server, ml_settings, stub, trained_outcome  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_model_probabilities_from_the_service_backtest_walk_forward(ml_server, ml_settings, trained_outcome):  # noqa: F811
    from mlclient.client import MLClient

    _, port = ml_server
    client = MLClient(ml_settings, target=f"127.0.0.1:{port}")
    try:
        strategy = Strategy(name="model-edge", probability_source="model", price_source="MAX", min_edge=0.03)
        result = backtest(strategy, Window(date(2018, 7, 1), date(2020, 7, 31), ("E0",)),
                          predictions=MLServiceProvider(client), data_dir=ml_settings.data_dir)
    finally:
        client.close()
    m = result.metrics
    assert result.model_version and m.skipped_no_prediction == 0
    assert m.total_bets > 50 and abs(m.roi) < 0.5  # an honest model: no absurd return
    assert [r.season for r in result.seasons] == ["2018-19", "2019-20"]

