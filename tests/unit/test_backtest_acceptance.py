"""Issue 5's acceptance checks on the shipped data (no services needed)."""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.strategy import Strategy
from edgeloop.marketdata.arrays import clear_cache

DATA = Path(__file__).resolve().parents[2] / "data" / "football-data"
KAUNITZ = Strategy(name="kaunitz", price_source="MAX", market_probability_source="AVG", min_edge=0.05)


def plain_kaunitz(league: str, margin: float = 0.05) -> dict[str, tuple[int, Fraction]]:
    """The strategy computed straight from the CSV files, sharing no code with marketdata or the
    engine: for each selection, de-margin the average prices (1/avg over the sum of 1/avg) and
    back 1 unit at the maximum price when p·max − 1 > margin. Profit in exact fractions."""
    out: dict[str, tuple[int, Fraction]] = {}
    for path in sorted(DATA.glob(f"{league}_*.csv")):
        season = path.stem.split("_")[1]
        bets, profit = 0, Fraction(0)
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                if not (row.get("FTR") or "").strip():
                    continue
                avg = [row.get(f"BbAv{s}") or row.get(f"Avg{s}") for s in "HDA"]
                mx = [row.get(f"BbMx{s}") or row.get(f"Max{s}") for s in "HDA"]
                try:
                    avg_f, max_f = [float(x) for x in avg], [float(x) for x in mx]
                except (TypeError, ValueError):
                    continue
                implied = [1 / a for a in avg_f]
                for k, s in enumerate("HDA"):
                    p = implied[k] / sum(implied)
                    if max_f[k] > 1 and p * max_f[k] - 1 > margin:
                        bets += 1
                        price = Fraction(mx[k].strip())
                        profit += (price - 1) if row["FTR"].strip() == s else -1
        out[season] = (bets, profit)
    return out


@pytest.mark.parametrize("league", ["E0", "D1"])
def test_kaunitz_matches_a_plain_computation_from_the_csv_files(league):
    expected = plain_kaunitz(league)
    result = backtest(KAUNITZ, Window(date(2005, 7, 1), date(2026, 6, 30), (league,)))
    got = {r.season: (r.bets, r.profit) for r in result.seasons}
    assert set(got) == {s for s, (b, _) in expected.items() if b}
    for season, (bets, profit) in got.items():
        assert (bets, profit) == (expected[season][0], float(expected[season][1])), season
    total_bets = sum(b for b, _ in expected.values())
    total_profit = sum((p for _, p in expected.values()), Fraction(0))
    assert result.metrics.total_bets == total_bets > 2000
    assert result.metrics.profit == float(total_profit)
    # No double-digit yield over thousands of bets on these efficient leagues.
    assert abs(result.metrics.roi) < 0.10


def _rewrite_results_from(src: Path, dst: Path, first_changed: date) -> None:
    """Copy the CSVs, flipping every result (and score) on or after ``first_changed``."""
    flip = {"H": ("A", "0", "1"), "A": ("H", "1", "0"), "D": ("H", "1", "0")}
    for path in src.glob("E0_*.csv"):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
        head = rows[0]
        ftr, hg, ag, dcol = head.index("FTR"), head.index("FTHG"), head.index("FTAG"), head.index("Date")
        for row in rows[1:]:
            if len(row) > ftr and row[ftr] in flip:
                d, m, y = row[dcol].split("/")
                day = datetime.strptime(f"{d}/{m}/{y[-2:]}", "%d/%m/%y").date()
                if day >= first_changed:
                    row[ftr], row[hg], row[ag] = flip[row[ftr]]
        with (dst / path.name).open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)


@pytest.mark.parametrize("staking", ["flat", "kelly"])
def test_results_after_the_window_cannot_change_its_backtest(tmp_path, staking):
    original, changed = tmp_path / "original", tmp_path / "changed"
    original.mkdir(), changed.mkdir()
    for p in DATA.glob("E0_*.csv"):
        shutil.copy(p, original)
    _rewrite_results_from(DATA, changed, first_changed=date(2018, 8, 1))
    strategy = Strategy(name="k", price_source="MAX", min_edge=0.02, staking=staking)
    clear_cache()
    window = Window(date(2014, 7, 1), date(2018, 7, 31), ("E0",))
    a = backtest(strategy, window, data_dir=str(original))
    b = backtest(strategy, window, data_dir=str(changed))
    assert a.metrics == b.metrics and a.seasons == b.seasons
    # The change is real: a window that includes the changed season does see it.
    later = Window(date(2014, 7, 1), date(2019, 7, 31), ("E0",))
    assert backtest(strategy, later, data_dir=str(original)).metrics != backtest(strategy, later, data_dir=str(changed)).metrics
