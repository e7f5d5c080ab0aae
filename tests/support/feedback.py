"""Doubles and data for tests of the feedback flusher: a stand-in ML client that fails the
way the real client does (through ``edgeloop.mlclient.client.error_for``), and stored results."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import grpc

from edgeloop.core.events import parse_event
from edgeloop.mlclient.client import error_for
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.repository import insert_results
from tests.support.events import valid_event
from edgeloop.services.ingest import result_row


def fail(code: str, details: str = "no"):
    """The error the real client raises for a SubmitBacktestFeedback that ended with ``code``."""
    return error_for("SubmitBacktestFeedback", grpc.StatusCode[code], details)


class StandIn:
    """Confirms what it is sent, unless told to fail every call with a ``code``, to refuse some
    backtest ids (INVALID_ARGUMENT for the whole request, as the service does), or to refuse
    requests over ``max_bytes`` the way gRPC does."""

    def __init__(self, refuse: set[str] = frozenset(), max_bytes: int | None = None) -> None:
        self.refuse = set(refuse)
        self.max_bytes = max_bytes
        self.code: str | None = None
        self.calls: list[int] = []

    def submit_backtest_feedback(self, results, batch_id):
        self.calls.append(len(results))
        if self.code:
            raise fail(self.code)
        size = pb.BacktestFeedbackRequest(results=results, batch_id=batch_id).ByteSize()
        if self.max_bytes is not None and size > self.max_bytes:
            raise fail("RESOURCE_EXHAUSTED", f"Received message larger than max ({size} vs. {self.max_bytes})")
        if any(r.backtest_id in self.refuse for r in results):
            raise fail("INVALID_ARGUMENT", "refused")
        return pb.BacktestFeedbackResponse(accepted=len(results), stored_backtest_ids=[r.backtest_id for r in results])


def store_results(sessions, n: int, big: set[int] = frozenset()) -> None:
    """Results ``bt-00000000`` … stored as the ingest consumer stores them; those numbered in
    ``big`` carry a 5,000-character parameter."""
    now = datetime.now(timezone.utc)
    with sessions.begin() as s:
        rows = []
        for i in range(n):
            event = valid_event(i)
            if i in big:
                event["params"]["note"] = "x" * 5_000
            rows.append(result_row(parse_event(json.dumps(event)), f"{i}-0", now))
        insert_results(s, rows)
