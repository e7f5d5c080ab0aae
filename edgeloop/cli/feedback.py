"""`edgeloop feedback submit|retrain|status` (also installed as `ml-feedback`)."""

from __future__ import annotations

import dataclasses

import click
from sqlalchemy import select

from edgeloop.cli.ops import Progress, emit_json, json_option, poll, require_ml, require_redis, sessions
from edgeloop.core.errors import EdgeloopError
from edgeloop.core.settings import get_settings
from edgeloop.core.statuses import TRAINING_FINISHED, TrainingStatus
from edgeloop.schema.lifecycle import TrainingTrigger
from edgeloop.schema.repository import count_rejected, count_unsubmitted, retry_rejected
from edgeloop.services.feedback import FeedbackFlusher
from edgeloop.services.feedback_state import BackoffBoard
from edgeloop.services.retraining import maybe_retrain, new_feedback


@click.group("feedback")
def feedback() -> None:
    """Backtest feedback to the ML service, and retraining."""


@feedback.command("submit")
@click.option("--wait", is_flag=True, help="Keep submitting until nothing is pending, showing progress.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def submit_cmd(wait: bool, timeout: float, as_json: bool) -> None:
    """Submit pending results now (the workers also do this continuously)."""
    settings = get_settings()
    require_redis(settings)
    client, _ = require_ml()
    make_session = sessions(settings)
    flusher = FeedbackFlusher.clearing_cache(sessions=make_session, settings=settings, client_factory=lambda: client)
    total = {"submitted": 0}

    def check() -> tuple[bool, str]:
        total["submitted"] += flusher.flush_once().submitted
        with make_session() as s:
            pending = count_unsubmitted(s)
        total["pending"] = pending
        return pending == 0 or not wait, f"submitted {total['submitted']}, pending {pending}"

    poll(check, timeout, Progress(enabled=wait), interval_s=0, what="feedback submission")
    emit_json(total) if as_json else click.echo(f"submitted {total['submitted']} results; {total['pending']} pending")


@feedback.command("retrain")
@click.option("--force", is_flag=True, help="Train even with fewer than min_new_feedback new samples.")
@click.option("--wait", is_flag=True, help="Wait for the training job, showing its status.")
@click.option("--timeout", type=float, default=1800.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def retrain_cmd(force: bool, wait: bool, timeout: float, as_json: bool) -> None:
    """Ask the ML service to retrain if enough new feedback arrived (or --force)."""
    settings = get_settings()
    client, _ = require_ml()
    make_session = sessions(settings)
    decision = maybe_retrain(make_session, client, settings, force=force, reason="operator")
    if decision.triggered and wait:
        def check() -> tuple[bool, str]:
            status = client.get_training_status(decision.job_id)
            decision.job_status, decision.model_versions = status.status, list(status.model_versions)
            if status.status == TrainingStatus.FAILED:
                decision.reason += f"; training failed: {status.reason}"
            return status.status in TRAINING_FINISHED, f"training job {decision.job_id}: {status.status}"

        poll(check, timeout, Progress(), what=f"training job {decision.job_id}")
    if as_json:
        emit_json(decision.as_dict())
    elif decision.triggered:
        click.echo(f"training job {decision.job_id}: {decision.job_status} ({decision.reason})"
                   + (f"; versions {', '.join(decision.model_versions)}" if decision.model_versions else ""))
    else:
        click.echo(f"not retraining: {decision.reason} (use --force to train anyway)")
    if decision.job_status == TrainingStatus.FAILED:
        raise click.ClickException(decision.reason)


@feedback.command("status")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(as_json: bool) -> None:
    """Pending feedback, flushers backing off (and why), samples at the ML service, new samples
    since the last training.

    Shows what it knows while the ML service is away or refuses us (that is when the backoff
    matters), then still ends with the ML service's error and a non-zero exit for scripts."""
    settings = get_settings()
    make_session = sessions(settings)
    with make_session() as s:
        pending, rejected = count_unsubmitted(s), count_rejected(s)
        last = s.scalars(select(TrainingTrigger).order_by(TrainingTrigger.triggered_at.desc()).limit(1)).first()
    backoffs = BackoffBoard(require_redis(settings)).read()
    ml_exc, total, new, serving = None, None, None, {}
    try:
        client, health = require_ml()
        total, new = new_feedback(make_session, client)
        serving = dict(health.serving_models)
    except EdgeloopError as exc:  # whatever the ML service answered, or that it is away
        ml_exc = exc
    ml_error = None if ml_exc is None else str(ml_exc)
    out = {"pending_feedback": pending, "rejected_feedback": rejected,
           "backing_off": [dataclasses.asdict(b) for b in backoffs], "ml_service_error": ml_error,
           "service_feedback_samples": total, "new_since_last_training": new,
           "min_new_feedback": settings.min_new_feedback, "retrain_due": new is not None and new >= settings.min_new_feedback,
           "last_training": None if last is None else {"job_id": last.job_id, "at": last.triggered_at,
                                                        "status": last.status, "reason": last.reason},
           "serving_models": serving}
    if as_json:
        emit_json(out)
    else:
        _print_status(out, backoffs, last, settings.min_new_feedback)
    if ml_exc is not None:
        raise ml_exc


def _print_status(out: dict, backoffs: list, last, min_new_feedback: int) -> None:
    pending, rejected, ml_error = out["pending_feedback"], out["rejected_feedback"], out["ml_service_error"]
    click.echo(f"pending feedback (not yet confirmed by the ML service): {pending}")
    if rejected:
        click.echo(f"rejected by the ML service (see the logs; `edgeloop feedback retry-rejected`): {rejected}")
    for b in backoffs:
        click.echo(f"flusher {b.flusher}: {b.describe()}")
    if not backoffs:
        click.echo("flushers: none backing off")
    if ml_error is None:
        click.echo(f"feedback samples at the ML service: {out['service_feedback_samples']}; new since last "
                   f"training: {out['new_since_last_training']} "
                   f"(retrain at {min_new_feedback}: {'due' if out['retrain_due'] else 'not yet'})")
    click.echo("last training: " + ("never" if last is None else
                                    f"{last.triggered_at:%Y-%m-%d %H:%M:%S} job {last.job_id} {last.status} ({last.reason})"))


@feedback.command("retry-rejected")
@json_option
def retry_rejected_cmd(as_json: bool) -> None:
    """Put results the ML service refused back in line (after fixing the cause)."""
    with sessions(get_settings()).begin() as s:
        n = retry_rejected(s)
    emit_json({"requeued": n}) if as_json else click.echo(f"{n} rejected results will be submitted again")


command = feedback
