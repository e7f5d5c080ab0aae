"""Beat acceptance with real `celery beat` and `celery worker` processes, Redis, PostgreSQL and
an ML gRPC server: retraining only after enough new feedback; two beats send once per period."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select

from edgeloop.producers import Publisher
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.lifecycle import TrainingTrigger
from edgeloop.schema.mlstore import FeedbackSample, TrainingJob
from tests.integration.lifecycle.conftest import celery_beat
from tests.support.events import valid_event
from tests.support.processes import celery_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUIET = {"EDGELOOP_DISCOVERY_INTERVAL_S": "3600", "EDGELOOP_RANKING_INTERVAL_S": "3600",
         "EDGELOOP_PREDICTIONS_INTERVAL_S": "3600", "EDGELOOP_FEEDBACK_FLUSH_BEAT_S": "3600",
         "EDGELOOP_RETRAINING_INTERVAL_HOURS": "1"}
RECEIVED = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task ([\w.]+)\[[^\]]+\] received")


def received(log: str, task: str) -> list[datetime]:
    return [datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f") for ts, name in RECEIVED.findall(log) if name == task]


def count(sessions, stmt) -> int:
    with sessions() as s:
        return s.scalar(stmt) or 0


def test_beat_retrains_only_after_enough_new_feedback(ml, tmp_path):
    period_s = 2.0
    env = {**ml, **QUIET, "EDGELOOP_RETRAINING_INTERVAL_HOURS": str(period_s / 3600), "EDGELOOP_MIN_NEW_FEEDBACK": "20"}
    sessions = make_sessionmaker(make_engine(env["EDGELOOP_DATABASE_URL"]))
    triggers = select(func.count()).select_from(TrainingTrigger)
    jobs = select(func.count()).select_from(TrainingJob)
    samples = select(func.count()).select_from(FeedbackSample)
    publisher = Publisher()
    with celery_worker(env, "w1", tmp_path) as worker, celery_beat(env, "beat", tmp_path) as beat:
        # Given 12 new feedback samples at the ML service (fewer than 20)
        publisher.publish_many(valid_event(i) for i in range(12))
        wait_until(lambda: count(sessions, samples) == 12, 60, 0.2, "12 samples at the service")
        # When beat's retraining period passes three times
        wait_until(lambda: len(received(worker.log(), "edgeloop.ml.retrain")) >= 3, 60, 0.2, "three retrain checks")
        # Then nothing was trained
        assert count(sessions, triggers) == 0 and count(sessions, jobs) == 0

        # When 10 more arrive (22 new since the last training: none)
        publisher.publish_many(valid_event(i) for i in range(12, 22))
        # Then the next period starts one training job, and records what it was triggered by
        # (the job exists at the service before the task writes its trigger: wait for both)
        wait_until(lambda: count(sessions, jobs) == 1 and count(sessions, triggers) == 1, 60, 0.2, "a training job")
        with sessions() as s:
            trigger = s.scalars(select(TrainingTrigger)).one()
        # 20 or more: the 10 may reach the service in more than one flush, and the check that
        # crossed the threshold records the count it saw
        assert 20 <= trigger.feedback_samples <= 22 and trigger.model_name == "strategy"

        # And with no new feedback, three more periods train nothing more
        checks = len(received(worker.log(), "edgeloop.ml.retrain"))
        wait_until(lambda: len(received(worker.log(), "edgeloop.ml.retrain")) >= checks + 3, 60, 0.2, "three more")
        assert count(sessions, jobs) == 1 and count(sessions, triggers) == 1
        assert worker.alive() and beat.proc.poll() is None, beat.log()[-2000:]


def test_two_beats_send_each_scheduled_task_once_per_period(life_env, tmp_path):
    period_s = 2.0
    env = {**life_env, **QUIET, "EDGELOOP_FEEDBACK_FLUSH_BEAT_S": str(period_s)}
    with celery_worker(env, "w1", tmp_path) as worker:
        wait_until(lambda: "ready" in worker.log(), 60, 0.2, "worker ready")
        # Given two beat processes started by mistake with the same schedule
        with celery_beat(env, "beat-a", tmp_path) as a, celery_beat(env, "beat-b", tmp_path) as b:
            started = time.monotonic()
            wait_until(lambda: len(received(worker.log(), "edgeloop.feedback.flush")) >= 6, 60, 0.2, "six flushes")
            elapsed = time.monotonic() - started
            beat_logs = a.log() + b.log()
            assert a.proc.poll() is None and b.proc.poll() is None, beat_logs[-3000:]
    runs = received(worker.log(), "edgeloop.feedback.flush")
    gaps = [(t2 - t1).total_seconds() for t1, t2 in zip(runs, runs[1:])]
    # Then the task ran once per period: never two sends close together, no more than the periods allow
    assert min(gaps) >= 0.5 * period_s, gaps
    assert len(runs) <= elapsed / period_s + 2, (len(runs), elapsed)
    # And both beats took part: one sent, the other found the period claimed
    assert "already sent this period by another beat" in beat_logs


def test_when_the_sending_beat_dies_the_other_takes_over(life_env, tmp_path):
    period_s = 2.0
    env = {**life_env, **QUIET, "EDGELOOP_FEEDBACK_FLUSH_BEAT_S": str(period_s)}
    sent = "Sending due task feedback-flush"
    with celery_worker(env, "w1", tmp_path) as worker, \
            celery_beat(env, "beat-a", tmp_path) as a, celery_beat(env, "beat-b", tmp_path) as b:
        wait_until(lambda: len(received(worker.log(), "edgeloop.feedback.flush")) >= 3, 60, 0.2, "three flushes")
        # Given the beat that has been sending
        sender, other = (a, b) if a.log().count(sent) >= b.log().count(sent) else (b, a)
        before = other.log().count(sent)
        # When it dies
        sender.stop()
        n = len(received(worker.log(), "edgeloop.feedback.flush"))
        # Then the other one sends from its next period on
        wait_until(lambda: len(received(worker.log(), "edgeloop.feedback.flush")) >= n + 3, 30, 0.2, "three more")
        assert other.log().count(sent) >= before + 3
    runs = received(worker.log(), "edgeloop.feedback.flush")
    assert min((t2 - t1).total_seconds() for t1, t2 in zip(runs, runs[1:])) >= 0.5 * period_s
