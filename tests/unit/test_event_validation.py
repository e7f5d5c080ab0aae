"""The event's validation matches what the store accepts, at every depth of the payload."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from edgeloop.core.errors import InvalidEvent
from google.protobuf import json_format

from edgeloop.core.events import (MAX_DEPTH, _direct_message, encode_event, event_from_dict, parse_event, struct_to_dict,
                                  validate_message)
from edgeloop.schema.failures import StoreFailure, classify, message
from tests.support.events import valid_event


def reason_of(payload: str | bytes) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload)
    return caught.value.reason


def with_params(**params) -> str:
    return json.dumps({**valid_event(1), "params": params})


@pytest.mark.parametrize("payload, reason", [
    (with_params(n=2**64), "out_of_range"),  # a Struct number is a double: it would overflow or lose digits
    (with_params(n=-(2**53) - 1), "out_of_range"),
    (with_params(deep={"a": [1, {"b": 2**60}]}), "out_of_range"),
    (with_params(x=1).replace('"x": 1', '"x": 1e999'), "non_finite"),
    (with_params(x=[1.5]).replace("1.5", "-1e400"), "non_finite"),
    (with_params(name="a\x00b"), "bad_value"),  # PostgreSQL's text and jsonb refuse NUL
    (with_params(**{"k\x00": 1}), "bad_value"),
    (json.dumps({**valid_event(1), "strategy_name": "x\x00"}), "bad_value"),
    (with_params(s="?").replace('"?"', '"\\ud800"'), "bad_value"),  # a lone surrogate has no UTF-8
    (json.dumps({**valid_event(1), "metrics": {**valid_event(1)["metrics"], "total_bets": 2**31}}), "out_of_range"),
    ("[" * 20_000 + "]" * 20_000, "too_deep"),
    ('{"a":' * 10_000 + "1" + "}" * 10_000, "too_deep"),
    (b"\xc3\x28", "not_json"),
])
def test_values_the_store_would_refuse_are_invalid(payload, reason):
    assert reason_of(payload) == reason


def test_nesting_is_bounded_and_the_bound_itself_is_accepted():
    nested: dict = {}
    node = nested
    for _ in range(MAX_DEPTH - 2):  # the event is depth 1, params depth 2: the last {} is at MAX_DEPTH
        node["n"] = {}
        node = node["n"]
    assert parse_event(with_params(**nested)).params == nested
    node["n"] = {"one": "too many"}
    assert reason_of(with_params(**nested)) == "too_deep"


def test_the_largest_values_the_store_takes_are_valid():
    event = {**valid_event(1), "params": {"n": 2**53, "m": -(2**53), "f": 1.7976931348623157e308, "t": "é✓"}}
    event["metrics"]["total_bets"] = 2**31 - 1
    parsed = parse_event(json.dumps(event))
    assert parsed.params["n"] == 2**53 and parsed.metrics["total_bets"] == 2**31 - 1


def test_the_message_path_applies_the_same_text_rules():
    msg = parse_event(json.dumps(valid_event(3))).message
    msg.strategy_name = "bad\x00name"
    with pytest.raises(InvalidEvent) as caught:
        validate_message(msg)
    assert caught.value.reason == "bad_value"
    assert validate_message(parse_event(encode_event(parse_event(json.dumps(valid_event(3))).message)).message)


@pytest.mark.parametrize("error, kind", [
    (psycopg.errors.NumericValueOutOfRange("integer out of range"), StoreFailure.DATA),
    (psycopg.errors.CheckViolation("violates check constraint"), StoreFailure.DATA),
    (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), StoreFailure.DATA),
    (sqlite3.IntegrityError("NOT NULL constraint failed"), StoreFailure.DATA),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), StoreFailure.DATA),
    (sa_exc.DataError("INSERT", {}, psycopg.errors.InvalidTextRepresentation("bad")), StoreFailure.DATA),
    (sa_exc.StatementError("bind", "INSERT", {}, ValueError("bad value")), StoreFailure.DATA),
    (psycopg.errors.AdminShutdown("terminating connection"), StoreFailure.UNAVAILABLE),
    (psycopg.OperationalError("connection refused"), StoreFailure.UNAVAILABLE),
    (sqlite3.OperationalError("database is locked"), StoreFailure.UNAVAILABLE),
    (sa_exc.OperationalError("INSERT", {}, psycopg.OperationalError("server closed")), StoreFailure.UNAVAILABLE),
    (sa_exc.TimeoutError("QueuePool limit reached"), StoreFailure.UNAVAILABLE),
    (psycopg.errors.UndefinedTable("relation does not exist"), StoreFailure.UNKNOWN),
    (RuntimeError("a bug"), StoreFailure.UNKNOWN),
])
def test_store_errors_are_classified_by_meaning(error, kind):
    assert classify(error) is kind


def test_store_message_is_one_line_with_the_sqlstate():
    err = psycopg.errors.NumericValueOutOfRange("value out of range\nDETAIL: more")
    assert message(sa_exc.DataError("INSERT", {}, err)) == "22003: value out of range"


@pytest.mark.parametrize("event", [
    valid_event(7),
    {**valid_event(8), "params": {}},
    {**valid_event(9), "finished_at": "2024-01-01T00:00:00Z", "model_version": "v3",
     "params": {"a": [1, 2.5, None, True, "x", {"b": []}], "c": {}, "d": -3, "e": True, "f": None, "g": "t"},
     "metrics": {**valid_event(9)["metrics"], "sortino_ratio": 1, "skipped_events": 4}},
])
def test_the_direct_message_is_the_one_json_format_makes(event):
    # The fast path must not change a byte of what is stored and sent to the ML service.
    assert _direct_message(event) == event_from_dict(event)
    msg = event_from_dict(event)
    assert struct_to_dict(msg.params) == json_format.MessageToDict(msg.params)


@pytest.mark.parametrize("event", [
    {"backtestId": "bt-1"}, {"metrics": {"total_bets": 1.0}}, {"metrics": {"roi": True}},
    {"metrics": {"roi": None}}, {"metrics": {"roi": "0.5"}}, {"params": [1]}, {"schema_version": "1"},
    {"unknown_field": 1},
])
def test_anything_but_plain_snake_case_values_goes_through_json_format(event):
    assert _direct_message(event) is None


@pytest.mark.parametrize("payload, reason", [
    (with_params(s="a\x00b"), "bad_value"),  # JSON carries these as \\u escapes: checked character by character
    (with_params(s="\ud800"), "bad_value"),
    ('{"schema_version": 1, "params": {"s": "\x00"}}', "not_json"),  # raw control characters never decode
])
def test_text_from_an_escape_is_still_checked(payload, reason):
    assert reason_of(payload) == reason
