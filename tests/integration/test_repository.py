"""The pipeline's repository queries, on PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from edgeloop.core.events import parse_event
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.repository import (by_composite_score_range, insert_results, mark_processed, recent_unprocessed,
                               top_performing)
from tests.support.events import valid_event
from edgeloop.services.ingest import result_row

pytestmark = pytest.mark.integration


def test_seed_queries(pg_url):
    sessions = make_sessionmaker(make_engine(pg_url))
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(6):
        raw = json.dumps(valid_event(i))
        rows.append({**result_row(parse_event(raw), f"{i}-0", now), "composite_score": i / 10 if i else None})
    with sessions.begin() as s:
        inserted = insert_results(s, rows)
        assert sorted(inserted) == [f"bt-{i:08d}" for i in range(6)] and len(set(inserted.values())) == 6
        assert insert_results(s, rows) == {}  # the same again: nothing new
    with sessions.begin() as s:
        assert [r.backtest_id for r in top_performing(s, 3)] == ["bt-00000005", "bt-00000004", "bt-00000003"]
        assert [r.backtest_id for r in by_composite_score_range(s, 0.2, 0.35)] == ["bt-00000003", "bt-00000002"]
        assert [r.backtest_id for r in recent_unprocessed(s, 2)] == ["bt-00000000", "bt-00000001"]
        assert mark_processed(s, [inserted["bt-00000000"], inserted["bt-00000001"]]) == 2
    with sessions() as s:
        assert [r.backtest_id for r in recent_unprocessed(s, 2)] == ["bt-00000002", "bt-00000003"]
