"""The flusher's handling of a result the ML service refuses (pure batching logic: the ML
client is a stand-in that refuses one backtest id; the store is a real SQLite database)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from edgeloop.errors import MLServiceError, MLServiceUnavailable
from edgeloop.events import parse_event
from edgeloop.settings import Settings
from proto import ml_service_pb2 as pb
from schema.db import make_engine, make_sessionmaker
from schema.repository import count_rejected, count_unsubmitted, insert_results, retry_rejected
from tests.support.events import valid_event
from workers.feedback import FeedbackFlusher
from workers.ingest import result_row


class RefusingClient:
    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.calls: list[int] = []

    def submit_backtest_feedback(self, results, batch_id):
        self.calls.append(len(results))
        if any(r.backtest_id in self.refuse for r in results):
            raise MLServiceError("SubmitBacktestFeedback: INVALID_ARGUMENT: refused")
        return pb.BacktestFeedbackResponse(accepted=len(results), stored_backtest_ids=[r.backtest_id for r in results])


def store(sessions, n: int) -> None:
    now = datetime.now(timezone.utc)
    with sessions.begin() as s:
        rows = []
        for i in range(n):
            raw = json.dumps(valid_event(i))
            rows.append(result_row(parse_event(raw), f"{i}-0", now))
        insert_results(s, rows)


def test_a_refused_result_is_set_aside_and_the_rest_go_through(sqlite_url):
    sessions = make_sessionmaker(make_engine(sqlite_url))
    store(sessions, 25)
    client = RefusingClient({"bt-00000003"})
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=10),
                              client_factory=lambda: client)
    # When everything is flushed
    assert flusher.flush_all() == 24
    # Then only the refused one is left, as rejected, not pending; later batches were not held back
    with sessions() as s:
        assert (count_unsubmitted(s), count_rejected(s)) == (0, 1)
    # And after the cause is fixed it can be submitted again
    client.refuse.clear()
    with sessions.begin() as s:
        assert retry_rejected(s) == 1
    assert flusher.flush_all() == 1
    with sessions() as s:
        assert (count_unsubmitted(s), count_rejected(s)) == (0, 0)


def test_an_unreachable_service_marks_nothing(sqlite_url):
    sessions = make_sessionmaker(make_engine(sqlite_url))
    store(sessions, 5)

    class Down:
        def submit_backtest_feedback(self, results, batch_id):
            raise MLServiceUnavailable("down")

    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(), client_factory=Down)
    assert flusher.flush_if_due() == 0
    with sessions() as s:
        assert (count_unsubmitted(s), count_rejected(s)) == (5, 0)
