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


def prometheus_config() -> dict:
    return yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())


def test_prometheus_scrapes_the_ports_the_services_listen_on():
    targets = {t for job in prometheus_config()["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]}
    found = {f"{name}:{sd['port']}" for job in prometheus_config()["scrape_configs"]
             for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
    assert targets | found == {"worker:9808", "ml-service:8000", "flower:5555"}


def test_every_worker_replica_is_a_target_of_its_own():
    [worker] = [job for job in prometheus_config()["scrape_configs"] if job["job_name"] == "edgeloop-worker"]
    assert "static_configs" not in worker
    assert worker["dns_sd_configs"] == [{"names": ["worker"], "type": "A", "port": 9808, "refresh_interval": "10s"}]


def test_the_compose_prometheus_loads_the_alert_rules():
    [volume] = services()["prometheus"]["volumes"]
    host, container = volume.split(":")[:2]
    assert (ROOT / host).resolve() == (ROOT / "deploy/prometheus").resolve()
    assert prometheus_config()["rule_files"] == [f"{container}/alerts.yml"]


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
    prom = prometheus_config()
    [ml] = [job for job in prom["scrape_configs"] if job["job_name"] == "edgeloop-ml-service"]
    token_file = ml["authorization"]["credentials_file"]
    prometheus = services()["prometheus"]
    assert f"> {token_file} " in prometheus["entrypoint"][-1] and "$$EDGELOOP_ML_AUTH_TOKEN" in prometheus["entrypoint"][-1]
    assert prometheus["environment"]["EDGELOOP_ML_AUTH_TOKEN"] == "${EDGELOOP_ML_AUTH_TOKEN:-}"


def test_every_edgeloop_service_reads_the_optional_env_file():
    example = (ROOT / ".env.example").read_text()
    assert "EDGELOOP_ENV_FILE=.env\n" in example.splitlines(keepends=True)
    for name, svc in services().items():
        if svc.get("image", "").startswith("edgeloop"):
            assert svc["env_file"] == ["${EDGELOOP_ENV_FILE:-.env.example}"], name
    # Without a .env the example itself is the env_file: it must set nothing but that.
    assigned = [line for line in example.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert assigned == ["EDGELOOP_ENV_FILE=.env"]


def test_the_env_file_stays_out_of_the_image():
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
