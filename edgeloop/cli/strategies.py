"""`edgeloop strategies list|show|activate|deactivate`."""

from __future__ import annotations

import click
from sqlalchemy import select

from edgeloop.cli.ops import dry_run_option, emit_json, sessions
from edgeloop.core.errors import NotFound
from edgeloop.core.settings import get_settings
from edgeloop.core.statuses import EvidenceKind, StrategyStatus
from edgeloop.schema.lifecycle import StrategyRanking
from edgeloop.schema.pipeline import Strategy
from edgeloop.services.accuracy import accuracy_metrics
from edgeloop.services.evidence import evidence_of
from edgeloop.services.lifecycle import set_status

STATUSES = [s.value for s in StrategyStatus]


def strategy_dict(s) -> dict:
    return {"strategy_id": s.strategy_id, "name": s.name, "status": s.status, "source": s.source,
            "model_version": s.model_version, "composite_score": s.composite_score, "ml_confidence": s.ml_confidence,
            "backtest_score": s.backtest_score, "status_changed_at": s.status_changed_at, "params": s.params}


def _fmt(x: float | None) -> str:
    return "    -" if x is None else f"{x:.3f}"


@click.group("strategies")
def strategies() -> None:
    """Strategies, their scores and status."""


@strategies.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(status: str | None, limit: int, as_json: bool) -> None:
    """Strategies by composite score, best first."""
    with sessions(get_settings())() as s:
        q = select(Strategy).order_by(Strategy.composite_score.desc().nulls_last(), Strategy.strategy_id).limit(limit)
        if status:
            q = q.where(Strategy.status == status)
        rows = [strategy_dict(r) for r in s.scalars(q)]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'strategy':<24} {'status':<9} {'source':<9} {'composite':>9} {'ml':>6} {'backtest':>8}  name")
    for r in rows:
        click.echo(f"{r['strategy_id']:<24} {r['status']:<9} {r['source']:<9} {_fmt(r['composite_score']):>9} "
                   f"{_fmt(r['ml_confidence']):>6} {_fmt(r['backtest_score']):>8}  {r['name']}")


@strategies.command("show")
@click.argument("strategy_id")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(strategy_id: str, as_json: bool) -> None:
    """One strategy: parameters, its selection, validation and live evidence, ranking history,
    live prediction accuracy."""
    with sessions(get_settings())() as s:
        row = s.get(Strategy, strategy_id)
        if row is None:
            raise NotFound(f"no strategy {strategy_id!r}")
        found = evidence_of(s, strategy_id)
        rankings = list(s.scalars(select(StrategyRanking).where(StrategyRanking.strategy_id == strategy_id)
                                  .order_by(StrategyRanking.ranked_at.desc()).limit(10)))
        accuracy = accuracy_metrics(s, strategy_id)
    out = strategy_dict(row)
    out["evidence"] = {kind.value: found.get(kind.value) for kind in EvidenceKind}
    out["rankings"] = [{"ranked_at": r.ranked_at, "rank": r.rank, "composite_score": r.composite_score,
                        "model_version": r.model_version, "status": r.status} for r in rankings]
    out["accuracy"] = accuracy
    if as_json:
        emit_json(out)
        return
    click.echo(f"{out['strategy_id']} {out['name']!r}: {out['status']} since {out['status_changed_at']:%Y-%m-%d %H:%M:%S}"
               f" ({out['source']}{', proposed by ' + out['model_version'] if out['model_version'] else ''})")
    click.echo(f"  composite {_fmt(out['composite_score'])} = (ML confidence {_fmt(out['ml_confidence'])} + "
               f"backtest score {_fmt(out['backtest_score'])}) / 2")
    click.echo("  params: " + ", ".join(f"{k}={v}" for k, v in sorted((out["params"] or {}).items())))
    for kind, e in out["evidence"].items():
        if e is None:
            click.echo(f"  {kind + ' evidence':<20} none yet")
            continue
        click.echo(f"  {kind + ' evidence':<20} {e['window']}: {e['bets']} bets, yield {e['yield']:+.2%} "
                   f"(lower bound {e['yield_lcb']:+.2%}), deflated Sharpe {e['deflated_sharpe']:.3f} "
                   f"({e['trials']} trials), backtest score {e['backtest_score']:.3f}"
                   + (f", composite {e['composite_score']:.3f}" if e["composite_score"] is not None else "")
                   + (" — passed" if e["passed"] else " — failed: " + "; ".join(e["reasons"])))
    for r in out["rankings"]:
        click.echo(f"  ranked #{r['rank']} at {r['ranked_at']:%Y-%m-%d %H:%M:%S}: {r['composite_score']:.3f} "
                   f"with {r['model_version']} → {r['status']}")
    for a in accuracy:
        click.echo(f"  live predictions with {a['model_version']}: {a['predictions']} settled, Brier {a['brier']:.4f}, "
                   f"log-loss {a['log_loss']:.4f}, {a['bets']} recommended bets"
                   + (f", hit rate {a['hit_rate']:.1%}, ROI {a['roi']:.2%}" if a["bets"] else ""))


def _set_status(strategy_id: str, status: str, as_json: bool, dry_run: bool) -> None:
    settings = get_settings()
    if dry_run:
        with sessions(settings)() as s:
            row = s.get(Strategy, strategy_id)
            if row is None:
                raise NotFound(f"no strategy {strategy_id!r}")
            old = row.status
        if as_json:
            emit_json({"strategy_id": strategy_id, "old_status": old, "status": status, "dry_run": True})
        else:
            click.echo(f"{strategy_id}: would change {old} → {status}" if old != status else
                       f"{strategy_id}: already {status}; nothing would change")
        return
    # Here, not at the top: the mlclient package loads gRPC, and `strategies list|show` must not.
    from edgeloop.mlclient.cache import invalidate_strategies, make_redis

    cache_redis = make_redis(settings)
    cache_redis.ping()  # before the change, so that it is not made without clearing the cache
    old, new = set_status(sessions(settings), strategy_id, status)
    invalidate_strategies(cache_redis, [strategy_id])  # strategy-scoped answers may depend on it
    if as_json:
        emit_json({"strategy_id": strategy_id, "old_status": old, "status": new})
    else:
        click.echo(f"{strategy_id}: {old} → {new}" if old != new else f"{strategy_id}: already {new}")


@strategies.command("activate")
@click.argument("strategy_id")
@dry_run_option
@click.option("--json", "as_json", is_flag=True)
def activate_cmd(strategy_id: str, dry_run: bool, as_json: bool) -> None:
    """Activate by hand (the lifecycle may revisit it after min_state_s)."""
    _set_status(strategy_id, StrategyStatus.ACTIVE, as_json, dry_run)


@strategies.command("deactivate")
@click.argument("strategy_id")
@dry_run_option
@click.option("--json", "as_json", is_flag=True)
def deactivate_cmd(strategy_id: str, dry_run: bool, as_json: bool) -> None:
    """Deactivate by hand (the lifecycle may revisit it after min_state_s)."""
    _set_status(strategy_id, StrategyStatus.INACTIVE, as_json, dry_run)


command = strategies
