"""The Celery application. `celery -A edgeloop.workers worker|beat|flower` finds it as ``edgeloop.workers.app``."""

from __future__ import annotations

from celery import Celery

import edgeloop.workers.signals  # noqa: F401  (connects the signal handlers)
from edgeloop.workers.bootsteps import StreamIngest

# Task modules; each registers its tasks on ``app``.
TASK_MODULES = [
    "edgeloop.workers.tasks",
    "edgeloop.workers.backtest_tasks",
    "edgeloop.workers.lifecycle_tasks",
    "edgeloop.workers.discovery_tasks",
    "edgeloop.workers.prediction_tasks",
]

app = Celery("edgeloop", include=TASK_MODULES)
app.config_from_object("edgeloop.celeryconfig")
app.steps["worker"].add(StreamIngest)
