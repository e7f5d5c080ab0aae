"""Which outcome version serves season S: chosen on the seasons before S, never on S.

A *lineage* is one version per season, each fitted on the played events before its season
(``outcome_model.walk_forward``); its record on a season T is the log-loss of its version for T
on T's played events, which that version never saw. Two choices are made for each season S,
both by the pooled log-loss of the lineages' records on the ``SELECTION_SEASONS`` seasons
before S that every compared lineage has a version for:

1. the regularisation: one lineage per C in ``C_GRID``; S gets the version of the lineage with
   the lowest log-loss there (walk-forward tuning). Without an earlier season to judge on, S
   gets ``DEFAULT_C``'s version, a prior fixed before any season was scored;
2. champion/challenger: that version serves S only if its lineage did at least as well as the
   lineage that served before this training job (the serving version of each earlier season).

Nothing of season S or later enters either choice: changing any result from S on cannot
change which version serves S (``tests/unit/ml/test_outcome_selection.py``). A season's own
log-loss is therefore held out from every choice that shaped its version, so the held-out
table counts every season whose choice had at least one earlier season to look at
(``Decision.judged_on``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from edgeloop.mlservice.features import FeatureSet
from edgeloop.mlservice.outcome_model import DEFAULT_C, EPS, OutcomeModel, SeasonVersion, season_starts, walk_forward

# The L2 grid the walk-forward tuning picks from (inverse strength per summed log-loss). Its
# range is a design choice; the value used for a season is chosen on earlier seasons only.
C_GRID = (0.0001, 0.001, 0.01)
SELECTION_SEASONS = 3  # earlier seasons a choice looks at: recent enough to reflect the market now
TOLERANCE = 1e-9  # "at least as good": equal log-loss keeps the newer version

Record = dict[str, tuple[float, int]]  # season -> (summed log-loss, played events)


@dataclass(frozen=True)
class Decision:
    """What serves ``season``: ``version`` if ``serve``, else the champion stays."""

    season: str
    version: SeasonVersion
    serve: bool
    note: str
    judged_on: tuple[str, ...]  # the earlier seasons the choices looked at


def record(models: Mapping[str, OutcomeModel], fs: FeatureSet) -> Record:
    """Each season's summed log-loss of the season's own version, on its played events."""
    out: Record = {}
    for season, model in models.items():
        idx = np.flatnonzero((fs.seasons == season) & (fs.results >= 0))
        if len(idx) == 0:
            continue
        p = model.predict_proba(fs.X[idx])
        y = fs.results[idx].astype(int)
        out[season] = (float(-np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0)).sum()), len(idx))
    return out


def pooled(rec: Record, seasons: Sequence[str]) -> float:
    total, n = (sum(x) for x in zip(*(rec[s] for s in seasons)))
    return total / n


def earlier_seasons(order: Sequence[str], season: str, *records: Record) -> tuple[str, ...]:
    """The last ``SELECTION_SEASONS`` seasons before ``season`` that every record covers."""
    before = order[:order.index(season)]
    return tuple([s for s in before if all(s in r for r in records)][-SELECTION_SEASONS:])


@dataclass(frozen=True)
class Lineages:
    """One walk-forward lineage per C of the grid, with their records."""

    versions: dict[float, dict[str, SeasonVersion]]
    records: dict[float, Record]
    order: tuple[str, ...]  # seasons, chronologically

    @classmethod
    def fit(cls, fs: FeatureSet, grid: Sequence[float] = C_GRID) -> "Lineages":
        versions = {C: {v.season: v for v in walk_forward(fs, C=C)} for C in grid}
        records = {C: record({s: v.model for s, v in vs.items()}, fs) for C, vs in versions.items()}
        return cls(versions, records, tuple(s for s, _ in season_starts(fs)))

    @property
    def seasons(self) -> list[str]:
        first = next(iter(self.versions.values()))
        return [s for s in self.order if s in first]

    def tuned(self, season: str) -> tuple[float, tuple[str, ...]]:
        """(C, the seasons it was chosen on) for ``season``."""
        judged_on = earlier_seasons(self.order, season, *self.records.values())
        if not judged_on:
            return (DEFAULT_C if DEFAULT_C in self.versions else next(iter(self.versions))), ()
        return min(self.versions, key=lambda C: pooled(self.records[C], judged_on)), judged_on


def decide(lineages: Lineages, fs: FeatureSet, champions: Mapping[str, OutcomeModel]) -> list[Decision]:
    """One decision per season the lineages cover, oldest first. ``champions``: season → the
    version serving it before this training job."""
    champion_record = record(champions, fs)
    out = []
    for season in lineages.seasons:
        C, tuned_on = lineages.tuned(season)
        version = lineages.versions[C][season]
        rec = lineages.records[C]
        tuning = f"C={C:g} chosen on {', '.join(tuned_on)}" if tuned_on else f"C={C:g} (prior: no earlier season)"
        if season not in champions:
            out.append(Decision(season, version, True, f"first version of its season; {tuning}", tuned_on))
            continue
        common = earlier_seasons(lineages.order, season, rec, champion_record)
        if not common:
            out.append(Decision(season, version, True, f"no earlier season to compare with the champion on; {tuning}",
                                tuned_on))
            continue
        new, old = pooled(rec, common), pooled(champion_record, common)
        judged_on = tuple(sorted(set(tuned_on) | set(common), key=lineages.order.index))
        on = ", ".join(common)
        if new <= old + TOLERANCE:
            out.append(Decision(season, version, True, f"log-loss {new:.5f} ≤ champion's {old:.5f} on {on}; {tuning}",
                                judged_on))
        else:
            out.append(Decision(season, version, False, f"log-loss {new:.5f} > champion's {old:.5f} on {on}; {tuning}",
                                judged_on))
    return out
