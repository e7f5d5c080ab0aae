"""Training as jobs: TrainModels queues a job, a background thread of a service replica runs it.

A job is a row in ``ml_training_jobs`` (queued → running → succeeded | failed with the reason),
so its status can be read from any replica sharing the database, and the table is the queue:
a replica claims a job by a compare-and-set UPDATE (one winner on PostgreSQL and SQLite alike)
and renews its lease (``heartbeat_at``) from a second thread while the trainers run. A job
whose lease lapsed, because the replica running it died or hung, is claimed again by another
replica; one started ``ml_training_max_attempts`` times without finishing is failed instead of
taking down replica after replica. Running a job twice is harmless: trainers decide
champion/challenger in one transaction at the very end, after all fitting succeeded.

Each replica runs one job at a time: training is CPU-bound and must not starve the RPC threads
of a 2-core machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Any, Callable, cast

from sqlalchemy import CursorResult, and_, or_, select, text, update

from edgeloop.core.errors import InvalidRequest, NotFound
from edgeloop.core.statuses import TrainingStatus
from edgeloop.mlservice import metrics, registry
from edgeloop.mlservice.context import ServiceContext
from edgeloop.schema.base import utcnow
from edgeloop.schema.mlstore import TrainingJob

log = logging.getLogger("edgeloop.mlservice.training")

# A trainer gets (job_id, force) and returns the versions it recorded (serving or rejected).
Trainer = Callable[[str, bool], list[str]]


def _dedup_lock_id(model_name: str, force: bool) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory lock of one (model, force) pair."""
    digest = hashlib.sha256(f"edgeloop-training:{model_name}:{int(force)}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Skipped(Exception):
    """A trainer had nothing worth training on (too little or no new data): not a failure.

    The job goes on with the other models and reports the message as part of its reason."""


class TrainingJobs:
    def __init__(self, ctx: ServiceContext, trainers: dict[str, Trainer]) -> None:
        self.ctx = ctx
        self.trainers = trainers
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = ctx.settings.ml_training_lease_s
        self._wake = threading.Event()
        self._submitting = threading.Lock()  # within a replica; across replicas, an advisory lock
        self._wake.set()  # at start, look for jobs left queued or lapsed by replicas gone before
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ml-training", daemon=True)
        self._heartbeat = threading.Thread(target=self._renew, name="ml-training-lease", daemon=True)
        self._thread.start()
        self._heartbeat.start()

    def submit(self, model_name: str, force: bool) -> TrainingJob:
        """Queue a job; with ``ml_training_dedup``, a job of the same model and force flag that is
        queued or running is returned instead (it will train on the same data, or is already)."""
        registry.check_model_name(model_name, allow_empty=True)
        job = TrainingJob(job_id=uuid.uuid4().hex, model_name=model_name, force=int(force), status=TrainingStatus.QUEUED,
                          reason="", model_versions=[], created_at=utcnow())
        with self._submitting, self.ctx.sessions.begin() as s:
            if self.ctx.settings.ml_training_dedup:
                if s.get_bind().dialect.name == "postgresql":
                    # Replicas sharing the database take turns to look and insert, per model and flag.
                    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _dedup_lock_id(model_name, force)})
                same = s.scalars(select(TrainingJob).where(
                    TrainingJob.model_name == model_name, TrainingJob.force == int(force),
                    TrainingJob.status.in_((TrainingStatus.QUEUED, TrainingStatus.RUNNING)))
                    .order_by(TrainingJob.created_at).limit(1)).first()
                if same is not None:
                    metrics.TRAINING_DEDUPLICATED.inc()
                    s.expunge(same)
                    return same
            s.add(job)
        self._wake.set()
        return job

    def get(self, job_id: str) -> TrainingJob:
        if not job_id or len(job_id) > 64:
            raise InvalidRequest("job_id must be 1–64 characters")
        with self.ctx.sessions() as s:
            job = s.get(TrainingJob, job_id)
        if job is None:
            raise NotFound(f"no training job {job_id!r}")
        return job

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop claiming jobs. A job in progress finishes in the background (daemon thread); if
        the process exits first, its lease lapses and another replica runs it."""
        self._stopping.set()
        self._wake.set()
        self._heartbeat.join(timeout_s)
        self._thread.join(timeout_s)

    # --- the queue in the database ---------------------------------------------------------

    def _claimable(self, now):
        lapsed = now - timedelta(seconds=self.lease_s)
        return or_(TrainingJob.status == TrainingStatus.QUEUED,
                   and_(TrainingJob.status == TrainingStatus.RUNNING,
                        or_(TrainingJob.heartbeat_at.is_(None), TrainingJob.heartbeat_at < lapsed)))

    def claim(self) -> str | None:
        """Take the oldest claimable job for this replica; None when there is none."""
        now = utcnow()
        with self.ctx.sessions() as s:
            candidates = s.scalars(select(TrainingJob.job_id).where(self._claimable(now))
                                   .order_by(TrainingJob.created_at).limit(10)).all()
        for job_id in candidates:
            # The WHERE is evaluated again under the row lock: of two replicas, one wins.
            with self.ctx.sessions.begin() as s:
                won = cast(CursorResult[Any], s.execute(
                    update(TrainingJob)
                    .where(TrainingJob.job_id == job_id, self._claimable(now))
                    .values(status=TrainingStatus.RUNNING, owner=self.replica, heartbeat_at=now, started_at=now,
                            attempts=TrainingJob.attempts + 1))).rowcount == 1
            if won:
                return job_id
        return None

    def _update(self, job_id: str, **values) -> None:
        """Record the job's outcome, unless another replica took it over meanwhile."""
        with self.ctx.sessions.begin() as s:
            mine = cast(CursorResult[Any], s.execute(
                update(TrainingJob)
                .where(TrainingJob.job_id == job_id, TrainingJob.owner == self.replica)
                .values(**values))).rowcount == 1
        if not mine:
            log.warning("training job %s: lease lost to another replica; its outcome is theirs to record", job_id)

    def _renew(self) -> None:
        """Keep this replica's leases fresh, and look for lapsed jobs of others as often."""
        while not self._stopping.wait(self.lease_s / 3):
            try:
                with self.ctx.sessions.begin() as s:
                    s.execute(update(TrainingJob)
                              .where(TrainingJob.owner == self.replica, TrainingJob.status == TrainingStatus.RUNNING)
                              .values(heartbeat_at=utcnow()))
            except Exception:  # noqa: BLE001 - the database may be back at the next beat
                log.exception("training leases could not be renewed")
            self._wake.set()

    # --- the worker thread -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stopping.is_set():
                try:
                    job_id = self.claim()
                    if job_id is None:
                        break
                    self._run_job(job_id)
                except Exception:  # noqa: BLE001 - the thread must outlive a broken database call
                    log.exception("training jobs could not be claimed or recorded")
                    break

    def _run_job(self, job_id: str) -> None:
        with self.ctx.sessions() as s:
            job = s.get_one(TrainingJob, job_id)
            names = [job.model_name] if job.model_name else list(registry.MODEL_NAMES)
            force, attempts = bool(job.force), job.attempts
        limit = self.ctx.settings.ml_training_max_attempts
        if attempts > limit:
            self._update(job_id, status=TrainingStatus.FAILED, finished_at=utcnow(),
                         reason=f"abandoned: started {attempts - 1} times without finishing (its replica stopped)")
            return
        if attempts > 1:
            log.warning("training job %s: taking over (attempt %d of %d)", job_id, attempts, limit)
        versions: list[str] = []
        notes: list[str] = []
        for name in names:
            started = time.perf_counter()
            try:
                got = self.trainers[name](job_id, force)
            except Skipped as skipped:
                notes.append(f"{name}: skipped: {skipped}")
                continue
            except Exception as exc:  # noqa: BLE001 - reported as the job's reason
                log.exception("training job %s: %s failed", job_id, name)
                metrics.TRAINING_JOBS.labels(name, TrainingStatus.FAILED).inc()
                self._update(job_id, status=TrainingStatus.FAILED, reason=f"{name}: {type(exc).__name__}: {exc}"[:2000],
                             model_versions=versions, finished_at=utcnow())
                return
            metrics.TRAINING_SECONDS.labels(name).observe(time.perf_counter() - started)
            metrics.TRAINING_JOBS.labels(name, TrainingStatus.SUCCEEDED).inc()
            versions.extend(got)
            if not got:
                notes.append(f"{name}: nothing new to train on")
        self._update(job_id, status=TrainingStatus.SUCCEEDED, reason="; ".join(notes), model_versions=versions,
                     finished_at=utcnow())
