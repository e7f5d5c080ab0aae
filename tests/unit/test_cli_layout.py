"""`edgeloop --help` lists the commands from ``edgeloop.cli.COMMANDS`` without importing them:
each listed line must be its command's own, and every command module must be listed."""

from __future__ import annotations

import importlib
import pkgutil

import click
import pytest

import edgeloop.cli
from edgeloop.cli import COMMANDS, cli


def first_paragraph(command: click.Command) -> str:
    return " ".join((command.help or "").split("\n\n")[0].split())


def test_each_listed_line_is_the_commands_own():
    for name, (module, line) in COMMANDS.items():
        command = importlib.import_module(module).command
        assert command.name == name
        assert line == first_paragraph(command), name


def test_every_command_module_is_listed():
    modules = {f"edgeloop.cli.{m.name}" for m in pkgutil.iter_modules(edgeloop.cli.__path__)}
    with_command = {m for m in modules if hasattr(importlib.import_module(m), "command")}
    assert with_command == {module for module, _ in COMMANDS.values()}


def test_an_unknown_command_is_refused():
    assert cli.get_command(click.Context(cli), "no-such-command") is None


@pytest.mark.parametrize("argv", [[], ["ml"], ["tasks"]])
def test_edgeloop_or_a_group_without_a_command_shows_its_help_not_an_error(argv, capsys):
    with pytest.raises(SystemExit):
        edgeloop.cli.main(argv)
    out, err = capsys.readouterr()
    shown = out + err
    assert "Usage: edgeloop" in shown and "Commands:" in shown
    assert "error" not in shown.splitlines()[0]
