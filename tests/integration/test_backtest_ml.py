"""A backtest on the ML service's point-in-time predictions, against a real server."""

from __future__ import annotations

from datetime import date

import pytest

from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.strategy import Strategy
from tests.integration.ml.conftest import channel, ml_server, ml_settings, stub, trained_outcome  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_model_probabilities_from_the_service_backtest_point_in_time(ml_server, ml_settings, trained_outcome):  # noqa: F811
    from edgeloop.mlclient.client import MLClient

    _, port = ml_server
    client = MLClient(ml_settings, target=f"127.0.0.1:{port}")
    try:
        strategy = Strategy(name="model-edge", probability_source="model", price_source="MAX", min_edge=0.03)
        result = backtest(strategy, Window(date(2018, 7, 1), date(2020, 7, 31), ("E0",)),
                          predictions=MLServiceProvider(client), data_dir=ml_settings.data_dir)
    finally:
        client.close()
    m = result.metrics
    assert result.model_version and m.skipped_no_prediction == 0 and result.strategy.method == "model_point_in_time"
    assert m.total_bets > 50 and abs(m.roi) < 0.5  # an honest model: no absurd return
    assert [r.season for r in result.seasons] == ["2018-19", "2019-20"]



def test_through_the_shared_prediction_cache_the_result_is_the_same(ml_server, ml_settings, trained_outcome):  # noqa: F811
    from edgeloop.mlclient.cache import CachedMLClient
    from edgeloop.mlclient.client import MLClient

    _, port = ml_server
    client = MLClient(ml_settings, target=f"127.0.0.1:{port}")
    cached = CachedMLClient(client, settings=ml_settings)
    strategy = Strategy(name="model-edge", probability_source="model", price_source="MAX", min_edge=0.03)
    window = Window(date(2019, 8, 1), date(2019, 12, 31), ("E0",))
    try:
        direct = backtest(strategy, window, predictions=MLServiceProvider(client), data_dir=ml_settings.data_dir)
        first = backtest(strategy, window, predictions=MLServiceProvider(cached, list_models=client.list_models),
                         data_dir=ml_settings.data_dir)
        again = backtest(strategy, window, predictions=MLServiceProvider(cached, list_models=client.list_models),
                         data_dir=ml_settings.data_dir)
    finally:
        cached.close()
        client.close()
    assert direct.metrics == first.metrics == again.metrics and direct.metrics.total_bets > 0
