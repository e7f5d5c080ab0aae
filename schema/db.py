"""Engines, sessions and migrations.

An engine is a per-process resource: workers create theirs after the fork (see
``workers/signals.py``), never at import time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import DatabaseNotMigrated

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        path = sqlite_path(engine)
        if path is not None:
            # Made by the first connection, not by the engine: a command that only reads, run
            # where there is no database, is refused (require_migrated) and leaves nothing behind.
            @event.listens_for(engine, "do_connect")
            def _parent_dir(_dialect, _record, _cargs, _cparams):
                path.parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            # WAL lets readers and one writer overlap. FULL syncs the log at every commit, so a
            # commit survives a power loss: an entry is acknowledged only after its commit, and
            # with NORMAL the last commits could vanish with the power after their ack. The cost
            # is one fsync per commit, i.e. per batch (docs/delivery.md, bench/sqlite_durability.py).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite engine's database (None: not SQLite, or in memory)."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def missing_database(engine: Engine) -> Path | None:
    """The file of a SQLite database that does not exist yet (connecting would create it empty)."""
    path = sqlite_path(engine)
    return path if path is not None and not path.exists() else None


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    if missing_database(engine) is not None:
        return set()  # no database yet: asking would create an empty one
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def require_migrated(engine: Engine) -> None:
    """Refuse to run against a schema older (or newer) than this code, or against no database."""
    path = missing_database(engine)
    if path is not None:
        raise DatabaseNotMigrated(f"no database at {path}: run `edgeloop db upgrade` to create it, "
                                  "or set EDGELOOP_DATABASE_URL to the one to use")
    current, heads = current_revisions(engine), head_revisions()
    if current != heads:
        have = ", ".join(sorted(current)) or "none"
        raise DatabaseNotMigrated(
            f"database {engine.url.render_as_string(hide_password=True)} is at revision {have}, "
            f"this code needs {', '.join(sorted(heads))}: run `edgeloop db upgrade`"
        )
