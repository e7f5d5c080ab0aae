"""Leases and the stream backlog against a real Redis."""

from __future__ import annotations

import pytest
import redis

from edgeloop.core.streams import StreamBacklog, stream_backlog
from edgeloop.services.locks import LockBusy, lease, try_lease

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url):
    with redis.Redis.from_url(redis_url) as c:
        yield c


def test_a_held_lease_is_refused_to_others_and_released_only_by_its_holder(client):
    with try_lease(client, "run:1", ttl_s=30) as first:
        assert first is not None
        with try_lease(client, "run:1", ttl_s=30) as second:
            assert second is None
        with pytest.raises(LockBusy), lease(client, "run:1", ttl_s=30, wait_s=0.1):
            pass
        # A holder whose lease lapsed and was taken over does not delete the new holder's key
        client.set(first.key, "someone-else")
    assert client.get("edgeloop:lock:run:1") == b"someone-else"
    client.delete("edgeloop:lock:run:1")
    with lease(client, "run:1", ttl_s=30) as held:
        assert client.get(held.key) == held.token.encode()
    assert not client.exists("edgeloop:lock:run:1")


def test_stream_backlog_counts_undelivered_and_unacknowledged_entries(client):
    assert stream_backlog(client, "s", "g") == StreamBacklog(0, 0, 0)  # no stream yet
    for i in range(5):
        client.xadd("s", {"i": i})
    assert stream_backlog(client, "s", "g") == StreamBacklog(5, 5, 0)  # no group yet: all of it
    client.xgroup_create("s", "g", id="0")
    got = client.xreadgroup("g", "c", {"s": ">"}, count=2)
    client.xack("s", "g", got[0][1][0][0])
    assert stream_backlog(client, "s", "g") == StreamBacklog(5, 3, 1)
