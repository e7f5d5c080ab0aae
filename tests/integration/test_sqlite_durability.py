"""SQLite as the store of record: a commit is on disk before anything is acknowledged.

Entries are XACKed after their commit, and the ML service confirms feedback ids after its
commit; in WAL mode only ``synchronous=FULL`` makes such a commit survive a power loss
(NORMAL may roll back the last ones). docs/delivery.md has the choice and its cost.
"""

from __future__ import annotations

import pytest

from edgeloop.core.settings import get_settings
from edgeloop.mlservice.context import ServiceContext
from edgeloop.services.runtime import Resources

pytestmark = pytest.mark.integration

SYNCHRONOUS_FULL = 2  # what PRAGMA synchronous reads back for FULL (NORMAL is 1)


def worker_store(settings):
    res = Resources(settings)
    return res.sessions, res.close


def ml_service_store(settings):
    ctx = ServiceContext.open(settings)
    return ctx.sessions, ctx.close


@pytest.mark.parametrize("store", [worker_store, ml_service_store], ids=["ingest-worker", "ml-service"])
def test_every_connection_of_the_store_syncs_each_commit(store, sqlite_url, monkeypatch):
    # Given the store as the ingest worker and the ML service open it
    monkeypatch.setenv("EDGELOOP_DATABASE_URL", sqlite_url)
    sessions, close = store(get_settings())
    try:
        # When two sessions hold a connection each, as concurrent consumers do
        with sessions() as a, sessions() as b:
            conns = [a.connection(), b.connection()]
            assert conns[0].connection.dbapi_connection is not conns[1].connection.dbapi_connection
            # Then each one runs in WAL mode with a sync at every commit
            for conn in conns:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == SYNCHRONOUS_FULL
    finally:
        close()
