"""The demo's report: Markdown, a JSON file of the evidence and three PNG charts, from what
the loop stored.

Each figure says which window it comes from (``edgeloop.demo.evidence``): candidates are
chosen on the selection window; validation and final yields are on later seasons no round
has seen. A headline strategy, a round's best, has at least ``min_bets_for_activation`` bets on
the selection window: a ranking over fewer bets is mostly luck.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sqlalchemy import select

from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.probability import demargin
from edgeloop.core.statuses import ModelStatus, StrategyStatus
from edgeloop.demo.evidence import (
    FAVOURITE, WINDOW_NAMES, Evidence, PinnacleFavourite, Windows, bankroll_by_date, demo_windows, gather)
from edgeloop.marketdata.arrays import load_window
from edgeloop.mlclient import get_cached_ml_client, get_ml_client
from edgeloop.schema.lifecycle import DiscoveryReport, StrategyRanking
from edgeloop.schema.mlstore import FeedbackSample
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services.runtime import resources

CACHE_COUNTERS = "cache-counters.jsonl"  # in the state folder: the cache's counters after each round
MAX_LABELLED = 8  # active strategies drawn with a legend entry; any more are thin grey lines


@dataclass
class RoundRow:
    run_id: str
    status: str
    seconds: float
    headline: Evidence | None  # the round's best-ranked strategy with enough bets, if any
    composite: float | None  # its composite score in the round's ranking (selection window)
    activated: int
    retired: int
    model_version: str  # the strategy model that generated the round's candidates
    lag_p99_s: float | None
    cache_hit_ratio: float | None


@dataclass
class Active:
    evidence: Evidence
    composite: float | None


class _CachedPredictions:
    """Predictions through the shared Redis cache, the model catalogue from the service."""

    def __init__(self, cached, plain) -> None:
        self.batch_predict = cached.batch_predict
        self.list_models = plain.list_models


def _rounds(sessions) -> list[Any]:
    with sessions() as s:
        return list(s.scalars(select(DiscoveryReport).where(DiscoveryReport.run_id.like("demo-%"))
                              .order_by(DiscoveryReport.started_at)))


def _best_ranked(sessions, run_id: str, min_bets: int) -> tuple[str, float] | None:
    """(strategy id, composite) of the run's best-ranked strategy with at least ``min_bets``
    bets; None when no strategy of the run has that many."""
    with sessions() as s:
        row = s.scalars(select(StrategyRanking).where(StrategyRanking.ranking_id == run_id,
                                                      StrategyRanking.total_bets >= min_bets)
                        .order_by(StrategyRanking.composite_score.desc()).limit(1)).first()
    return (row.strategy_id, row.composite_score) if row is not None else None


def _params(sessions, strategy_id: str) -> dict | None:
    with sessions() as s:
        row = s.get(Strategy, strategy_id)
    return row.params if row is not None else None


def _active(sessions) -> list[tuple[str, dict, float | None]]:
    """(id, params, composite) of every active strategy, best composite first."""
    with sessions() as s:
        rows = s.scalars(select(Strategy).where(Strategy.status == StrategyStatus.ACTIVE)
                         .order_by(Strategy.composite_score.desc())).all()
    return [(r.strategy_id, r.params, r.composite_score) for r in rows]


def _lag_p99(sessions, start: datetime | None = None, end: datetime | None = None) -> float | None:
    """Feedback lag, a result's arrival in the store → the ML service's receipt: the p99 over
    the results that arrived between ``start`` and ``end`` (all when unset)."""
    stmt = (select(BacktestResult.received_at, FeedbackSample.received_at)
            .join(FeedbackSample, FeedbackSample.backtest_id == BacktestResult.backtest_id))
    if start is not None:
        stmt = stmt.where(BacktestResult.received_at >= start)
    if end is not None:
        stmt = stmt.where(BacktestResult.received_at <= end)
    with sessions() as s:
        rows = s.execute(stmt).all()
    lags = sorted(max(0.0, (b.replace(tzinfo=None) - a.replace(tzinfo=None)).total_seconds()) for a, b in rows)
    return lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else None


def _hit_ratios(var: Path) -> dict[str, float]:
    """Each round's prediction-cache hit ratio, from the cumulative counters the demo recorded."""
    path = var / CACHE_COUNTERS
    if not path.exists():
        return {}
    ratios, hits, misses = {}, 0, 0
    for line in path.read_text().splitlines():
        c = json.loads(line)
        dh, dm = c["hits"] - hits, c["misses"] - misses
        hits, misses = c["hits"], c["misses"]
        if dh >= 0 and dm >= 0 and dh + dm:
            ratios[c["run_id"]] = dh / (dh + dm)
    return ratios


def _calibration(windows: Windows, client, chart: Path) -> dict[str, float]:
    """Reliability of the outcome model beside the de-margined market average and Pinnacle
    closing prices, over the validation and final windows; returns each one's log-loss."""
    import matplotlib.pyplot as plt  # write_report chose the backend

    start, end = windows.validation.start, windows.final.end
    data = load_window(windows.final.leagues, start, end)
    y = np.asarray(data.results)
    model = MLServiceProvider(_CachedPredictions(get_cached_ml_client(), client)).predictions(
        data.pre_event()).probabilities
    sources = {"outcome model": model, "market average (de-margined)": demargin(data.price("AVG")),
               "Pinnacle closing (de-margined)": demargin(data.price("PSC"))}
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    losses = {}
    bins = np.linspace(0, 1, 11)
    for name, p in sources.items():
        ok = np.isfinite(p).all(axis=1) & (y >= 0)
        if not ok.any():
            continue
        pp, yy = p[ok], np.eye(3)[y[ok]]
        losses[name] = float(-np.mean(np.log(np.clip(pp[yy.astype(bool)], 1e-12, 1))))
        flat_p, flat_y = pp.ravel(), yy.ravel()
        idx = np.clip(np.digitize(flat_p, bins) - 1, 0, 9)
        xs = [flat_p[idx == b].mean() for b in range(10) if (idx == b).sum() >= 20]
        ys = [flat_y[idx == b].mean() for b in range(10) if (idx == b).sum() >= 20]
        ax.plot(xs, ys, marker="o", label=f"{name} (log-loss {losses[name]:.4f})")
    ax.set_xlabel("forecast probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"Calibration, {start.year}–{end.year} (after the selection window)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return losses


def _yield_chart(rows: list[RoundRow], path: Path) -> None:
    """Each round's headline strategy: its yield on the selection, validation and final windows."""
    import matplotlib.pyplot as plt  # write_report chose the backend

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = np.arange(1, len(rows) + 1)
    for offset, window, marker in zip((-0.15, 0.0, 0.15), WINDOW_NAMES, ("o", "s", "D")):
        ys = [(r.headline.yield_(window) if r.headline is not None else None) for r in rows]
        ax.plot(xs + offset, [np.nan if y is None else 100 * y for y in ys], marker=marker, ls="none",
                label=f"{window} window")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(xs)
    ax.set_xlim(0.5, len(rows) + 0.5)
    ax.set_xlabel("round")
    ax.set_ylabel("yield of the round's best strategy (%)")
    ax.set_title("Chosen on the selection window, judged on later ones", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bankroll_chart(lines: list[tuple[str, Evidence]], market: Evidence, nothing_active: bool, windows: Windows,
                    path: Path) -> None:
    """Bankroll (× initial) by date on the final window: the strategies of ``lines`` (the first
    ``MAX_LABELLED`` labelled) and the market's own result."""
    import matplotlib.dates as mdates  # with pyplot: write_report chose the backend
    import matplotlib.pyplot as plt  # write_report chose the backend

    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, (label, ev) in enumerate(lines):
        result = ev.results.get("final")
        if result is None:
            continue
        days, bankroll = bankroll_by_date(result)
        ls = "--" if nothing_active else "-"
        if i < MAX_LABELLED:
            ax.plot(days, bankroll, lw=1.2, ls=ls, drawstyle="steps-post", zorder=2,
                    label=f"{label} ({ev.bets('final')} bets, yield {100 * (ev.yield_('final') or 0):+.1f}%)")
        else:
            ax.plot(days, bankroll, lw=0.8, ls=ls, drawstyle="steps-post", color="lightgrey", zorder=1,
                    label=f"{len(lines) - MAX_LABELLED} more (grey)" if i == MAX_LABELLED else None)
    result = market.results["final"]
    if result is not None:
        days, bankroll = bankroll_by_date(result)
        ax.plot(days, bankroll, color="black", lw=2, drawstyle="steps-post",
                label=f"market: back every Pinnacle favourite ({market.bets('final')} bets, "
                      f"yield {100 * (market.yield_('final') or 0):+.1f}%)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 7)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    ax.set_xlabel("date")
    ax.set_ylabel("bankroll (× initial)")
    what = ("nothing was activated: each round's best strategy shown (dashed)" if nothing_active
            else f"the {len(lines)} active strategies")
    ax.set_title(f"Final window {windows.final.start} … {windows.final.end}: {what}", fontsize=9)
    # Beside the axes: identical curves (strategies that place the same bets) still get their entry.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, var: Path, settings, progress: Callable[[str], None]) -> Path:
    # matplotlib here, not at the top: the file-only backend is chosen before pyplot loads, and
    # only when a report is drawn (importing this module must not change a process's backend).
    import matplotlib

    matplotlib.use("Agg")

    out.mkdir(parents=True, exist_ok=True)
    sessions = resources().sessions
    client = get_ml_client()
    provider = MLServiceProvider(_CachedPredictions(get_cached_ml_client(), client))
    windows = demo_windows(settings)
    min_bets = settings.min_bets_for_activation
    rows: list[RoundRow] = []
    hit_ratios = _hit_ratios(var)
    for r in _rounds(sessions):
        best = _best_ranked(sessions, r.run_id, min_bets)
        headline = None
        if best is not None and (params := _params(sessions, best[0])) is not None:
            progress(f"report: backtesting {r.run_id}'s best strategy on the three windows")
            headline = gather(best[0], params, windows, provider)
        counts = r.counts or {}
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else 0.0
        rows.append(RoundRow(
            run_id=r.run_id, status=r.status, seconds=seconds, headline=headline,
            composite=best[1] if best is not None else None,
            activated=int(counts.get("activated", 0)),
            retired=int(counts.get("candidates_retired", 0)) + int(counts.get("deactivated", 0)),
            model_version=(r.steps or {}).get("generate", {}).get("details", {}).get("model_version") or "–",
            lag_p99_s=_lag_p99(sessions, r.started_at, r.finished_at), cache_hit_ratio=hit_ratios.get(r.run_id)))

    progress("report: backtesting the active strategies and the market on the three windows")
    active = [Active(gather(sid, params, windows, provider), composite) for sid, params, composite in _active(sessions)]
    market = gather("market", FAVOURITE, windows, PinnacleFavourite())

    _yield_chart(rows, out / "headline_yield_by_round.png")
    if active:
        lines = [(a.evidence.strategy_id, a.evidence) for a in active]
    else:
        lines = [(f"{r.run_id} {r.headline.strategy_id}", r.headline) for r in rows if r.headline is not None]
    _bankroll_chart(lines, market, not active, windows, out / "bankroll_final_window.png")
    losses = _calibration(windows, client, out / "calibration.png")

    lag99 = _lag_p99(sessions)
    try:
        stats = get_cached_ml_client().stats()
        hit_ratio = f"{stats.hit_ratio:.1%}"
    except Exception as exc:  # noqa: BLE001 - the report says what it could not read
        hit_ratio = f"n/a ({exc})"
    serving = {m.model_name: m.version for m in client.list_models() if m.status == ModelStatus.SERVING}

    def f(v, fmt="{:.3f}"):
        return "–" if v is None else fmt.format(v)

    def evidence_cells(ev: Evidence | None) -> str:
        if ev is None:
            return " | ".join(["–"] * 6)
        return " | ".join(f"{ev.bets(w)} | {f(ev.yield_(w), '{:+.2%}')}" for w in WINDOW_NAMES)

    named = windows.named()
    span = {w: f"{named[w].start} … {named[w].end}" for w in WINDOW_NAMES}
    evidence_header = ("| selection bets | selection yield | validation bets | validation yield | "
                       "final bets | final yield |")
    lines_md = [
        "# edgeloop demo report", "",
        f"Data: football-data.co.uk, {', '.join(windows.final.leagues)}. Three windows, none overlapping: "
        f"**selection** {span['selection']} (discovery generates, backtests and ranks candidates there), "
        f"**validation** {span['validation']} and **final** {span['final']}; no round has seen the last two. "
        "Yield = profit / turnover.", "",
        "## Each round's best strategy", "",
        f"The round's highest composite score among strategies with at least {min_bets} bets on the selection "
        "window (`min_bets_for_activation`); – when no strategy of the round had that many.", "",
        "| round | run | best strategy | composite (selection) " + evidence_header,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        sid = r.headline.strategy_id if r.headline is not None else f"none with ≥ {min_bets} bets"
        lines_md.append(f"| {i} | {r.run_id} | {sid} | {f(r.composite)} | {evidence_cells(r.headline)} |")
    thin = sum(a.evidence.bets("selection") < min_bets for a in active)
    lines_md += [
        "", "## Active strategies", "",
        f"{len(active)} active now" + (f", {thin} of them on fewer than {min_bets} bets on the selection window "
                                        "(luck more than evidence)." if thin else ".")
        + ("" if active else " The loop activated nothing: on these efficient leagues that is often the honest "
                             "verdict."),
    ]
    if active:
        lines_md += ["", "| strategy | composite " + evidence_header, "|---|---|---|---|---|---|---|---|"]
        lines_md += [f"| {a.evidence.strategy_id} | {f(a.composite)} | {evidence_cells(a.evidence)} |" for a in active]
    lines_md += [
        "", f"The market's own result, to {FAVOURITE.name} at Pinnacle's price with flat stakes: " + "; ".join(
            f"{w} {market.bets(w)} bets, yield {f(market.yield_(w), '{:+.2%}')}" for w in WINDOW_NAMES) + ".", "",
        "## The loop", "",
        "| round | run | status | seconds | activated | retired | strategy model | feedback lag p99 | cache hits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines_md.append(f"| {i} | {r.run_id} | {r.status} | {r.seconds:.0f} | {r.activated} | {r.retired} | "
                        f"{r.model_version} | {f(r.lag_p99_s, '{:.2f} s')} | {f(r.cache_hit_ratio, '{:.0%}')} |")
    lines_md += [
        "", "Strategy model: the version that generated the round's candidates (– : none yet, the first "
        "round explores). Cache hits: the shared prediction cache's hit ratio during the round "
        "(– : the round asked for no predictions).",
        "", f"- serving models: {', '.join(f'{k} {v}' for k, v in sorted(serving.items())) or 'none'}",
        f"- feedback lag (stored → ML service), all rounds: p99 {f(lag99, '{:.2f} s')}",
        f"- prediction cache hit ratio: {hit_ratio}",
        "- outcome model log-loss on the validation and final windows: "
        + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()), "",
        "![headline yield by round](headline_yield_by_round.png)",
        "![bankroll on the final window](bankroll_final_window.png)",
        "![calibration](calibration.png)", "",
        "These leagues are efficient markets: expect most strategies to lose money out of sample.", "",
    ]
    (out / "report.json").write_text(json.dumps({
        "windows": {w: [str(named[w].start), str(named[w].end)] for w in WINDOW_NAMES},
        "min_bets_for_activation": min_bets,
        "rounds": [{"run_id": r.run_id, "composite": r.composite,
                    "headline": r.headline.as_dict() if r.headline is not None else None} for r in rows],
        "active": [{**a.evidence.as_dict(), "composite": a.composite} for a in active],
        "market": market.as_dict(),
    }, indent=2))
    path = out / "report.md"
    path.write_text("\n".join(lines_md))
    return path
