"""docker-compose.yml describes the whole stack, each long-running service with a health check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_part_of_the_stack_is_there():
    assert {"redis", "redis-cache", "postgres", "ml-service", "worker", "beat", "flower", "prometheus"} <= set(services())


def test_long_running_services_have_health_checks():
    missing = [name for name, svc in services().items()
               if name not in {"migrate", "beat"} and "healthcheck" not in svc]
    assert not missing


def option(service: str, name: str) -> str:
    """The value of ``--name`` in a service's command."""
    command = services()[service]["command"]
    return command[command.index(f"--{name}") + 1]


def test_the_main_redis_persists_and_never_evicts():
    assert option("redis", "appendonly") == "yes"
    assert option("redis", "maxmemory-policy") == "noeviction"


def test_the_prediction_cache_has_a_redis_of_its_own_that_may_evict_anything():
    assert option("redis-cache", "maxmemory-policy") == "allkeys-lru"
    assert option("redis-cache", "maxmemory")
    env = yaml.safe_load(COMPOSE.read_text())["x-edgeloop"]["environment"]
    assert "redis-cache:6379" in env["EDGELOOP_CACHE_REDIS_URL"]
    assert "redis://redis:6379" in env["EDGELOOP_REDIS_URL"]


def test_prometheus_scrapes_the_ports_the_services_listen_on():
    prom = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"worker:9808", "ml-service:8000", "flower:5555"}


def compose_command() -> list[str] | None:
    """docker-compose (Debian's package), or the docker CLI's compose plugin when it is there
    (a docker CLI without the plugin rejects `docker compose`)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="no docker-compose to validate with (.ci/run installs it)")
def test_compose_file_validates():
    proc = subprocess.run([*compose_command(), "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_flower_listens_on_all_interfaces_in_its_container_and_only_on_the_hosts_loopback():
    flower = services()["flower"]
    assert "--address=0.0.0.0" in flower["command"]
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"])


def test_compose_sets_no_flower_password_of_its_own():
    env = yaml.safe_load(COMPOSE.read_text())["x-edgeloop"]["environment"]
    assert env["EDGELOOP_FLOWER_PASSWORD"] == "${EDGELOOP_FLOWER_PASSWORD:-}"  # Flower refuses to start without one


def test_prometheus_sends_the_ml_services_token_from_the_file_compose_writes():
    prom = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    [ml] = [job for job in prom["scrape_configs"] if job["job_name"] == "edgeloop-ml-service"]
    token_file = ml["authorization"]["credentials_file"]
    prometheus = services()["prometheus"]
    assert f"> {token_file} " in prometheus["entrypoint"][-1] and "$$EDGELOOP_ML_AUTH_TOKEN" in prometheus["entrypoint"][-1]
    assert prometheus["environment"]["EDGELOOP_ML_AUTH_TOKEN"] == "${EDGELOOP_ML_AUTH_TOKEN:-}"
