"""The prediction cache's wire codec: answers are stored as their serialized protobuf, byte for
byte what the service sent, and parsed back here."""

from __future__ import annotations

import operator

from edgeloop.proto import ml_service_pb2 as pb


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# The protobuf header of field 1 (length-delimited) for a payload of n bytes, n < 16,384.
_FIELD_1 = [b"\n" + _varint(n) for n in range(1 << 14)]


def decode_predictions(values: list[bytes]) -> list[pb.Prediction]:
    """Serialized ``Prediction``s parsed in one call rather than one each: each framed as
    field 1, their concatenation is a serialized ``BatchPredictResponse`` (protobuf's wire
    format: a repeated field is its elements' records one after the other)."""
    if len(values) < 2:
        return [pb.Prediction.FromString(v) for v in values]
    parts = values * 2
    try:
        parts[::2] = operator.itemgetter(*map(len, values))(_FIELD_1)  # the headers, in one call
    except IndexError:  # a value of 16 KiB or more
        parts[::2] = [b"\n" + _varint(len(v)) for v in values]
    parts[1::2] = values
    return list(pb.BatchPredictResponse.FromString(b"".join(parts)).predictions)


def decode_evaluations(values: list[bytes]) -> list[pb.EvaluateStrategyResponse]:
    return [pb.EvaluateStrategyResponse.FromString(v) for v in values]
