"""Flower out of the box: `celery -A edgeloop.workers flower` from the project root requires the
credentials from settings and, with them, shows the running workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode

import pytest

from edgeloop.processes import free_port
from tests.support.processes import ROOT, celery_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def test_flower_needs_the_configured_credentials_and_then_shows_the_workers(life_env, tmp_path):
    port = free_port()
    env = {**life_env, "EDGELOOP_FLOWER_USER": "operator", "EDGELOOP_FLOWER_PASSWORD": "s3cret", "FLOWER_PORT": str(port)}
    env.pop("FLOWER_BASIC_AUTH", None)
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "flower.log", "wb")
    with celery_worker(env, "flowerseen", tmp_path):
        flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "edgeloop.workers", "flower"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: get(f"{base}/api/workers")[0] != 0, 60, 0.3, "Flower listening")
            # Without credentials, or with wrong ones: 401
            assert get(f"{base}/api/workers")[0] == 401
            assert get(f"{base}/", ("operator", "wrong"))[0] == 401
            # With the configured ones: the worker is listed
            def listed() -> bool:
                status, body = get(f"{base}/api/workers?refresh=1", ("operator", "s3cret"))
                return status == 200 and any(name.startswith("flowerseen@") for name in json.loads(body or "{}"))
            wait_until(listed, 60, 1.0, "worker listed by Flower")
        finally:
            os.killpg(flower.pid, signal.SIGTERM)
            flower.wait(15)
            log.close()


def test_flower_refuses_to_start_with_the_default_password(life_env):
    env = {k: v for k, v in life_env.items() if k not in ("EDGELOOP_FLOWER_PASSWORD", "FLOWER_BASIC_AUTH")}
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "edgeloop.workers", "flower"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "Flower will not start with the default or an empty password: set EDGELOOP_FLOWER_PASSWORD")
