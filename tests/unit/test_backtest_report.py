"""The BacktestFinished mapping of a result."""

from __future__ import annotations

from datetime import date

from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.strategy import Strategy


def test_event_of_a_multi_version_run_fits_the_store():
    from dataclasses import replace

    from edgeloop.backtester.report import event_dict

    result = backtest(Strategy(name="k"), Window(date(2019, 8, 1), date(2019, 9, 30), ("E0",)))
    versions = [f"outcome-{s}-20261126T054606-9d13e6" for s in ("2017-18", "2018-19", "2019-20")]
    event = event_dict(replace(result, model_version=",".join(versions)))
    assert event["model_version"] == versions[-1] and len(event["model_version"]) <= 64
    assert event["params"]["model_versions"] == versions
    assert Strategy.from_mapping({"name": "k", **event["params"]}) == result.strategy


def test_event_parses_and_its_id_is_stable():
    from edgeloop.backtester.report import backtest_id, to_event
    from edgeloop.core.events import encode_event, parse_event

    window = Window(date(2019, 8, 1), date(2019, 9, 30), ("E0",))
    a, b = backtest(Strategy(name="k"), window), backtest(Strategy(name="renamed"), window)
    assert backtest_id(a) == backtest_id(b)  # same parameters, same window: the same backtest
    assert backtest_id(a) != backtest_id(backtest(Strategy(name="k", min_edge=0.01), window))
    assert backtest_id(a) != backtest_id(backtest(Strategy(name="k", strategy_id="mine"), window))
    parsed = parse_event(encode_event(to_event(a)))
    assert parsed.metrics["total_bets"] == a.metrics.total_bets and parsed.window_end == date(2019, 9, 30)


def test_the_output_states_the_terms_and_what_makes_figures_incomparable():
    from edgeloop.backtester.report import format_table, result_dict

    result = backtest(Strategy(name="k", price_source="max", min_edge=0.05), Window(date(2018, 8, 1), date(2020, 7, 31), ("E0",)))
    table, out = format_table(result), result_dict(result)
    assert out["terms"] == {"exchange_commission": 0.05, "lay_spread_ticks": 1, "keep_max_arbitrage": False}
    assert out["metrics"]["skipped_max_arbitrage"] > 0 and len(out["notes"]) == 2
    assert "maximum prices add up to less than 100%" in table and "changes definition within the window" in table
    assert "per season" in table and "walk" not in table
    assert out["method"] == "market_baseline"
