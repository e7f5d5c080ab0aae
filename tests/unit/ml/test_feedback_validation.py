"""The feedback RPC's validation remembers parameter sets it has seen, and is still exactly
``validate_message`` and ``params_fingerprint`` for every result, seen or not."""

from __future__ import annotations

import random

import pytest

from edgeloop.core.errors import InvalidRequest
from edgeloop.core.events import validate_message
from edgeloop.mlservice import feedback_store
from edgeloop.mlservice.strategy_model import params_fingerprint
from tests.integration.ml.factories import finished
from tests.unit.ml.test_fingerprint_memo import VARIANTS


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    monkeypatch.setattr(feedback_store, "_seen", feedback_store._SeenParams(kept=5, max_key=200))


def test_seen_or_not_every_result_is_validated_and_fingerprinted_as_alone():
    # Given results whose params repeat (equal in Python but not in JSON, another key order, …)
    # in a memo small enough to be emptied several times
    rng = random.Random(3)
    results = [finished(f"bt-{i}", params=rng.choice(VARIANTS)) for i in range(300)]
    results.append(finished("bt-large", params={"blob": "x" * 300}))  # too large to remember
    # When they are validated, in requests of a few
    samples = [s for start in range(0, len(results), 7) for s in feedback_store.validate_results(results[start:start + 7])]
    # Then each is what validate_message makes of it alone, with its params' own fingerprint
    assert len(samples) == len(results)
    for msg, (event, fingerprint) in zip(results, samples):
        alone = validate_message(msg)
        assert event == alone and repr(event.params) == repr(alone.params)  # repr: 1 vs 1.0 vs True
        assert fingerprint == params_fingerprint(alone.params)
    assert 0 < len(feedback_store._seen._known) <= 5


def test_a_result_refused_once_is_refused_again_and_does_not_hide_the_next():
    good, bad = finished("bt-1"), finished("bt-2", params={"min_edge": float("nan")})
    for _ in range(2):
        with pytest.raises(InvalidRequest, match=r"results\[1\] \(backtest_id 'bt-2'\): non_finite"):
            feedback_store.validate_results([good, bad])
    # the same params under an invalid event: still refused, for the event's own fault
    wrong = finished("bt-3")
    wrong.window_end = "2019-01-01"
    with pytest.raises(InvalidRequest, match="out_of_range"):
        feedback_store.validate_results([good, wrong])
