"""The stream consumer against real Redis and a real database (no Celery, no ML service)."""

from __future__ import annotations

import json
import time

import pytest
import redis
from sqlalchemy import func, select

from edgeloop.core.settings import get_settings
from edgeloop.producers import Publisher
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.pipeline import BacktestResult, Strategy
from tests.support.events import malformed_payloads, valid_event
from edgeloop.services.dead_letters import DeadLetters
from edgeloop.services.ingest import StreamConsumer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


@pytest.fixture
def setup(monkeypatch, redis_url, db_url):
    monkeypatch.setenv("EDGELOOP_REDIS_URL", redis_url)
    monkeypatch.setenv("EDGELOOP_DATABASE_URL", db_url)
    monkeypatch.setenv("EDGELOOP_CLAIM_IDLE_MS", "200")
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(redis_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)

    def consumer(name: str) -> StreamConsumer:
        c = StreamConsumer(client=client, sessions=sessions, settings=settings, name=name)
        c.ensure_groups()
        return c

    yield settings, client, sessions, consumer
    engine.dispose()


def drain(consumer: StreamConsumer, rounds: int = 50) -> None:
    for _ in range(rounds):
        if not consumer.poll_once(block_ms=10).read:
            return


def count(sessions, model=BacktestResult) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_valid_events_are_stored_once_and_acknowledged(setup):
    settings, client, sessions, consumer = setup
    # Given 300 events published, half of them twice
    pub = Publisher(client, settings)
    events = [valid_event(i) for i in range(300)]
    pub.publish_many(events)
    pub.publish_many(events[:150])
    # When one consumer drains the stream
    c = consumer("c1")
    drain(c)
    # Then every backtest id is stored once, the strategies are recorded, nothing is pending
    assert count(sessions) == 300
    assert count(sessions, Strategy) == 50
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0
    with sessions() as s:
        row = s.scalar(select(BacktestResult).where(BacktestResult.backtest_id == "bt-00000007"))
        assert row.ml_feedback_submitted is False  # derived, loaded when read: in the session
    assert row.total_bets == events[7]["metrics"]["total_bets"]
    assert row.params == events[7]["params"]
    assert 0.0 <= row.backtest_score <= 1.0


def test_camel_case_fields_are_accepted(setup):
    settings, client, sessions, consumer = setup
    camel = {"schemaVersion": 1, "backtestId": "camel-1", "strategyId": "s", "params": {},
             "windowStart": "2020-01-01", "windowEnd": "2020-02-01", "method": "m",
             "metrics": {"totalBets": 3, "roi": 0.1, "profit": 0.3, "winRate": 0.33, "profitFactor": 1.5,
                         "sharpeRatio": 0.2, "maxDrawdown": 0.05}}
    client.xadd(settings.stream_key, {"event": json.dumps(camel)})
    drain(consumer("c1"))
    assert count(sessions) == 1


def test_malformed_events_go_to_dead_letters_with_reason(setup):
    settings, client, sessions, consumer = setup
    # Given malformed payloads of every kind mixed with valid ones
    bad = malformed_payloads(60)
    for i, (_, payload) in enumerate(bad):
        client.xadd(settings.stream_key, {"event": payload})
        client.xadd(settings.stream_key, {"event": json.dumps(valid_event(i))})
    client.xadd(settings.stream_key, {"not_event": "x"})
    # When drained
    drain(consumer("c1"))
    # Then every valid one is stored and every bad one is dead-lettered with its reason
    assert count(sessions) == 60
    letters = list(DeadLetters(client, settings.dead_letter_stream).iter())
    assert sorted(letter.reason for letter in letters) == sorted([r for r, _ in bad] + ["missing_event_field"])
    assert {letter.payload for letter in letters if letter.reason != "missing_event_field"} == {p for _, p in bad}
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0


def test_replay_from_dead_letters(setup):
    settings, client, sessions, consumer = setup
    fixed = valid_event(1)
    broken = {**fixed, "schema_version": 7}
    client.xadd(settings.stream_key, {"event": json.dumps(broken)})
    c = consumer("c1")
    drain(c)
    dl = DeadLetters(client, settings.dead_letter_stream)
    assert dl.count() == 1 and count(sessions) == 0
    # A consumer that reads version 7 does not exist; simulate the producer-side fix by
    # rewriting the letter, then replay: the event is consumed and the letter is gone.
    letter = next(dl.iter())
    client.xdel(settings.dead_letter_stream, letter.entry_id)
    client.xadd(settings.dead_letter_stream, {"reason": "unknown_schema_version", "detail": "",
                                              "payload": json.dumps(fixed), "source_stream": settings.stream_key,
                                              "source_id": letter.source_id})
    assert dl.replay(settings.stream_key) == 1
    drain(c)
    assert dl.count() == 0 and count(sessions) == 1


def test_entries_of_a_dead_consumer_are_claimed(setup):
    settings, client, sessions, consumer = setup
    survivor = consumer("survivor")
    Publisher(client, settings).publish_many(valid_event(i) for i in range(40))
    # Given a consumer that read entries and died before acknowledging them
    client.xreadgroup(settings.consumer_group, "dead-one", {settings.stream_key: ">"}, count=25)
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 25
    # When another consumer runs after the idle time has passed
    time.sleep(0.3)
    drain(survivor)
    # Then everything is stored once and nothing is left pending
    assert count(sessions) == 40
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0


def test_partitioned_stream_is_read_across_all_keys(setup, monkeypatch):
    monkeypatch.setenv("EDGELOOP_STREAM_PARTITIONS", "4")
    get_settings.cache_clear()
    settings, client, sessions, _ = setup
    settings = get_settings()
    Publisher(client, settings).publish_many(valid_event(i) for i in range(200))
    assert sum(client.xlen(k) for k in settings.stream_keys) == 200
    assert all(client.xlen(k) > 0 for k in settings.stream_keys)
    c = StreamConsumer(client=client, sessions=sessions, settings=settings, name="p")
    c.ensure_groups()
    drain(c)
    assert count(sessions) == 200


def test_pending_entries_trimmed_from_the_stream_are_acknowledged(setup):
    settings, client, sessions, consumer = setup
    c = consumer("c1")
    Publisher(client, settings).publish_many(valid_event(i) for i in range(10))
    # Given entries this consumer read before a crash, some of them trimmed away since
    read = client.xreadgroup(settings.consumer_group, "c1", {settings.stream_key: ">"}, count=10)
    ids = [i for i, _ in read[0][1]]
    client.xdel(settings.stream_key, *ids[:4])
    # When the consumer starts again (it re-reads its own pending entries first)
    drain(c)
    # Then the surviving ones are stored and nothing is left pending
    assert count(sessions) == 6
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0


def test_entries_that_used_to_wedge_the_consumer_are_dead_lettered(setup):
    settings, client, sessions, consumer = setup
    # Given 7 entries that raised outside validation (a huge integer, 1e999, deep nesting,
    # NUL, a lone surrogate, an INTEGER overflow) ahead of 1,000 good ones
    base = valid_event(0)
    bad = [json.dumps({**base, "params": {"n": 10**400}}),
           json.dumps({**base, "params": {"n": 2**64}}),
           json.dumps({**base, "params": {"x": 0.5}}).replace("0.5", "1e999"),
           json.dumps({**base, "params": {"d": "x"}}).replace('"x"', "[" * 5000 + "]" * 5000),
           json.dumps({**base, "strategy_id": "nul\x00"}),
           json.dumps({**base, "params": {"s": "?"}}).replace('"?"', '"\\udc80"'),
           json.dumps({**base, "metrics": {**base["metrics"], "total_bets": 2**40}})]
    for payload in bad:
        client.xadd(settings.stream_key, {"event": payload})
    Publisher(client, settings).publish_many(valid_event(i) for i in range(1, 1001))
    # When drained
    drain(consumer("c1"))
    # Then the 1,000 are stored, the 7 are dead letters, nothing is pending
    assert count(sessions) == 1000
    assert DeadLetters(client, settings.dead_letter_stream).count() == 7
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0


def test_a_dead_letter_keeps_every_field_and_replays_exactly(setup):
    settings, client, sessions, consumer = setup
    fields = {b"event": json.dumps({**valid_event(5), "schema_version": 7}).encode(),
              b"trace_id": b"\x00\xffopaque", b"producer": "bt-runner/2".encode()}
    client.xadd(settings.stream_key, fields)
    c = consumer("c1")
    drain(c)
    dl = DeadLetters(client, settings.dead_letter_stream)
    (letter,) = dl.iter()
    assert letter.reason == "unknown_schema_version" and letter.original == fields
    assert dl.replay(settings.stream_key) == 1
    (_, replayed), = client.xrange(settings.stream_key, min="(" + letter.source_id)
    assert replayed == fields


@pytest.fixture
def refusing_store(db_url):
    """The store refuses one strategy id by a rule of its own (the validation does not know it)."""
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        create = ("ALTER TABLE backtest_results ADD CONSTRAINT refuse_test "
                  "CHECK (strategy_id <> 'refused-by-store')")
        drop = "ALTER TABLE backtest_results DROP CONSTRAINT refuse_test"
    else:
        create = ("CREATE TRIGGER refuse_test BEFORE INSERT ON backtest_results "
                  "WHEN NEW.strategy_id = 'refused-by-store' BEGIN SELECT RAISE(ABORT, 'refused by the store'); END")
        drop = "DROP TRIGGER refuse_test"
    with engine.begin() as conn:
        conn.exec_driver_sql(create)
    yield
    with engine.begin() as conn:
        conn.exec_driver_sql(drop)
    engine.dispose()


def test_a_row_the_store_refuses_is_dead_lettered_and_the_rest_stored(setup, refusing_store):
    settings, client, sessions, consumer = setup
    events = [valid_event(i) for i in range(50)]
    events[17] = {**events[17], "strategy_id": "refused-by-store"}
    Publisher(client, settings).publish_many(events)
    drain(consumer("c1"))
    assert count(sessions) == 49
    (letter,) = DeadLetters(client, settings.dead_letter_stream).iter()
    assert letter.reason == "store_rejected"
    assert "refuse" in letter.detail
    assert json.loads(letter.payload)["backtest_id"] == events[17]["backtest_id"]
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0


def test_an_unforeseen_error_on_one_entry_dead_letters_that_entry_only(setup, monkeypatch):
    import edgeloop.services.ingest as ingest

    settings, client, sessions, consumer = setup
    real = ingest.result_row

    def failing(event, entry_id, now):
        if event.message.backtest_id == "bt-00000003":
            raise KeyError("a bug nobody foresaw")
        return real(event, entry_id, now)

    monkeypatch.setattr(ingest, "result_row", failing)
    Publisher(client, settings).publish_many(valid_event(i) for i in range(10))
    drain(consumer("c1"))
    assert count(sessions) == 9
    (letter,) = DeadLetters(client, settings.dead_letter_stream).iter()
    assert letter.reason == "unexpected_error:KeyError"


def test_an_entry_delivered_too_often_is_poison_and_its_batch_mates_are_stored(setup, monkeypatch):
    monkeypatch.setenv("EDGELOOP_MAX_DELIVERIES", "3")
    get_settings.cache_clear()
    settings, client, sessions, _ = setup
    settings = get_settings()
    c = StreamConsumer(client=client, sessions=sessions, settings=settings, name="c1")
    c.ensure_groups()
    Publisher(client, settings).publish_many(valid_event(i) for i in range(5))
    # Given consumer c1 read the batch and died; the third entry had also killed it twice on its own
    read = client.xreadgroup(settings.consumer_group, "c1", {settings.stream_key: ">"}, count=5)
    ids = [i.decode() for i, _ in read[0][1]]
    for _ in range(2):
        client.xclaim(settings.stream_key, settings.consumer_group, "c1", 0, [ids[2]])
    # When c1 starts again (its next read of its pending entries is their 2nd and 4th delivery)
    drain(c)
    # Then the third entry is poison, with its fields, and its batch-mates are stored
    (letter,) = DeadLetters(client, settings.dead_letter_stream).iter()
    assert (letter.reason, letter.source_id) == ("poison", ids[2])
    assert json.loads(letter.payload)["backtest_id"] == "bt-00000002"
    assert count(sessions) == 4


def test_taking_over_a_dead_consumers_entries_counts_only_the_entry_being_processed(setup, monkeypatch):
    monkeypatch.setenv("EDGELOOP_MAX_DELIVERIES", "2")
    get_settings.cache_clear()
    _, client, sessions, _ = setup
    settings = get_settings()

    def consumer(name: str) -> StreamConsumer:
        c = StreamConsumer(client=client, sessions=sessions, settings=settings, name=name)
        c.ensure_groups()
        return c

    class Died(BaseException):
        pass

    def die(entries):
        raise Died

    b = consumer("b")
    Publisher(client, settings).publish_many(valid_event(i) for i in range(10))
    # Given a consumer that read 10 entries and died (each delivered once)
    first, *_ = client.xreadgroup(settings.consumer_group, "a", {settings.stream_key: ">"}, count=10)[0][1]
    # And a second one that took them over and died processing the first of them
    time.sleep(0.3)
    monkeypatch.setattr(b, "process", die)
    with pytest.raises(Died):
        b.poll_once(block_ms=10)
    # When a third takes them over in turn
    time.sleep(0.3)
    drain(consumer("c"))
    # Then only that first entry, delivered three times, is poison; the other nine are stored
    letters = list(DeadLetters(client, settings.dead_letter_stream).iter())
    assert [(d.reason, d.source_id) for d in letters] == [("poison", first[0].decode())]
    assert count(sessions) == 9
    assert client.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0
