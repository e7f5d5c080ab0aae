"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from edgeloop import schema
from edgeloop.schema.db import make_engine, upgrade

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("db", ["postgresql", "sqlite"])
def test_models_and_migrations_agree(db, request, tmp_path):
    url = request.getfixturevalue("pg_url") if db == "postgresql" else f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.Base.metadata)
    engine.dispose()
    assert diffs == [], "models and migrations differ: write a migration"


def test_downgrade_to_nothing_and_back(sqlite_url):
    from alembic import command

    from edgeloop.schema.db import alembic_config, current_revisions, head_revisions

    command.downgrade(alembic_config(sqlite_url), "base")
    assert current_revisions(make_engine(sqlite_url)) == set()
    upgrade(sqlite_url)
    assert current_revisions(make_engine(sqlite_url)) == head_revisions()
