"""`edgeloop data …`: import football-data.co.uk CSVs into the market tables."""

from __future__ import annotations

import dataclasses
import io
import sys
from typing import Any

import click
import numpy as np

from edgeloop.cli.ops import emit_json, json_option, on_terminal
from edgeloop.core.settings import get_settings
from edgeloop.marketdata.arrays import load_window
from edgeloop.marketdata.csv import csv_files
from edgeloop.marketdata.store import import_paths
from edgeloop.schema.db import make_engine, require_migrated


@click.group("data")
def data() -> None:
    """Market data (events, prices, results)."""


@data.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped rows.")
@json_option
def import_cmd(paths: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Import CSV files, or every *.csv under folders. Importing a file twice changes nothing;
    a broken row is reported with file and line and skipped."""
    files = list(csv_files(paths))
    engine = make_engine(get_settings().database_url)
    try:
        require_migrated(engine)
        # A bar for a person at a terminal; a pipe or a log gets the summary only.
        with click.progressbar(length=len(files), label="importing", file=sys.stderr if on_terminal() else io.StringIO(),
                               show_pos=True) as bar:
            report = import_paths(engine, files, on_file=lambda _path: bar.update(1))
    finally:
        engine.dispose()
    if as_json:
        out = dataclasses.asdict(report)
        out["problems"] = [str(p) for p in report.problems]
        emit_json(out)
        return
    if not quiet:
        for problem in report.problems:
            click.echo(f"skipped {problem}", err=True)
    click.echo(report.summary())


@data.command("list")
@click.option("--source", type=click.Choice(["csv", "db"]), default="csv", show_default=True,
              help="The CSV files in data_dir, or the database's market tables.")
@json_option
def list_cmd(source: str, as_json: bool) -> None:
    """Leagues and seasons available, with events, dates and price sources."""
    settings = get_settings()
    w = load_window(database_url=settings.database_url if source == "db" else None)
    rows: list[dict[str, Any]] = []
    for league, season in sorted(set(zip(w.leagues, w.seasons))):
        sel = (w.leagues == league) & (w.seasons == season)
        rows.append({"league": str(league), "season": str(season), "events": int(sel.sum()),
                     "results": int((w.results[sel] >= 0).sum()), "first": str(w.dates[sel].min()),
                     "last": str(w.dates[sel].max()),
                     "sources": [s for s in w.sources if np.isfinite(w.prices[s][sel]).any()]})
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'league':<7} {'season':<8} {'events':>6} {'results':>7}  {'first':<10} {'last':<10}  sources")
    for r in rows:
        click.echo(f"{r['league']:<7} {r['season']:<8} {r['events']:>6} {r['results']:>7}  "
                   f"{r['first']:<10} {r['last']:<10}  {' '.join(r['sources'])}")
    if not rows:
        click.echo("no events" + (" (run `edgeloop data import PATH`)" if source == "db" else ""))


command = data
