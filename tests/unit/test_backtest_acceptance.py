"""Acceptance checks on the shipped data (no services needed): the Kaunitz strategy against a
plain computation from the CSV files, and results after a window that cannot change it."""

from __future__ import annotations

import csv
import itertools
import math
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from edgeloop.backtester.execution import ExecutionTerms
from edgeloop.backtester.report import backtest_id
from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.strategy import Strategy, load_strategy
from edgeloop.marketdata.arrays import clear_cache

DATA = Path(__file__).resolve().parents[2] / "data" / "football-data"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kaunitz.json"


@dataclass
class Plain:
    seasons: dict[str, tuple[int, Fraction]] = field(default_factory=dict)  # season -> (bets, profit)
    bankroll: Fraction = Fraction(0)
    ruined: bool = False
    day_returns: list[Fraction] = field(default_factory=list)

    @property
    def bets(self) -> int:
        return sum(b for b, _ in self.seasons.values())

    @property
    def profit(self) -> Fraction:
        return sum((p for _, p in self.seasons.values()), Fraction(0))


def _day(text: str) -> date:
    d, m, y = text.strip().split("/")
    return date(int(y) + (2000 if len(y) == 2 else 0), int(m), int(d))


def _slug(team: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", team.strip()).strip("_")


def plain_kaunitz(league: str, bankroll: int, margin: float = 0.05, keep_arbitrage: bool = False) -> Plain:
    """The strategy computed straight from the CSV files, sharing no code with marketdata or the
    engine. Skip a match whose maximum prices add up to less than 100% (unless kept); de-margin
    the average prices (1/avg over the sum of 1/avg) and back 1 unit at the maximum price when
    p·max − 1 > margin. Matches of one date are concurrent: in kick-off order, a bet is placed
    only while the bankroll at the start of the date still covers it; below one unit the
    bettor is ruined and stops. Money in exact fractions."""
    matches = []
    for path in sorted(DATA.glob(f"{league}_*.csv")):
        season = path.stem.split("_")[1]
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                result = (row.get("FTR") or "").strip()
                avg = [row.get(f"BbAv{s}") or row.get(f"Avg{s}") for s in "HDA"]
                mx = [row.get(f"BbMx{s}") or row.get(f"Max{s}") for s in "HDA"]
                try:
                    avg_f, max_f = [float(x) for x in avg], [float(x) for x in mx]
                except (TypeError, ValueError):
                    continue
                if not result or (not keep_arbitrage and sum(1 / m for m in max_f) < 1):
                    continue
                implied = [1 / a for a in avg_f]
                bets = [(k, Fraction(mx[k].strip())) for k in range(3)
                        if max_f[k] > 1 and implied[k] / sum(implied) * max_f[k] - 1 > margin]
                matches.append((_day(row["Date"]), (row.get("Time") or "").strip() or "00:00",
                                _slug(row["HomeTeam"]), _slug(row["AwayTeam"]), season, result, bets))
    matches.sort(key=lambda m: m[:4])
    out = Plain(bankroll=Fraction(bankroll))
    for _, day_matches in itertools.groupby(matches, key=lambda m: m[0]):
        day_matches = [m for m in day_matches if m[6]]
        if not day_matches:
            continue
        if out.bankroll < 1:
            out.ruined = True
            break
        start, free, day_pnl = out.bankroll, out.bankroll, Fraction(0)
        for *_, season, result, bets in day_matches:
            for k, price in bets:
                if free < 1:
                    continue
                free -= 1
                pnl = price - 1 if result == "HDA"[k] else Fraction(-1)
                n, p = out.seasons.get(season, (0, Fraction(0)))
                out.seasons[season] = (n + 1, p + pnl)
                day_pnl += pnl
        out.bankroll += day_pnl
        out.day_returns.append(day_pnl / start)
    out.ruined = out.ruined or out.bankroll < 1
    return out


def assert_same(result, plain: Plain) -> None:
    got = {r.season: (r.bets, r.profit) for r in result.seasons}
    assert got == {s: (b, float(p)) for s, (b, p) in plain.seasons.items() if b}
    m = result.metrics
    assert (m.total_bets, m.profit, m.turnover) == (plain.bets, float(plain.profit), float(plain.bets))
    assert m.roi == pytest.approx(float(plain.profit / plain.bets), abs=1e-12)
    assert m.final_bankroll == float(plain.bankroll) and m.ruined == plain.ruined


def test_kaunitz_example_on_e0_loses_and_its_ratios_say_so():
    # Given the shipped example (flat 1-unit stakes from a bankroll of 1,000) on every E0 season
    strategy = load_strategy(EXAMPLE)
    result = backtest(strategy, Window(date(2005, 7, 1), date(2026, 6, 30), ("E0",)))
    plain = plain_kaunitz("E0", bankroll=1000)
    # Then bets, yield and final bankroll are the plain computation's, season by season
    assert_same(result, plain)
    assert plain.bets > 1000 and plain.profit < 0 and not plain.ruined
    # And a losing strategy has negative risk-adjusted ratios
    assert sum(plain.day_returns) < 0
    assert result.metrics.sharpe_ratio < 0 and result.metrics.sortino_ratio < 0
    assert 0 < result.metrics.max_drawdown < 1


def test_kaunitz_flat_stakes_stop_at_ruin():
    # Given a bankroll of 100 units, which the E0 losses exhaust within three seasons
    strategy = replace(load_strategy(EXAMPLE), initial_bankroll=100.0)
    result = backtest(strategy, Window(date(2005, 7, 1), date(2026, 6, 30), ("E0",)))
    plain = plain_kaunitz("E0", bankroll=100)
    assert_same(result, plain)
    m = result.metrics
    # Then betting stops once the bankroll cannot pay a stake, and it never goes below zero
    assert plain.ruined and m.ruined and 0 <= m.final_bankroll < 1 and m.skipped_bankroll > 0
    assert max(r.season for r in result.seasons) < "2008-09"
    assert m.sharpe_ratio < 0 and m.sortino_ratio < 0 and m.max_drawdown > 0.99
    assert any(note.startswith("ruined") for note in result.notes)


def test_kaunitz_on_d1_matches_the_plain_computation():
    result = backtest(load_strategy(EXAMPLE), Window(date(2005, 7, 1), date(2026, 6, 30), ("D1",)))
    assert_same(result, plain_kaunitz("D1", bankroll=1000))
    # Within two standard errors of zero on this efficient league: a flat bet at odds o that
    # wins about 1/o of the time returns with a standard deviation of about √(o − 1).
    m = result.metrics
    assert m.total_bets > 1000 and abs(m.roi) < 2 * math.sqrt((m.average_odds - 1) / m.total_bets)


def test_arbitrage_maximum_prices_are_skipped_unless_the_setting_keeps_them():
    strategy, window = load_strategy(EXAMPLE), Window(date(2005, 7, 1), date(2026, 6, 30), ("E0",))
    skipped = backtest(strategy, window)
    kept = backtest(strategy, window, terms=ExecutionTerms(keep_max_arbitrage=True))
    assert_same(kept, plain_kaunitz("E0", bankroll=1000, keep_arbitrage=True))
    assert kept.metrics.skipped_max_arbitrage == 0 < skipped.metrics.skipped_max_arbitrage
    assert kept.metrics.total_bets > skipped.metrics.total_bets
    assert backtest_id(kept) != backtest_id(skipped)


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
