"""Small pure rules: a live recommendation under a strategy's filters; `tasks run --arg` parsing."""

from __future__ import annotations

import click
import pytest

from edgeloop.backtester.strategy import Strategy
from edgeloop.cli.tasks import parse_args
from edgeloop.services.predictions import recommend

S = Strategy(name="t", selections=("home", "away"), min_edge=0.02, min_odds=1.5, max_odds=5.0, min_confidence=0.3)


@pytest.mark.parametrize("selection,p,conf,price,expected", [
    ("home", 0.50, 0.5, 2.10, "back"),   # edge 0.05
    ("home", 0.50, 0.5, 2.02, "none"),   # edge 0.01 < 0.02
    ("draw", 0.40, 0.5, 3.00, "none"),   # not one of the strategy's selections
    ("away", 0.30, 0.5, 6.00, "none"),   # above max_odds
    ("away", 0.70, 0.5, 1.45, "none"),   # below min_odds
    ("home", 0.50, 0.2, 2.50, "none"),   # confidence below min_confidence
    ("home", 0.50, 0.5, None, "none"),   # not quoted
])
def test_recommendation_follows_the_strategy(selection, p, conf, price, expected):
    rec, edge = recommend(S, selection, p, conf, price)
    assert rec == expected
    assert edge == (None if price is None else pytest.approx(p * price - 1))


def test_task_arguments_are_json_when_they_parse():
    assert parse_args(("force=true", "wait_s=60", "as_of=2019-03-01", 'strategy={"min_edge": 0.1}')) == {
        "force": True, "wait_s": 60, "as_of": "2019-03-01", "strategy": {"min_edge": 0.1}}
    with pytest.raises(click.BadParameter):
        parse_args(("no-equals-sign",))
