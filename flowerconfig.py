"""Flower's configuration, read by `celery -A workers flower` from the project root.

Basic authentication is on by default, with ``flower_user``/``flower_password`` from the one
settings object (``EDGELOOP_FLOWER_USER``/``EDGELOOP_FLOWER_PASSWORD``); Flower shows task
arguments and can revoke tasks and shut workers down, so it must not be open by accident.
``FLOWER_BASIC_AUTH`` (user:password[,user:password…]) replaces it. Task events, which Flower
needs, are on in ``celeryconfig.py``. Note: Flower leaves ``/metrics`` and ``/healthcheck``
open even with basic auth (for Prometheus and load balancers).
"""

import os

from edgeloop.settings import get_settings

_s = get_settings()

basic_auth = (os.environ["FLOWER_BASIC_AUTH"].split(",") if os.environ.get("FLOWER_BASIC_AUTH")
              else [f"{_s.flower_user}:{_s.flower_password}"])
address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
