"""The `BacktestFinished` event: encoding for producers, parsing and validation for consumers.

On the wire an event is protobuf's JSON mapping of ``proto/events.proto``'s
``BacktestFinished`` in the stream entry field ``event``. ``parse_event`` turns a raw
payload into a validated message or raises ``InvalidEvent`` with a short reason code
(the dead-letter stream records it), never anything else.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any, Iterable, NamedTuple

from google.protobuf import json_format, struct_pb2

from edgeloop.core.errors import InvalidEvent
from edgeloop.core.scoring import backtest_score_of
from edgeloop.proto import events_pb2

SCHEMA_VERSION = 1
EVENT_FIELD = "event"

REQUIRED_FIELDS = ("schema_version", "backtest_id", "strategy_id", "params", "window_start", "window_end",
                   "method", "metrics")
REQUIRED_METRICS = ("total_bets", "roi", "profit", "win_rate", "profit_factor", "sharpe_ratio", "max_drawdown")
MAX_ID_LEN = 128
MAX_TEXT_LEN = {"method": 64, "model_version": 64, "strategy_name": 256}
# What the store accepts, checked here so that a value the database would refuse is
# dead-lettered with a reason instead of failing a whole batch's insert:
MAX_DEPTH = 32  # nesting of objects and arrays, the event object itself being depth 1
MAX_SAFE_INTEGER = 2**53  # params travel as protobuf Struct numbers (doubles): larger ints lose digits
MAX_TOTAL_BETS = 2**31 - 1  # the results table's INTEGER column
_TEXT_FIELDS = ("backtest_id", "strategy_id", "strategy_name", "method", "model_version",
                "window_start", "window_end", "finished_at")
_METRIC_FIELDS = events_pb2.BacktestMetrics.DESCRIPTOR.fields
# (name, has presence) of every metric in field order: read once, not per event.
_METRIC_PRESENCE = tuple((fd.name, fd.has_presence) for fd in _METRIC_FIELDS)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _has(obj: dict[str, Any], name: str) -> bool:
    return name in obj or _camel(name) in obj


def _reject_constant(token: str) -> float:
    raise InvalidEvent("non_finite", f"{token} is not a finite number")


# One decoder for every payload (``json.loads`` with arguments builds one per call), and no
# ``parse_float`` hook, which would call back into Python for every number: JSON has no
# infinity, but ``1e999`` decodes as one, and ``check_values`` refuses it like any non-finite
# float ("non_finite").
_DECODE = json.JSONDecoder(parse_constant=_reject_constant).decode


def _check_text(value: str, where: str) -> None:
    # PostgreSQL's text and jsonb refuse NUL, and a lone surrogate (JSON's "\ud800") has no UTF-8.
    if "\x00" in value:
        raise InvalidEvent("bad_value", f"{where} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent("bad_value", f"{where} is not valid Unicode (a lone surrogate)") from None


def check_values(value: Any, where: str = "event", depth: int = 1, *, plain_text: bool = False) -> None:
    """Every value at every depth is one the store accepts: bounded nesting, finite floats,
    integers a double holds exactly, text without NUL or lone surrogates.

    Iterative, so that no input can exhaust the stack. ``plain_text``: the caller knows no
    text can hold a NUL or a lone surrogate (``parse_event`` knows it of JSON without ``\\u``
    escapes); floats are looked at all the same. A first pass without building paths finds nothing wrong in almost every event;
    only when it finds something is the value walked again to say where."""
    if _plainly_valid(value, depth, plain_text):
        return
    stack = [(value, where, depth)]
    while stack:
        node, path, level = stack.pop()
        if isinstance(node, dict):
            if level > MAX_DEPTH:
                raise InvalidEvent("too_deep", f"{path} is nested deeper than {MAX_DEPTH} levels")
            for key, item in node.items():
                _check_text(key, f"a key of {path}")
                stack.append((item, f"{path}.{key[:40]}", level + 1))
        elif isinstance(node, list):
            if level > MAX_DEPTH:
                raise InvalidEvent("too_deep", f"{path} is nested deeper than {MAX_DEPTH} levels")
            stack.extend((item, f"{path}[{i}]", level + 1) for i, item in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, path)
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if abs(node) > MAX_SAFE_INTEGER:
                raise InvalidEvent("out_of_range", f"{path} is an integer beyond ±2^53")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidEvent("non_finite", f"{path} is {node}")


def _plainly_valid(value: Any, depth: int, plain_text: bool) -> bool:
    """``check_values``'s rules without the messages: True when nothing breaks them."""
    if type(value) is not dict and type(value) is not list:
        return False  # a lone scalar: the full walk is as quick
    stack = [(value, depth)]
    while stack:
        node, level = stack.pop()
        if level > MAX_DEPTH:
            return False
        items: Iterable[Any]
        if type(node) is dict:
            if not plain_text and not all(type(k) is str and _plain_str(k) for k in node):
                return False
            items = node.values()
        else:
            items = node
        for item in items:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, level + 1))
            elif kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    return False
            elif kind is str:
                if not plain_text and not _plain_str(item):
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif item is not None and kind is not bool:
                return False
    return True


def _plain_str(value: str) -> bool:
    return "\x00" not in value and (value.isascii() or _encodes(value))


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ParsedEvent(NamedTuple):
    """A valid event. A named tuple: one is made per event on both ways in, and a frozen
    dataclass's ``__init__`` costs several times more."""

    message: events_pb2.BacktestFinished
    window_start: date
    window_end: date
    finished_at: datetime | None
    params: dict[str, Any]
    metrics: dict[str, float]  # every metric present, by snake_case name

    def columns(self) -> dict[str, Any]:
        """What every store of results keeps of an event, by column name."""
        msg = self.message
        return {"backtest_id": msg.backtest_id, "strategy_id": msg.strategy_id, "strategy_name": msg.strategy_name,
                "params": self.params, "window_start": self.window_start, "window_end": self.window_end,
                "method": msg.method, "model_version": msg.model_version or None}

    @property
    def backtest_score(self) -> float:
        """The producer's score when it sent one, else the one definition's."""
        return self.metrics["backtest_score"] if "backtest_score" in self.metrics else backtest_score_of(self.metrics)


def encode_event(message: events_pb2.BacktestFinished) -> str:
    """Compact JSON in protobuf's mapping (snake_case names, as the README's XADD shows).

    Fields at their default value are written too: a zero ``total_bets`` is still required.
    """
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return json.dumps(data, separators=(",", ":"))


def event_from_dict(data: dict[str, Any]) -> events_pb2.BacktestFinished:
    msg = events_pb2.BacktestFinished()
    json_format.ParseDict(data, msg)
    return msg


_FINISHED = events_pb2.BacktestFinished.DESCRIPTOR.fields_by_name
_FD = type(_METRIC_FIELDS[0])
_STRING_FIELDS = frozenset(n for n, f in _FINISHED.items() if f.cpp_type == _FD.CPPTYPE_STRING)
_METRIC_INTS = frozenset(f.name for f in _METRIC_FIELDS if f.cpp_type == _FD.CPPTYPE_INT64)
_METRIC_DOUBLES = frozenset(f.name for f in _METRIC_FIELDS if f.cpp_type == _FD.CPPTYPE_DOUBLE)
_INT32, _INT64 = 2**31, 2**63
_REQUIRED_SET = frozenset(REQUIRED_FIELDS)
_REQUIRED_METRICS_SET = frozenset(REQUIRED_METRICS)


def _direct_message(data: dict[str, Any]) -> events_pb2.BacktestFinished | None:
    """The message protobuf's JSON mapping gives for ``data``, built without it when every field
    is snake_case and of its plain JSON type (what producers send; ``json_format`` spends
    ~100 µs an event walking descriptors). None for anything else (lowerCamelCase names,
    numbers as strings, null, unknown fields): ``event_from_dict`` decides those."""
    fields: dict[str, Any] = {}
    for key, value in data.items():
        kind = type(value)
        if key in _STRING_FIELDS:
            if kind is not str:
                return None
            fields[key] = value
        elif key == "schema_version":
            if kind is not int or not -_INT32 <= value < _INT32:
                return None
            fields[key] = value
        elif key == "metrics":
            if kind is not dict:
                return None
            for name, number in value.items():
                kind = type(number)
                if name in _METRIC_DOUBLES:
                    if kind is not float and kind is not int:
                        return None
                elif name not in _METRIC_INTS or kind is not int or not -_INT64 <= number < _INT64:
                    return None
            fields[key] = value  # the constructor builds the submessage from it (cheaper than from a message)
        elif key != "params" or kind is not dict:
            return None
    msg = events_pb2.BacktestFinished(**fields)
    if "params" in data:
        params = msg.params
        params.SetInParent()  # present even when empty, as json_format leaves it
        values = params.fields
        # Text and numbers (most params) set directly; anything else (bool, null, objects,
        # arrays) by protobuf's own conversion: Struct.update costs twice as much per value.
        for key, value in data["params"].items():
            kind = type(value)
            if kind is str:
                values[key].string_value = value
            elif kind is float or kind is int:
                values[key].number_value = value
            else:
                params.update({key: value})
    return msg


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """``json_format.MessageToDict`` of a Struct (numbers as floats), without its per-field
    descriptor walk. A non-finite number stays a float (``check_values`` refuses it)."""
    fields = struct.fields
    # Keys, then a lookup each: the map's items() is the abstract Mapping's, slower by a third.
    return {key: _plain_value(fields[key]) for key in fields}


def _plain_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_plain_value(v) for v in value.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def _iso_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidEvent("bad_date", f"{field} {value!r} is not an ISO date (YYYY-MM-DD)") from None


def parse_event(raw: bytes | str, *, max_bytes: int = 64 * 1024) -> ParsedEvent:
    """Parse and validate one payload; raise ``InvalidEvent`` with a reason code."""
    size = len(raw)
    if size > max_bytes:
        raise InvalidEvent("oversized", f"payload is {size} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = _DECODE(text)
    except InvalidEvent:
        raise
    except RecursionError:
        raise InvalidEvent("too_deep", f"nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidEvent("not_object", f"expected a JSON object, got {type(data).__name__}")
    # A NUL or a lone surrogate in decoded JSON comes only from a \u escape (the decoder refuses
    # raw control characters, and valid UTF-8 holds no surrogate).
    check_values(data, plain_text="\\u" not in text and (isinstance(raw, bytes) or text.isascii()))
    if not data.keys() >= _REQUIRED_SET:  # one test when every field is there in snake_case
        missing = [f for f in REQUIRED_FIELDS if not _has(data, f)]
        if missing:
            raise InvalidEvent("missing_field", ", ".join(missing))
    version = data.get("schema_version", data.get("schemaVersion"))
    if version != SCHEMA_VERSION:
        raise InvalidEvent("unknown_schema_version", f"schema_version {version!r}, this consumer reads {SCHEMA_VERSION}")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise InvalidEvent("wrong_type", "metrics must be an object")
    if not metrics.keys() >= _REQUIRED_METRICS_SET:
        missing = [f"metrics.{m}" for m in REQUIRED_METRICS if not _has(metrics, m)]
        if missing:
            raise InvalidEvent("missing_field", ", ".join(missing))
    if not isinstance(data.get("params"), dict):
        raise InvalidEvent("wrong_type", "params must be an object")
    msg = _direct_message(data)
    # The metrics present in a direct message are those in the JSON, each a number of its
    # field's type: their values are read from the dict (a float each), not the message.
    values = None if msg is None else {name: float(number) for name, number in metrics.items()}
    if msg is None:
        try:
            msg = event_from_dict(data)
        except json_format.ParseError as exc:
            raise InvalidEvent("wrong_type", str(exc)[:300]) from None
    # The params object as sent: a Struct would turn every integer into a float.
    return _validated(msg, data["params"], values)


def validate_message(msg: events_pb2.BacktestFinished, params: dict[str, Any] | None = None) -> ParsedEvent:
    """Validate an event that arrived as a protobuf message (the ML service's feedback RPC):
    the same rules as ``parse_event`` without a JSON round trip.

    ``params``: what this function made of a ``msg.params`` with the same serialised bytes
    before (its ``ParsedEvent.params``), which passed then and so passes now: the ML service
    remembers it for parameter sets that repeat, and skips converting and checking them again."""
    if msg.schema_version != SCHEMA_VERSION:
        raise InvalidEvent("unknown_schema_version",
                           f"schema_version {msg.schema_version!r}, this consumer reads {SCHEMA_VERSION}")
    if not msg.HasField("metrics"):
        raise InvalidEvent("missing_field", "metrics")
    texts = [getattr(msg, name) for name in _TEXT_FIELDS]
    joined = "".join(texts)
    # ASCII text without NUL passes every text rule: one check for all of them; anything
    # else is checked field by field, to name the first field that breaks a rule.
    if "\x00" in joined or not joined.isascii():
        for name, value in zip(_TEXT_FIELDS, texts):
            _check_text(value, name)
    if params is None:
        params = struct_to_dict(msg.params)
        check_values(params, "params", 2)
    return _validated(msg, params)


def _metric_values(metrics: events_pb2.BacktestMetrics) -> dict[str, float]:
    """Every metric present in the message, by name, as a float."""
    values: dict[str, float] = {}
    for name, optional in _METRIC_PRESENCE:
        if optional and not metrics.HasField(name):
            continue
        values[name] = float(getattr(metrics, name))
    return values


def _validated(msg: events_pb2.BacktestFinished, params: dict[str, Any],
               values: dict[str, float] | None = None) -> ParsedEvent:
    """The checks on field values, shared by both ways in. ``values``: the message's metrics as
    ``_metric_values`` reads them, when the caller has them already."""
    for name in ("backtest_id", "strategy_id"):
        value = getattr(msg, name)
        if not value.strip():
            raise InvalidEvent("bad_value", f"{name} is empty")
        if len(value) > MAX_ID_LEN:
            raise InvalidEvent("bad_value", f"{name} is longer than {MAX_ID_LEN} characters")
    if not msg.method.strip():
        raise InvalidEvent("bad_value", "method is empty")
    # Refused rather than truncated: a stored value must be the value that was sent.
    for name, limit in MAX_TEXT_LEN.items():
        if len(getattr(msg, name)) > limit:
            raise InvalidEvent("bad_value", f"{name} is longer than {limit} characters")
    start = _iso_date(msg.window_start, "window_start")
    end = _iso_date(msg.window_end, "window_end")
    if end < start:
        raise InvalidEvent("out_of_range", f"window_end {end} is before window_start {start}")
    finished_at = None
    if msg.finished_at:
        try:
            finished_at = datetime.fromisoformat(msg.finished_at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent("bad_date", f"finished_at {msg.finished_at!r} is not RFC 3339") from None

    if values is None:
        values = _metric_values(msg.metrics)
    # One sum is finite when every term is (inf - inf is NaN); only when it is not are the
    # values looked at one by one, to name the first. A finite overflow finds nothing there.
    if not math.isfinite(sum(values.values())):
        for name, number in values.items():
            if not math.isfinite(number):
                # protobuf's JSON mapping accepts "NaN"/"Infinity" strings; we do not.
                raise InvalidEvent("non_finite", f"metrics.{name} is {number}")
    if not 0 <= values["total_bets"] <= MAX_TOTAL_BETS:
        raise InvalidEvent("out_of_range", f"metrics.total_bets {msg.metrics.total_bets} is outside [0, 2^31)")
    if not 0.0 <= values["win_rate"] <= 1.0:
        raise InvalidEvent("out_of_range", f"metrics.win_rate {values['win_rate']} is outside [0, 1]")
    if not 0.0 <= values["max_drawdown"] <= 1.0:
        raise InvalidEvent("out_of_range", f"metrics.max_drawdown {values['max_drawdown']} is outside [0, 1]")
    if values["profit_factor"] < 0:
        raise InvalidEvent("out_of_range", f"metrics.profit_factor {values['profit_factor']} is negative")
    if "backtest_score" in values and not 0.0 <= values["backtest_score"] <= 1.0:
        raise InvalidEvent("out_of_range", f"metrics.backtest_score {values['backtest_score']} is outside [0, 1]")
    return ParsedEvent(message=msg, window_start=start, window_end=end, finished_at=finished_at,
                       params=params, metrics=values)
