"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from edgeloop import schema
from edgeloop.schema.db import make_engine, upgrade

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("db", ["postgresql", "sqlite"])
def test_models_and_migrations_agree(db, request, tmp_path):
    url = request.getfixturevalue("pg_url") if db == "postgresql" else f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.Base.metadata)
    engine.dispose()
    assert diffs == [], "models and migrations differ: write a migration"


def test_downgrade_to_nothing_and_back(sqlite_url):
    from alembic import command

    from edgeloop.schema.db import alembic_config, current_revisions, head_revisions

    command.downgrade(alembic_config(sqlite_url), "base")
    assert current_revisions(make_engine(sqlite_url)) == set()
    upgrade(sqlite_url)
    assert current_revisions(make_engine(sqlite_url)) == head_revisions()


@pytest.mark.parametrize("db", ["postgresql", "sqlite"])
def test_0007_moves_what_submitted_means_to_feedback_pending_and_back(db, request, tmp_path):
    """Results stored before revision 0007 keep their state through the upgrade (waiting and
    rejected ones get their ``feedback_pending`` row, confirmed ones none) and through the
    downgrade (the columns and the partial index come back with the same meaning)."""
    from alembic import command
    from sqlalchemy import MetaData, Table, false, inspect, select

    from edgeloop.schema.db import alembic_config, make_sessionmaker
    from edgeloop.schema.pipeline import BacktestResult, FeedbackPending
    from edgeloop.schema.repository import count_rejected, count_unsubmitted, mark_processed
    from tests.support.feedback import store_results

    url = request.getfixturevalue("pg_url") if db == "postgresql" else f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0006")
    engine = make_engine(url)
    try:
        # Given, at 0006, a confirmed result, a waiting one and a rejected one
        with engine.begin() as conn:
            meta = MetaData()
            results, batches = (Table(name, meta, autoload_with=conn) for name in ("backtest_results", "feedback_batches"))
            now = datetime.now(timezone.utc)
            conn.execute(batches.insert(), [{"batch_key": "ok", "size": 1, "status": "submitted", "attempts": 1,
                                             "created_at": now},
                                            {"batch_key": "no", "size": 1, "status": "rejected", "attempts": 1,
                                             "created_at": now}])
            row = {"strategy_id": "s", "strategy_name": "", "params": {}, "window_start": date(2020, 1, 1),
                   "window_end": date(2020, 2, 1), "method": "m", "total_bets": 1, "roi": 0.0, "profit": 0.0,
                   "win_rate": 0.0, "profit_factor": 1.0, "sharpe_ratio": 0.0, "max_drawdown": 0.0,
                   "extra_metrics": {}, "backtest_score": 0.5, "event_pb": b"", "received_at": now}
            conn.execute(results.insert(), [
                {**row, "backtest_id": "confirmed", "ml_feedback_submitted": True, "feedback_batch_id": 1},
                {**row, "backtest_id": "waiting", "ml_feedback_submitted": False, "feedback_batch_id": None},
                {**row, "backtest_id": "rejected", "ml_feedback_submitted": False, "feedback_batch_id": 2}])
            ids = dict(conn.execute(select(results.c.backtest_id, results.c.id)).all())
        # When upgraded
        upgrade(url)
        sessions = make_sessionmaker(engine)
        with sessions() as s:
            assert dict(s.execute(select(FeedbackPending.result_id, FeedbackPending.rejected_batch_id)).all()) == \
                {ids["waiting"]: None, ids["rejected"]: 2}
            assert (count_unsubmitted(s), count_rejected(s)) == (1, 1)
            assert set(s.scalars(select(BacktestResult.backtest_id).where(BacktestResult.ml_feedback_submitted))) == \
                {"confirmed"}
        # And, at head, one more result stored and the waiting one confirmed
        store_results(sessions, 1)
        with sessions.begin() as s:
            assert mark_processed(s, [ids["waiting"]]) == 1
        # When downgraded
        command.downgrade(alembic_config(url), "0006")
        # Then the columns say the same
        with engine.connect() as conn:
            results = Table("backtest_results", MetaData(), autoload_with=conn)
            state = {r.backtest_id: (r.ml_feedback_submitted, r.feedback_batch_id) for r in conn.execute(
                select(results.c.backtest_id, results.c.ml_feedback_submitted, results.c.feedback_batch_id))}
            inspector = inspect(conn)
            assert "feedback_pending" not in inspector.get_table_names()
            assert "ix_backtest_results_unsubmitted" in {i["name"] for i in inspector.get_indexes("backtest_results")}
            # the partial index answers the old flush query
            assert conn.execute(select(results.c.backtest_id).where(results.c.ml_feedback_submitted == false())
                                .order_by(results.c.id)).scalars().all() == ["rejected", "bt-00000000"]
        assert state == {"confirmed": (True, None), "waiting": (True, None), "rejected": (False, 2),
                         "bt-00000000": (False, None)}
    finally:
        engine.dispose()
        upgrade(url)  # the session's database stays at head for the other tests
