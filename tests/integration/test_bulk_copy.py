"""The bulk insert's binary COPY stores what its text COPY stores, and leaves to the text COPY
every batch with a value that psycopg's binary dumpers would not write as PostgreSQL reads
its text (an int beyond the column's range is wrapped by them, not refused)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Float, Integer, LargeBinary, MetaData, SmallInteger,
                        String, Table, select)
from sqlalchemy.dialects.postgresql import JSONB

from edgeloop.schema import bulk
from edgeloop.schema.db import make_engine
from edgeloop.schema.failures import StoreFailure, classify

pytestmark = pytest.mark.integration

_META = MetaData()
TABLE = Table(
    "bulk_copy_probe", _META,
    Column("id", BigInteger, primary_key=True, autoincrement=True), Column("k", String(12), unique=True),
    Column("i", Integer), Column("s", SmallInteger), Column("f", Float), Column("j", JSONB), Column("d", Date),
    Column("ts", DateTime(timezone=True)), Column("b", LargeBinary), Column("bo", Boolean),
)
GOOD = {"i": -(2**31), "s": 2**15 - 1, "f": -0.0, "j": {"x": [1, None, 1.5, "é"]}, "d": date(2020, 2, 29),
        "ts": datetime(2020, 1, 1, 12, 30, 0, 7, tzinfo=timezone(timedelta(hours=-5))), "b": b"\x00\xff", "bo": False}


@pytest.fixture
def engine(pg_url):
    engine = make_engine(pg_url)
    _META.create_all(engine)
    yield engine
    engine.dispose()  # its sessions' temporary tables take the id's default from the table's sequence
    cleaner = make_engine(pg_url)
    _META.drop_all(cleaner)
    cleaner.dispose()


def _insert(engine, rows):
    with engine.begin() as conn:
        return bulk.insert_ignoring_duplicates(conn, TABLE, rows, "k")


def _stored(engine, key):
    with engine.connect() as conn:
        return conn.execute(select(TABLE).where(TABLE.c.k == key)).one()._asdict()


def _text_only(monkeypatch):
    monkeypatch.setattr(bulk, "_binary_types", lambda *args: None)


def test_binary_and_text_copy_store_the_same_values(engine, monkeypatch):
    rows = [{**GOOD, "k": "a"}, {**GOOD, "k": "b", "i": None, "j": None, "ts": None, "f": float("inf")}]
    with engine.connect() as conn:
        assert bulk._binary_types(conn, TABLE, [c for c in TABLE.columns if c.name in rows[0]], rows) is not None
    assert _insert(engine, rows) == ["a", "b"]
    binary = [_stored(engine, k) for k in ("a", "b")]
    _text_only(monkeypatch)
    assert _insert(engine, [{**r, "k": r["k"] + "-text"} for r in rows]) == ["a-text", "b-text"]
    text = [_stored(engine, k + "-text") for k in ("a", "b")]
    for b, t in zip(binary, text):
        assert {k: v for k, v in b.items() if k not in ("id", "k")} == {k: v for k, v in t.items() if k not in ("id", "k")}
    assert str(binary[0]["f"]) == "-0.0"


@pytest.mark.parametrize("change, stored", [
    ({"i": "12"}, {"i": 12}),  # text PostgreSQL parses
    ({"f": 3}, {"f": 3.0}),
    ({"d": datetime(2020, 1, 2, 5)}, {"d": date(2020, 1, 2)}),
    ({"ts": datetime(2020, 1, 1, 10)}, {"ts": datetime(2020, 1, 1, 10, tzinfo=timezone.utc)}),  # the session's zone
])
def test_a_value_the_binary_format_would_refuse_is_stored_as_before(engine, change, stored):
    assert _insert(engine, [{**GOOD, "k": "ok"}, {**GOOD, "k": "odd", **change}]) == ["ok", "odd"]
    row = _stored(engine, "odd")
    assert {k: row[k] for k in stored} == stored


@pytest.mark.parametrize("change", [{"i": 2**40}, {"s": 70_000}, {"i": -(2**31) - 1}, {"i": True}])
def test_a_value_the_binary_format_would_change_is_refused_as_data(engine, change):
    with pytest.raises(Exception) as caught:
        _insert(engine, [{**GOOD, "k": "ok"}, {**GOOD, "k": "bad", **change}])
    assert classify(caught.value) is StoreFailure.DATA
    with engine.connect() as conn:
        assert conn.execute(select(TABLE.c.k)).all() == []
