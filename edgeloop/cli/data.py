"""`edgeloop data …`: import football-data.co.uk CSVs into the market tables."""

from __future__ import annotations

import click
import numpy as np

from edgeloop.core.settings import get_settings
from edgeloop.marketdata.arrays import load_window
from edgeloop.marketdata.store import import_paths
from edgeloop.schema.db import make_engine, require_migrated


@click.group("data")
def data() -> None:
    """Market data (events, prices, results)."""


@data.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped rows.")
def import_cmd(paths: tuple[str, ...], quiet: bool) -> None:
    """Import CSV files, or every *.csv under folders. Importing a file twice changes nothing;
    a broken row is reported with file and line and skipped."""
    engine = make_engine(get_settings().database_url)
    try:
        require_migrated(engine)
        report = import_paths(engine, paths)
    finally:
        engine.dispose()
    if not quiet:
        for problem in report.problems:
            click.echo(f"skipped {problem}", err=True)
    click.echo(report.summary())


@data.command("list")
@click.option("--source", type=click.Choice(["csv", "db"]), default="csv", show_default=True,
              help="The CSV files in data_dir, or the database's market tables.")
def list_cmd(source: str) -> None:
    """Leagues and seasons available, with events, dates and price sources."""
    settings = get_settings()
    w = load_window(database_url=settings.database_url if source == "db" else None)
    click.echo(f"{'league':<7} {'season':<8} {'events':>6} {'results':>7}  {'first':<10} {'last':<10}  sources")
    keys = sorted(set(zip(w.leagues, w.seasons)))
    for league, season in keys:
        sel = (w.leagues == league) & (w.seasons == season)
        srcs = [s for s in w.sources if np.isfinite(w.prices[s][sel]).any()]
        click.echo(f"{league:<7} {season:<8} {int(sel.sum()):>6} {int((w.results[sel] >= 0).sum()):>7}  "
                   f"{w.dates[sel].min()!s:<10} {w.dates[sel].max()!s:<10}  {' '.join(srcs)}")
    if not keys:
        click.echo("no events" + (" (run `edgeloop data import PATH`)" if source == "db" else ""))


command = data
