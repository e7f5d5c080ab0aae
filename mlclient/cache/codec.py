"""The prediction cache's wire codec: answers are stored as their serialized protobuf, byte for
byte what the service sent, and parsed back here.

Level 1 keeps each serialized ``Prediction`` *framed*, as a record of field 1 (its header, then
the value): a batch of them joined is then a serialized ``BatchPredictResponse`` (protobuf's
wire format: a repeated field is its elements' records one after the other), parsed in one
call (1,000 ``FromString`` calls cost twice as much) with no header to build at hit time.
Redis keeps predictions in the same form, so the values of a lookup are joined and parsed as
they came, and what it had is filed in level 1 as it is."""

from __future__ import annotations

from edgeloop.mlclient.wire import varint
from edgeloop.proto import ml_service_pb2 as pb


# The protobuf header of field 1 (length-delimited) for a payload of n bytes, n < 16,384.
_FIELD_1 = [b"\n" + varint(n) for n in range(1 << 14)]

# A framed empty Prediction: stands for an answer not known yet in a batch parsed early.
PREDICTION_PLACEHOLDER = _FIELD_1[0]


def frame_predictions(values: list[bytes]) -> list[bytes]:
    """Serialized ``Prediction``s framed as records of field 1 (the form level 1 keeps)."""
    headers = _FIELD_1
    limit = len(headers)
    return [headers[len(v)] + v if len(v) < limit else b"\n" + varint(len(v)) + v for v in values]


def decode_framed_predictions(records: list[bytes]) -> list[pb.Prediction]:
    """Framed ``Prediction``s (``frame_predictions``) parsed in one call."""
    return list(pb.BatchPredictResponse.FromString(b"".join(records)).predictions)


def decode_predictions(values: list[bytes]) -> list[pb.Prediction]:
    """Serialized ``Prediction``s parsed in one call rather than one each."""
    if len(values) < 2:
        return [pb.Prediction.FromString(v) for v in values]
    return decode_framed_predictions(frame_predictions(values))


def frame_evaluations(values: list[bytes]) -> list[bytes]:
    return values  # evaluations are asked one at a time: kept as they are


def decode_evaluations(values: list[bytes]) -> list[pb.EvaluateStrategyResponse]:
    return [pb.EvaluateStrategyResponse.FromString(v) for v in values]
