"""The prediction cache on a 3-node Redis Cluster started from the ``redis-server`` binary: its
keys share the prefix's hash tag, so the MGET of a batch, the store script, strategy
invalidation and the invalidation channel work as on one node."""

from __future__ import annotations

import shutil
import subprocess
from contextlib import ExitStack

import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from edgeloop.core.settings import settings_with
from edgeloop.mlclient import keys
from edgeloop.mlclient.cache import CachedMLClient, invalidate_strategies, make_redis
from edgeloop.processes import free_port
from tests.integration.mlclient.support import metric, requests
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


@pytest.fixture
def cluster(tmp_path):
    """Three masters, no replicas; yields the URL of one of them."""
    if not (REDIS_SERVER and REDIS_CLI):
        pytest.fail("redis-server and redis-cli are needed for the cluster tier")
    ports = [free_port() for _ in range(3)]
    with ExitStack() as stack:
        for port in ports:
            # The bus port is chosen too: port + 10000 (the default) may be taken on a shared machine.
            proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--cluster-port", str(free_port()), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / f"nodes-{port}.conf"),
                 "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
                 "--logfile", str(tmp_path / f"redis-{port}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(lambda p=proc: (p.terminate(), p.wait(10)))
        for port in ports:
            wait_until(lambda p=port: _pings(p), 10, 0.02, f"cluster node {port}")
        subprocess.run([REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_until(lambda: all(_cluster_ok(p) for p in ports), 20, 0.05, "cluster state ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"


def _pings(port: int) -> bool:
    try:
        with redis.Redis(port=port) as r:
            return bool(r.ping())
    except redis.ConnectionError:
        return False


def _cluster_ok(port: int) -> bool:
    with redis.Redis(port=port) as r:
        return r.cluster("info")["cluster_state"] == "ok"


def test_a_batch_is_looked_up_stored_and_invalidated_on_a_cluster(cluster, fake_ml):
    settings = settings_with(cache_redis_url=cluster, cache_redis_cluster=True, cache_prefix="t:pred",
                             cache_local_max_entries=0)
    assert settings.cache_prefix == "{t:pred}"
    cache = CachedMLClient(fake_ml, make_redis(settings), settings)
    whole = RedisCluster.from_url(cluster)
    try:
        batch = requests(1000, strategy_id="s-1") + requests(10, selection="away")
        # When a batch of 1,010 misses is asked twice
        first = cache.batch_predict(batch)
        hits = metric("edgeloop_prediction_cache_hits_total", kind="prediction")
        assert cache.batch_predict(batch) == first
        # Then it was one backend call, the second ask all hits from the cluster
        assert fake_ml.batch_calls == [1010]
        assert metric("edgeloop_prediction_cache_hits_total", kind="prediction") - hits == 1010
        # and every key is in one slot, readable through the cluster like any key
        stored = list(whole.scan_iter(match="{t:pred}:p:*", count=1000))
        assert len(stored) == 1010 and len({key_slot(k) for k in stored}) == 1
        assert whole.get(stored[0]) is not None
        # When feedback about s-1 invalidates its entries (through any node's view of the cluster)
        assert invalidate_strategies(cache.redis, ["s-1"], settings.cache_prefix) == 1000
        cache.batch_predict(batch)
        assert fake_ml.batch_calls == [1010, 1000]
    finally:
        whole.close()
        cache.close()


def test_level_1_is_kept_coherent_through_the_cluster(cluster, fake_ml):
    settings = settings_with(cache_redis_url=cluster, cache_redis_cluster=True, cache_prefix="t:pred")
    readers = [CachedMLClient(fake_ml, make_redis(settings), settings) for _ in range(2)]
    try:
        for r in readers:
            assert r.coherence.wait_serving(5)
        batch = requests(50, strategy_id="s-2")
        for r in readers:
            r.batch_predict(batch)
            r.batch_predict(batch)
        assert all(len(r.local) == 50 for r in readers)
        # A publication on one node reaches subscribers on every node (cluster-wide pub/sub)
        other = next(n for n in RedisCluster.from_url(cluster).get_primaries()
                     if n.port != readers[0].redis.connection_pool.connection_kwargs["port"])
        with redis.Redis(host=other.host, port=other.port) as elsewhere:
            elsewhere.publish(f"{settings.cache_prefix}:inval", 's 0 ["s-2"]')
        wait_until(lambda: all(len(r.local) == 0 for r in readers), 2, 0.01, "level 1 emptied of s-2")
        assert keys.generation_key(settings.cache_prefix) == "{t:pred}:gen"
    finally:
        for r in readers:
            r.close()
