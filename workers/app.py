"""The Celery application. `celery -A edgeloop.workers worker|beat|flower` finds it as ``edgeloop.workers.app``."""

from __future__ import annotations

from celery import Celery

# Task modules; each registers its tasks on ``app``.
TASK_MODULES = [
    "edgeloop.workers.tasks",
    "edgeloop.workers.backtest_tasks",
    "edgeloop.workers.lifecycle_tasks",
    "edgeloop.workers.discovery",
    "edgeloop.workers.predictions",
]

app = Celery("edgeloop", include=TASK_MODULES)
app.config_from_object("edgeloop.celeryconfig")


def _install_bootsteps() -> None:
    from edgeloop.workers.bootsteps import StreamIngest

    app.steps["worker"].add(StreamIngest)


_install_bootsteps()
import edgeloop.workers.signals  # noqa: E402,F401  (connects the signal handlers)
