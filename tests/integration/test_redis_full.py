"""The main Redis at maxmemory under ``noeviction`` (as docker-compose runs it): writes are
refused, and what needs a write waits as it would for a Redis that is away, rather than failing
for good; reading and acknowledging the stream go on (docs/delivery.md)."""

from __future__ import annotations

import threading

import pytest
import redis
from prometheus_client import REGISTRY

from edgeloop.core.errors import TransientError
from edgeloop.core.redis_connect import is_transient
from edgeloop.core.settings import settings_with
from edgeloop.producers import Publisher
from edgeloop.schema.db import make_engine, make_sessionmaker
from tests.support.events import valid_event
from tests.support.processes import wait_until
from tests.integration.mlclient.support import FULL_REDIS, fill_to_maxmemory, own_redis
from edgeloop.workers.beat import claim
from edgeloop.services.ingest import StreamConsumer
from edgeloop.services.locks import lease

pytestmark = pytest.mark.integration


def test_a_full_main_redis_refuses_writes_as_transient_errors_and_still_serves_the_stream():
    with own_redis(*FULL_REDIS) as (url, _):
        main = redis.Redis.from_url(url)
        # Given three events pending for a consumer group, then a Redis filled to its cap
        for i in range(3):
            main.xadd("s", {"event": str(i)})
        main.xgroup_create("s", "g", id="0")
        fill_to_maxmemory(url)

        # Leases and beat claims are refused, as transient errors (wait and retry)
        with pytest.raises(TransientError, match="lifecycle"):
            with lease(main, "lifecycle", 5.0):
                pass
        with pytest.raises(redis.RedisError) as refused:
            claim(main, "retrain", 60.0)  # beat logs it and sends nothing this tick
        assert is_transient(refused.value)
        # New events are refused at the producer
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            main.xadd("s", {"event": "3"})
        # The consumer still reads and acknowledges what is there
        [(_, entries)] = main.xreadgroup("g", "c", {"s": ">"})
        assert len(entries) == 3
        assert main.xack("s", "g", *[i for i, _ in entries]) == 3
        main.close()


def test_redis_errors_worth_waiting_for():
    assert is_transient(redis.exceptions.OutOfMemoryError("command not allowed"))
    assert is_transient(redis.exceptions.ReadOnlyError("You can't write against a read only replica."))
    assert is_transient(redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots"))
    assert is_transient(redis.exceptions.ConnectionError("refused"))
    assert not is_transient(redis.exceptions.ResponseError("WRONGTYPE Operation against a key"))


def test_the_ingest_consumer_waits_out_a_full_main_redis_and_then_finishes_its_batch(sqlite_url):
    with own_redis(*FULL_REDIS) as (url, _):
        main = redis.Redis.from_url(url)
        settings = settings_with(redis_url=url, database_url=sqlite_url, ingest_block_ms=50)
        engine = make_engine(sqlite_url)
        consumer = StreamConsumer(client=main, sessions=make_sessionmaker(engine), settings=settings, name="full")
        consumer.ensure_groups()
        # Given a valid event and a malformed one (to be dead-lettered: an XADD), then a full Redis
        Publisher(main, settings).publish(valid_event(1))
        main.xadd(settings.stream_key, {"event": "{not json"})
        fill_to_maxmemory(url)
        refused = REGISTRY.get_sample_value("edgeloop_ingest_errors_total", {"kind": "OutOfMemoryError"}) or 0.0
        stop = threading.Event()
        runner = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        runner.start()
        try:
            # When the batch's dead letter is refused: the consumer backs off, alive, entries still pending
            wait_until(lambda: (REGISTRY.get_sample_value("edgeloop_ingest_errors_total",
                                                          {"kind": "OutOfMemoryError"}) or 0.0) > refused, 10)
            assert runner.is_alive()
            assert main.xpending(settings.stream_key, settings.consumer_group)["pending"] == 2
            # Then once memory is freed, the batch is finished: acknowledged, the bad entry dead-lettered
            main.config_set("maxmemory", 0)
            wait_until(lambda: main.xpending(settings.stream_key, settings.consumer_group)["pending"] == 0, 15)
            assert main.xlen(settings.dead_letter_stream) == 1
        finally:
            stop.set()
            runner.join(35)
            main.close()
            engine.dispose()
