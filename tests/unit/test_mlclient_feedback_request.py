"""SubmitBacktestFeedback's request assembled from events already serialised (what a consumer
stored as ``event_pb``) is the request protobuf would build from the messages."""

from __future__ import annotations

import json

import pytest

from edgeloop.core.events import parse_event
from edgeloop.mlclient.client import feedback_request_bytes
from edgeloop.proto import ml_service_pb2 as pb
from tests.support.events import valid_event


def events(n: int, big: int | None = None):
    out = []
    for i in range(n):
        event = valid_event(i)
        if i == big:
            event["params"]["note"] = "é" * 20_000  # a length that needs a three-byte varint
        out.append(parse_event(json.dumps(event), max_bytes=1 << 20).message)
    return out


@pytest.mark.parametrize("n, big, batch_id", [(0, None, "b"), (1, None, ""), (3, 1, "batch-1"), (500, None, "x" * 200)])
def test_the_request_from_stored_bytes_is_the_request_from_messages(n, big, batch_id):
    messages = events(n, big)
    stored = [m.SerializeToString() for m in messages]
    # When the request is assembled from the stored bytes, or from messages
    raw = feedback_request_bytes(stored, batch_id)
    # Then the service reads the same request either way, and the same as protobuf builds
    expected = pb.BacktestFeedbackRequest(results=messages, batch_id=batch_id)
    assert pb.BacktestFeedbackRequest.FromString(raw) == expected
    assert feedback_request_bytes(messages, batch_id) == raw
    assert len(raw) == expected.ByteSize()
