"""The remembered fingerprints are params_fingerprint's, for every JSON value, in any order of asking."""

from __future__ import annotations

import random

from edgeloop.mlservice.strategy_model import FingerprintMemo, params_fingerprint

# Values equal in Python but not in JSON (1, 1.0, true; 0.0, -0.0), parameters the backtester
# refuses (fingerprinted as sent) and accepts (canonical), extras it ignores, nesting, and the
# same parameters in another key order.
VARIANTS = [
    {"min_edge": 1}, {"min_edge": 1.0}, {"min_edge": True}, {"min_edge": 0.0}, {"min_edge": -0.0},
    {"min_edge": 0.02, "staking": "kelly"}, {"staking": "kelly", "min_edge": 0.02}, {"min_edge": 0.02, "staking": "KELLY"},
    {"min_edge": 0.02, "staking": "kelly", "leagues": ["E0"]}, {"min_edge": 0.02, "staking": "kelly", "leagues": ["D1"]},
    {"min_edge": "0.02"}, {"min_edge": "0.02", "leagues": ["E0"]}, {"min_edge": None}, {"min_edge": 99},
    {"min_edge": 99, "run": 1}, {"min_edge": 99, "run": 1.0}, {"selections": ["home"]}, {"selections": "home"},
    {"selections": ["home", "home"]}, {"blob": {"a": [1, None, True, "x"]}}, {"blob": {"a": [1.0]}},
    {"x": "é"}, {"x": "e"}, {},
]


def test_every_variant_gets_params_fingerprint_whatever_was_asked_before():
    memo = FingerprintMemo()
    for params in random.Random(7).choices(VARIANTS, k=500):
        assert memo.of(params) == params_fingerprint(params)


def test_the_memo_is_bounded_and_still_right_when_full():
    memo = FingerprintMemo(kept=3, max_key=100)
    for params in VARIANTS * 2:
        assert memo.of(params) == params_fingerprint(params)
        assert len(memo._canonical) <= 3 and len(memo._as_sent) <= 3
    large = {"blob": "x" * 100}
    assert memo.of(large) == params_fingerprint(large) and repr(large) not in memo._as_sent
