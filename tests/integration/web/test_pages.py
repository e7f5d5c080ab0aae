"""Every page of `edgeloop web` over HTTP: behind the token, its content, pagination, escaping."""

from __future__ import annotations

import re
from datetime import date

import pytest

from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.web.bankroll import Bankrolls
from tests.support.web_seed import PARAMS, SELECTION

pytestmark = pytest.mark.integration

PAGES = ["/strategies", "/strategies/gen-001", "/discovery", "/models", "/pipeline"]


@pytest.mark.parametrize("path", PAGES + ["/static/charts.js"])
def test_every_page_needs_the_token(web, path):
    status, _, headers = web.get(path, auth=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert web.get(path, auth="wrong")[0] == 401


@pytest.mark.parametrize("path", PAGES)
def test_bearer_and_basic_auth_open_every_page(web, path):
    for auth in ("bearer", "basic"):
        status, body, headers = web.get(path, auth=auth)
        assert status == 200, body[-500:]
        assert headers["Content-Type"].startswith("text/html")


def test_strategies_are_ranked_by_composite_with_their_evidence(web):
    _, body, _ = web.get("/strategies")
    with web.sessions() as s:
        expected = [r.strategy_id for r in s.query(Strategy).order_by(Strategy.composite_score.desc())]
    shown = re.findall(r'href="/strategies/(gen-\d+)"', body)
    assert shown == expected
    # the three kinds of evidence, and why each status is what it is
    assert len(re.findall(r"\d+ bets, yield [+-]", body)) == 2 * len(expected)  # selection and validation of each
    assert "validation gate:" in body and "deflated Sharpe" in body


def test_strategies_filter_by_status(web):
    with web.sessions() as s:
        inactive = sorted(r.strategy_id for r in s.query(Strategy).filter_by(status="inactive"))
    _, body, _ = web.get("/strategies?status=inactive")
    assert sorted(re.findall(r'href="/strategies/(gen-\d+)"', body)) == inactive


def test_a_strategy_page_shows_params_evidence_backtests_and_confidence_history(web):
    status, body, _ = web.get("/strategies/gen-001")
    assert status == 200
    assert "kelly_fraction" in body and "0.25" in body
    assert "selection" in body and "validation" in body
    assert body.count('data-chart="bankroll-') == 2  # one curve per window
    assert 'data-chart="confidence"' in body
    assert body.count("strategy-v") >= 6  # the ranking history's model versions


def test_the_bankroll_curve_ends_where_the_stored_result_does(web):
    # The page draws the curve by backtesting again; it must be the run the stored result summarises.
    with web.sessions() as s:
        stored = s.query(BacktestResult).filter_by(strategy_id="gen-000", window_start=SELECTION.start).one()
        params = stored.params
    curve = Bankrolls().curve(params, SELECTION.start, SELECTION.end)
    assert curve.bets == stored.total_bets
    assert curve.final == pytest.approx(curve.initial + stored.profit, abs=0.01)
    assert all(isinstance(d, date) for d in curve.days) and list(curve.days) == sorted(curve.days)
    assert PARAMS[0].items() <= params.items()


def test_unknown_strategy_and_page_are_404(web):
    assert web.get("/strategies/no-such")[0] == 404
    assert web.get("/nowhere")[0] == 404


def test_discovery_models_and_pipeline_pages(web):
    _, discovery, _ = web.get("/discovery")
    assert "disc-0002" in discovery and "succeeded" in discovery
    assert "failed at backtest_dispatch" in discovery and "rank_report" in discovery
    _, models, _ = web.get("/models")
    assert "job-0003" in models and "not enough samples" in models
    assert "strategy-20241201T000000-def456" in models and "rejected" in models
    _, pipeline, _ = web.get("/pipeline")
    assert re.search(r"<td>backtests.finished</td><td>25</td><td>20</td><td>5</td>", pipeline)
    assert re.search(r"<td>not_json</td><td>3</td>", pipeline)


def test_pagination_walks_every_strategy_once(web):
    with web.sessions.begin() as s:
        s.add_all(Strategy(strategy_id=f"extra-{i:03d}", name="", params={}, composite_score=i / 1000)
                  for i in range(120))
    seen, page = [], 1
    while True:
        _, body, _ = web.get(f"/strategies?page={page}")
        seen += re.findall(r'href="/strategies/((?:gen|extra)-\d+)"', body)
        if 'rel="next"' not in body:
            break
        page += 1
    assert page == 3 and len(seen) == len(set(seen)) == 128


def test_producer_text_is_escaped(web):
    with web.sessions.begin() as s:
        s.add(Strategy(strategy_id="x<script>", name="<img src=x onerror=alert(1)>", params={"k": "</script>"},
                       composite_score=0.99))
    _, body, _ = web.get("/strategies")
    assert "<img src=x" not in body and "&lt;img src=x" in body
    status, page, _ = web.get("/strategies/x%3Cscript%3E")
    assert status == 200 and "<script>" not in page.replace('<script type="application/json"', "").replace(
        "<script src=", "")
