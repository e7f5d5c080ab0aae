"""Beat: the schedule (every interval a setting) and a scheduler that two beat processes can share.

Two beats started by mistake would each send every entry. ``OncePerPeriodScheduler`` claims
each send in Redis first: ``SET edgeloop:beat:sent:<entry> NX PX 0.9 × period``. The first
beat to claim an entry in a period sends it; any other finds the key and skips (its own
schedule still advances, so it stays in step). The claim is relative to the actual send time,
not a wall-clock slot, so two beats whose ticks straddle a slot boundary cannot both send, and
if the sending beat dies the other takes over at its next due time, with no lease to expire.
Redis unreachable: nothing is sent (it is the broker, so a send would fail anyway).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery.beat import PersistentScheduler

from edgeloop.core.settings import Settings
from edgeloop.services.runtime import resources

log = logging.getLogger(__name__)

CLAIM_SHARE = 0.9  # of the period: a later tick of the same beat always finds the key expired
CLAIM_PREFIX = "edgeloop:beat:sent:"


def build_schedule(s: Settings) -> dict[str, dict[str, Any]]:
    """The beat schedule. Entry names are stable: they key the send claims."""
    return {
        "feedback-flush": {"task": "edgeloop.feedback.flush", "schedule": timedelta(seconds=s.feedback_flush_beat_s)},
        "retrain": {"task": "edgeloop.ml.retrain",
                    "schedule": timedelta(hours=s.retraining_interval_hours)},
        "rankings-refresh": {"task": "edgeloop.rankings.refresh", "schedule": timedelta(seconds=s.ranking_interval_s)},
        "discovery": {"task": "edgeloop.discovery.run", "schedule": timedelta(seconds=s.discovery_interval_s)},
        "strategies-recheck": {"task": "edgeloop.strategies.recheck",
                               "schedule": timedelta(seconds=s.recheck_interval_s)},
        "predictions-refresh": {"task": "edgeloop.predictions.refresh",
                                "schedule": timedelta(seconds=s.predictions_interval_s)},
    }


def period_s(entry) -> float:
    run_every = getattr(entry.schedule, "run_every", None)
    return run_every.total_seconds() if run_every is not None else 60.0


def claim(client, name: str, period: float) -> bool:
    """True if this process may send entry ``name`` now (nobody sent it in the last 0.9 period)."""
    return bool(client.set(CLAIM_PREFIX + name, "1", nx=True, px=max(1, int(CLAIM_SHARE * period * 1000))))


class OncePerPeriodScheduler(PersistentScheduler):
    def apply_entry(self, entry, producer=None):
        try:
            claimed = claim(resources().redis, entry.name, period_s(entry))
        except Exception as exc:  # noqa: BLE001 - beat must outlive a Redis outage
            log.warning("beat: not sending %s: cannot claim it in Redis (%s)", entry.name, exc)
            return
        if not claimed:
            log.info("beat: %s already sent this period by another beat; skipping", entry.name)
            return
        super().apply_entry(entry, producer=producer)
