"""Everything one running ML service holds: settings, the database, clocks, later the models.

Created by ``create_server`` (never at import), shared by the gRPC servicer and the HTTP API
so both answer from the same state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.settings import Settings
from edgeloop.schema.db import make_engine, make_sessionmaker, require_migrated


@dataclass
class ServiceContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    started_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, settings: Settings) -> "ServiceContext":
        """Connect to the database and refuse to go on when it is not migrated."""
        engine = make_engine(settings.database_url)
        try:
            require_migrated(engine)
        except Exception:
            engine.dispose()
            raise
        return cls(settings=settings, engine=engine, sessions=make_sessionmaker(engine))

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def close(self) -> None:
        self.engine.dispose()
