"""Shared fixtures. Unit tests need nothing; integration fixtures talk to real services."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeloop.core.settings import get_settings
from tests.support import services

ROOT = Path(__file__).resolve().parents[1]

# Fixtures shared by test modules in several folders (``pipeline_env``).
pytest_plugins = ["tests.support.pipeline"]

# Celery reads celeryconfig (and so the broker URL) once per process, whenever a test first
# touches the app: make that the tests' own Redis db, never a developer's db 0.
os.environ["EDGELOOP_REDIS_URL"] = services.redis_url()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch):
    """Settings are read once per process; each test starts from its own environment."""
    monkeypatch.setenv("EDGELOOP_CONFIG", os.devnull)  # never pick up a developer's config.yaml
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_database_url():
    """A freshly created, migrated PostgreSQL database for this test session."""
    from edgeloop.schema.db import upgrade

    url = services.recreate_pg_database()
    upgrade(url)
    yield url
    services.drop_pg_database()


@pytest.fixture
def pg_url(pg_database_url):
    """The session database, emptied before the test."""
    from sqlalchemy import text

    from edgeloop.schema import Base
    from edgeloop.schema.db import make_engine

    engine = make_engine(pg_database_url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return pg_database_url


@pytest.fixture
def sqlite_url(tmp_path):
    from edgeloop.schema.db import upgrade

    url = f"sqlite:///{tmp_path / 'edgeloop.db'}"
    upgrade(url)
    return url


@pytest.fixture
def redis_url():
    services.flush_redis()
    yield services.redis_url()
    services.flush_redis()


@pytest.fixture
def env(monkeypatch, redis_url, pg_url):
    """Point every edgeloop setting at the test services; returns the env dict for subprocesses."""
    values = {
        "EDGELOOP_REDIS_URL": redis_url,
        "EDGELOOP_DATABASE_URL": pg_url,
        "EDGELOOP_CONFIG": os.devnull,
        "EDGELOOP_PROMETHEUS_MULTIPROC_DIR": "",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return {**os.environ, **values}
