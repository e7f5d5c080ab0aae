"""The demo's report: Markdown plus three PNG charts, from what the loop stored.

Out of sample means: the discovery rounds backtest candidates on the discovery window
(``discovery_window_start`` … ``discovery_window_end``); the report judges each round's best
strategy on the seasons after it (up to ``HELD_OUT_END``), which no round has seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sqlalchemy import select

from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.probability import demargin
from edgeloop.backtester.run import Window, backtest
from edgeloop.core.scoring import composite_score
from edgeloop.marketdata.arrays import load_window
from edgeloop.mlclient import get_cached_ml_client, get_ml_client
from edgeloop.schema.lifecycle import DiscoveryReport, StrategyRanking
from edgeloop.schema.mlstore import FeedbackSample
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services.runtime import resources

from edgeloop.core.statuses import ModelStatus

HELD_OUT_END = date(2025, 6, 30)
CACHE_COUNTERS = "cache-counters.jsonl"  # in the state folder: the cache's counters after each round


@dataclass
class RoundRow:
    run_id: str
    status: str
    seconds: float
    in_sample_best: float | None
    out_of_sample_best: float | None
    best_strategy: str
    out_of_sample_roi: float | None
    out_of_sample_bets: int
    activated: int
    retired: int
    model_version: str  # the strategy model that generated the round's candidates
    lag_p99_s: float | None
    cache_hit_ratio: float | None


class _CachedPredictions:
    """Predictions through the shared Redis cache, the model catalogue from the service."""

    def __init__(self, cached, plain) -> None:
        self.batch_predict = cached.batch_predict
        self.list_models = plain.list_models


def _rounds(sessions) -> list[Any]:
    with sessions() as s:
        return list(s.scalars(select(DiscoveryReport).where(DiscoveryReport.run_id.like("demo-%"))
                              .order_by(DiscoveryReport.started_at)))


def _best_ranked(sessions, run_id: str, min_bets: int) -> dict | None:
    """The run's best-ranked strategy with at least ``min_bets`` bets: a composite over a
    handful of bets is luck, and such a strategy could not be activated anyway."""
    with sessions() as s:
        row = s.scalars(select(StrategyRanking).where(StrategyRanking.ranking_id == run_id,
                                                      StrategyRanking.total_bets >= min_bets)
                        .order_by(StrategyRanking.composite_score.desc()).limit(1)).first()
    if row is None:
        return None
    return {"strategy_id": row.strategy_id, "composite_score": row.composite_score, "model_version": row.model_version,
            "total_bets": row.total_bets}


def held_out_window(settings) -> tuple[date, date]:
    return date.fromisoformat(settings.discovery_window_end) + timedelta(days=1), HELD_OUT_END


def _out_of_sample(strategy_id: str, settings, client, provider):
    """(composite, backtest result) of a strategy on the held-out seasons."""
    with resources().sessions() as s:
        row = s.get(Strategy, strategy_id)
    if row is None:
        return None, None
    start, end = held_out_window(settings)
    result = backtest(row.params, Window(start, end, tuple(settings.discovery_leagues)), predictions=provider)
    confidence = client.evaluate_strategy(strategy_id, row.params).confidence
    return composite_score(confidence, result.metrics.backtest_score), result


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


def _calibration(settings, client, chart: Path) -> dict[str, float]:
    """Reliability of the outcome model beside the de-margined market average and Pinnacle
    closing prices, over the held-out seasons; returns each one's log-loss."""
    import matplotlib.pyplot as plt  # write_report chose the backend

    start, end = held_out_window(settings)
    data = load_window(tuple(settings.discovery_leagues), start, end)
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
    ax.set_title(f"Calibration, {start.year}–{end.year} (held out)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return losses


def write_report(out: Path, var: Path, settings, progress: Callable[[str], None]) -> Path:
    # matplotlib here, not at the top: the file-only backend is chosen before pyplot loads, and
    # only when a report is drawn (importing this module must not change a process's backend).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    sessions = resources().sessions
    client = get_ml_client()
    provider = MLServiceProvider(_CachedPredictions(get_cached_ml_client(), client))
    rows: list[RoundRow] = []
    hit_ratios = _hit_ratios(var)
    best_result, best_id = None, ""
    best_oos = -1.0
    for r in _rounds(sessions):
        top = _best_ranked(sessions, r.run_id, settings.min_bets_for_activation) or (r.top_strategies or [{}])[0]
        oos, result = (None, None)
        if top.get("strategy_id"):
            progress(f"report: judging {r.run_id}'s best strategy on the held-out seasons")
            oos, result = _out_of_sample(top["strategy_id"], settings, client, provider)
        if oos is not None and oos > best_oos:
            best_oos, best_result, best_id = oos, result, top["strategy_id"]
        counts = r.counts or {}
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else 0.0
        rows.append(RoundRow(
            run_id=r.run_id, status=r.status, seconds=seconds,
            in_sample_best=top.get("composite_score"), out_of_sample_best=oos,
            best_strategy=top.get("strategy_id", ""),
            out_of_sample_roi=result.metrics.roi if result is not None else None,
            out_of_sample_bets=result.metrics.total_bets if result is not None else 0,
            activated=int(counts.get("activated", 0)),
            retired=int(counts.get("candidates_retired", 0)) + int(counts.get("deactivated", 0)),
            model_version=(r.steps or {}).get("generate", {}).get("details", {}).get("model_version") or "–",
            lag_p99_s=_lag_p99(sessions, r.started_at, r.finished_at), cache_hit_ratio=hit_ratios.get(r.run_id)))

    # Chart 1: best composite score by round.
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = list(range(1, len(rows) + 1))
    ax.plot(xs, [r.in_sample_best or np.nan for r in rows], marker="o", label="in sample (discovery window)")
    ax.plot(xs, [r.out_of_sample_best if r.out_of_sample_best is not None else np.nan for r in rows], marker="s",
            label="out of sample (held-out seasons)")
    ax.axhline(settings.activation_threshold, color="green", lw=0.8, ls="--", label="activation threshold")
    ax.set_xlabel("round")
    ax.set_ylabel("best composite score")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "best_score_by_round.png", dpi=110)
    plt.close(fig)

    # Chart 2: the best strategy's bankroll over the held-out seasons.
    if best_result is not None:
        st = best_result.settlement
        pnl = np.cumsum(np.asarray(st.market_pnl, dtype=np.float64)) / 1e6
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(1, len(pnl) + 1), pnl)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("bet (market) number, in kick-off order")
        ax.set_ylabel("cumulative profit (stake units)")
        ax.set_title(f"best out-of-sample strategy {best_id}: held-out seasons", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "top_strategy_bankroll.png", dpi=110)
        plt.close(fig)

    # Chart 3: calibration.
    losses = _calibration(settings, client, out / "calibration.png")

    lag99 = _lag_p99(sessions)
    try:
        stats = get_cached_ml_client().stats()
        hit_ratio = f"{stats.hit_ratio:.1%}"
    except Exception as exc:  # noqa: BLE001 - the report says what it could not read
        hit_ratio = f"n/a ({exc})"
    serving = {m.model_name: m.version for m in client.list_models() if m.status == ModelStatus.SERVING}

    def f(v, fmt="{:.3f}"):
        return "–" if v is None else fmt.format(v)

    lines = [
        "# edgeloop demo report", "",
        "Data: football-data.co.uk. Discovery backtests candidates on "
        f"{settings.discovery_window_start} … {settings.discovery_window_end}; out-of-sample scores "
        f"come from {held_out_window(settings)[0]} … {held_out_window(settings)[1]}, which no round has seen.", "",
        "Each round's best strategy is the highest composite score among those with at least "
        f"{settings.min_bets_for_activation} bets in sample.", "",
        "| round | run | status | seconds | best strategy | composite in sample | composite out of sample | "
        "its ROI out of sample | its bets out of sample | activated | retired | strategy model | feedback lag p99 | cache hits |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r.run_id} | {r.status} | {r.seconds:.0f} | {r.best_strategy} | {f(r.in_sample_best)} | "
                     f"{f(r.out_of_sample_best)} | {f(r.out_of_sample_roi, '{:+.2%}')} | {r.out_of_sample_bets} | "
                     f"{r.activated} | {r.retired} | {r.model_version} | {f(r.lag_p99_s, '{:.2f} s')} | "
                     f"{f(r.cache_hit_ratio, '{:.0%}')} |")
    lines += [
        "", "Strategy model: the version that generated the round's candidates (– : none yet, the first "
        "round explores). Cache hits: the shared prediction cache's hit ratio during the round "
        "(– : the round asked for no predictions).",
        "", f"- serving models: {', '.join(f'{k} {v}' for k, v in sorted(serving.items())) or 'none'}",
        f"- feedback lag (stored → ML service), all rounds: p99 {f(lag99, '{:.2f} s')}",
        f"- prediction cache hit ratio: {hit_ratio}",
        "- outcome model log-loss on the held-out seasons: "
        + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()), "",
        "![best score by round](best_score_by_round.png)",
        "![top strategy bankroll](top_strategy_bankroll.png)" if best_result is not None else "",
        "![calibration](calibration.png)", "",
        "These leagues are efficient markets: expect most strategies to lose money out of sample.", "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
