"""What a database error means for the rows that caused it.

The consumer sets a row aside only when the database (or the driver, adapting one of its
values) refused that row's data; a database that is down, restarting or locked is waited
for, and anything else is neither: the batch is retried and, should it keep failing, the
stream's delivery count settles it (see ``edgeloop/services/ingest.py``).
"""

from __future__ import annotations

import enum
import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc


class StoreFailure(enum.Enum):
    DATA = "data"  # this row's values: another row may fare better
    UNAVAILABLE = "unavailable"  # the database cannot be reached or is busy: retry later, lose nothing
    UNKNOWN = "unknown"  # neither: retry, and count the deliveries


# Raised by the drivers themselves (psycopg's COPY path does not go through SQLAlchemy) or
# by SQLAlchemy around them. ValueError covers UnicodeError and a driver refusing a value
# before sending it (a NUL in text, an int too large for SQLite).
_DATA = (psycopg.DataError, psycopg.IntegrityError, sqlite3.DataError, sqlite3.IntegrityError,
         ValueError, TypeError, OverflowError)
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError,
                sqlite3.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError, ConnectionError)


def classify(exc: BaseException) -> StoreFailure:
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig is not None else exc
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return StoreFailure.UNAVAILABLE
    if isinstance(orig, _DATA):
        return StoreFailure.DATA
    if isinstance(orig, _UNAVAILABLE) or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return StoreFailure.UNAVAILABLE
    return StoreFailure.UNKNOWN


def message(exc: BaseException) -> str:
    """The database's own words, on one line, with the SQLSTATE where there is one."""
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig is not None else exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    state = getattr(orig, "sqlstate", None)
    return f"{state}: {text}" if state else text
