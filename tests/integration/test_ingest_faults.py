"""Process-level faults under a real `celery -A edgeloop.workers worker` consuming the stream: an entry
that kills its worker every time it is processed, and PostgreSQL restarted mid-ingest."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import redis
from sqlalchemy import func, select, text

from edgeloop.core.events import EVENT_FIELD, parse_event
from edgeloop.processes import free_port
from edgeloop.core.settings import get_settings
from edgeloop.producers import Publisher
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade
from edgeloop.schema.pipeline import BacktestResult
from edgeloop.schema.repository import ensure_strategies, insert_results
from tests.support.events import valid_event
from tests.support.private_pg import private_postgres
from tests.support.processes import ROOT, CeleryWorker, celery_worker, wait_until
from edgeloop.services.dead_letters import DeadLetters
from edgeloop.services.ingest import result_row

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def worker_env(env):
    """A worker environment with no ML service (feedback backs off; ingest does not need it)
    and no metrics port (several workers may run on this machine)."""
    return {**env, "PYTHONPATH": str(ROOT), "EDGELOOP_METRICS_PORT": "0",
            "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{free_port()}", "EDGELOOP_FEEDBACK_RETRY_MAX_S": "2",
            "EDGELOOP_INGEST_BLOCK_MS": "100"}


def stored_ids(sessions) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(BacktestResult.backtest_id)))


def consuming(client: redis.Redis, stream: str, group: str) -> bool:
    """Whether a worker has created the consumer group (so it reads everything published now)."""
    try:
        return any(g["name"].decode() == group for g in client.xinfo_groups(stream))
    except redis.ResponseError:  # no stream yet
        return False


def pending(client: redis.Redis, stream: str, group: str) -> list[str]:
    return [r["message_id"].decode() for r in client.xpending_range(stream, group, min="-", max="+", count=10_000)]


def drained(client: redis.Redis, stream: str, group: str) -> bool:
    """Every entry of the stream read by the group and acknowledged."""
    [info] = [g for g in client.xinfo_groups(stream) if g["name"].decode() == group]
    return info["lag"] == 0 and info["pending"] == 0


# --- a worker SIGKILLed every time one entry is pending ---------------------------------

MAX_DELIVERIES = 3


class Blocker:
    """Another transaction that inserted the chosen backtest's row and stays open: the
    worker's insert of the same id waits for it (``ON CONFLICT`` must know whether the row
    commits), which holds exactly that entry pending for as long as the test likes."""

    def __init__(self, sessions, event: dict) -> None:
        parsed = parse_event(json.dumps(event))
        row = result_row(parsed, "0-0", datetime.now(timezone.utc))
        with sessions.begin() as s:  # the strategy is committed: only the result row may block
            ensure_strategies(s, [{"strategy_id": row["strategy_id"], "name": row["strategy_name"],
                                   "params": row["params"]}])
        self.session = sessions()
        insert_results(self.session, [row])
        self.pid = self.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def rollback(self) -> None:
        self.session.rollback()
        self.session.close()


def waiting_for(conn, pid: int) -> bool:
    """Whether some backend of this database is waiting for a lock that ``pid`` holds."""
    return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}).scalar())


def terminate_backends(conn, keep: int) -> None:
    """End the killed worker's server sessions, and wait until they are gone. PostgreSQL
    notices a dead client only when it next talks to it, and a backend waiting for a lock does
    not: left alone, it would hold the uncommitted rows of the killed batch and block the next
    worker on entries that are not the chosen one (and look like that worker, stuck)."""
    others = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                  "AND backend_type = 'client backend' AND pid NOT IN (:keep, pg_backend_pid())")
    for pid in conn.execute(others, {"keep": keep}).scalars():
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})  # false if it has just gone
    wait_until(lambda: not conn.execute(others, {"keep": keep}).first(), 10, 0.02, "the killed worker's sessions gone")


def test_an_entry_that_kills_its_worker_each_time_is_dead_lettered_as_poison(worker_env, tmp_path):
    settings = get_settings()
    stream, group = settings.stream_key, settings.consumer_group
    env = {**worker_env, "EDGELOOP_MAX_DELIVERIES": str(MAX_DELIVERIES), "EDGELOOP_CLAIM_IDLE_MS": "500"}
    client = redis.Redis.from_url(env["EDGELOOP_REDIS_URL"])
    engine = make_engine(env["EDGELOOP_DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    monitor = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    events = [valid_event(i) for i in range(200)]
    chosen = events[97]
    blocker = Blocker(sessions, chosen)
    worker = CeleryWorker(env, "victim", tmp_path)
    try:
        # Given 200 events, the chosen one carrying an extra field, and a worker whose insert
        # of the chosen one never returns
        wait_until(lambda: consuming(client, stream, group), 30, 0.1, "the worker consuming")
        pipe = client.pipeline(transaction=False)
        ids = [pipe.xadd(stream, {EVENT_FIELD: json.dumps(e)} | ({"trace": "t-97"} if e is chosen else {}))
               for e in events]
        ids = [i.decode() for i in pipe.execute()]
        chosen_id = ids[97]
        letters = DeadLetters(client, settings.dead_letter_stream)

        def poisoned() -> bool:
            return letters.count() > 0

        # When the worker is SIGKILLed (its whole process group) every time it is stuck on
        # the chosen entry, and started again under the same name
        kills = 0
        while True:
            wait_until(lambda: poisoned() or (chosen_id in pending(client, stream, group)
                                              and waiting_for(monitor, blocker.pid)),
                       30, 0.05, f"the worker stuck on the chosen entry or done with it (kills: {kills})")
            if poisoned():
                break
            worker.kill()
            worker.stop()  # closes its log
            kills += 1
            terminate_backends(monitor, keep=blocker.pid)
            worker = CeleryWorker(env, "victim", tmp_path)

        wait_until(lambda: drained(client, stream, group), 30, 0.1, "the stream drained")
        # Then after max_deliveries deliveries the chosen entry is a poison dead letter with
        # every field it was published with, and it is the only dead letter
        assert kills == MAX_DELIVERIES
        dead = list(letters.iter())
        assert [(d.reason, d.source_stream, d.source_id) for d in dead] == [("poison", stream, chosen_id)]
        assert dead[0].original == {EVENT_FIELD.encode(): json.dumps(chosen).encode(), b"trace": b"t-97"}
        # And every other event, its batch-mates included, is stored once
        assert sorted(stored_ids(sessions)) == sorted(e["backtest_id"] for e in events if e is not chosen)
        # And the worker goes on consuming new events
        pipe = client.pipeline(transaction=False)
        for i in range(200, 220):
            pipe.xadd(stream, {EVENT_FIELD: json.dumps(valid_event(i))})
        pipe.execute()
        wait_until(lambda: len(stored_ids(sessions)) == 219, 30, 0.1, "new events stored")
        assert letters.count() == 1 and worker.alive(), worker.tail()
    finally:
        blocker.rollback()  # first: a worker still stuck behind it would take long to stop
        worker.stop()
        monitor.close()
        engine.dispose()


# --- PostgreSQL restarted mid-ingest ------------------------------------------------------

TOTAL = 5_000


def publish_slowly(publisher: Publisher, total: int, chunk: int = 100, pause_s: float = 0.1) -> None:
    """``total`` events over a few seconds, so that the restarts below land mid-stream."""
    for start in range(0, total, chunk):
        publisher.publish_many(valid_event(i) for i in range(start, start + chunk))
        time.sleep(pause_s)


def test_postgresql_restarted_mid_ingest_loses_and_doubles_nothing(worker_env, tmp_path):
    settings = get_settings()
    stream, group = settings.stream_key, settings.consumer_group
    client = redis.Redis.from_url(worker_env["EDGELOOP_REDIS_URL"])
    with private_postgres() as pg:
        url = pg.create_database("edgeloop")
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)

        def stored() -> int:
            with sessions() as s:
                return s.scalar(select(func.count()).select_from(BacktestResult))

        try:
            with celery_worker({**worker_env, "EDGELOOP_DATABASE_URL": url}, "w1", tmp_path) as worker, \
                    ThreadPoolExecutor(1) as pool:
                wait_until(lambda: consuming(client, stream, group), 30, 0.1, "the worker consuming")
                # Given a worker storing events as they are published
                publishing = pool.submit(publish_slowly, Publisher(client, settings), TOTAL)
                wait_until(lambda: stored() >= 1_000, 30, 0.05, "1,000 stored")
                # When PostgreSQL shuts down (fast: sessions are ended), stays down while events
                # keep arriving, and starts again
                pg.stop("fast")
                time.sleep(2)
                pg.start()
                mid = stored()
                # And later crashes (immediate: no shutdown checkpoint, the start replays the WAL)
                wait_until(lambda: stored() >= mid + 1_000, 30, 0.05, f"{mid + 1_000} stored")
                at_crash = stored()
                pg.restart("immediate")
                publishing.result(timeout=60)
                assert at_crash < TOTAL, "ingest finished before the second restart: publish more slowly"
                # Then every event is stored exactly once, nothing is dead-lettered or pending
                wait_until(lambda: drained(client, stream, group), 60, 0.1, "the stream drained")
                with sessions() as s:
                    ids = list(s.scalars(select(BacktestResult.backtest_id)))
                assert len(ids) == TOTAL and set(ids) == {valid_event(i)["backtest_id"] for i in range(TOTAL)}
                assert client.xlen(settings.dead_letter_stream) == 0
                # And the worker lived through both
                assert worker.alive(), worker.tail()
        finally:
            engine.dispose()
