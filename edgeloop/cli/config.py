"""`edgeloop config show`: the effective settings, with secrets masked."""

from __future__ import annotations

import re
from typing import Any

import click

from edgeloop.cli.ops import emit_json, json_option
from edgeloop.core.settings import Settings, _config_file, get_settings

MASK = "********"
SECRET_NAMES = re.compile(r"(token|password|secret)", re.IGNORECASE)
# user:password@ in a URL (redis://:pw@host, postgresql://user:pw@host, sentinel://…)
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@:;\s]*:)(?P<password>[^@/;\s]+)(?P<tail>@)", re.IGNORECASE)


def masked(name: str, value: Any) -> Any:
    """A setting as it may be shown: a secret's value masked (an unset one stays None), a
    URL's password masked."""
    if value is None:
        return None
    if SECRET_NAMES.search(name):
        return MASK
    if isinstance(value, str):
        return URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"], value)
    return value


def effective(settings: Settings) -> dict[str, Any]:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    return {name: {"value": masked(name, value), "default": value == defaults.get(name)}
            for name, value in settings.model_dump().items()}


@click.group("config")
def config() -> None:
    """Settings: what this process would run with."""


@config.command("show")
@click.option("--changed", is_flag=True, help="Only the settings that differ from their defaults.")
@json_option
def show_cmd(changed: bool, as_json: bool) -> None:
    """The effective settings (defaults < config file < EDGELOOP_* environment), secrets masked."""
    found = {k: v for k, v in effective(get_settings()).items() if not (changed and v["default"])}
    source = _config_file()
    if as_json:
        emit_json({"config_file": str(source) if source else None,
                   "settings": {k: v["value"] for k, v in found.items()}})
        return
    click.echo(f"# config file: {source or 'none'}; EDGELOOP_<NAME> overrides it")
    for name, v in found.items():
        click.echo(f"{name} = {v['value']!r}" + ("" if v["default"] else "  # set"))


command = config
