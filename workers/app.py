"""The Celery application. `celery -A workers worker|beat|flower` finds it as ``workers.app``."""

from __future__ import annotations

from celery import Celery

# Task modules; each registers its tasks on ``app``.
TASK_MODULES = [
    "workers.tasks",
    "workers.backtest_tasks",
    "workers.lifecycle_tasks",
    "workers.discovery",
    "workers.predictions",
]

app = Celery("edgeloop", include=TASK_MODULES)
app.config_from_object("celeryconfig")


def _install_bootsteps() -> None:
    from workers.bootsteps import StreamIngest

    app.steps["worker"].add(StreamIngest)


_install_bootsteps()
import workers.signals  # noqa: E402,F401  (connects the signal handlers)
