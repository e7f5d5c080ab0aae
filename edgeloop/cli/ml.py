"""`edgeloop ml …`: run the ML service and manage its models."""

from __future__ import annotations

import logging
import signal
import threading

import click
from sqlalchemy import select

from edgeloop.cli import ops
from edgeloop.cli.ml_status import status_cmd
from edgeloop.core.settings import get_settings
from edgeloop.core.statuses import ModelStatus, TrainingStatus
from edgeloop.mlclient import MLClient
from edgeloop.mlservice import notify, registry
from edgeloop.schema.base import as_utc, utcnow
from edgeloop.schema.mlstore import TrainingJob
from edgeloop.services.retraining import wait_for_job


@click.group("ml")
def ml() -> None:
    """The ML service."""


@ml.command("serve")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None, help="default: EDGELOOP_ML_GRPC_PORT (50051)")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None, help="default: EDGELOOP_ML_HTTP_PORT (8000)")
@click.option("--host", default=None, help="bind address; default: EDGELOOP_ML_BIND_HOST (127.0.0.1)")
@ops.json_option
def serve_cmd(grpc_port: int | None, http_port: int | None, host: str | None, as_json: bool) -> None:
    """Serve gRPC (MLService, grpc.health.v1, reflection) and the HTTP API until SIGTERM/SIGINT."""
    # Here, not at the top: the server and its models load scikit-learn (seconds), which the
    # other `ml` commands do not need.
    from edgeloop.mlservice.http_api import HttpApi
    from edgeloop.mlservice.server import create_server

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = host or settings.ml_bind_host
    server, port = create_server(f"{host}:{settings.ml_grpc_port if grpc_port is None else grpc_port}", settings)
    http = HttpApi(server.servicer, host, settings.ml_http_port if http_port is None else http_port)
    server.start()
    http.start()
    # Build features and load the serving versions now rather than on the first request.
    threading.Thread(target=server.servicer.warm_up, name="ml-warm-up", daemon=True).start()
    listening = {"grpc": f"{host}:{port}", "http": f"{host}:{http.port}", "auth": bool(settings.ml_auth_token),
                 "tls": bool(settings.ml_tls_cert_file)}
    if as_json:  # one line once it listens, for a supervisor to read the ports from
        ops.emit_json(listening)
    else:
        click.echo(f"ML service: gRPC on {host}:{port}, HTTP on {host}:{http.port} "
                   f"(auth {'on' if settings.ml_auth_token else 'off'}, "
                   f"TLS {'on' if settings.ml_tls_cert_file else 'off'})")

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    click.echo("ML service: stopping", err=as_json)
    http.stop()
    server.stop(settings.ml_stop_grace_s).wait()


@ml.command("models")
@click.option("--model", "model_name", type=click.Choice(["outcome", "strategy"]), default=None)
@click.option("--all", "show_all", is_flag=True, help="also rejected and retired versions")
@ops.json_option
def models_cmd(model_name: str | None, show_all: bool, as_json: bool) -> None:
    """List model versions from the registry (serving ones unless --all)."""
    rows = registry.list_versions(ops.sessions(get_settings()), model_name or "")
    rows = [r for r in rows if show_all or r.status == ModelStatus.SERVING]
    if as_json:
        ops.emit_json([{"version": r.version, "model_name": r.model_name, "status": r.status, "slot": r.slot,
                        "train_start": r.train_start, "train_end": r.train_end, "sample_count": r.sample_count,
                        "metrics": r.metrics, "created_at": r.created_at} for r in rows])
        return
    if not rows:
        click.echo("no model versions" + ("" if show_all else " serving (try --all)"))
        return
    click.echo(f"{'version':<48} {'status':<9} {'train window':<25} {'samples':>7}  metrics")
    for r in rows:
        window = f"{r.train_start.date() if r.train_start else '…'} → {r.train_end.date() if r.train_end else '…'}"
        shown = {k: v for k, v in (r.metrics or {}).items() if k in (
            "logloss", "logloss_market_avg", "logloss_pinnacle_close", "spearman_held_out", "n_events")}
        click.echo(f"{r.version:<48} {r.status:<9} {window:<25} {r.sample_count:>7}  "
                   + " ".join(f"{k}={v:.4g}" for k, v in shown.items()))


@ml.command("jobs")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def jobs_cmd(limit: int, as_json: bool) -> None:
    """Recent training jobs, newest first: status, the replica running them, their lease."""
    with ops.sessions(get_settings())() as s:
        rows = s.scalars(select(TrainingJob).order_by(TrainingJob.created_at.desc()).limit(limit)).all()
    now = utcnow()

    def age(t) -> float | None:
        return None if t is None else round((now - as_utc(t)).total_seconds(), 1)

    jobs = [{"job_id": j.job_id, "model": j.model_name or "all", "status": j.status, "owner": j.owner,
             "attempts": j.attempts, "heartbeat_age_s": age(j.heartbeat_at) if j.status == TrainingStatus.RUNNING else None,
             "created_at": j.created_at.isoformat(), "reason": j.reason} for j in rows]
    if as_json:
        ops.emit_json({"jobs": jobs})
        return
    if not jobs:
        click.echo("no training jobs")
        return
    click.echo(f"{'job':<32} {'model':<8} {'status':<9} {'tries':>5} {'lease age':>9}  {'replica':<40} reason")
    for j in jobs:
        lease = "" if j["heartbeat_age_s"] is None else f"{j['heartbeat_age_s']:.0f} s"
        click.echo(f"{j['job_id']:<32} {j['model']:<8} {j['status']:<9} {j['attempts']:>5} {lease:>9}  "
                   f"{j['owner'] or '-':<40} {j['reason'][:80]}")


@ml.command("rollback")
@click.argument("version")
@ops.dry_run_option
@ops.json_option
def rollback_cmd(version: str, dry_run: bool, as_json: bool) -> None:
    """Make VERSION serve its slot again (the current one there is retired).

    Running services switch within a few seconds (they poll the registry); prediction caches
    are told at once."""
    make_session = ops.sessions(get_settings())
    if dry_run:
        row = registry.get_version(make_session, version)
        serving = [r.version for r in registry.serving_versions(make_session, row.model_name)
                   if r.slot == row.slot and r.version != row.version]
        out = {"version": row.version, "model_name": row.model_name, "slot": row.slot, "status": row.status,
               "would_retire": serving, "dry_run": True}
        if as_json:
            ops.emit_json(out)
        elif row.status == ModelStatus.SERVING:
            click.echo(f"{row.version} is already serving; nothing would change")
        else:
            click.echo(f"would make {row.version} ({row.status}) serve"
                       + (f" and retire {', '.join(serving)}" if serving else ""))
        return
    row = registry.rollback(make_session, version)
    notify.models_changed(get_settings())
    if as_json:
        ops.emit_json({"version": row.version, "model_name": row.model_name, "slot": row.slot, "status": row.status})
    else:
        click.echo(f"{row.version} ({row.model_name}{', season ' + row.slot if row.slot else ''}) is serving")


@ml.command("train")
@click.option("--model", "model_name", type=click.Choice(["outcome", "strategy", ""]), default="",
              help="default: both")
@click.option("--force", is_flag=True, help="train even without enough new feedback")
@click.option("--wait", is_flag=True, help="wait until the job has finished")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True)
@ops.json_option
def train_cmd(model_name: str, force: bool, wait: bool, timeout_s: float, as_json: bool) -> None:
    """Start a training job on the running ML service (EDGELOOP_ML_GRPC_TARGET)."""
    client = MLClient()
    try:
        job = client.train_models(model_name, force)
        if not wait:
            if as_json:
                ops.emit_json({"job_id": job.job_id, "status": job.status})
            else:
                click.echo(f"training job {job.job_id}: {job.status}")
            return
        progress = ops.Progress()
        try:
            status = wait_for_job(client, job.job_id, timeout_s,
                                  on_poll=lambda s: progress.update(f"training job {job.job_id}: {s.status}"))
        finally:
            progress.done()
    finally:
        client.close()
    if as_json:
        ops.emit_json({"job_id": job.job_id, "status": status.status, "model_versions": list(status.model_versions),
                       "reason": status.reason})
    else:
        versions = ", ".join(status.model_versions) or "none"
        click.echo(f"training job {job.job_id}: {status.status}; versions: {versions}"
                   + (f"; {status.reason}" if status.reason else ""))
    if status.status != TrainingStatus.SUCCEEDED:
        raise click.ClickException(f"training job {job.job_id} {status.status}: {status.reason or 'timed out'}")


ml.add_command(status_cmd)
command = ml
