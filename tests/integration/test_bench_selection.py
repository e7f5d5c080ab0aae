"""bench/selection.py through its own code on a small budget: the figures it reports, and the
pick rule really picking (with the gate opened) while "activate nothing" activates nothing."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

METHODS = ("edgeloop", "random", "tpe", "nothing")


def test_two_seeds_on_a_small_budget_report_every_figure(capsys):
    from bench import selection

    selection.main(["--seeds", "2", "--budget", "40", "--history", "200", "--json",
                    # the gate opened, so the pick rule has something to pick on a small budget
                    "--set", "gate_min_dsr=0", "--set", "gate_min_yield_lcb=-1", "--set", "activation_threshold=0"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["seeds"] == [1, 2] and figures["budget"] == 40
    assert figures["windows"]["final"] == "2024-25 … 2025-26"
    for n in METHODS:
        f = figures[n]
        assert set(f) >= {"activated_per_seed", "final_yield", "final_yield_se_search", "final_yield_se_matches",
                          "final_share_positive", "final_score", "final_yield_per_seed", "decay_activated",
                          "decay_passed_selection", "passed_selection_per_seed", "passed_gate_per_seed"}
        assert f["activated_total"] <= 2 * f["passed_selection_per_seed"]
        assert set(f["decay_activated"]) == {"selection", "validation", "final"}
    assert figures["nothing"]["activated_total"] == 0 and figures["nothing"]["final_yield"] is None
    searched = [figures[n] for n in METHODS[:3]]
    assert sum(f["activated_total"] for f in searched) > 0
    for f in searched:
        if f["activated_total"]:
            assert -1 <= f["final_yield"] and 0 <= f["final_share_positive"] <= 1
            assert all(v is not None for v in f["decay_activated"].values())
    assert set(figures["edgeloop_vs_random"]) == {"yield_diff", "se", "losing_share_diff",
                                                  "yield_at_least_within_one_se", "fewer_losing"}
