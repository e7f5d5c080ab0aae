"""The three windows of a discovery run, in whole seasons, rolling forward with the data.

    … | selection (s seasons) | validation (v seasons) | final (f seasons, ends with the newest) |

Candidates are generated, backtested and filtered on *selection*; those passing the selection
gate are backtested again on *validation*, and activation is decided on that evidence alone;
*final* is never used for a decision by the product (``bench/selection.py`` reports on it).
The newest season is ``discovery_through_season`` or, unset, the newest season of the
discovery leagues in ``data_dir``: importing a season moves every window one season on
(walk-forward). A season "2016-17" is 2016-07-01 … 2017-06-30.

The strategy model's labels must come from before the validation window
(``label_cutoff``): a model that saw the validation window's results would judge it with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Iterable

from edgeloop.core.errors import ConfigurationError
from edgeloop.core.settings import Settings
from edgeloop.marketdata.arrays import resolve_data_dir
from edgeloop.marketdata.csv import csv_files, league_of_file

_SEASON = re.compile(r"(?P<start>\d{4})-(?P<end>\d{2})")
SELECTION, VALIDATION, FINAL = "selection", "validation", "final"


def season_start_year(season: str) -> int:
    m = _SEASON.fullmatch(season)
    if m is None:
        raise ConfigurationError(f"not a season: {season!r} (expected e.g. 2016-17)")
    return int(m["start"])


def season_name(start_year: int) -> str:
    return f"{start_year}-{(start_year + 1) % 100:02d}"


@dataclass(frozen=True, slots=True)
class Span:
    """A window of whole seasons."""

    kind: str
    first_season: str
    last_season: str

    @property
    def start(self) -> date:
        return date(season_start_year(self.first_season), 7, 1)

    @property
    def end(self) -> date:
        return date(season_start_year(self.last_season) + 1, 6, 30)

    def contains(self, start: date, end: date) -> bool:
        return self.start <= start and end <= self.end

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "seasons": f"{self.first_season} … {self.last_season}",
                "start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True, slots=True)
class Windows:
    selection: Span
    validation: Span
    final: Span | None  # None with discovery_final_seasons = 0

    @property
    def label_cutoff(self) -> date:
        """The strategy model may learn from results of windows ending before this."""
        return self.validation.start

    def as_dict(self) -> dict[str, dict[str, str] | None]:
        return {SELECTION: self.selection.as_dict(), VALIDATION: self.validation.as_dict(),
                FINAL: self.final.as_dict() if self.final else None}


def windows_through(through_season: str, s: Settings) -> Windows:
    """The windows whose final window ends with ``through_season`` (validation does, when
    there is no final window)."""
    last = season_start_year(through_season)
    f, v, n = s.discovery_final_seasons, s.discovery_validation_seasons, s.discovery_selection_seasons
    final = Span(FINAL, season_name(last - f + 1), season_name(last)) if f else None
    v_last = last - f
    validation = Span(VALIDATION, season_name(v_last - v + 1), season_name(v_last))
    s_last = v_last - v
    return Windows(Span(SELECTION, season_name(s_last - n + 1), season_name(s_last)), validation, final)


def seasons_in(data_dir: str, leagues: Iterable[str]) -> list[str]:
    """The seasons with a CSV file of any of ``leagues`` (``LEAGUE_YYYY-YY.csv``), sorted."""
    wanted, found, folder = set(leagues), set(), resolve_data_dir(data_dir)
    if not folder.exists():
        return []
    for path in csv_files([folder]):
        m = _SEASON.search(path.name)
        if m and league_of_file(path) in wanted:
            found.add(m.group(0))
    return sorted(found)


def current_windows(s: Settings) -> Windows:
    through = s.discovery_through_season
    if not through:
        seasons = seasons_in(s.data_dir, s.discovery_leagues)
        if not seasons:
            raise ConfigurationError(f"no season files of {s.discovery_leagues} in {s.data_dir}: "
                                     "import data or set discovery_through_season")
        through = seasons[-1]
    return windows_through(through, s)
