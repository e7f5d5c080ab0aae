"""The activation policy, as a pure function: thresholds, the evidence gate, hysteresis, minimum time in state."""

from __future__ import annotations

import pytest

from edgeloop.core.settings import Settings
from edgeloop.services.lifecycle import ACTIVATE, DEACTIVATE, decide

S = Settings(activation_threshold=0.65, deactivation_threshold=0.50, min_bets_for_activation=30, min_state_s=3600)
LONG = 10 * 3600


@pytest.mark.parametrize("status,composite,gate,expected", [
    ("candidate", 0.65, True, "active"),        # at the threshold, through the gate
    ("candidate", 0.649, True, "candidate"),    # just below: stays a candidate (in the gap)
    ("candidate", 0.90, False, "candidate"),    # a great score the evidence gate refuses proves nothing
    ("candidate", 0.499, True, "inactive"),     # a poor candidate is retired
    ("inactive", 0.70, True, "active"),         # a retired strategy can come back
    ("active", 0.55, True, "active"),           # hysteresis: between the thresholds an active one stays
    ("active", 0.50, False, "active"),          # deactivation is strictly below
    ("active", 0.4999, True, "inactive"),
    ("active", 0.10, False, "inactive"),
])
def test_thresholds_and_the_gate(status, composite, gate, expected):
    assert decide(status, composite, gate, LONG, S) == expected


def test_nothing_changes_before_the_minimum_time_in_state():
    assert decide("active", 0.0, True, 3599, S) == "active"
    assert decide("candidate", 1.0, True, 3599, S) == "candidate"
    assert decide("active", 0.0, True, 3600, S) == "inactive"


def test_a_score_oscillating_around_one_threshold_does_not_flap():
    status, changes = "candidate", 0
    for composite in [0.66, 0.60, 0.66, 0.55, 0.66, 0.51] * 5:
        new = decide(status, composite, True, LONG, S)
        changes += new != status
        status = new
    assert (status, changes) == ("active", 1)


def test_allow_limits_the_transitions_a_step_may_make():
    assert decide("candidate", 0.9, True, LONG, S, allow=(DEACTIVATE,)) == "candidate"
    assert decide("active", 0.1, True, LONG, S, allow=(ACTIVATE,)) == "active"
    assert decide("active", 0.1, True, LONG, S, allow=()) == "active"
