"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from edgeloop.mlclient.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_opens_after_consecutive_failures_only(clock):
    changes: list[str] = []
    breaker = CircuitBreaker(3, 5.0, clock=clock, on_change=changes.append)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success in between resets the run
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(5.0)
    assert changes == [OPEN]


def test_half_open_lets_exactly_one_probe_through(clock):
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else still fails fast
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allow() and breaker.allow()


def test_failed_probe_reopens_for_a_full_period(clock):
    changes: list[str] = []
    breaker = CircuitBreaker(2, 5.0, clock=clock, on_change=changes.append)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open state
    assert breaker.state == OPEN
    assert breaker.retry_after_s() == pytest.approx(5.0)
    assert changes == [OPEN, HALF_OPEN, OPEN]


def test_rejects_nonsense_configuration():
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 0)
