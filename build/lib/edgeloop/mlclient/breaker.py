"""A circuit breaker: fail fast while a dependency is down, probe it back one call at a time.

States (the classic three):

* ``closed``: calls go through; ``failures`` consecutive failures open the circuit.
* ``open``: calls are refused at once (the caller raises its "unavailable" error) until
  ``reset_s`` has passed since the circuit opened.
* ``half_open``: exactly one call (the probe) is let through; its success closes the circuit,
  its failure opens it again for another ``reset_s``. Other callers are refused meanwhile, so
  a recovering service is not hit by every waiting worker at once.

Only failures that say "the dependency is down" should be recorded; a permanent error (a bad
request) proves the dependency is up and counts as a success. The clock is injectable so the
state machine is unit-tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._current_state()

    def _current_state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
            self._set(HALF_OPEN)
        return self._state

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if state == HALF_OPEN:
                self._probe_in_flight = False
            if self._on_change is not None:
                self._on_change(state)

    def allow(self) -> bool:
        """May a call go through now? In half-open state only the first caller (the probe) may."""
        with self._lock:
            state = self._current_state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._probe_in_flight = False
            self._set(CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            state = self._current_state()
            if state == HALF_OPEN or self._consecutive >= self.failures:
                self._opened_at = self._clock()
                self._probe_in_flight = False
                self._set(OPEN)

    def retry_after_s(self) -> float:
        """Seconds until the next probe is allowed (0 when not open)."""
        with self._lock:
            if self._current_state() != OPEN:
                return 0.0
            return max(0.0, self.reset_s - (self._clock() - self._opened_at))
