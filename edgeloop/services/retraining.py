"""Retraining on a schedule, only when enough new feedback arrived since the last training.

"New feedback" is counted where it lands: the ML service's ``feedback_samples`` (HealthCheck)
now, minus what it held when the last training that did not fail was triggered (the
``training_triggers`` table). The decision is made here, so the job is submitted with
``force``: the service must not second-guess it with its own threshold on a different count.
Training is a job on the service; ``wait_s`` polls it (discovery waits, beat does not).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.settings import Settings
from edgeloop.core.statuses import TRAINING_FINISHED, TrainingStatus
from edgeloop.schema.base import utcnow
from edgeloop.schema.lifecycle import TrainingTrigger

if TYPE_CHECKING:  # types only: importing edgeloop.mlclient would load gRPC
    from edgeloop.mlclient.protocol import MLServiceClient
    from edgeloop.proto.ml_service_pb2 import TrainingStatusResponse


@dataclass
class RetrainDecision:
    triggered: bool
    feedback_samples: int
    new_feedback: int
    min_new_feedback: int
    reason: str
    job_id: str | None = None
    job_status: str | None = None
    model_versions: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _refresh_statuses(session: Session, client: MLServiceClient) -> None:
    """Learn how unfinished triggers ended (a failed one does not count as the last training)."""
    for trig in session.scalars(select(TrainingTrigger).where(TrainingTrigger.status.not_in(TRAINING_FINISHED))):
        try:
            trig.status = client.get_training_status(trig.job_id).status or trig.status
        except Exception:  # noqa: BLE001 - a job the service forgot (another database) stays unknown
            continue


def baseline(session: Session) -> int:
    """Feedback samples at the last training that did not fail (0: never trained)."""
    last = session.scalars(select(TrainingTrigger).where(TrainingTrigger.status != TrainingStatus.FAILED)
                           .order_by(TrainingTrigger.triggered_at.desc()).limit(1)).first()
    return last.feedback_samples if last else 0


def new_feedback(sessions: sessionmaker[Session], client: MLServiceClient) -> tuple[int, int]:
    """(samples the service holds, samples since the last training)."""
    total = int(client.health().feedback_samples)
    with sessions.begin() as session:
        _refresh_statuses(session, client)
        return total, max(0, total - baseline(session))


def maybe_retrain(sessions: sessionmaker[Session], client: MLServiceClient, settings: Settings, *, force: bool = False,
                  wait_s: float = 0.0, reason: str = "schedule") -> RetrainDecision:
    total, new = new_feedback(sessions, client)
    need = settings.min_new_feedback
    if not force and new < need:
        return RetrainDecision(False, total, new, need, f"{new} new feedback samples < {need}")
    job = client.train_models(model_name=settings.retrain_model_name, force=True)
    with sessions.begin() as session:
        session.add(TrainingTrigger(job_id=job.job_id, triggered_at=utcnow(), feedback_samples=total,
                                    model_name=settings.retrain_model_name, reason=reason, status=job.status or TrainingStatus.QUEUED))
    decision = RetrainDecision(True, total, new, need, "forced" if force and new < need else
                               f"{new} new feedback samples ≥ {need}", job.job_id, job.status)
    if wait_s > 0:
        status = wait_for_job(client, job.job_id, wait_s)
        with sessions.begin() as session:
            session.get_one(TrainingTrigger, job.job_id).status = status.status
        decision.job_status, decision.model_versions = status.status, list(status.model_versions)
        if status.status == TrainingStatus.FAILED:
            decision.reason += f"; training failed: {status.reason}"
    return decision


def wait_for_job(client: MLServiceClient, job_id: str, wait_s: float,
                 on_poll: Callable[[TrainingStatusResponse], None] | None = None) -> TrainingStatusResponse:
    deadline = time.monotonic() + wait_s
    while True:
        status = client.get_training_status(job_id)
        if on_poll is not None:
            on_poll(status)
        if status.status in TRAINING_FINISHED or time.monotonic() >= deadline:
            return status
        time.sleep(0.2)
