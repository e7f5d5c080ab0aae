"""Flower's configuration, read by `celery -A edgeloop.workers flower` from the project root.

Basic authentication is always on, with ``flower_user``/``flower_password`` from the one
settings object (``EDGELOOP_FLOWER_USER``/``EDGELOOP_FLOWER_PASSWORD``), or
``FLOWER_BASIC_AUTH`` (user:password[,user:password…]) in their place; Flower shows task
arguments and can revoke tasks and shut workers down, so it refuses to start with the default
password (``edgeloop/flower_auth.py``). Task events, which Flower needs, are on in
``celeryconfig.py``. Flower listens on 127.0.0.1 unless told otherwise (``FLOWER_ADDRESS`` or
``--address``; docker-compose passes ``--address=0.0.0.0`` inside its container and publishes
the port on the host's 127.0.0.1 only). Note: Flower leaves ``/metrics`` and ``/healthcheck``
open even with basic auth (for Prometheus and load balancers).
"""

import os
import sys

from edgeloop.core.errors import ConfigurationError
from edgeloop.flower_auth import basic_auth as _basic_auth
from edgeloop.core.settings import get_settings

try:
    basic_auth = _basic_auth(get_settings(), os.environ)
except ConfigurationError as _exc:
    sys.exit(str(_exc))  # one line on stderr, exit status 1
address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
