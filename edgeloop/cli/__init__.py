"""The `edgeloop` command.

Each command group lives in its own module under ``edgeloop/cli/`` and exposes
``register(group)``; add a module to ``COMMAND_MODULES`` to add commands. Every failure an
operator can cause or meet (a bad argument, Redis or the database or the ML service not
reachable, invalid input) ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from edgeloop import __version__

COMMAND_MODULES = [
    "edgeloop.cli.db",
    "edgeloop.cli.publish",
    "edgeloop.cli.data",
    "edgeloop.cli.backtest",
    "edgeloop.cli.ml",
    "edgeloop.cli.ingest",
    "edgeloop.cli.dead_letters",
    "edgeloop.cli.discover",
    "edgeloop.cli.feedback",
    "edgeloop.cli.ml_status",
    "edgeloop.cli.strategies",
    "edgeloop.cli.tasks",
    "edgeloop.cli.demo",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeloop")
def cli() -> None:
    """edgeloop: backtest events in, better strategies out."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def _describe(exc: BaseException) -> tuple[str, int] | None:
    """Map an exception to (one-line message, exit code), or None if it is a bug."""
    from edgeloop.core.errors import EdgeloopError, ServiceUnavailable

    if isinstance(exc, click.exceptions.UsageError):
        return exc.format_message(), 2
    if isinstance(exc, click.ClickException):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, ServiceUnavailable):  # same exit code as an unreachable Redis or database
        return str(exc), 3
    if isinstance(exc, EdgeloopError):
        return str(exc), 1
    try:
        import redis

        if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return f"cannot reach Redis: {exc}", 3
    except ImportError:  # pragma: no cover
        pass
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if isinstance(exc, OperationalError):
        return f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}", 3
    if isinstance(exc, ProgrammingError):
        return f"database error (is it migrated? run `edgeloop db upgrade`): {str(exc.orig).strip().splitlines()[0]}", 3
    import grpc

    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return f"cannot reach the ML service: {exc.details()}", 3
        return f"ML service error {code.name if code else ''}: {exc.details()}", 1
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return str(exc), 1
    return None


def main(argv: list[str] | None = None, prog_name: str = "edgeloop") -> None:
    try:
        rv = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
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
