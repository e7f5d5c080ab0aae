"""`edgeloop discover` (also installed as `strategy-discovery`): run the discovery pipeline on the workers."""

from __future__ import annotations

import click

from edgeloop.cli.ops import Progress, emit_json, poll, require_ml, require_redis, sessions
from edgeloop.core.settings import get_settings
from edgeloop.core.statuses import DiscoveryRunStatus, DiscoveryStepStatus
from edgeloop.schema.lifecycle import DiscoveryReport
from edgeloop.services.discovery import new_run_id
from edgeloop.services.discovery_report import Report, in_pipeline_order
from edgeloop.workers.app import app
from edgeloop.workers.discovery_tasks import RUN_TASK


def report_dict(row) -> dict:
    return {"run_id": row.run_id, "status": row.status, "started_at": row.started_at, "finished_at": row.finished_at,
            "failed_step": row.failed_step, "error": row.error, "steps": in_pipeline_order(row.steps), "counts": row.counts,
            "top_strategies": row.top_strategies}


def format_report(r: dict) -> str:
    lines = [f"discovery run {r['run_id']}: {r['status']}"]
    if r["failed_step"]:
        lines.append(f"  failed at step {r['failed_step']}: {r['error']}")
    for name, step in r["steps"].items():
        lines.append(f"  {name:<18} {step.get('status', ''):<7} {step.get('seconds', 0):8.2f} s")
    for k, v in (r["counts"] or {}).items():
        lines.append(f"  {k}: {v}")
    if r["top_strategies"]:
        lines.append("  top strategies:")
        for t in r["top_strategies"][:10]:
            lines.append(f"    {t['strategy_id']:<22} composite {t['composite_score']:.3f}  ml {t['ml_confidence']:.3f}  "
                         f"backtest {t['backtest_score']:.3f}  bets {t['total_bets']:>5}  {t['new_status']}")
    return "\n".join(lines)


@click.command("discover")
@click.option("--wait", is_flag=True, help="Wait for the run to finish, showing its progress.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--run-id", default=None, help="Resume (or re-run, safely) this run instead of starting one.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def discover_cmd(wait: bool, timeout: float, run_id: str | None, as_json: bool) -> None:
    """Generate, backtest, evaluate and activate strategies; retire underperformers; rank."""
    settings = get_settings()
    require_redis(settings)
    require_ml()
    make_session = sessions(settings)
    run_id = run_id or new_run_id()
    # Open (or reopen, if it failed) the report before sending, so --wait never reads the
    # previous attempt's outcome as this one's.
    Report(make_session, run_id).open()
    app.send_task(RUN_TASK, kwargs={"run_id": run_id})
    if not wait:
        emit_json({"run_id": run_id, "status": "queued"}) if as_json else click.echo(f"discovery run {run_id} queued")
        return
    state: dict = {}

    def check() -> tuple[bool, str]:
        with make_session() as s:
            row = s.get(DiscoveryReport, run_id)
        state["row"] = row
        done = [n for n, st in row.steps.items() if st.get("status") == DiscoveryStepStatus.OK]
        progress = row.state.get("progress") if "backtest" not in row.steps else None
        text = f"{row.status}: steps done {', '.join(done) or '- (is a worker running?)'}"
        if progress:
            text += f" | backtests {progress['backtests_done']}/{progress['backtests']}, stored {progress['stored']}"
        return row.status != DiscoveryRunStatus.RUNNING, text

    poll(check, timeout, Progress(), what=f"discovery run {run_id}")
    report = report_dict(state["row"])
    emit_json(report) if as_json else click.echo(format_report(report))
    if report["status"] != DiscoveryRunStatus.SUCCEEDED:
        raise click.ClickException(f"discovery run {run_id} failed at step {report['failed_step']}: {report['error']}")


command = discover_cmd
