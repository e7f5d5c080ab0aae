"""Celery workers: stream ingest, feedback submission, backtests, lifecycle and discovery tasks."""

from workers.app import app

__all__ = ["app"]
