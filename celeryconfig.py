"""Celery configuration, built from the one settings object.

Delivery settings are chosen on purpose:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a task's message is acknowledged
  after it ran, and a worker killed mid-task gives its message back instead of losing it.
  Every task is idempotent (unique keys in the database), so a redelivery is harmless.
* ``visibility_timeout`` (Redis transport): an unacknowledged message is redelivered after
  this long, so it must exceed the longest task *and* any ETA/countdown; we use no ETAs
  longer than a minute (retries back off to at most ``feedback_retry_max_s``) and keep
  tasks short, and set it to 2 hours.
* ``worker_prefetch_multiplier = 1``: long discovery/backtest tasks are spread evenly
  across workers instead of being hoarded by the first one.
* JSON only: ``accept_content`` refuses pickle (and everything else) on the wire.

Events themselves do not travel as Celery messages: they stay on the Redis stream and are
read in batches by a consumer-group bootstep in every worker (see ``edgeloop/services/ingest.py``).
"""

from __future__ import annotations

from typing import Any

from edgeloop.core.redis_connect import is_sentinel, sentinel_node_options
from edgeloop.core.settings import get_settings

_s = get_settings()

broker_url = _s.broker
result_backend = _s.result_backend
broker_connection_retry_on_startup = True
broker_transport_options: dict[str, Any] = {
    "visibility_timeout": 2 * 3600,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
result_backend_transport_options: dict[str, Any] = {"retry_policy": {"timeout": 5.0}}
# A sentinel://…;sentinel://… URL (edgeloop/core/redis_connect.py) names its group here, for kombu
# and Celery's Sentinel backend alike.
if is_sentinel(broker_url):
    broker_transport_options.update(master_name=_s.redis_sentinel_master, sentinel_kwargs=sentinel_node_options())
if is_sentinel(result_backend):
    result_backend_transport_options.update(master_name=_s.redis_sentinel_master,
                                            sentinel_kwargs=sentinel_node_options())
result_expires = 24 * 3600

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
event_serializer = "json"

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_track_started = True
task_send_sent_event = True
worker_send_task_events = True  # Flower needs task events
task_time_limit = 30 * 60
task_soft_time_limit = 25 * 60
worker_max_tasks_per_child = 1000
timezone = "UTC"
enable_utc = True

task_default_queue = "edgeloop"

# --- beat (workers/beat.py): every interval is a setting; two beats never send twice ---------
from edgeloop.workers.beat import build_schedule  # noqa: E402

beat_schedule = build_schedule(_s)
beat_scheduler = "edgeloop.workers.beat:OncePerPeriodScheduler"
beat_max_loop_interval = 5  # seconds: a schedule change or a short test interval is seen soon
