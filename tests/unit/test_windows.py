"""The three discovery windows: whole seasons, disjoint, ending with the newest season, rolling
forward as seasons are imported; the strategy model's labels come from before validation."""

from __future__ import annotations

from datetime import date

from edgeloop.core.settings import Settings
from edgeloop.mlservice.strategy_training import later_window_rows
from edgeloop.services.windows import current_windows, seasons_in, windows_through
from tests.support.processes import ROOT

DATA = str(ROOT / "data" / "football-data")


def test_the_defaults_on_the_shipped_seasons():
    s = Settings(data_dir=DATA)
    assert seasons_in(DATA, ["E0"])[0] == "2005-06" and seasons_in(DATA, ["E0"])[-1] == "2025-26"
    w = current_windows(s)
    assert (w.selection.first_season, w.selection.last_season) == ("2018-19", "2021-22")
    assert (w.validation.first_season, w.validation.last_season) == ("2022-23", "2023-24")
    assert w.final is not None and (w.final.first_season, w.final.last_season) == ("2024-25", "2025-26")
    assert w.selection.end < w.validation.start and w.validation.end < w.final.start
    assert w.final.end == date(2026, 6, 30) and w.label_cutoff == date(2022, 7, 1)


def test_a_new_season_rolls_every_window_forward():
    s = Settings(discovery_selection_seasons=3, discovery_validation_seasons=1, discovery_final_seasons=1)
    a, b = windows_through("2019-20", s), windows_through("2020-21", s)
    assert (a.selection.first_season, a.validation.first_season, a.final.first_season) == ("2015-16", "2018-19", "2019-20")
    assert (b.selection.first_season, b.validation.first_season, b.final.first_season) == ("2016-17", "2019-20", "2020-21")


def test_without_a_final_window_validation_ends_with_the_newest_season():
    w = windows_through("2019-20", Settings(discovery_final_seasons=0, discovery_validation_seasons=2))
    assert w.final is None and w.validation.last_season == "2019-20"


def test_labels_are_later_windows_of_the_same_strategy_before_the_cutoff():
    d = date
    keys = ["a", "a", "a", "b", "c", "c"]
    starts = [d(2016, 7, 1), d(2019, 7, 1), d(2021, 7, 1), d(2019, 7, 1), d(2016, 7, 1), d(2017, 7, 1)]
    ends = [d(2019, 6, 30), d(2021, 6, 30), d(2023, 6, 30), d(2021, 6, 30), d(2019, 6, 30), d(2020, 6, 30)]
    # a's second window follows its first: a label; a's third ends after the cutoff; b has one
    # window only; c's second overlaps its first (not data after the data it was chosen on).
    assert later_window_rows(keys, starts, ends, cutoff=d(2022, 7, 1)) == [1]
    assert later_window_rows(keys, starts, ends, cutoff=d(2024, 7, 1)) == [1, 2]
