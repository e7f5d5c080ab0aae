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

The bankroll is real money for both stakings: bets on one day are concurrent (none may use
another's result), and together they never risk more than the bankroll at the start of the
day, so the bankroll never goes below zero. Kelly stakes are sized from that bankroll and a
day's are scaled down together to fit; a flat bet that no longer fits is not placed. Betting
stops at ruin, when the bankroll is below the smallest risk any bet could take.
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
    ruined: bool = False  # the bankroll fell below the smallest bet's risk: no more bets
    skipped_bankroll: int = 0  # bets chosen but not placed: the bankroll could not pay their risk

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


def _risk_of(stake: np.ndarray, odds_m: np.ndarray, lay: bool) -> np.ndarray:
    """What a bet can lose: its stake (back) or its liability (lay), exact integers."""
    return stake * (odds_m - ODDS_SCALE) // ODDS_SCALE if lay else stake


def _stakes_within_bankroll(wanted: np.ndarray, odds_m: np.ndarray, won: np.ndarray, event: np.ndarray,
                            day: np.ndarray, lay: bool, bp: int, bankroll: int, *,
                            floor: int, kelly: bool) -> tuple[np.ndarray, int]:
    """Whole-cent stakes day by day, never risking more than the bankroll holds; returns
    (stakes, bets skipped for want of bankroll).

    ``wanted`` is per bet the fraction of the bankroll to risk (Kelly: scaled down together
    when a day's fractions add up to more than 1) or the flat stake in micro-units (a flat bet
    whose risk no longer fits in what the day's earlier bets left is not placed). Below
    ``floor`` (ruin) nothing more can be placed and betting stops.

    A plain Python loop over bets on Python ints: at ~3 bets per betting day, numpy's per-call
    overhead on such small slices costs more than it saves. Only the stakes leave this loop;
    the money is then settled by ``_block`` in one vectorised pass.
    """
    odds, wins, events = odds_m.tolist(), won.tolist(), event.tolist()
    per_unit = [(o - ODDS_SCALE) / ODDS_SCALE for o in odds] if lay else [1.0] * len(odds)
    want = wanted.tolist()
    stakes = [0] * len(odds)
    skipped = 0
    bounds = (np.flatnonzero(np.r_[True, day[1:] != day[:-1]]).tolist() if len(day) else []) + [len(day)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if bankroll < floor:
            return np.array(stakes, dtype=np.int64), skipped + len(odds) - a
        if kelly:
            targets = [bankroll * want[i] for i in range(a, b)]
            total = sum(targets)
            if total > bankroll:  # the day's bets together may not risk more than the bankroll
                targets = [t * (bankroll / total) for t in targets]
            for i, target in zip(range(a, b), targets):
                stakes[i] = int(target / per_unit[i] / CENT) * CENT
        else:
            free = bankroll
            for i in range(a, b):
                risk = want[i] * (odds[i] - ODDS_SCALE) // ODDS_SCALE if lay else want[i]
                if risk <= free:
                    stakes[i], free = want[i], free - risk
                else:
                    skipped += 1
        net_by_event: dict[int, int] = {}
        for i in range(a, b):
            win_amount = stakes[i] * (odds[i] - ODDS_SCALE) // ODDS_SCALE
            pnl = (stakes[i] if wins[i] else -win_amount) if lay else (win_amount if wins[i] else -stakes[i])
            net_by_event[events[i]] = net_by_event.get(events[i], 0) + pnl
        for net in net_by_event.values():
            bankroll += net - ((net * bp + 5000) // 10_000 if net > 0 else 0)
    return np.array(stakes, dtype=np.int64), skipped


def _days(market_day: np.ndarray, market_pnl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(market_day):
        return market_day, market_pnl
    starts = np.flatnonzero(np.r_[True, market_day[1:] != market_day[:-1]])
    return market_day[starts], np.add.reduceat(market_pnl, starts)


def _flat_fits_everywhere(stake: np.ndarray, odds_m: np.ndarray, won: np.ndarray, event: np.ndarray,
                          day: np.ndarray, lay: bool, bp: int, bankroll: int) -> bool:
    """Whether every flat bet fits in the bankroll at the start of its day when all are
    placed: then the bankroll loop would place them all, and it is skipped."""
    _, _, starts, mpnl, _ = _block(stake, odds_m, won, lay, event, bp)
    if not len(starts):
        return True
    _, day_pnl = _days(day[starts], mpnl)
    start_of_day = bankroll + np.r_[0, np.cumsum(day_pnl)[:-1]]
    d_starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    day_risk = np.add.reduceat(_risk_of(stake, odds_m, lay), d_starts)
    return bool((day_risk <= start_of_day).all())


def settle(*, event: np.ndarray, selection: np.ndarray, odds_milli: np.ndarray, kelly: np.ndarray,
           result: np.ndarray, day: np.ndarray, lay: bool, staking: str, flat_stake: float,
           kelly_fraction: float, max_stake_fraction: float, commission: float,
           initial_bankroll: float) -> Settlement:
    """Settle bets (sorted by event, hence by day). ``result`` is the winning selection index of
    each bet's event; ``kelly`` the full-Kelly fraction of bankroll to risk on each bet."""
    bp = int(round(commission * 10_000))
    bank0 = to_cents_micro(initial_bankroll)
    won = (result != selection) if lay else (result == selection)
    chosen, skipped = len(event), 0
    if staking == "flat":
        stake = np.full(len(event), to_cents_micro(flat_stake), dtype=np.int64)
        # Ruin: less than the smallest risk any chosen bet takes, so no bet fits any more.
        floor = max(CENT, int(_risk_of(stake, odds_milli, lay).min())) if len(event) else CENT
        if not _flat_fits_everywhere(stake, odds_milli, won, event, day, lay, bp, bank0):
            stake, skipped = _stakes_within_bankroll(stake, odds_milli, won, event, day, lay, bp, bank0,
                                                     floor=floor, kelly=False)
    else:
        floor = CENT
        fraction = np.minimum(kelly_fraction * kelly, max_stake_fraction)
        stake, skipped = _stakes_within_bankroll(fraction, odds_milli, won, event, day, lay, bp, bank0,
                                                 floor=floor, kelly=True)
    placed = stake > 0  # not placed: no room in the bankroll, or a stake that rounds to zero cents
    event, selection, odds_milli, won, day, stake = (a[placed] for a in (event, selection, odds_milli, won, day, stake))
    risk, pnl, starts, mpnl, mcomm = _block(stake, odds_milli, won, lay, event, bp)
    market_event = event[starts]
    days, day_pnl = _days(day[starts], mpnl)
    bankroll_start = bank0 + np.r_[0, np.cumsum(day_pnl)[:-1]].astype(np.int64) if len(day_pnl) else day_pnl
    return Settlement(
        event=event, selection=selection, odds_milli=odds_milli, stake=stake,
        risk=risk, won=won, pnl=pnl, market_event=market_event, market_pnl=mpnl,
        market_commission=mcomm, day=days, day_pnl=day_pnl, bankroll_start=bankroll_start,
        initial_bankroll=bank0, ruined=chosen > 0 and bank0 + int(mpnl.sum()) < floor,
        skipped_bankroll=skipped,
    )
