"""`edgeloop tasks list|run`: run any registered Celery task once, on the workers or here."""

from __future__ import annotations

import json

import click

from edgeloop.cli.ops import Progress, emit_json, poll, require_redis
from edgeloop.core.settings import get_settings
from edgeloop.workers.app import app


def _registered() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if name.startswith("edgeloop.")}


def parse_args(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs; a value that parses as JSON is taken as JSON (numbers, true, lists)."""
    kwargs = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--arg")
        try:
            kwargs[key] = json.loads(raw)
        except ValueError:
            kwargs[key] = raw
    return kwargs


@click.group("tasks")
def tasks() -> None:
    """Registered Celery tasks."""


@tasks.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """Every task a worker can run, with its first docstring line."""
    found = {n: ((t.__doc__ or "").strip().splitlines() or [""])[0] for n, t in sorted(_registered().items())}
    if as_json:
        emit_json(found)
        return
    for n, d in found.items():
        click.echo(f"{n:<30} {d}")


@tasks.command("run")
@click.argument("name")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE", help="A keyword argument; repeat.")
@click.option("--wait", is_flag=True, help="Wait for the result, showing the task's state.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
@click.option("--local", is_flag=True, help="Run it in this process instead of on a worker.")
@click.option("--json", "as_json", is_flag=True)
def run_cmd(name: str, args: tuple[str, ...], wait: bool, timeout: float, local: bool, as_json: bool) -> None:
    """Run task NAME once (e.g. edgeloop.rankings.refresh)."""
    registered = _registered()
    if name not in registered:
        raise click.BadParameter(f"no task {name!r}; known: {', '.join(sorted(registered))}", param_hint="NAME")
    kwargs = parse_args(args)
    if local:
        result = registered[name].apply(kwargs=kwargs, throw=True).get()
        emit_json({"task": name, "state": "SUCCESS", "result": result}) if as_json else click.echo(json.dumps(result, default=str))
        return
    require_redis(get_settings())
    sent = registered[name].apply_async(kwargs=kwargs)
    if not wait:
        emit_json({"task": name, "id": sent.id, "state": "PENDING"}) if as_json else click.echo(f"{name} sent as {sent.id}")
        return
    poll(lambda: (sent.ready(), f"{name} {sent.id}: {sent.state}"), timeout, Progress(), what=f"task {sent.id}")
    if sent.failed():
        raise click.ClickException(f"{name} failed: {sent.result!r}")
    out = {"task": name, "id": sent.id, "state": sent.state, "result": sent.result}
    emit_json(out) if as_json else click.echo(json.dumps(sent.result, default=str))


command = tasks
