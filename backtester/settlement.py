"""Exact settlement of bets: integer money, no floating-point drift.

Money is held as integers in micro-units (``MICRO`` = 10⁶ per stake unit) and stakes are
whole cents (10⁴ micro-units), odds as integer thousandths (football-data prices have at most
two or three decimals). Then every amount is an exact integer:

* BACK stake ``s`` at odds ``o``: wins ``s·(o − 1000)/1000`` (exact: ``s`` is a multiple of
  10⁴) or loses ``s``;
* LAY of a backer's stake ``s``: wins ``s`` or loses the liability ``s·(o − 1000)/1000``;
* commission on net winnings per market (one market = one event's 1X2): on a positive net
  ``n``, ``round_half_up(n × bp / 10 000)`` with the rate in basis points, like an exchange that
  charges on the market's net, not on each winning bet.

Sums of int64 are exact, so profit, turnover and the bankroll path are the same whatever the
order of addition; floats appear only in the metrics' ratios.

Kelly staking compounds: stakes on a day are sized from the bankroll after every earlier
day's settlement (matches on the same day are concurrent, so none may use another's result);
if a day's total risk would exceed the bankroll it is scaled down to fit, and betting stops at
ruin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MICRO = 1_000_000
CENT = 10_000  # micro-units in a cent
ODDS_SCALE = 1000


def to_cents_micro(units: float) -> int:
    """``units`` of stake, rounded down to a whole cent, in micro-units."""
    return int(units * 100 + 1e-9) * CENT


def odds_to_milli(odds: np.ndarray) -> np.ndarray:
    return np.rint(odds * ODDS_SCALE).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Settlement:
    """Placed bets and what they paid, all money in int64 micro-units."""

    # per placed bet, in event order
    event: np.ndarray  # window index
    selection: np.ndarray
    odds_milli: np.ndarray
    stake: np.ndarray  # backer's stake
    risk: np.ndarray  # what could be lost: the stake (back) or the liability (lay)
    won: np.ndarray  # bool: the bet won (for a lay: the selection did not)
    pnl: np.ndarray  # before commission
    # per market (event with at least one placed bet)
    market_event: np.ndarray
    market_pnl: np.ndarray  # after commission
    market_commission: np.ndarray
    # per betting day
    day: np.ndarray  # datetime64[D]
    day_pnl: np.ndarray
    bankroll_start: np.ndarray  # bankroll before the day's bets
    initial_bankroll: int
    ruined: bool = False

    @property
    def profit(self) -> int:
        return int(self.market_pnl.sum())


def _block(stake, odds_m, won, lay: bool, event, bp: int):
    """Settle a contiguous block of bets (sorted by event): (risk, pnl, market starts, market pnl, commission)."""
    win_amount = stake * (odds_m - ODDS_SCALE) // ODDS_SCALE  # exact: stake is whole cents
    if lay:
        risk = win_amount
        pnl = np.where(won, stake, -risk)
    else:
        risk = stake
        pnl = np.where(won, win_amount, -stake)
    if len(event) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return risk, pnl, empty, empty, empty
    starts = np.flatnonzero(np.r_[True, event[1:] != event[:-1]])
    net = np.add.reduceat(pnl, starts)
    commission = np.where(net > 0, (net * bp + 5000) // 10_000, 0)
    return risk, pnl, starts, net - commission, commission


def _stakes_for_bankroll(bankroll: int, fraction: np.ndarray, odds_m: np.ndarray, lay: bool) -> np.ndarray:
    """Whole-cent stakes risking ``fraction`` of ``bankroll`` each, the day's total capped at the bankroll."""
    risk_target = bankroll * fraction
    per_unit_risk = (odds_m - ODDS_SCALE) / ODDS_SCALE if lay else np.ones(len(odds_m))
    total = float((risk_target).sum())
    if total > bankroll:
        risk_target = risk_target * (bankroll / total)
    return (np.floor(risk_target / per_unit_risk / CENT).astype(np.int64)) * CENT


def settle(*, event: np.ndarray, selection: np.ndarray, odds_milli: np.ndarray, kelly: np.ndarray,
           result: np.ndarray, day: np.ndarray, lay: bool, staking: str, flat_stake: float,
           kelly_fraction: float, max_stake_fraction: float, commission: float,
           initial_bankroll: float) -> Settlement:
    """Settle bets (sorted by event, hence by day). ``result`` is the winning selection index of
    each bet's event; ``kelly`` the full-Kelly fraction of bankroll to risk on each bet."""
    bp = int(round(commission * 10_000))
    bank0 = to_cents_micro(initial_bankroll)
    won = (result != selection) if lay else (result == selection)
    if staking == "flat":
        stake = np.full(len(event), to_cents_micro(flat_stake), dtype=np.int64)
        risk, pnl, starts, mpnl, mcomm = _block(stake, odds_milli, won, lay, event, bp)
        keep = np.ones(len(event), dtype=bool)
        ruined = False
    else:
        stake, risk, pnl = (np.zeros(len(event), dtype=np.int64) for _ in range(3))
        fraction = np.minimum(kelly_fraction * kelly, max_stake_fraction)
        m_starts, m_pnl, m_comm = [], [], []
        bankroll, ruined = bank0, False
        day_starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]]) if len(day) else np.zeros(0, dtype=np.int64)
        bounds = np.r_[day_starts, len(day)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            if bankroll < CENT:
                ruined = True
                break
            s = _stakes_for_bankroll(bankroll, fraction[a:b], odds_milli[a:b], lay)
            r, p, st, mp, mc = _block(s, odds_milli[a:b], won[a:b], lay, event[a:b], bp)
            stake[a:b], risk[a:b], pnl[a:b] = s, r, p
            m_starts.append(st + a)
            m_pnl.append(mp)
            m_comm.append(mc)
            bankroll += int(mp.sum())
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)  # noqa: E731
        starts, mpnl, mcomm = cat(m_starts), cat(m_pnl), cat(m_comm)
        keep = stake > 0
        # A market whose every stake rounded to zero cents was not bet.
        market_kept = np.add.reduceat(keep.astype(np.int64), starts) > 0 if len(starts) else np.zeros(0, dtype=bool)
        starts, mpnl, mcomm = starts[market_kept], mpnl[market_kept], mcomm[market_kept]
    market_event = event[starts]
    market_day = day[starts]
    if len(market_day):
        d_starts = np.flatnonzero(np.r_[True, market_day[1:] != market_day[:-1]])
        days, day_pnl = market_day[d_starts], np.add.reduceat(mpnl, d_starts)
    else:
        days, day_pnl = market_day, mpnl
    bankroll_start = bank0 + np.r_[0, np.cumsum(day_pnl)[:-1]].astype(np.int64) if len(day_pnl) else day_pnl
    return Settlement(
        event=event[keep], selection=selection[keep], odds_milli=odds_milli[keep], stake=stake[keep],
        risk=risk[keep], won=won[keep], pnl=pnl[keep], market_event=market_event, market_pnl=mpnl,
        market_commission=mcomm, day=days, day_pnl=day_pnl, bankroll_start=bankroll_start,
        initial_bankroll=bank0, ruined=ruined,
    )
