"""`edgeloop db …`: schema migrations."""

from __future__ import annotations

import click

from edgeloop.cli.ops import emit_json, json_option
from edgeloop.core.settings import get_settings
from edgeloop.schema.db import current_revisions, head_revisions, make_engine, upgrade


@click.group("db")
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@json_option
def upgrade_cmd(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION."""
    url = get_settings().database_url
    upgrade(url, revision)
    emit_json({"revision": revision}) if as_json else click.echo(f"database at {revision}")


@db.command("status")
@json_option
def status_cmd(as_json: bool) -> None:
    """Show the current and the required revision."""
    engine = make_engine(get_settings().database_url)
    try:
        current, heads = current_revisions(engine), head_revisions()
    finally:
        engine.dispose()
    if as_json:
        emit_json({"current": sorted(current), "required": sorted(heads), "migrated": current == heads})
    else:
        click.echo(f"current: {', '.join(sorted(current)) or 'none'}; required: {', '.join(sorted(heads))}")
    if current != heads:
        raise click.ClickException("database is not migrated: run `edgeloop db upgrade`")


command = db
