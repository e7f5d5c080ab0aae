"""Telling prediction caches that the serving models changed (``edgeloop.mlclient.cache``'s generation).

Best effort by design: the caches also refetch the model catalogue after a TTL and refuse
answers from versions they do not know, so Redis being down delays their switch to the new
versions by at most that TTL; it must never fail a promotion that is already committed.
"""

from __future__ import annotations

import logging

from edgeloop.core.settings import Settings
from edgeloop.mlclient.cache import make_redis, mark_models_changed

log = logging.getLogger("edgeloop.mlservice")


def models_changed(settings: Settings) -> None:
    try:
        client = make_redis(settings)
        try:
            mark_models_changed(client, settings.cache_prefix)
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.warning("could not bump the prediction cache generation (%s); caches catch up by TTL", exc)
