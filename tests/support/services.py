"""Real services for the integration tier: a PostgreSQL database and a Redis db of the tests' own.

Names come from the environment so that parallel runs do not collide:
``EDGELOOP_TEST_PG_ADMIN_URL`` (default ``postgresql://root@127.0.0.1:5432/postgres``),
``EDGELOOP_TEST_PG_DB`` (default ``edgeloop_test``), ``EDGELOOP_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379`` ) and ``EDGELOOP_TEST_REDIS_DB`` (default 15). A service that is
not reachable fails the test: CI must not pass by skipping.
"""

from __future__ import annotations

import os

import psycopg
import redis

PG_ADMIN_URL = os.environ.get("EDGELOOP_TEST_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("EDGELOOP_TEST_PG_DB", "edgeloop_test")
REDIS_BASE = os.environ.get("EDGELOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("EDGELOOP_TEST_REDIS_DB", "15"))


def pg_url(dbname: str = PG_DB) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


def recreate_pg_database(dbname: str = PG_DB) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return pg_url(dbname)


def drop_pg_database(dbname: str = PG_DB) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def redis_url(db: int = REDIS_DB) -> str:
    return f"{REDIS_BASE}/{db}"


def flush_redis(db: int = REDIS_DB) -> None:
    redis.Redis.from_url(redis_url(db)).flushdb()
