"""What SubmitBacktestFeedback stores is exactly what was sent, validated, in the request's order."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from edgeloop.core.events import validate_message
from edgeloop.mlservice.strategy_model import params_fingerprint
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.db import make_engine
from edgeloop.schema.mlstore import FeedbackSample
from tests.integration.ml.factories import finished

pytestmark = pytest.mark.integration


def _rows(url: str) -> list[FeedbackSample]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(FeedbackSample).order_by(FeedbackSample.id)).all()
    engine.dispose()
    return rows


def test_a_sample_holds_every_value_as_sent(stub, pg_url):
    # Given a result with text beyond ASCII, nested params, optional metrics at the edges of a double
    msg = finished("bt-é", params={"min_edge": 0.0123, "staking": "Kelly", "leagues": ["E0", "SP1"],
                                   "note": "Straße ✓ 😀 \"quoted\" \\ back", "nested": {"a": [1, None, True, -0.0]}})
    msg.strategy_name = "名前 ✓ 😀"
    msg.finished_at = "2020-06-01T10:00:00Z"
    msg.metrics.yield_se = 1.7976931348623157e308
    msg.metrics.turnover = 5e-324
    msg.metrics.markets = 2**53
    msg.metrics.backtest_score = 0.1 + 0.2  # not the shortest decimal of anything simple
    # When it is submitted
    stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[msg], batch_id="batch-1"), timeout=5)
    # Then the row holds exactly the validated event's values
    event = validate_message(msg)
    (row,) = _rows(pg_url)
    assert row.backtest_id == "bt-é" and row.strategy_id == msg.strategy_id and row.strategy_name == "名前 ✓ 😀"
    assert row.params == event.params
    # jsonb keeps numbers as decimals: 1.7976931348623157e308 reads back as a 309-digit integer
    assert {k: float(v) for k, v in row.metrics.items()} == event.metrics
    assert (row.window_start, row.window_end) == (event.window_start, event.window_end)
    assert row.method == msg.method and row.model_version is None  # empty: no model
    assert row.backtest_score == event.backtest_score == 0.1 + 0.2
    assert row.params_key == params_fingerprint(event.params)
    assert row.batch_id == "batch-1" and row.received_at.tzinfo is not None


def test_samples_are_stored_in_the_request_order(stub, pg_url):
    ids = [f"bt-{i}" for i in (5, 1, 9, 3)]
    stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[finished(i) for i in ids]), timeout=5)
    assert [r.backtest_id for r in _rows(pg_url)] == ids  # the newest result of a strategy has the largest id


def test_the_first_of_a_repeated_id_is_the_one_stored(stub, pg_url):
    first, again = finished("bt-1", roi=0.01), finished("bt-1", roi=0.05)
    answer = stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[first, again]), timeout=5)
    assert (answer.accepted, answer.duplicates, list(answer.stored_backtest_ids)) == (1, 0, ["bt-1"])
    (row,) = _rows(pg_url)
    assert row.metrics["roi"] == 0.01
