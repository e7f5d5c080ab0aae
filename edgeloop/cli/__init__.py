"""The `edgeloop` command.

Each command lives in its own module under ``edgeloop/cli/`` as the module's ``command``;
``COMMANDS`` names the module of each, with the one line `edgeloop --help` shows for it. A
module is imported only when its command runs, so a command pays for its own imports and no
other's: `edgeloop strategies list` loads neither Celery nor gRPC, `edgeloop tasks run`
loads Celery. Every failure an operator can cause or meet (a bad argument, Redis or the
database or the ML service not reachable, invalid input) ends as one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from edgeloop import __version__
from edgeloop.core.errors import EdgeloopError, ServiceUnavailable

# name → (module, the line `edgeloop --help` shows; tests/unit/test_cli_layout.py checks it is
# the command's own first help line).
COMMANDS = {
    "backtest": ("edgeloop.cli.backtest", "Backtest a strategy over the events of a window (fixed parameters, per-season breakdown)."),
    "demo": ("edgeloop.cli.demo", "Run the whole loop on the shipped data (`edgeloop demo --help` for its options)."),
    "config": ("edgeloop.cli.config", "Settings: what this process would run with."),
    "data": ("edgeloop.cli.data", "Market data (events, prices, results)."),
    "db": ("edgeloop.cli.db", "Database schema."),
    "dead-letters": ("edgeloop.cli.dead_letters", "Events set aside because they could not be parsed, validated or stored."),
    "discover": ("edgeloop.cli.discover", "Generate, backtest, evaluate and activate strategies; retire underperformers; rank."),
    "feedback": ("edgeloop.cli.feedback", "Backtest feedback to the ML service, and retraining."),
    "ingest": ("edgeloop.cli.ingest", "The event stream consumer."),
    "ml": ("edgeloop.cli.ml", "The ML service."),
    "publish": ("edgeloop.cli.publish", "Publish BacktestFinished events, one JSON object per line, from FILE (default: stdin)."),
    "strategies": ("edgeloop.cli.strategies", "Strategies, their scores and status."),
    "tasks": ("edgeloop.cli.tasks", "Registered Celery tasks."),
    "web": ("edgeloop.cli.web", "Serve the read-only web pages of the loop until SIGTERM/SIGINT."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when one runs (``COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name][0]).command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from ``COMMANDS``, importing no command module."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in sorted(COMMANDS.items())])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeloop")
def cli() -> None:
    """edgeloop: backtest events in, better strategies out."""


def _describe(exc: BaseException) -> tuple[str, int] | None:
    """Map an exception to (one-line message, exit code), or None if it is a bug.

    Redis's, SQLAlchemy's and gRPC's errors are looked up in ``sys.modules``: a library this command did
    not load cannot have raised, and importing it here would cost a read-only command the time
    it saved by not loading it."""
    if isinstance(exc, click.exceptions.UsageError):
        return exc.format_message(), 2
    if isinstance(exc, click.ClickException):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, ServiceUnavailable):  # same exit code as an unreachable Redis or database
        return str(exc), 3
    if isinstance(exc, EdgeloopError):
        return str(exc), 1
    redis_exc = sys.modules.get("redis.exceptions")
    if redis_exc is not None and isinstance(exc, (redis_exc.ConnectionError, redis_exc.TimeoutError)):
        return f"cannot reach Redis: {exc}", 3
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.OperationalError):
        return f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}", 3
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.ProgrammingError):
        return f"database error (is it migrated? run `edgeloop db upgrade`): {str(exc.orig).strip().splitlines()[0]}", 3
    grpc = sys.modules.get("grpc")
    if grpc is not None and isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return f"cannot reach the ML service: {exc.details()}", 3
        return f"ML service error {code.name if code else ''}: {exc.details()}", 1
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return str(exc), 1
    return None


# Raised by click 8.2 and later for `edgeloop`, or a group, named without a command (8.1 printed
# the help and exited 0 itself): the help is what to show, not an "error: Usage: …" line.
_HELP_INSTEAD: tuple[type[click.ClickException], ...] = tuple(
    e for e in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if e is not None)


def main(argv: list[str] | None = None, prog_name: str = "edgeloop") -> None:
    try:
        rv = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except _HELP_INSTEAD as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo(f"{prog_name}: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo(f"{prog_name}: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place every error is turned into one line
        described = _describe(exc)
        if described is None:
            raise
        message, code = described
        click.echo(f"{prog_name}: error: {message}", err=True)
        sys.exit(code)
    sys.exit(rv if isinstance(rv, int) else 0)


def _alias(prefix: list[str], prog_name: str) -> None:
    main(prefix + sys.argv[1:], prog_name=prog_name)


def strategy_discovery_alias() -> None:
    """`strategy-discovery` = `edgeloop discover` (the same command under a name of its own)."""
    _alias(["discover"], "strategy-discovery")


def ml_feedback_alias() -> None:
    """`ml-feedback` = `edgeloop feedback` (the same command under a name of its own)."""
    _alias(["feedback"], "ml-feedback")


def ml_status_alias() -> None:
    """`ml-status` = `edgeloop ml status` (the same command under a name of its own)."""
    _alias(["ml", "status"], "ml-status")
