"""`edgeloop db …`: schema migrations."""

from __future__ import annotations

import click

from edgeloop.core.settings import get_settings
from edgeloop.schema.db import current_revisions, head_revisions, make_engine, upgrade


@click.group("db")
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade_cmd(revision: str) -> None:
    """Apply migrations up to REVISION."""
    url = get_settings().database_url
    upgrade(url, revision)
    click.echo(f"database at {revision}")


@db.command("status")
def status_cmd() -> None:
    """Show the current and the required revision."""
    engine = make_engine(get_settings().database_url)
    current, heads = current_revisions(engine), head_revisions()
    click.echo(f"current: {', '.join(sorted(current)) or 'none'}; required: {', '.join(sorted(heads))}")
    if current != heads:
        raise click.ClickException("database is not migrated: run `edgeloop db upgrade`")


command = db
