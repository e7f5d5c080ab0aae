"""A strategy page's bankroll curve (edgeloop/web/bankroll.py) without a running site: a model
strategy without the ML service says why instead of failing, and a market one is drawn."""

from __future__ import annotations

from datetime import date

from edgeloop.core.errors import MLServiceUnavailable
from edgeloop.web.bankroll import Bankrolls

START, END = date(2019, 7, 1), date(2020, 8, 31)
MODEL = {"min_edge": 0.02, "price_source": "MAX", "probability_source": "model"}


def test_a_model_strategy_says_why_it_has_no_curve_when_the_ml_service_is_away():
    def away():
        raise MLServiceUnavailable("ML service at 127.0.0.1:1 unavailable")

    curve = Bankrolls(predictions=away).curve(MODEL, START, END)
    assert curve.days == () and curve.final is None
    assert curve.note == "not drawn: ML service at 127.0.0.1:1 unavailable"
    assert Bankrolls().curve(MODEL, START, END).note == "bets on model probabilities: needs the ML service"


def test_a_market_strategy_is_drawn_over_the_whole_season():
    curve = Bankrolls().curve({"min_edge": 0.02, "price_source": "MAX"}, START, END)
    assert curve.note == "" and curve.bets > 0 and len(curve.days) == len(curve.bankroll)
    assert curve.days[0] >= START and curve.days[-1] == date(2020, 7, 26)  # 2019-20 ended in July


def test_edgeloop_web_parses_the_discovery_leagues_before_serving_and_starts_without_them(
        tmp_path, monkeypatch, caplog):
    from edgeloop.cli import web
    from edgeloop.marketdata import arrays

    monkeypatch.setenv("EDGELOOP_DISCOVERY_LEAGUES", '["D1"]')
    parsed: list[str] = []
    parse = arrays.parse_file
    monkeypatch.setattr(arrays, "parse_file", lambda path: parsed.append(path.name) or parse(path))
    arrays.clear_cache()
    web.parse_seasons()
    assert parsed and {name[:2] for name in parsed} == {"D1", "E0"}  # E0: parameters naming no league
    monkeypatch.setenv("EDGELOOP_DATA_DIR", str(tmp_path / "missing"))
    web.get_settings.cache_clear()
    with caplog.at_level("WARNING"):
        web.parse_seasons()  # a strategy page says why its windows have no curve; the pages still serve
    assert "season files not parsed at start" in caplog.text
    arrays.clear_cache()
