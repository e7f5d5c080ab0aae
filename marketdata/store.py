"""Import parsed matches into the market tables (``schema/market.py``).

Idempotent by construction: every row has a natural primary key (event id; event id +
source) and is inserted with ON CONFLICT DO NOTHING, so importing a file twice, or two
overlapping files, changes nothing. A corrected file does not overwrite what is stored; delete
the events first if that is ever wanted (prices are history, they should not change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Engine, Table

from edgeloop.marketdata.csv import Match, Problem, csv_files, parse_file
from edgeloop.schema.bulk import insert_ignoring_duplicates
from edgeloop.schema.base import utcnow
from edgeloop.schema.market import MarketEvent, MarketPrice, MarketResult



@dataclass(slots=True)
class ImportReport:
    files: int = 0
    matches: int = 0
    events_inserted: int = 0
    results_inserted: int = 0
    prices_inserted: int = 0
    blank_rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.files} files, {self.matches} matches read: {self.events_inserted} new events, "
                f"{self.results_inserted} new results, {self.prices_inserted} new price rows; "
                f"{len(self.problems)} rows skipped, {self.blank_rows} blank rows")


def _insert_ignoring_duplicates(engine: Engine, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert in one transaction, skipping rows already there; returns the number inserted."""
    with engine.begin() as conn:
        return len(insert_ignoring_duplicates(conn, table, rows, "event_id"))


def _rows(matches: Iterable[Match]) -> tuple[list[dict], list[dict], list[dict]]:
    events, results, prices = [], [], []
    seen: set[str] = set()
    now = utcnow()  # explicit, so bulk paths that bypass ORM defaults (COPY) get it too
    for m in matches:
        eid = m.event_id
        if eid in seen:  # the same match twice in one batch (overlapping files)
            continue
        seen.add(eid)
        events.append(dict(event_id=eid, league=m.league, season=m.season, event_date=m.date,
                           kickoff_time=m.kickoff, home_team=m.home_team, away_team=m.away_team,
                           source_file=m.source_file, imported_at=now))
        if m.result is not None:
            results.append(dict(event_id=eid, home_goals=m.home_goals, away_goals=m.away_goals, result=m.result))
        for source, (h, d, a) in m.prices.items():
            if h is not None or d is not None or a is not None:
                prices.append(dict(event_id=eid, source=source, home=h, draw=d, away=a))
    return events, results, prices


def import_matches(engine: Engine, matches: Sequence[Match], report: ImportReport | None = None) -> ImportReport:
    report = report or ImportReport()
    events, results, prices = _rows(matches)
    report.matches += len(matches)
    # Parents first: results and prices reference events.
    report.events_inserted += _insert_ignoring_duplicates(engine, MarketEvent.__table__, events)
    report.results_inserted += _insert_ignoring_duplicates(engine, MarketResult.__table__, results)
    report.prices_inserted += _insert_ignoring_duplicates(engine, MarketPrice.__table__, prices)
    return report


def import_paths(engine: Engine, paths: Iterable[str | Path],
                 on_file: Callable[[Path], None] | None = None) -> ImportReport:
    """Import every CSV under ``paths`` (files or folders), one transaction per table and file;
    ``on_file`` is told of each file imported (a progress bar)."""
    report = ImportReport()
    for path in csv_files(paths):
        parsed = parse_file(path)
        report.files += 1
        report.blank_rows += parsed.blank_rows
        report.problems.extend(parsed.problems)
        import_matches(engine, parsed.matches, report)
        if on_file is not None:
            on_file(path)
    return report
