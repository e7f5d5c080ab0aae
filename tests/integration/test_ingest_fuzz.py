"""Property: whatever the bytes of a stream entry, it ends stored or dead-lettered with a
reason; valid events are stored once and submitted to the ML service once; nothing stays
pending and the consumer goes on reading. Through the real consumer, on PostgreSQL and
SQLite, with a real ML service for the feedback."""

from __future__ import annotations

import itertools
import json
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from edgeloop.core.settings import Settings, get_settings
from edgeloop.mlclient.client import MLClient
from edgeloop.mlservice.feedback_store import count_samples
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.pipeline import BacktestResult
from tests.support.events import valid_event
from tests.support.processes import ml_server
from edgeloop.services.dead_letters import DeadLetters
from edgeloop.services.feedback import FeedbackFlusher
from edgeloop.services.ingest import StreamConsumer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 250  # per database; ~25 entries each
_ids = itertools.count()

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
TOP_FIELDS = list(valid_event(0))
METRICS = list(valid_event(0)["metrics"])


def fresh_event() -> dict:
    event = valid_event(next(_ids))
    event["backtest_id"] = f"fz-{next(_ids)}-{time.monotonic_ns()}"
    return event


def deep(levels: int) -> str:
    return '{"n":' * levels + "1" + "}" * levels


@st.composite
def mutated_event(draw) -> dict[bytes, bytes]:
    event = fresh_event()
    kind = draw(st.sampled_from(["set_top", "set_metric", "set_param", "drop_top", "drop_metric", "extra_top",
                                 "deep", "big_text", "encoding", "extra_fields", "no_event_field", "camel"]))
    fields: dict[bytes, bytes] = {}
    if kind == "set_top":
        event[draw(st.sampled_from(TOP_FIELDS))] = draw(json_values)
    elif kind == "set_metric":
        event["metrics"][draw(st.sampled_from(METRICS))] = draw(json_values)
    elif kind == "set_param":
        event["params"][draw(st.text(max_size=10))] = draw(json_values)
    elif kind == "drop_top":
        event.pop(draw(st.sampled_from(TOP_FIELDS)))
    elif kind == "drop_metric":
        event["metrics"].pop(draw(st.sampled_from(METRICS)))
    elif kind == "extra_top":
        event[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    elif kind == "deep":
        event["params"]["d"] = "DEEP"
    elif kind == "big_text":
        event["params"]["blob"] = "é" * draw(st.integers(min_value=20_000, max_value=40_000))
    elif kind == "extra_fields":
        fields[draw(st.binary(min_size=1, max_size=8)).replace(b"event", b"evt")] = draw(st.binary(max_size=50))
    elif kind == "camel":
        event["backtestId"] = event.pop("backtest_id")
    text = json.dumps(event, allow_nan=True)
    if kind == "deep":
        text = text.replace('"DEEP"', deep(draw(st.integers(min_value=20, max_value=6000))))
    if kind == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig"]))
        payload = text.replace('"', '"é', 1).encode(codec, "replace") if codec == "latin-1" else text.encode(codec)
    else:
        payload = text.encode("utf-8", "surrogatepass")
    if kind != "no_event_field":
        fields[b"event"] = payload
    else:
        fields[b"payload"] = payload
    return fields


def valid_entry() -> dict[bytes, bytes]:
    return {b"event": json.dumps(fresh_event()).encode()}


entries_strategy = st.lists(
    st.one_of(st.binary(max_size=200).map(lambda b: {b"event": b}),
              json_values.map(lambda v: {b"event": json.dumps(v).encode()}),
              mutated_event(),
              st.builds(valid_entry)),
    min_size=1, max_size=30)


def backtest_id_of(payload: bytes) -> str | None:
    try:
        data = json.loads(payload)
        return data.get("backtest_id", data.get("backtestId"))
    except (ValueError, AttributeError):
        return None


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # a failing case's repr may be large
def test_every_entry_ends_stored_or_dead_lettered(monkeypatch, redis_url, db_url):
    monkeypatch.setenv("EDGELOOP_REDIS_URL", redis_url)
    monkeypatch.setenv("EDGELOOP_DATABASE_URL", db_url)
    get_settings.cache_clear()
    cfg = get_settings()
    client = redis.Redis.from_url(redis_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    consumer = StreamConsumer(client=client, sessions=sessions, settings=cfg, name="fuzz")
    consumer.ensure_groups()
    dead = DeadLetters(client, cfg.dead_letter_stream)
    valid_ids: set[str] = set()
    started, cases = time.perf_counter(), 0

    @hsettings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entries=entries_strategy)
    def one_batch(entries):
        nonlocal cases
        cases += 1
        ids = [client.xadd(cfg.stream_key, fields).decode() for fields in entries]
        for _ in range(20):
            if not consumer.poll_once(block_ms=5).read:
                break
        letters = {letter.source_id: letter for letter in dead.iter()}
        with sessions() as s:
            stored = set(s.scalars(select(BacktestResult.backtest_id)))
        for entry_id, fields in zip(ids, entries):
            if entry_id in letters:
                assert letters[entry_id].reason, "a dead letter without a reason"
                assert letters[entry_id].original == fields
            else:
                assert backtest_id_of(fields.get(b"event", b"")) in stored, f"entry {entry_id} was lost"
            if fields.get(b"event", b"").startswith(b'{"schema_version": 1, "backtest_id": "fz-') and \
                    entry_id not in letters:
                valid_ids.add(backtest_id_of(fields[b"event"]))
        assert client.xpending(cfg.stream_key, cfg.consumer_group)["pending"] == 0

    one_batch()
    # The consumer still reads new entries
    client.xadd(cfg.stream_key, valid_entry())
    assert consumer.poll_once(block_ms=100).inserted == 1
    elapsed = time.perf_counter() - started
    print(f"fuzz: {cases} cases in {elapsed:.1f}s on {engine.dialect.name}")

    # Every stored result is submitted to the ML service once
    with ml_server(Settings(database_url=db_url)) as (_, port):
        ml = MLClient(cfg, target=f"127.0.0.1:{port}")
        flusher = FeedbackFlusher(sessions=sessions, settings=cfg, client_factory=lambda: ml)
        flusher.flush_all(budget_s=30)
        with sessions() as s:
            stored = s.scalar(select(func.count()).select_from(BacktestResult))
            unsubmitted = s.scalar(select(func.count()).select_from(BacktestResult)
                                   .where(BacktestResult.ml_feedback_submitted.is_(False)))
        assert unsubmitted == 0
        assert count_samples(sessions) == stored
        ml.close()
    assert valid_ids and valid_ids <= {r for r in _stored_ids(sessions)}
    engine.dispose()


def _stored_ids(sessions) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(BacktestResult.backtest_id)))
