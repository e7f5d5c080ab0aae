"""`edgeloop backtest`: run one strategy over a window, print the metrics, optionally publish."""

from __future__ import annotations

import json
from datetime import date

import click

from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.report import backtest_id, format_table, result_dict
from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.run import publish as publish_results
from edgeloop.backtester.strategy import load_strategy
from edgeloop.core.settings import get_settings


def _date(_ctx, _param, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None


@click.command("backtest")
@click.option("--strategy", "strategy_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Strategy parameters, JSON or YAML.")
@click.option("--from", "start", required=True, callback=_date, help="First day of the window (YYYY-MM-DD).")
@click.option("--to", "end", required=True, callback=_date, help="Last day of the window, inclusive.")
@click.option("--league", "leagues", multiple=True, default=("E0",), show_default=True,
              help="League code (football-data.co.uk Div); repeat or comma-separate for several.")
@click.option("--source", type=click.Choice(["csv", "db"]), default="csv", show_default=True,
              help="Read events from the CSV files in data_dir or from the database's market tables.")
@click.option("--publish", is_flag=True, help="Publish a BacktestFinished event to the stream.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def backtest_cmd(strategy_file: str, start: date, end: date, leagues: tuple[str, ...], source: str,
                 publish: bool, as_json: bool) -> None:
    """Backtest a strategy over the events of a window (fixed parameters, per-season breakdown)."""
    settings = get_settings()
    leagues = tuple(dict.fromkeys(code.strip() for arg in leagues for code in arg.split(",") if code.strip()))
    strategy = load_strategy(strategy_file)
    predictions = None
    if strategy.probability_source == "model":
        predictions = MLServiceProvider.from_settings(settings)
    result = backtest(strategy, Window(start, end, tuple(leagues)), predictions=predictions,
                      database_url=settings.database_url if source == "db" else None)
    entry = publish_results([result])[0] if publish else None
    if as_json:
        out = result_dict(result)
        if entry:
            out["stream_entry_id"] = entry
        click.echo(json.dumps(out, sort_keys=True))
    else:
        click.echo(format_table(result))
        if entry:
            click.echo(f"published {backtest_id(result)} as stream entry {entry}")


command = backtest_cmd
