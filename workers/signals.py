"""Every Celery signal handler of edgeloop, in one place."""

from __future__ import annotations

import logging

from celery.signals import worker_process_init, worker_process_shutdown

from edgeloop.mlclient import reset_ml_client
from edgeloop.services.runtime import reset_resources

log = logging.getLogger(__name__)


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    """A prefork child starts with its own engine, Redis client and gRPC channel."""
    reset_resources(close=False)
    reset_ml_client()


@worker_process_shutdown.connect
def _on_child_exit(**_: object) -> None:
    reset_resources()
