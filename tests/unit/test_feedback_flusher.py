"""The flusher's decisions on a failed SubmitBacktestFeedback: what each gRPC code means
(pure), and what the flusher then does with the results (the ML client is a stand-in that
fails the way the real client does; the store is a real SQLite database)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from sqlalchemy import select, update

from edgeloop.core.errors import MLServiceUnavailable
from edgeloop.core.events import parse_event
from edgeloop.core.settings import Settings
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.pipeline import BacktestResult
from edgeloop.schema.repository import count_rejected, count_unsubmitted, retry_rejected
from edgeloop.services.feedback import FeedbackFlusher, Unconfirmed, Verdict, verdict
from tests.support.feedback import fail, store_results
from tests.support.events import valid_event
from tests.support.ml import FakeMLClient

TOO_LARGE = "Received message larger than max (70000 vs. 65536)"
BACK_OFF_CODES = ["UNAUTHENTICATED", "PERMISSION_DENIED", "UNIMPLEMENTED", "INTERNAL", "UNKNOWN",
                  "DEADLINE_EXCEEDED", "UNAVAILABLE"]


# --- what a code means -------------------------------------------------------------------

@pytest.mark.parametrize("code", [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_only_invalid_argument_refuses_the_data(code):
    expected = Verdict.REFUSED if code == "INVALID_ARGUMENT" else Verdict.BACK_OFF
    assert verdict(fail(code, "whatever the service says")) is expected


def test_a_message_over_the_limit_is_split_but_an_overloaded_service_is_waited_for():
    assert verdict(fail("RESOURCE_EXHAUSTED", TOO_LARGE)) is Verdict.TOO_LARGE
    assert verdict(fail("RESOURCE_EXHAUSTED", "Sent message larger than max (9 vs. 4)")) is Verdict.TOO_LARGE
    assert verdict(fail("RESOURCE_EXHAUSTED", "quota exceeded")) is Verdict.BACK_OFF


def test_an_open_breaker_is_waited_for():
    assert verdict(MLServiceUnavailable("circuit breaker open")) is Verdict.BACK_OFF


# --- what the flusher does ---------------------------------------------------------------

class Board:
    def __init__(self) -> None:
        self.published, self.cleared = [], []

    def publish(self, state) -> None:
        self.published.append(state)

    def clear(self, flusher) -> None:
        self.cleared.append(flusher)


@pytest.fixture
def sessions(sqlite_url):
    return make_sessionmaker(make_engine(sqlite_url))


def counts(sessions) -> tuple[int, int]:
    with sessions() as s:
        return count_unsubmitted(s), count_rejected(s)


def test_a_refused_result_is_set_aside_and_the_rest_go_through(sessions):
    store_results(sessions, 25)
    client = FakeMLClient(refuse={"bt-00000003"})
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=10),
                              client_factory=lambda: client)
    # When everything is flushed
    assert flusher.flush_all() == 24
    # Then only the refused one is left, as rejected, not pending; later batches were not held back
    assert counts(sessions) == (0, 1)
    # And it was found by halving the batch (8 calls for the first 10 results, one by one would
    # take 11), then the next batches went through whole
    assert client.feedback_calls == [10, 5, 2, 3, 1, 2, 1, 1, 5] + [10, 5]
    # And after the cause is fixed it can be submitted again
    client.refuse.clear()
    with sessions.begin() as s:
        assert retry_rejected(s) == 1
    assert flusher.flush_all() == 1
    assert counts(sessions) == (0, 0)


def test_a_batch_over_the_message_limit_is_halved_until_it_fits(sessions):
    store_results(sessions, 40)
    client = FakeMLClient(max_bytes=1_000)  # about 5 results
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=20),
                              client_factory=lambda: client)
    assert flusher.flush_all() == 40
    assert counts(sessions) == (0, 0)
    assert client.feedback_calls[:4] == [20, 10, 5, 5]  # depth first, oldest half first
    assert max(n for n in client.feedback_calls if n <= 5) == 5


def test_a_single_result_over_the_limit_is_refused_data_and_nothing_else_is(sessions):
    store_results(sessions, 12, big={4})
    client = FakeMLClient(max_bytes=4_000)
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=12),
                              client_factory=lambda: client)
    assert flusher.flush_all() == 11
    assert counts(sessions) == (0, 1)


@pytest.mark.parametrize("code", BACK_OFF_CODES)
def test_a_fault_that_is_not_the_data_rejects_nothing_and_is_retried(sessions, code, caplog):
    store_results(sessions, 30)
    client = FakeMLClient()
    client.fail_with("submit_backtest_feedback", fail(code))
    board = Board()
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=10),
                              client_factory=lambda: client, board=board, name="w1:0")
    caplog.set_level(logging.INFO, logger="edgeloop.services.feedback")
    # When the service fails five times in a row with this code
    for _ in range(5):
        flusher._retry_at = 0  # the backoff is not what is under test: retry now
        assert flusher.flush_if_due() == 0
    # Then nothing was set aside or marked, one call per try (no one-by-one retry)
    assert counts(sessions) == (30, 0)
    assert client.feedback_calls == [10] * 5
    # And the state is visible: published on every try, logged once
    assert [b.code for b in board.published] == [code] * 5
    assert len({b.since for b in board.published}) == 1
    assert [r.message.startswith("feedback: backing off: " + code) for r in caplog.records] == [True]
    # When the service takes feedback again
    client.fail_with("submit_backtest_feedback", None)
    flusher._retry_at = 0
    assert flusher.flush_if_due() == 30
    # Then everything goes through, the state is cleared and that is one more line
    assert counts(sessions) == (0, 0)
    assert board.cleared == ["w1:0"] and flusher.backoff is None
    assert len(caplog.records) == 2 and "takes feedback again" in caplog.records[1].message


def test_a_new_code_while_backing_off_is_a_change_of_state(sessions, caplog):
    store_results(sessions, 3)
    client = FakeMLClient()
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(), client_factory=lambda: client)
    caplog.set_level(logging.INFO, logger="edgeloop.services.feedback")
    for code in ["UNAUTHENTICATED", "UNAUTHENTICATED", "UNAVAILABLE", "UNAVAILABLE"]:
        client.fail_with("submit_backtest_feedback", fail(code))
        flusher._retry_at = 0
        flusher.flush_if_due()
    assert [r.message.split(":")[2].split()[0] for r in caplog.records] == ["UNAUTHENTICATED", "UNAVAILABLE"]
    assert flusher.backoff.code == "UNAVAILABLE"


def held(sessions, n: int) -> list[Unconfirmed]:
    """What the consumer that stored results ``bt-00000000`` … hands its flusher: their row ids
    and the events as it serialised them."""
    with sessions() as s:
        ids = {b: i for b, i in s.execute(select(BacktestResult.backtest_id, BacktestResult.id))}
    return [Unconfirmed(ids[f"bt-{i:08d}"], f"bt-{i:08d}", valid_event(i)["strategy_id"], datetime.now(timezone.utc),
                        parse_event(json.dumps(valid_event(i))).message.SerializeToString()) for i in range(n)]


def test_results_just_stored_are_sent_from_memory_once(sessions):
    # Given 10 stored results, of which the read-back flush has already confirmed the oldest 4
    store_results(sessions, 10)
    client = FakeMLClient()
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=4),
                              client_factory=lambda: client)
    assert flusher.flush_once().submitted == 4
    # When the consumer that stored them submits all 10 from the events it holds; their stored
    # copies are unreadable, so nothing can have been read back
    events = held(sessions, 10)
    with sessions.begin() as s:
        s.execute(update(BacktestResult).values(event_pb=b"\xff"))
    assert flusher.flush_stored(events) == 6
    # Then only the 6 unconfirmed went, feedback_batch_size per call, and every one is confirmed once
    assert client.feedback_calls == [4, 4, 2]
    assert counts(sessions) == (0, 0)
    assert flusher.flush_stored(events) == 0 and client.feedback_calls == [4, 4, 2]


def test_results_just_stored_wait_while_the_service_is_backed_off(sessions):
    store_results(sessions, 3)
    client = FakeMLClient()
    client.fail_with("submit_backtest_feedback", fail("UNAVAILABLE"))
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(), client_factory=lambda: client)
    events = held(sessions, 3)
    assert flusher.flush_stored(events) == 0
    # While backing off nothing is sent; the results wait in the table for the read-back flush
    assert flusher.flush_stored(events) == 0 and client.feedback_calls == [3]
    client.fail_with("submit_backtest_feedback", None)
    flusher._retry_at = 0
    assert flusher.flush_if_due() == 3
    assert counts(sessions) == (0, 0)


def test_the_read_back_leaves_results_younger_than_its_minimum_age_to_the_handoff(sessions):
    # Given results just stored, which their consumer has handed to its flusher
    store_results(sessions, 5)
    client = FakeMLClient()
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(), client_factory=lambda: client)
    # When the loop's read-back runs, it does not read them back and submit them a second way
    assert flusher.flush_if_due(min_age_s=60) == 0 and client.feedback_calls == []
    # But once they are older than that (their consumer died before submitting them), it does
    with sessions.begin() as s:
        s.execute(update(BacktestResult).values(received_at=datetime.now(timezone.utc) - timedelta(seconds=61)))
    assert flusher.flush_if_due(min_age_s=60) == 5
    assert counts(sessions) == (0, 0)


def test_a_try_that_finds_nothing_to_send_does_not_end_a_backoff(sessions, caplog):
    store_results(sessions, 3)
    client = FakeMLClient()
    client.fail_with("submit_backtest_feedback", fail("UNAUTHENTICATED"))
    board = Board()
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(), client_factory=lambda: client, board=board,
                              name="w1:0")
    caplog.set_level(logging.INFO, logger="edgeloop.services.feedback")
    assert flusher.flush_if_due() == 0 and flusher.backoff is not None
    # When a later try makes no call (nothing old enough to read back), the service said nothing
    flusher._retry_at = 0
    assert flusher.flush_if_due(min_age_s=60) == 0 and client.feedback_calls == [3]
    # Then it is still backing off, reported, and said so once
    assert flusher.backoff is not None and board.cleared == []
    flusher._retry_at = 0
    assert flusher.flush_if_due() == 0
    assert [r.message.startswith("feedback: backing off: UNAUTHENTICATED") for r in caplog.records] == [True]
