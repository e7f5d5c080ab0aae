"""`edgeloop data import` against real databases: idempotent, broken rows skipped, windows round-trip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from edgeloop.marketdata.arrays import clear_cache, load_csv_window, load_db_window
from edgeloop.marketdata.store import import_paths
from edgeloop.schema.db import make_engine
from edgeloop.schema.market import MarketEvent, MarketPrice, MarketResult

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[2] / "data" / "football-data"


def counts(engine):
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (MarketEvent, MarketResult, MarketPrice))


@pytest.mark.parametrize("db", ["pg_url", "sqlite_url"])
def test_import_twice_changes_nothing_and_window_matches_csv(db, request, tmp_path):
    url = request.getfixturevalue(db)
    engine = make_engine(url)
    files = [DATA / "E0_2019-20.csv", DATA / "D1_2012-13.csv"]
    first = import_paths(engine, files)
    assert (first.events_inserted, first.results_inserted) == (380 + 306, 380 + 306)
    before = counts(engine)
    second = import_paths(engine, files)
    assert (second.events_inserted, second.prices_inserted, second.results_inserted) == (0, 0, 0)
    assert counts(engine) == before
    engine.dispose()

    clear_cache()
    from_db = load_db_window(url, ["E0"], date(2019, 8, 1), date(2020, 7, 31))
    from_csv = load_csv_window(["E0"], date(2019, 8, 1), date(2020, 7, 31))
    assert list(from_db.event_ids) == list(from_csv.event_ids)
    assert (from_db.results == from_csv.results).all()
    assert from_db.sources == from_csv.sources
    for s in from_csv.sources:
        np.testing.assert_array_equal(from_db.price(s), from_csv.price(s))


def test_cli_import_reports_broken_rows_and_loads_the_rest(env, tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    shutil.copy(DATA / "E0_2019-20.csv", folder)
    lines = (DATA / "D1_2012-13.csv").read_text().splitlines()
    lines[5] = lines[5].replace("/", "-", 1)  # a date that is not dd/mm/yy: line 6 is broken
    (folder / "D1_2012-13.csv").write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "edgeloop", "data", "import", str(folder)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "D1_2012-13.csv:6:" in out.stderr
    assert "685 new events" in out.stdout and "1 rows skipped" in out.stdout
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert "0 new events, 0 new results, 0 new price rows" in again.stdout
    listed = subprocess.run([sys.executable, "-m", "edgeloop", "data", "list", "--source", "db"],
                            env=env, capture_output=True, text=True, timeout=120)
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [r[:4] for r in rows] == [["D1", "2012-13", "305", "305"], ["E0", "2019-20", "380", "380"]]
    assert "PSC" in rows[1]


def test_cli_import_missing_path_is_one_line(env):
    out = subprocess.run([sys.executable, "-m", "edgeloop", "data", "import", "/nonexistent.csv"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
