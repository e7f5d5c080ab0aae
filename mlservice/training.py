"""Training as jobs: TrainModels queues a job, a background thread of the service runs it.

A job is a row in ``ml_training_jobs`` (queued → running → succeeded | failed with the reason),
so its status can be read from any replica sharing the database. Each replica runs the jobs
it accepted, one at a time, in its own thread: training is CPU-bound and must not starve the
RPC threads of a 2-core machine. A job that raises is marked failed with the exception and
has recorded nothing as serving: trainers decide champion/challenger in one transaction at
the very end, after all fitting succeeded.

Limitation: a job accepted by a replica that dies stays ``queued``/``running``; re-submit it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from typing import Callable

from edgeloop.errors import InvalidRequest, NotFound
from mlservice import metrics, registry
from mlservice.context import ServiceContext
from schema.base import utcnow
from schema.mlstore import TrainingJob

log = logging.getLogger("edgeloop.mlservice.training")

# A trainer gets (job_id, force) and returns the versions it recorded (serving or rejected).
Trainer = Callable[[str, bool], list[str]]


class Skipped(Exception):
    """A trainer had nothing worth training on (too little or no new data): not a failure.

    The job goes on with the other models and reports the message as part of its reason."""


class TrainingJobs:
    def __init__(self, ctx: ServiceContext, trainers: dict[str, Trainer]) -> None:
        self.ctx = ctx
        self.trainers = trainers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ml-training", daemon=True)
        self._thread.start()

    def submit(self, model_name: str, force: bool) -> TrainingJob:
        registry.check_model_name(model_name, allow_empty=True)
        job = TrainingJob(job_id=uuid.uuid4().hex, model_name=model_name, force=int(force), status="queued",
                          reason="", model_versions=[], created_at=utcnow())
        with self.ctx.sessions.begin() as s:
            s.add(job)
        self._queue.put(job.job_id)
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
        self._queue.put(None)
        self._thread.join(timeout_s)

    # --- the worker thread -------------------------------------------------------------

    def _update(self, job_id: str, **values) -> None:
        with self.ctx.sessions.begin() as s:
            job = s.get(TrainingJob, job_id)
            for k, v in values.items():
                setattr(job, k, v)

    def _run(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run_job(job_id)
            except Exception:  # noqa: BLE001 - the thread must outlive a broken database call
                log.exception("training job %s could not be recorded", job_id)

    def _run_job(self, job_id: str) -> None:
        with self.ctx.sessions() as s:
            job = s.get(TrainingJob, job_id)
            names = [job.model_name] if job.model_name else list(registry.MODEL_NAMES)
            force = bool(job.force)
        self._update(job_id, status="running", started_at=utcnow())
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
                metrics.TRAINING_JOBS.labels(name, "failed").inc()
                self._update(job_id, status="failed", reason=f"{name}: {type(exc).__name__}: {exc}"[:2000],
                             model_versions=versions, finished_at=utcnow())
                return
            metrics.TRAINING_SECONDS.labels(name).observe(time.perf_counter() - started)
            metrics.TRAINING_JOBS.labels(name, "succeeded").inc()
            versions.extend(got)
            if not got:
                notes.append(f"{name}: nothing new to train on")
        self._update(job_id, status="succeeded", reason="; ".join(notes), model_versions=versions,
                     finished_at=utcnow())
