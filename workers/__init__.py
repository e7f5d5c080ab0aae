"""Celery workers: stream ingest, feedback submission, backtests, lifecycle and discovery tasks."""

import os as _os
import sys

from edgeloop.core.settings import get_settings


def _multiprocess_metrics() -> None:
    """prometheus_client picks its value store when first imported: export the directory
    before anything imports it, so prefork children count into shared files."""
    path = get_settings().prometheus_multiproc_dir
    if path and "PROMETHEUS_MULTIPROC_DIR" not in _os.environ:
        _os.makedirs(path, exist_ok=True)
        _os.environ["PROMETHEUS_MULTIPROC_DIR"] = path

        if "prometheus_client.values" in sys.modules:
            # `celery` loads its command plugins first, and Flower's imports prometheus_client:
            # switch the value store now, before any edgeloop metric is created.
            from prometheus_client import values

            values.ValueClass = values.get_value_class()


_multiprocess_metrics()

from edgeloop.workers.app import app  # noqa: E402

__all__ = ["app"]
