"""Metrics of a settled backtest. Money in stake units; ratios as fractions.

* ``profit``: sum of every market's P&L after commission (exact, from integer micro-units).
* ``turnover``: sum of amounts risked: the stake of a back bet, the liability of a lay bet.
* ``roi``: profit / turnover (what bettors call *yield*); ``return_on_bankroll``:
  profit / initial bankroll.
* ``win_rate``: winning bets / bets; ``average_odds``: mean decimal odds of the bets.
* ``profit_factor``: sum of winning markets' P&L / |sum of losing markets' P&L|, after
  commission; ``PROFIT_FACTOR_CAP`` when nothing lost (the event format needs finite numbers).
* ``sharpe_ratio``, ``sortino_ratio``: the **period is one betting day** (a date with at least
  one settled bet); a day's return is its P&L over the bankroll at the start of that day. The
  bankroll is real for every staking (``settlement``): no day risks more than it holds, so a
  return is at least −1 and a losing strategy's ratios are negative.
  Sharpe = mean / standard deviation (ddof 1); Sortino = mean / downside deviation
  (root mean square of the negative returns, target 0, over all days). Both are
  **annualised by √(betting days per year)**, that rate measured over the window
  (days × 365.25 / calendar days spanned, at least one year's span assumed for shorter
  windows so a 3-day window does not annualise to ±∞-like numbers). Zero with fewer than two
  days or no dispersion; clipped to ±``RATIO_CAP``.
* ``max_drawdown``: largest fall of the bankroll from its running peak (the initial bankroll
  counts as a peak), as a fraction of that peak, in [0, 1]; 1 means ruin.
* ``ruined``: the bankroll fell below the smallest risk of any of the strategy's bets, and it
  bet no more; ``skipped_bankroll``: bets chosen but not placed because the bankroll could
  not pay their risk; ``skipped_max_arbitrage``: events not bet at ``MAX``/``MAXC`` because
  their maximum prices add up to less than 100% (``execution``).
* ``closing_line_value``: mean over bets with a closing price of the edge against the
  de-margined Pinnacle closing price (or, without it, the price source's own closing price):
  back ``o·p_close − 1``, lay ``(1 − o·p_close)/(o − 1)``. Positive = beating the close.
* ``backtest_score``: ``edgeloop.core.scoring.backtest_score`` (the one definition).
* Per-bet statistics, what ``edgeloop.core.evidence`` judges how much a backtest proves by. A
  market's return is its P&L after commission over what its bets risked; ``markets`` counts
  the markets bet. ``yield_se``: standard error of the yield as a ratio estimator,
  √(Σ (pnlⱼ − yield·riskⱼ)² · m/(m−1)) / Σ riskⱼ over the m markets (any staking);
  ``bet_sharpe``: mean / standard deviation (ddof 1) of the market returns, not annualised;
  ``return_skew``, ``return_kurtosis``: their skewness and (non-excess) kurtosis. With fewer
  than two markets the error is infinite and the Sharpe ratio 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from edgeloop.backtester.settlement import MICRO, ODDS_SCALE, Settlement
from edgeloop.core.scoring import backtest_score

PROFIT_FACTOR_CAP = 100.0
RATIO_CAP = 100.0


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _annualised(returns: np.ndarray, days: np.ndarray) -> tuple[float, float]:
    if len(returns) < 2:
        return 0.0, 0.0
    span = int((days[-1] - days[0]).astype(int)) + 1
    per_year = len(returns) * 365.25 / max(span, 365.25)
    scale = math.sqrt(per_year)
    mean = float(returns.mean())
    sd = float(returns.std(ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    clip = lambda x: max(-RATIO_CAP, min(RATIO_CAP, x))  # noqa: E731
    sharpe = clip(mean / sd * scale) if sd > 0 else 0.0
    sortino = clip(mean / downside * scale) if downside > 0 else (RATIO_CAP if mean > 0 else 0.0)
    return sharpe, sortino


@dataclass(frozen=True, slots=True)
class PerBet:
    markets: int
    yield_se: float
    bet_sharpe: float
    return_skew: float
    return_kurtosis: float


def per_bet(s: Settlement) -> PerBet:
    m = len(s.market_pnl)
    if m < 2:
        return PerBet(m, math.inf, 0.0, 0.0, 3.0)
    starts = np.flatnonzero(np.r_[True, s.event[1:] != s.event[:-1]])  # bets are sorted by event
    risk = np.add.reduceat(s.risk, starts).astype(float)
    pnl = s.market_pnl.astype(float)
    y = pnl.sum() / risk.sum()
    se = math.sqrt(float(((pnl - y * risk) ** 2).sum()) * m / (m - 1)) / float(risk.sum())
    r = pnl / risk
    sd = float(r.std(ddof=1))
    if sd <= 0:
        return PerBet(m, se, 0.0, 0.0, 3.0)
    z = (r - r.mean()) / float(r.std())
    return PerBet(m, se, float(r.mean()) / sd, float((z ** 3).mean()), float((z ** 4).mean()))


def max_drawdown(initial: int, day_pnl: np.ndarray) -> float:
    path = initial + np.cumsum(day_pnl)
    peak = np.maximum.accumulate(np.r_[initial, path])[1:]
    if not len(path):
        return 0.0
    dd = np.where(peak > 0, (peak - path) / np.where(peak > 0, peak, 1), 1.0)
    return float(min(1.0, max(0.0, dd.max())))


@dataclass(frozen=True, slots=True)
class Metrics:
    total_bets: int
    profit: float
    turnover: float
    roi: float
    return_on_bankroll: float
    win_rate: float
    average_odds: float
    profit_factor: float
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float
    closing_line_value: float | None
    clv_bets: int
    commission: float
    final_bankroll: float
    backtest_score: float
    events: int
    skipped_no_price: int
    skipped_no_prediction: int
    skipped_max_arbitrage: int
    skipped_bankroll: int
    ruined: bool
    markets: int
    yield_se: float
    bet_sharpe: float
    return_skew: float
    return_kurtosis: float

    def as_dict(self) -> dict:
        return asdict(self)


def compute_metrics(s: Settlement, *, clv: np.ndarray | None, events: int, skipped_no_price: int,
                    skipped_no_prediction: int, skipped_max_arbitrage: int = 0) -> Metrics:
    """``clv``: per placed bet, the closing-line edge (NaN where no closing price)."""
    n = len(s.event)
    profit_micro = int(s.market_pnl.sum())
    turnover_micro = int(s.risk.sum())
    wins = int(s.market_pnl[s.market_pnl > 0].sum())
    losses = -int(s.market_pnl[s.market_pnl < 0].sum())
    pf = (wins / losses) if losses else (PROFIT_FACTOR_CAP if wins else 0.0)
    returns = s.day_pnl / np.where(s.bankroll_start > 0, s.bankroll_start, 1)
    sharpe, sortino = _annualised(returns.astype(float), s.day)
    mdd = max_drawdown(s.initial_bankroll, s.day_pnl)
    clv_ok = clv[np.isfinite(clv)] if clv is not None else np.zeros(0)
    win_rate = _ratio(int(s.won.sum()), n)
    bets = per_bet(s)
    roi = _ratio(profit_micro, turnover_micro)
    return Metrics(
        total_bets=n,
        profit=profit_micro / MICRO,
        turnover=turnover_micro / MICRO,
        roi=roi,
        return_on_bankroll=_ratio(profit_micro, s.initial_bankroll),
        win_rate=win_rate,
        average_odds=float(s.odds_milli.mean() / ODDS_SCALE) if n else 0.0,
        profit_factor=min(pf, PROFIT_FACTOR_CAP),
        sharpe_ratio=sharpe,
        sortino_ratio=sortino,
        max_drawdown=mdd,
        closing_line_value=float(math.fsum(clv_ok) / len(clv_ok)) if len(clv_ok) else None,
        clv_bets=int(len(clv_ok)),
        commission=int(s.market_commission.sum()) / MICRO,
        final_bankroll=(s.initial_bankroll + profit_micro) / MICRO,
        backtest_score=backtest_score(sharpe_ratio=sharpe, roi=roi, profit_factor=min(pf, PROFIT_FACTOR_CAP),
                                      max_drawdown=mdd, win_rate=win_rate, total_bets=n),
        events=events,
        skipped_no_price=skipped_no_price,
        skipped_no_prediction=skipped_no_prediction,
        skipped_max_arbitrage=skipped_max_arbitrage,
        skipped_bankroll=s.skipped_bankroll,
        ruined=s.ruined,
        markets=bets.markets,
        yield_se=bets.yield_se,
        bet_sharpe=bets.bet_sharpe,
        return_skew=bets.return_skew,
        return_kurtosis=bets.return_kurtosis,
    )


@dataclass(frozen=True, slots=True)
class SeasonRow:
    season: str
    bets: int
    turnover: float
    profit: float
    roi: float
    win_rate: float


def per_season(s: Settlement, seasons: np.ndarray) -> list[SeasonRow]:
    """Per-season breakdown: one row per season of the window (``seasons`` is the window's
    array). The same fixed parameters in every season; nothing is chosen on any of them.

    Grouped with ``np.unique`` + ``np.bincount`` on fixed-width strings: one pass, not one mask
    per season (this was half of a backtest's time)."""
    names, inverse = np.unique(np.asarray(seasons, dtype=str), return_inverse=True)
    k = len(names)
    bet_group, market_group = inverse[s.event], inverse[s.market_event]
    count = lambda g, w=None: np.bincount(g, weights=w, minlength=k)  # noqa: E731
    bets = count(bet_group).astype(np.int64)
    # Money sums stay integer: bincount's float weights would reintroduce rounding.
    profit = np.zeros(k, dtype=np.int64)
    np.add.at(profit, market_group, s.market_pnl)
    turnover = np.zeros(k, dtype=np.int64)
    np.add.at(turnover, bet_group, s.risk)
    won = count(bet_group, s.won.astype(float)).astype(np.int64)
    return [SeasonRow(str(names[i]), int(bets[i]), int(turnover[i]) / MICRO, int(profit[i]) / MICRO,
                      _ratio(int(profit[i]), int(turnover[i])), _ratio(int(won[i]), int(bets[i])))
            for i in range(k) if bets[i]]
