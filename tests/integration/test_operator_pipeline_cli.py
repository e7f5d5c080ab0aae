"""`edgeloop publish`, `edgeloop dead-letters`, `edgeloop db` as an operator runs them (real Redis, real DB)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from tests.support.events import valid_event
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration


def edgeloop(env, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeloop", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_publish_from_stdin_rejects_bad_lines_and_publishes_the_rest(env):
    lines = [json.dumps(valid_event(1)), "{broken", json.dumps({**valid_event(2), "schema_version": 3}),
             json.dumps(valid_event(3))]
    proc = edgeloop(env, "publish", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 1
    assert "published 2 events, 2 rejected" in proc.stdout
    assert "line 2: not published: not_json" in proc.stderr and "line 3:" in proc.stderr
    r = redis.Redis.from_url(env["EDGELOOP_REDIS_URL"])
    assert r.xlen("backtests.finished") == 2


def test_dead_letters_list_and_replay(env):
    from edgeloop.services.ingest import StreamConsumer  # noqa: F401  (the consumer is what fills the dead letters)

    r = redis.Redis.from_url(env["EDGELOOP_REDIS_URL"])
    r.xadd("backtests.dead", {"reason": "not_json", "detail": "Expecting value", "payload": "{oops",
                              "source_stream": "backtests.finished", "source_id": "1-0", "dead_at_ms": "0"})
    listed = edgeloop(env, "dead-letters", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    letter = json.loads(listed.stdout.splitlines()[0])
    assert (letter["reason"], letter["payload"]) == ("not_json", "{oops")
    replayed = edgeloop(env, "dead-letters", "replay", "--reason", "not_json")
    assert replayed.returncode == 0 and "replayed 1" in replayed.stdout
    assert r.xlen("backtests.dead") == 0
    assert r.xrange("backtests.finished")[0][1][b"event"] == b"{oops"


@pytest.mark.parametrize("args,needle", [
    (["publish", "/no/such/file.jsonl"], "No such file"),
    (["dead-letters", "list", "--limit", "0"], "--limit"),
    (["no-such-command"], "No such command"),
])
def test_bad_arguments_give_one_line_and_a_non_zero_exit(env, args, needle):
    proc = edgeloop(env, *args)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_db_status_and_upgrade_on_a_fresh_database(env, tmp_path):
    fresh = {**env, "EDGELOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    before = edgeloop(fresh, "db", "status")
    assert before.returncode != 0 and "edgeloop db upgrade" in before.stderr
    reading = edgeloop(fresh, "strategies", "list")
    assert reading.returncode != 0 and "no database at" in reading.stderr and "edgeloop db upgrade" in reading.stderr
    assert len(reading.stderr.strip().splitlines()) == 1, reading.stderr
    assert not (tmp_path / "new.db").exists()  # commands that only read leave nothing behind
    assert edgeloop(fresh, "db", "upgrade").returncode == 0
    assert edgeloop(fresh, "db", "status").returncode == 0


def test_redis_unreachable_is_one_line(env):
    proc = edgeloop({**env, "EDGELOOP_REDIS_URL": "redis://127.0.0.1:1/0"}, "dead-letters", "list")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "Redis" in proc.stderr
