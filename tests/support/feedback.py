"""Data for tests of the feedback flusher: stored results, and the errors the real client raises
(the stand-in ML client is ``tests.support.ml.FakeMLClient``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from edgeloop.core.events import parse_event
from edgeloop.schema.repository import insert_results
from edgeloop.services.ingest import result_row
from tests.support.events import valid_event
from tests.support.ml import rpc_error


def fail(code: str, details: str = "no") -> Exception:
    """The error the real client raises for a SubmitBacktestFeedback that ended with ``code``."""
    return rpc_error("SubmitBacktestFeedback", code, details)


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
