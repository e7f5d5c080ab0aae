"""The main Redis at maxmemory under ``noeviction`` (as docker-compose runs it): writes are
refused, and what needs a write waits as it would for a Redis that is away, rather than failing
for good; reading and acknowledging the stream go on (docs/delivery.md)."""

from __future__ import annotations

import pytest
import redis

from edgeloop.errors import TransientError
from edgeloop.redis_connect import is_transient
from tests.integration.mlclient.support import FULL_REDIS, fill_to_maxmemory, own_redis
from workers.beat import claim
from workers.locks import lease

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
