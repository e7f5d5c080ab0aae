"""Fixtures of the cache tier: the test Redis db and a cached client over a counting stand-in."""

from __future__ import annotations

import pytest
import redis

from edgeloop.core.settings import settings_with
from edgeloop.mlclient.cache import CachedMLClient, make_redis
from tests.support.ml import FakeMLClient


@pytest.fixture
def cache_settings(redis_url):
    return settings_with(cache_redis_url=redis_url, cache_prefix="t:pred")


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fake_ml():
    return FakeMLClient()


@pytest.fixture
def cache(fake_ml, cache_settings):
    client = CachedMLClient(fake_ml, make_redis(cache_settings), cache_settings)
    yield client
    client.close()


@pytest.fixture
def ml_settings(pg_url):
    return settings_with(database_url=pg_url)


@pytest.fixture
def ml_server(ml_settings):
    """The real ML service on port 0; yields its target address."""
    from edgeloop.mlservice.server import create_server

    server, port = create_server("127.0.0.1:0", ml_settings)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0.5).wait()
