"""The pages, rendered on the server: each takes the request's query and returns HTML.

``Site`` holds what the pages read (a session factory, a Redis client, the settings, the
bankroll cache). Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, Callable

import redis
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import NotFound
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind, StrategyStatus
from edgeloop.web import queries
from edgeloop.web.bankroll import Bankrolls, Curve
from edgeloop.web.html import (
    badge,
    chart,
    esc,
    frame,
    link,
    num,
    pager,
    pct,
    seconds,
    strategy_link,
    table,
    when,
)

PER_PAGE = 50
RUNS_PER_PAGE = 20
MODELS_SHOWN = 100


@dataclass
class Site:
    sessions: sessionmaker[Session]
    redis: Callable[[], redis.Redis]
    settings: Settings
    bankrolls: Bankrolls


def _page_number(query: dict[str, list[str]]) -> int:
    raw = (query.get("page") or ["1"])[0]
    return int(raw) if raw.isdigit() and int(raw) >= 1 else 1


def _evidence_cell(e: dict[str, Any] | None) -> str:
    if e is None:
        return '<span class="muted">none</span>'
    mark = '<span class="pass">✓</span>' if e["passed"] else '<span class="fail">✗</span>'
    return (f'{mark} {e["bets"]} bets, yield {pct(e["yield"])}<br><span class="muted">lcb {pct(e["yield_lcb"])}'
            f', score {num(e["backtest_score"])}</span>')


def strategies_page(site: Site, query: dict[str, list[str]]) -> str:
    status = (query.get("status") or [""])[0]
    status = status if status in {s.value for s in StrategyStatus} else ""
    with site.sessions() as s:
        page = queries.ranked_strategies(s, _page_number(query), PER_PAGE, status or None)
        counts = queries.status_counts(s)
    total = sum(counts.values())
    filters = " ".join(
        (f"<strong>{esc(name or 'all')} ({counts.get(name, total):,})</strong>" if name == status else
         link("/strategies" + (f"?status={name}" if name else ""), f"{name or 'all'} ({counts.get(name, total):,})"))
        for name in ["", *counts])
    rows = [[str(r["rank"]), strategy_link(r["strategy_id"]), esc(r["name"]), badge(r["status"]),
             num(r["composite_score"]), num(r["ml_confidence"]), num(r["backtest_score"]),
             *(_evidence_cell(r["evidence"][k.value]) for k in EvidenceKind),
             f'{esc(when(r["status_changed_at"]))}<br><span class="muted">{esc(r["why"])}</span>']
            for r in page.rows]
    body = (f'<p class="filters">Status: {filters}</p>'
            f'<p class="muted">Composite = (ML confidence + backtest score) / 2; activation at ≥ '
            f'{site.settings.activation_threshold}, retirement below {site.settings.deactivation_threshold}, '
            f'and only through the validation gate (≥ {site.settings.min_bets_for_activation} bets, '
            f'yield lower bound &gt; {site.settings.gate_min_yield_lcb:+.2%}, deflated Sharpe ≥ '
            f'{site.settings.gate_min_dsr}).</p>'
            + table(["#", "strategy", "name", "status", "composite", "ML conf.", "backtest",
                     "selection", "validation", "live", "status since · why"], rows, "ranked")
            + pager("/strategies", page.number, page.pages, page.total, "strategies", status=status))
    if not page.rows:
        body += '<p class="empty">No strategies yet: run a discovery (`edgeloop discover`).</p>'
    return frame("Strategies ranked by composite score", body, "/strategies")


def _unix(d: date | datetime) -> float:
    if isinstance(d, datetime):
        return d.timestamp() if d.tzinfo else d.replace(tzinfo=timezone.utc).timestamp()
    return datetime.combine(d, time(12), tzinfo=timezone.utc).timestamp()


def _windows(detail: dict[str, Any]) -> list[tuple[date, date, dict[str, Any], dict[str, Any]]]:
    """Each distinct window the strategy was backtested on, with the newest result's params."""
    seen: dict[tuple[date, date], dict[str, Any]] = {}
    for b in detail["backtests"]:
        seen[(b["window_start"], b["window_end"])] = b
    return [(start, end, b["params"] or detail["params"], b) for (start, end), b in sorted(seen.items())]


def _bankroll_section(site: Site, detail: dict[str, Any]) -> str:
    parts, rows = [], []
    kinds = {(e["window_start"], e["window_end"]): e["kind"] for e in detail["evidence"]}
    for i, (start, end, params, stored) in enumerate(_windows(detail)):
        c: Curve = site.bankrolls.curve(params, start, end)
        kind = kinds.get((start, end), "")
        label = f"{start} … {end}" + (f" ({kind})" if kind else "")
        rows.append([esc(label), esc(", ".join(c.leagues)), str(c.bets) if not c.note else "–",
                     num(c.initial, 0) if not c.note else "–", num(c.final, 0) if c.final is not None else "–",
                     pct(c.roi), f'{stored["total_bets"]} bets, yield {pct(stored["roi"])}', esc(c.note)])
        if c.days:
            parts.append(chart(f"bankroll-{i}", f"Bankroll, {label}", [_unix(d) for d in c.days],
                               {"bankroll": c.bankroll}, "bankroll"))
    if not rows:
        return "<p class=empty>No backtests stored for this strategy.</p>"
    return (table(["window", "leagues", "bets", "start", "end", "yield", "stored result", "note"], rows)
            + '<div class="charts">' + "".join(parts) + "</div>")


def strategy_page(site: Site, strategy_id: str) -> str:
    with site.sessions() as s:
        detail = queries.strategy_detail(s, strategy_id)
    if detail is None:
        raise NotFound(f"no strategy {strategy_id!r}")
    d = detail
    params = table(["parameter", "value"], [[esc(k), esc(v)] for k, v in sorted((d["params"] or {}).items())])
    summary = table(["status", "since", "why", "composite", "ML confidence", "backtest score", "source"], [[
        badge(d["status"]), esc(when(d["status_changed_at"])), esc(d["why"]), num(d["composite_score"]),
        num(d["ml_confidence"]), num(d["backtest_score"]),
        esc(d["source"] + (f" ({d['model_version']})" if d["model_version"] else ""))]])
    evidence = table(["kind", "window", "bets", "yield", "yield lcb", "deflated Sharpe", "trials", "score",
                      "ML conf.", "composite", "verdict", "judged"],
                     [[esc(e["kind"]), esc(f'{e["window_start"]} … {e["window_end"]}'), str(e["bets"]),
                       pct(e["yield"]), pct(e["yield_lcb"]), num(e["deflated_sharpe"]), str(e["trials"]),
                       num(e["backtest_score"]), num(e["ml_confidence"]), num(e["composite_score"]),
                       ('<span class="pass">passed</span>' if e["passed"] else
                        '<span class="fail">failed</span>: ' + esc("; ".join(e["reasons"]))),
                       esc(when(e["judged_at"]))] for e in d["evidence"]])
    backtests = table(["backtest", "window", "method", "model", "bets", "yield", "profit", "Sharpe", "max DD",
                       "score", "ML conf.", "composite", "received"],
                      [[esc(b["backtest_id"]), esc(f'{b["window_start"]} … {b["window_end"]}'), esc(b["method"]),
                        esc(b["model_version"] or "–"), str(b["total_bets"]), pct(b["roi"]), num(b["profit"], 2),
                        num(b["sharpe_ratio"]), pct(b["max_drawdown"]), num(b["backtest_score"]),
                        num(b["ml_confidence"]), num(b["composite_score"]), esc(when(b["received_at"]))]
                       for b in d["backtests"]])
    rankings = d["rankings"]
    confidence = ""
    if rankings:
        confidence = chart("confidence", "ML confidence and composite score at each ranking",
                           [_unix(r["ranked_at"]) for r in rankings],
                           {"ML confidence": [r["ml_confidence"] for r in rankings],
                            "composite": [r["composite_score"] for r in rankings]}, "score")
    ranking_rows = [[esc(when(r["ranked_at"])), str(r["rank"]), num(r["ml_confidence"]), num(r["composite_score"]),
                     esc(r["model_version"]), badge(r["status"])] for r in reversed(rankings[-50:])]
    body = (summary + "<h2>Parameters</h2>" + params
            + "<h2>Evidence</h2>" + (evidence if d["evidence"] else "<p class=empty>No verdict recorded yet.</p>")
            + "<h2>Bankroll over time, per window</h2>" + _bankroll_section(site, d)
            + "<h2>ML confidence history</h2>" + confidence
            + (table(["ranked", "rank", "ML conf.", "composite", "model", "status"], ranking_rows) if rankings
               else "<p class=empty>Not ranked yet.</p>")
            + f"<h2>Backtests ({len(d['backtests'])})</h2>" + backtests)
    return frame(f"Strategy {d['strategy_id']}" + (f" — {d['name']}" if d["name"] else ""), body, "/strategies")


def discovery_page(site: Site, query: dict[str, list[str]]) -> str:
    with site.sessions() as s:
        page = queries.discovery_runs(s, _page_number(query), RUNS_PER_PAGE)
    parts = []
    for r in page.rows:
        steps = table(["step", "status", "duration", "details"],
                      [[esc(name), badge(st.get("status", "")), seconds(st.get("seconds")),
                        esc(", ".join(f"{k}={v}" for k, v in (st.get("details") or {}).items()
                                      if not isinstance(v, (list, dict))))]
                       for name, st in r["steps"].items()], "steps")
        counts = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in r["counts"].items()) or "–"
        top = ", ".join(strategy_link(t["strategy_id"]) for t in r["top_strategies"][:5] if "strategy_id" in t)
        failure = (f'<p class="fail">failed at {esc(r["failed_step"])}: {esc(r["error"])}</p>'
                   if r["failed_step"] else "")
        parts.append(f'<section class="run"><h2>{esc(r["run_id"])} {badge(r["status"])}</h2>'
                     f'<p class="muted">started {esc(when(r["started_at"]))}, finished {esc(when(r["finished_at"]))}'
                     f'</p>{failure}{steps}<p>counts: {counts}</p>'
                     + (f"<p>top strategies: {top}</p>" if top else "") + "</section>")
    body = "".join(parts) or "<p class=empty>No discovery runs yet.</p>"
    return frame("Discovery runs", body + pager("/discovery", page.number, page.pages, page.total, "runs"),
                 "/discovery")


def models_page(site: Site, query: dict[str, list[str]]) -> str:
    with site.sessions() as s:
        jobs = queries.training_jobs(s, MODELS_SHOWN)
        versions = queries.model_versions(s, MODELS_SHOWN)
    job_rows = [[esc(j["job_id"]), esc(j["model"]), badge(j["status"]), esc(when(j["created_at"])),
                 esc(when(j["finished_at"])), str(j["attempts"]), esc(", ".join(j["model_versions"]) or "–"),
                 esc(j["reason"][:200])] for j in jobs]
    shown = ("logloss", "logloss_market_avg", "logloss_pinnacle_close", "spearman_held_out", "n_events")
    version_rows = [[esc(v["version"]), esc(v["model_name"]), badge(v["status"]), esc(v["slot"] or "–"),
                     esc(f'{when(v["train_start"])} → {when(v["train_end"])}'), f'{v["sample_count"]:,}',
                     esc(" ".join(f"{k}={v['metrics'][k]:.4g}" for k in shown if isinstance(v["metrics"].get(k),
                                                                                         (int, float)))),
                     esc(v["note"][:200]), esc(when(v["created_at"]))] for v in versions]
    serving = [v for v in versions if v["status"] == "serving"]
    body = ("<h2>Serving</h2>" + (", ".join(f'{esc(v["model_name"])}: {esc(v["version"])}' for v in serving)
                                  or "<span class=muted>nothing serving</span>")
            + f"<h2>Training jobs (newest {MODELS_SHOWN})</h2>"
            + (table(["job", "model", "status", "created", "finished", "attempts", "versions", "reason"], job_rows)
               if jobs else "<p class=empty>No training jobs yet.</p>")
            + f"<h2>Model registry (newest {MODELS_SHOWN})</h2><p class=muted>A challenger replaces the serving "
              "version of its slot only if it is at least as good on held-out data; otherwise it is rejected.</p>"
            + (table(["version", "model", "status", "slot", "trained on", "samples", "held-out metrics", "note",
                      "created"], version_rows) if versions else "<p class=empty>No model versions yet.</p>"))
    return frame("Training jobs and model registry", body, "/models")


def pipeline_page(site: Site, query: dict[str, list[str]]) -> str:
    with site.sessions() as s:
        lag = queries.feedback_lag(s)
    try:
        streams: dict[str, Any] | None = queries.stream_health(site.redis(), site.settings)
        redis_error = ""
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        streams, redis_error = None, str(exc)
    age = lag["oldest_age_s"]
    body = ("<h2>Feedback to the ML service</h2>"
            + table(["pending results", "oldest waiting"],
                    [[f'{lag["pending"]:,}', "–" if age is None else esc(f"{age:,.0f} s")]]))
    if streams is None:
        body += f'<p class="fail">Redis is not reachable: {esc(redis_error)}</p>'
    else:
        body += ("<h2>Event stream backlog</h2>"
                 + table(["stream", "entries", "lag (not yet delivered)", "pending (delivered, not acknowledged)"],
                         [[esc(k), f"{b.length:,}", f"{b.lag:,}", f"{b.pending:,}"]
                          for k, b in streams["backlog"].items()])
                 + f'<h2>Dead letters ({streams["dead_letters"]:,})</h2>'
                 + (table(["reason", f'letters (newest {streams["dead_letters_scanned"]:,})'],
                          [[esc(r), f"{n:,}"] for r, n in streams["dead_letters_by_reason"].items()])
                    + f'<p class="muted">Newest at {esc(when(streams["newest_dead_letter"]))}. '
                      "Replay with `edgeloop dead-letters replay [--reason R]`.</p>"
                    if streams["dead_letters"] else "<p class=empty>No dead letters.</p>"))
    return frame("Pipeline health", body, "/pipeline")
