"""A running `edgeloop web` (its own process) over a demo-like store (tests/support/web_seed.py)."""

from __future__ import annotations

import base64
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
import redis

from edgeloop.core.settings import get_settings
from edgeloop.processes import Child, free_port
from edgeloop.schema.db import make_engine, make_sessionmaker
from tests.support import web_seed
from tests.support.processes import wait_until

TOKEN = "web-test-token"


@dataclass
class Web:
    base: str
    token: str
    strategy_ids: list[str]
    sessions: object

    def get(self, path: str, auth: str | None = "bearer") -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(self.base + path)
        if auth == "bearer":
            request.add_header("Authorization", f"Bearer {self.token}")
        elif auth == "basic":
            request.add_header("Authorization", "Basic " + base64.b64encode(f"anyone:{self.token}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture
def web(env, tmp_path):
    engine = make_engine(env["EDGELOOP_DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    ids = web_seed.seed(sessions, redis.Redis.from_url(env["EDGELOOP_REDIS_URL"]), get_settings())
    port = free_port()
    child = Child("web", [sys.executable, "-m", "edgeloop", "web", "--port", str(port)],
                  {**env, "EDGELOOP_ML_AUTH_TOKEN": TOKEN}, tmp_path)
    server = Web(f"http://127.0.0.1:{port}", TOKEN, ids, sessions)

    def answers() -> bool:
        assert child.alive(), child.tail()
        try:
            return server.get("/strategies", auth=None)[0] == 401
        except OSError:
            return False

    wait_until(answers, 30, what="edgeloop web to answer")
    yield server
    child.stop()
    engine.dispose()
