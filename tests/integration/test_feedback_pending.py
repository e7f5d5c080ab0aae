"""Which stored results the ML service has not confirmed (``feedback_pending``, revision 0007):
kept by the database's triggers whoever writes the results, claimed by flushers without
overlap, confirmed once, read back when left behind; on PostgreSQL and SQLite."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, func, select, text

from edgeloop.core.settings import Settings
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.pipeline import BacktestResult, FeedbackPending
from edgeloop.schema.repository import (claim_ids, claim_unsubmitted, count_rejected, count_unsubmitted,
                                        feedback_backlog, mark_processed, recent_unprocessed, reject, retry_rejected)
from edgeloop.services.feedback import FeedbackFlusher, Unconfirmed
from tests.support.feedback import store_results
from tests.support.ml import FakeMLClient

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def sessions(request):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def row_ids(sessions) -> dict[str, int]:
    with sessions() as s:
        return dict(s.execute(select(BacktestResult.backtest_id, BacktestResult.id)).all())


def pending(sessions) -> dict[int, int | None]:
    with sessions() as s:
        return dict(s.execute(select(FeedbackPending.result_id, FeedbackPending.rejected_batch_id)).all())


def submitted(sessions) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(BacktestResult.backtest_id).where(BacktestResult.ml_feedback_submitted)))


def test_a_mark_alone_commits_without_waiting_for_the_disk(pg_url):
    # A lost mark only sends its results again (docs/delivery.md); the results' own commit and
    # every other transaction of the connection keep synchronous_commit on.
    sessions = make_sessionmaker(make_engine(pg_url))
    store_results(sessions, 2)
    with sessions.begin() as s:
        assert s.scalar(text("SHOW synchronous_commit")) == "on"
        assert mark_processed(s, row_ids(sessions).values()) == 2
        assert s.scalar(text("SHOW synchronous_commit")) == "off"
    with sessions.begin() as s:
        assert s.scalar(text("SHOW synchronous_commit")) == "on"


def test_every_stored_result_waits_until_confirmed_once(sessions):
    # Given results stored as the consumer stores them, one of them twice
    store_results(sessions, 10)
    store_results(sessions, 3)  # already stored: nothing new, nothing waiting twice
    ids = row_ids(sessions)
    # Then each waits, once
    assert pending(sessions) == {i: None for i in ids.values()}
    with sessions() as s:
        assert count_unsubmitted(s) == 10
        count, oldest = feedback_backlog(s)
        assert count == 10 and oldest is not None
    assert submitted(sessions) == set()
    # When the service confirms three
    confirmed = [ids["bt-00000001"], ids["bt-00000004"], ids["bt-00000007"]]
    with sessions.begin() as s:
        assert mark_processed(s, confirmed) == 3
    with sessions.begin() as s:
        assert mark_processed(s, confirmed) == 0  # a second confirmation changes nothing
    # Then they, and only they, are submitted, as the derived column says too
    assert submitted(sessions) == {"bt-00000001", "bt-00000004", "bt-00000007"}
    with sessions() as s:
        assert count_unsubmitted(s) == 7
        assert [r.backtest_id for r in recent_unprocessed(s, 3)] == ["bt-00000000", "bt-00000002", "bt-00000003"]
        assert [r.id for r in claim_unsubmitted(s, 100)] == sorted(set(ids.values()) - set(confirmed))
        assert claim_ids(s, confirmed + [ids["bt-00000000"]]) == [ids["bt-00000000"]]


def test_a_rejected_result_neither_waits_nor_counts_as_submitted_until_retried(sessions):
    store_results(sessions, 4)
    ids = row_ids(sessions)
    client = FakeMLClient(refuse={"bt-00000002"})
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=4), client_factory=lambda: client)
    assert flusher.flush_all() == 3
    batch = pending(sessions)[ids["bt-00000002"]]
    assert batch is not None and list(pending(sessions)) == [ids["bt-00000002"]]
    with sessions() as s:
        assert (count_unsubmitted(s), count_rejected(s)) == (0, 1)
        assert claim_ids(s, list(ids.values())) == [] and claim_unsubmitted(s, 10) == []
        assert feedback_backlog(s) == (0, None)
    assert submitted(sessions) == {"bt-00000000", "bt-00000001", "bt-00000003"}
    # retry-rejected puts it back in line; once the service takes it, it is confirmed
    with sessions.begin() as s:
        assert retry_rejected(s) == 1
    client.refuse = set()
    assert flusher.flush_all() == 1
    assert pending(sessions) == {}
    with sessions.begin() as s:
        reject(s, ids["bt-00000000"], batch)  # a confirmed result has nothing left to set aside
    assert pending(sessions) == {}


def test_results_deleted_or_truncated_leave_nothing_waiting_and_their_ids_can_be_reused(sessions):
    store_results(sessions, 5)
    ids = row_ids(sessions)
    with sessions.begin() as s:
        s.execute(delete(BacktestResult).where(BacktestResult.id.in_([ids["bt-00000003"], ids["bt-00000004"]])))
    assert set(pending(sessions)) == {ids[f"bt-0000000{i}"] for i in range(3)}
    with sessions.begin() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("TRUNCATE backtest_results RESTART IDENTITY"))
        else:
            s.execute(delete(BacktestResult))
    assert pending(sessions) == {}
    # The same ids again (PostgreSQL restarted the sequence, SQLite reuses the highest rowid)
    store_results(sessions, 2)
    assert set(pending(sessions)) == set(row_ids(sessions).values())


def test_results_written_by_any_statement_wait(sessions):
    """The ORM's own insert, not only the consumer's bulk path, gives a result its row."""
    store_results(sessions, 1)
    with sessions() as s:
        template = s.scalar(select(BacktestResult))
        columns = {c.name: getattr(template, c.name) for c in BacktestResult.__table__.columns if c.name != "id"}
    with sessions.begin() as s:
        s.add(BacktestResult(**{**columns, "backtest_id": "orm-1"}))
    with sessions() as s:
        waiting = s.scalar(select(func.count()).select_from(FeedbackPending))
        row = s.scalar(select(BacktestResult).where(BacktestResult.backtest_id == "orm-1"))
        assert waiting == 2 and row.ml_feedback_submitted is False


def test_two_flushers_claim_disjoint_rows_and_confirm_each_once(pg_url):
    """PostgreSQL: while one flusher holds its claim, another claiming the same results (from
    memory or read back) skips them; once the first has confirmed them, nobody claims them again."""
    sessions = make_sessionmaker(make_engine(pg_url))
    store_results(sessions, 20)
    ids = sorted(row_ids(sessions).values())
    first, second = sessions(), sessions()
    try:
        held = claim_ids(first, ids[:10])
        assert held == ids[:10]
        assert claim_ids(second, ids) == ids[10:]  # the first's rows are skipped, not waited for
        second.rollback()
        assert [r.id for r in claim_unsubmitted(second, 100)] == ids[10:]
        second.rollback()
        assert mark_processed(first, held) == 10
        first.commit()
        assert claim_ids(second, ids) == ids[10:]
        assert [r.id for r in claim_unsubmitted(second, 100)] == ids[10:]
        second.rollback()
    finally:
        first.close()
        second.close()


def test_concurrent_flushers_confirm_every_result_exactly_once(pg_url):
    """Four threads flushing the same results at once (half from memory, half read back): every
    result goes to the service once and is confirmed once."""
    sessions = make_sessionmaker(make_engine(pg_url, pool_size=8))
    store_results(sessions, 400)
    with sessions() as s:
        stored = claim_unsubmitted(s, 1000)
    held = [Unconfirmed(r.id, r.backtest_id, r.strategy_id, r.received_at, r.event_pb) for r in stored]
    client = FakeMLClient()
    sent: list[str] = []
    lock = threading.Lock()
    submit = client.submit_backtest_feedback

    def counting(results, batch_id):
        response = submit(results, batch_id)
        with lock:
            sent.extend(response.stored_backtest_ids)
        return response

    client.submit_backtest_feedback = counting
    flusher = FeedbackFlusher(sessions=sessions, settings=Settings(feedback_batch_size=25), client_factory=lambda: client)
    barrier = threading.Barrier(4)

    def run(i: int) -> None:
        barrier.wait()
        if i % 2:
            flusher.flush_stored(held)
        else:
            flusher.flush_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # A read-back that found another's rows locked stops early: one more pass takes what is left
    flusher.flush_all()
    assert sorted(sent) == sorted(r.backtest_id for r in stored)
    with sessions() as s:
        assert (count_unsubmitted(s), count_rejected(s)) == (0, 0)
