"""Bulk, idempotent inserts: the one way edgeloop writes batches that may repeat.

``insert_ignoring_duplicates`` inserts rows and skips any that violate a unique constraint
(a redelivered event, a re-imported file, a resubmitted feedback batch), returning the
``key`` values it really inserted (or tuples of several columns' values, e.g. the unique key
and the generated id).

On PostgreSQL the rows are COPYed into a temporary table and moved with one
``INSERT … SELECT … ON CONFLICT DO NOTHING``: a 500-row multi-VALUES INSERT spends most of its
time building and parsing the statement text, COPY streams the rows (about 5x faster for
the ingest batch). The COPY is binary when every value's binary form is sure to be what its
text would store (``_binary_types``), which is about half of the text format's cost on the
client; any other batch is COPYed as text. Elsewhere (SQLite) it is an executemany of ``INSERT … ON CONFLICT DO
NOTHING RETURNING``, in chunks under SQLite's bound-parameter limit.

``count_new_rows_inserted`` is the same effect for a caller that needs only how many rows were
new (the ML service's feedback): on PostgreSQL the rows travel as one JSON array in one
``INSERT … SELECT … FROM jsonb_array_elements(…) ON CONFLICT DO NOTHING`` statement that
answers with the count. One round trip, no temporary table, and the client's work per row is
its share of one ``json.dumps`` (about a third of COPY's per-row formatting, measured by
``bench/ml_feedback.py``).
"""

from __future__ import annotations

import json
import operator
from datetime import date, datetime
from typing import Any, Mapping, Sequence

from sqlalchemy import JSON, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

SQLITE_CHUNK_ROWS = 500


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                               key: str | tuple[str, ...]) -> list:
    """Returns the ``key`` value of every row inserted (one per row: a key may repeat when it
    is not the unique column, e.g. the event id of price rows); with a tuple of column names,
    a tuple of their values per row."""
    if not rows:
        return []
    names = (key,) if isinstance(key, str) else key
    if conn.dialect.name == "postgresql":
        inserted = _copy_insert(conn, table, rows, names)
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing().returning(*(table.c[n] for n in names))
        inserted = []
        for i in range(0, len(rows), SQLITE_CHUNK_ROWS):
            inserted.extend(tuple(r) for r in conn.execute(stmt, list(rows[i:i + SQLITE_CHUNK_ROWS])))
    return [r[0] for r in inserted] if isinstance(key, str) else inserted


def _is_json(column) -> bool:
    return isinstance(column.type, (JSON, postgresql.JSONB)) or isinstance(
        getattr(column.type, "impl", None), JSON)


def _copy_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: tuple[str, ...]) -> list:
    # Here, not at the top: the PostgreSQL driver is loaded only where PostgreSQL is used.
    from psycopg.types.json import Jsonb

    # COPY bypasses SQLAlchemy, so its Python-side defaults (``default=utcnow``) are applied
    # here; server defaults and the autoincrement id are left to the table.
    defaults: dict[str, Any] = {c.name: c.default for c in table.columns
                                if c.name not in rows[0] and c.default is not None and not c.primary_key}
    if defaults:
        fill = {n: (d.arg(None) if d.is_callable else d.arg) for n, d in defaults.items()}
        rows = [{**fill, **row} for row in rows]
    columns = [c for c in table.columns if c.name in rows[0]]
    names = [c.name for c in columns]
    cols = ", ".join(f'"{n}"' for n in names)
    temp = f"_bulk_{table.name}"
    values = operator.itemgetter(*names)
    binary_types = _binary_types(conn, table, columns, rows)
    raw: Any = conn.connection.driver_connection  # psycopg's own connection
    with raw.cursor() as cur:
        cur.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{temp}" (LIKE "{table.name}" INCLUDING DEFAULTS) '
                    "ON COMMIT DELETE ROWS")
        if binary_types is not None:
            with cur.copy(f'COPY "{temp}" ({cols}) FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types(binary_types)
                for row in rows:
                    copy.write_row(values(row) if len(names) > 1 else (values(row),))
        else:
            json_cols = {c.name for c in columns if _is_json(c)}
            with cur.copy(f'COPY "{temp}" ({cols}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row([Jsonb(row[n]) if n in json_cols and row[n] is not None else row[n]
                                    for n in names])
        cur.execute(f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM "{temp}" '
                    f'ON CONFLICT DO NOTHING RETURNING ' + ", ".join(f'"{k}"' for k in key))
        inserted = cur.fetchall()
        # DELETE, not TRUNCATE: a TRUNCATE gives the temporary table a new file each time (and
        # writes the catalog), which cost PostgreSQL more than the insert itself; the rows are
        # dropped at commit anyway (ON COMMIT DELETE ROWS), this only clears them for another
        # insert in the same transaction.
        cur.execute(f'DELETE FROM "{temp}"')
    return inserted


# Binary COPY writes a value in the column's own binary format, which costs the client about
# half of the text format's formatting (the worker's insert: 20 → 14 µs of client CPU per
# stored result, docs/scaling.md). But psycopg's binary dumpers are not the text format's
# equals: an int beyond the column's range is silently wrapped (2**40 in an integer column
# stores 0) where PostgreSQL refuses the text, and text that PostgreSQL would parse ("12" in an
# integer column, a naive datetime in a timestamptz one) is refused on the client. So a batch
# goes binary only when every value is of a Python type whose binary form is exactly what the
# text form would store (or None); any other batch takes the text path as before, and so
# fails, or not, and is classified (schema/failures.py) exactly as before. Compiled column
# type → (the type psycopg dumps as, the Python type its values must be).
_BINARY: dict[str, tuple[str, type]] = {
    "INTEGER": ("int4", int), "SMALLINT": ("int2", int), "BIGINT": ("int8", int), "FLOAT": ("float8", float),
    "DOUBLE PRECISION": ("float8", float), "BOOLEAN": ("bool", bool), "DATE": ("date", date),
    "TIMESTAMP WITH TIME ZONE": ("timestamptz", datetime), "BYTEA": ("bytea", bytes), "TEXT": ("text", str),
    "JSONB": ("jsonb", object),
}
_INT_RANGE = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_UTC_OFFSET = operator.methodcaller("utcoffset")
_BINARY_NAMES: dict[tuple[str, tuple[str, ...]], list[tuple[str, type]] | None] = {}


def _binary_types(conn: Connection, table: Table, columns: list, rows: Sequence[dict[str, Any]]) -> list[str] | None:
    """The psycopg types of a binary COPY of these rows, or None when the text COPY must take them."""
    cache_key = (table.name, tuple(c.name for c in columns))
    if cache_key not in _BINARY_NAMES:
        found = []
        for column in columns:
            compiled = column.type.compile(dialect=conn.dialect)
            kind = _BINARY.get("TEXT" if compiled.startswith("VARCHAR") else compiled)
            if kind is None:
                break  # e.g. TIME: left to the text COPY
            found.append(kind)
        _BINARY_NAMES[cache_key] = found if len(found) == len(columns) else None
    kinds = _BINARY_NAMES[cache_key]
    if kinds is None:
        return None
    for column, (pg_type, python_type) in zip(columns, kinds):
        if python_type is object:
            continue  # JSON: the same json.dumps either way
        column_values = list(map(operator.itemgetter(column.name), rows))
        types = set(map(type, column_values))
        types.discard(type(None))
        if not types <= {python_type}:
            return None  # a bool or a str in an integer column, a datetime in a date one, …
        if not types:
            continue
        if pg_type in _INT_RANGE or pg_type == "timestamptz":
            present = [v for v in column_values if v is not None] if None in column_values else column_values
            if pg_type == "timestamptz":
                if None in map(_UTC_OFFSET, present):
                    return None  # naive: PostgreSQL reads it in the session's time zone
            elif not (-_INT_RANGE[pg_type] <= min(present) and max(present) < _INT_RANGE[pg_type]):
                return None
    return [pg_type for pg_type, _ in kinds]


def count_new_rows_inserted(conn: Connection, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]],
                            constants: Mapping[str, Any]) -> int:
    """Insert ``rows`` (values in ``names``' order; the ``constants`` columns take the same value
    in every row), skipping any that violate a unique constraint; return how many were new.

    Values are JSON values, dates and times (sent as ISO text and parsed by PostgreSQL). None is
    SQL NULL, except in a JSON column, which stores it as JSON ``null`` (as SQLAlchemy's JSON
    type does). Rows are inserted in their order (an autoincrement id follows it)."""
    if not rows:
        return 0
    if conn.dialect.name != "postgresql":
        dicts = [{**dict(zip(names, row)), **constants} for row in rows]
        return len(insert_ignoring_duplicates(conn, table, dicts, names[0]))
    raw: Any = conn.connection.driver_connection  # psycopg's own connection
    statement = _json_insert_statement(conn, table, tuple(names), tuple(constants))
    with raw.cursor() as cur:
        cur.execute(statement, [*constants.values(), _ENCODE(rows)])
        row = cur.fetchone()
    return int(row[0])


def _iso(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value, a date or a time")


# Not json.dumps(…, default=…): that builds an encoder per call. NaN and infinities are refused
# (JSON has none, and PostgreSQL would fail the whole batch on them). No check for cycles (a
# tenth of the encoding): rows are trees of values, and a cycle would still fail, as a
# RecursionError.
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False, default=_iso).encode
_STATEMENTS: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}


def _json_insert_statement(conn: Connection, table: Table, names: tuple[str, ...], constants: tuple[str, ...]) -> str:
    key = (table.name, names, constants)
    statement = _STATEMENTS.get(key)
    if statement is None:
        values = []
        for i, name in enumerate(names):
            column = table.c[name]
            if _is_json(column):
                values.append(f"r->{i}")
            else:
                values.append(f"(r->>{i})::{column.type.compile(dialect=conn.dialect)}")
        values.extend("%s" for _ in constants)
        cols = ", ".join(f'"{n}"' for n in (*names, *constants))
        statement = (f'WITH new AS (INSERT INTO "{table.name}" ({cols}) SELECT {", ".join(values)} '
                     f"FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(r, n) ORDER BY n "
                     "ON CONFLICT DO NOTHING RETURNING 1) "
                     "SELECT count(*) FROM new")
        _STATEMENTS[key] = statement
    return statement
