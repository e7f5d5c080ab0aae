"""Fixtures of the cache tier: the test Redis db and a cached client over a counting stand-in;
for the acceptance tiers, the real ML service (port 0) trained on shipped seasons."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import select

from edgeloop.core.settings import settings_with
from edgeloop.mlclient.cache import CachedMLClient, make_redis
from edgeloop.mlclient.client import MLClient
from tests.integration.ml.factories import finished
from tests.integration.mlclient.support import PREFIX, SEASONS, SELECTIONS, Service, train
from tests.support import services
from tests.support.ml import FakeMLClient
from tests.support.processes import ROOT


@pytest.fixture
def cache_settings(redis_url):
    # Level 2 alone: these tests check what Redis holds and when it is read, which level 1 (on
    # by default, see test_coherence.py and tests/unit/test_mlclient_local_cache.py) would hide.
    return settings_with(cache_redis_url=redis_url, cache_prefix="t:pred", cache_local_max_entries=0)


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


@pytest.fixture(scope="module")
def trained_db():
    """A database of its own with four shipped seasons; yields its URL and (event id, date) pairs."""
    from edgeloop.marketdata.store import import_paths
    from edgeloop.schema.db import make_engine, upgrade
    from edgeloop.schema.market import MarketEvent

    name = f"{services.PG_DB}_mlcache"
    url = services.recreate_pg_database(name)
    upgrade(url)
    engine = make_engine(url)
    import_paths(engine, [ROOT / "data" / "football-data" / s for s in SEASONS])
    with engine.connect() as conn:
        events = [tuple(r) for r in conn.execute(
            select(MarketEvent.event_id, MarketEvent.event_date).order_by(MarketEvent.event_date, MarketEvent.event_id))]
    engine.dispose()
    yield url, events
    services.drop_pg_database(name)


@pytest.fixture(scope="module")
def service(trained_db):
    """The ML service on port 0, its outcome and strategy models trained; yields (target, predictable events)."""
    from edgeloop.mlservice.server import create_server

    url, events = trained_db
    # The service tells the caches of this Redis and prefix when its training promotes a model.
    server, port = create_server("127.0.0.1:0", settings_with(database_url=url, redis_url=services.redis_url(),
                                                               cache_prefix=PREFIX))
    server.start()
    target = f"127.0.0.1:{port}"
    client = MLClient(settings_with(ml_timeout_s=30), target=target)
    train(client)
    # The strategy model learns a strategy's score on a window after the one it was chosen on:
    # 60 strategies of varied parameters, each backtested on two consecutive seasons before the
    # validation window.
    for window, tag in ((("2018-08-01", "2019-05-31"), "chosen"), (("2019-08-01", "2020-05-31"), "later")):
        client.submit_backtest_feedback(
            [finished(f"seed-{tag}-{i}", params={"min_edge": i / 1000, "staking": "flat"}, roi=(i % 7 - 3) / 100,
                      strategy_id=f"seed-{i}", window=window) for i in range(60)], batch_id=f"seed-{tag}")
    train(client, "strategy")
    # Early seasons have no version (not enough before them): keep the events after the
    # oldest serving version's training window.
    first = min(m.train_end for m in client.list_models("outcome") if m.status == "serving")
    predictable = [e for e, day in events if day.isoformat() > first[:10]]
    assert len(predictable) * len(SELECTIONS) >= 3400  # the tests below use disjoint ranges up to 3400
    yield Service(target, predictable, server)
    server.stop(1).wait()


@pytest.fixture
def settings(service, redis_url):
    return settings_with(ml_grpc_target=service.target, redis_url=redis_url, cache_redis_url=redis_url,
                         cache_prefix=PREFIX, ml_timeout_s=30)


@pytest.fixture
def ml(settings):
    client = MLClient(settings)
    yield client
    client.close()
