"""The evidence gate's statistics against hand computation and the paper's worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeloop.core.evidence import (Evidence, deflated_sharpe, expected_max_sharpe, gate, sharpe_variance, shrink,
                                    yield_lcb)

GATE = dict(min_bets=30, z=1.645, min_yield_lcb=0.0, min_dsr=0.95)


def test_expected_max_sharpe_matches_bailey_and_lopez_de_prado():
    # The closed form, and SR₀ growing with the number of trials.
    n, v = 100, 0.5
    gamma = 0.5772156649015329
    from statistics import NormalDist
    z = NormalDist().inv_cdf
    assert expected_max_sharpe(n, v) == pytest.approx(math.sqrt(v) * ((1 - gamma) * z(1 - 1 / n)
                                                                       + gamma * z(1 - 1 / (n * math.e))))
    assert expected_max_sharpe(1, v) == 0.0
    assert expected_max_sharpe(1000, v) > expected_max_sharpe(100, v) > expected_max_sharpe(10, v) > 0


def test_deflated_sharpe_of_the_paper_example():
    # Bailey & López de Prado (2014), section 5: SR 2.5 annualised over 1250 daily observations
    # (0.1575 per day), skew −3, kurtosis 10, N = 100, V = 1/2 annualised (1/(2·250) per day):
    # DSR ≈ 0.9004.
    dsr = deflated_sharpe(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert dsr == pytest.approx(0.9004, abs=0.002)


def test_more_trials_deflate_more_and_no_observations_prove_nothing():
    assert deflated_sharpe(0.1, 500, 0, 3, 1000, 0.01) < deflated_sharpe(0.1, 500, 0, 3, 10, 0.01)
    assert deflated_sharpe(0.1, 1, 0, 3, 1, 0.0) == 0.0


def test_yield_lower_bound_and_no_bets():
    assert yield_lcb(0.05, 0.02, 100, 1.645) == pytest.approx(0.05 - 1.645 * 0.02)
    assert yield_lcb(0.5, 0.0, 0, 1.645) == -1.0
    assert yield_lcb(0.5, math.inf, 3, 1.645) == -1.0


def test_five_lucky_bets_never_pass_however_high_their_yield():
    # Five winners at odds 10: yield +900%, a huge Sharpe ratio per bet, a single trial.
    lucky = Evidence(total_bets=5, markets=5, roi=9.0, yield_se=0.0, bet_sharpe=50.0, return_skew=0.0,
                     return_kurtosis=3.0)
    verdict = gate(lucky, trials=1, trial_sharpe_variance=0.0, **GATE)
    assert not verdict.passed and "5 bets < 30" in verdict.reasons[0]


def test_the_same_edge_passes_alone_and_fails_as_the_best_of_many_trials():
    rng = np.random.default_rng(1)
    r = rng.normal(0.03, 0.5, 2000)  # a true edge of +3% per bet at odds near 2
    e = Evidence(total_bets=2000, markets=2000, roi=float(r.mean()), yield_se=float(r.std(ddof=1) / math.sqrt(2000)),
                 bet_sharpe=float(r.mean() / r.std(ddof=1)), return_skew=0.0, return_kurtosis=3.0)
    alone = gate(e, trials=1, trial_sharpe_variance=0.0, **GATE)
    searched = gate(e, trials=5000, trial_sharpe_variance=0.05 ** 2, **GATE)
    assert alone.deflated_sharpe > searched.deflated_sharpe
    assert not searched.passed and any("deflated Sharpe" in r for r in searched.reasons)


def test_evidence_without_per_bet_statistics_has_an_unknown_error():
    e = Evidence.of({"total_bets": 500, "roi": 0.2})
    assert yield_lcb(e.roi, e.yield_se, e.total_bets, 1.645) == -1.0


def test_sharpe_variance_and_shrink():
    assert sharpe_variance([0.1]) == 0.0
    assert sharpe_variance([0.0, 0.2]) == pytest.approx(0.02)
    assert shrink(1.0, 2, 0.4) == pytest.approx((2 + 50 * 0.4) / 52)
    assert shrink(0.6, 5000, 0.4) == pytest.approx(0.6, abs=0.002)
