"""`edgeloop demo`: the whole loop on the shipped data (what `make demo` runs), from any directory."""

from __future__ import annotations

import click

from edgeloop.demo.__main__ import main


# The demo parses its own options (``edgeloop/demo/__main__.py``): everything after `demo`,
# --help included, goes to it.
@click.command("demo", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args: tuple[str, ...]) -> int:
    """Run the whole loop on the shipped data (`edgeloop demo --help` for its options)."""
    return main(list(args))
