"""`edgeloop data …`: import football-data.co.uk CSVs into the market tables."""

from __future__ import annotations

import click

from edgeloop.settings import get_settings


@click.group("data")
def data() -> None:
    """Market data (events, prices, results)."""


@data.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped rows.")
def import_cmd(paths: tuple[str, ...], quiet: bool) -> None:
    """Import CSV files, or every *.csv under folders. Importing a file twice changes nothing;
    a broken row is reported with file and line and skipped."""
    from marketdata.store import import_paths
    from schema.db import make_engine, require_migrated

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


def register(group: click.Group) -> None:
    group.add_command(data)
