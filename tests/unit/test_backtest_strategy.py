from __future__ import annotations

import pytest

from edgeloop.backtester.strategy import Strategy, load_strategy
from edgeloop.core.errors import InvalidStrategy


def test_every_problem_is_reported_in_one_clear_message():
    with pytest.raises(InvalidStrategy) as err:
        Strategy.from_mapping({"name": "bad", "side": "sideways", "min_odds": 5, "max_odds": 2,
                               "kelly_fraction": 0, "selections": ["home", "over"]})
    text = str(err.value)
    for part in ("side must be one of back, lay", "min_odds 5 is above max_odds 2",
                 "kelly_fraction must be in (0.0, 1.0]", "selections must be distinct values"):
        assert part in text


def test_unknown_parameters_are_refused():
    with pytest.raises(InvalidStrategy, match="unknown strategy parameter.*min_egde"):
        Strategy.from_mapping({"min_egde": 0.1})


def test_aliases_defaults_and_stable_id(tmp_path):
    s = Strategy.from_mapping({"name": "k", "price_source": "market_maximum", "selections": "home"})
    assert s.price_source == "MAX" and s.selections == ("home",)
    assert Strategy().price_source == "PSB365"  # a single real book by default: Pinnacle, else Bet365
    assert Strategy.from_mapping({"price_source": "pinnacle_or_bet365"}).price_source == "PSB365"
    assert s.strategy_id == Strategy.from_mapping(s.params() | {"name": "other"}).strategy_id
    path = tmp_path / "k.yaml"
    path.write_text("price_source: max\nmin_edge: 0.05\nstaking: kelly\n")
    loaded = load_strategy(path)
    assert (loaded.name, loaded.min_edge, loaded.staking) == ("k", 0.05, "kelly")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InvalidStrategy, match="not valid"):
        load_strategy(tmp_path / "bad.json")
    with pytest.raises(InvalidStrategy, match="finite number"):
        Strategy(min_edge=float("nan"))


def test_a_published_events_params_rebuild_the_same_strategy():
    from datetime import date

    from edgeloop.backtester.report import event_dict
    from edgeloop.backtester.run import Window, backtest

    s = Strategy(name="k", price_source="PS", staking="kelly", min_edge=0.03, selections=("home", "away"))
    result = backtest(s, Window(date(2019, 8, 1), date(2019, 9, 30), ("E0",)))
    params = event_dict(result)["params"]
    assert params["leagues"] == ["E0"]
    assert Strategy.from_mapping({"name": "k", **params}) == s


@pytest.mark.parametrize("bad", [{"selections": [1, "home"]}, {"selections": 7}, {"min_edge": "0.05"},
                                 {"price_source": None}, {"name": ""}, {"one_bet_per_event": "yes"}, {"strategy_id": 5},
                                 {"selections": [["home"]]}])
def test_wrong_types_are_invalid_strategies_not_crashes(bad):
    with pytest.raises(InvalidStrategy):
        Strategy.from_mapping(bad)


def test_parameters_nested_under_params():
    s = Strategy.from_mapping({"name": "n", "strategy_id": "sid",
                               "params": {"min_edge": 0.1, "side": "LAY", "price_source": "betfair_exchange"}})
    assert (s.name, s.strategy_id, s.min_edge, s.side, s.price_source) == ("n", "sid", 0.1, "lay", "BFE")


@pytest.mark.parametrize("source", ["B365", "max", "avg", "pinnacle", "pinnacle_or_bet365"])
def test_a_lay_at_a_bookmaker_price_is_refused_in_one_line(source):
    with pytest.raises(InvalidStrategy) as err:
        Strategy.from_mapping({"name": "lay-draws", "side": "lay", "selections": ["draw"], "price_source": source})
    text = str(err.value)
    assert "a lay needs an exchange price (price_source BFE or BFEC)" in text and "\n" not in text
    assert Strategy(side="lay", price_source="BFEC").side == "lay"  # the exchange's closing price: fine


def test_commission_defaults_to_the_exchange_setting_at_exchange_prices_only():
    from edgeloop.backtester.execution import ExecutionTerms
    from edgeloop.core.settings import settings_with

    terms = ExecutionTerms.from_settings(settings_with(exchange_commission=0.02, exchange_lay_spread_ticks=2))
    assert (terms.commission(Strategy(price_source="BFE")), terms.lay_spread_ticks) == (0.02, 2)
    assert terms.commission(Strategy(price_source="B365")) == 0.0
    assert terms.commission(Strategy(price_source="BFE", commission=0.03)) == 0.03
