"""`edgeloop web`: serve the read-only pages of the loop (strategies, discovery, models, pipeline)."""

from __future__ import annotations

import csv
import logging
import signal
import threading
import time

import click

from edgeloop.cli.ops import emit_json, json_option, sessions
from edgeloop.core.redis_connect import client_for
from edgeloop.core.settings import get_settings
from edgeloop.marketdata.arrays import parse_csv_files
from edgeloop.web.bankroll import DEFAULT_LEAGUES, Bankrolls
from edgeloop.web.pages import Site
from edgeloop.web.server import WebServer

log = logging.getLogger(__name__)


def model_predictions():
    """The ML service's point-in-time predictions, for the bankroll of a strategy betting on
    model probabilities."""
    # Here, not at the top: the ML client loads gRPC, which the pages need only for such a curve.
    from edgeloop.backtester.ml_provider import MLServiceProvider

    return MLServiceProvider.from_settings(get_settings())


def make_site() -> Site:
    settings = get_settings()
    client = client_for(settings, socket_connect_timeout=2, socket_timeout=5)  # one pool, connected on first use
    return Site(sessions=sessions(settings), redis=lambda: client, settings=settings,
                bankrolls=Bankrolls(predictions=model_predictions))


def parse_seasons() -> None:
    """Parse the season files of the discovery leagues before serving: the first view of a
    strategy page backtests each of its windows, and parsing their seasons was most of that
    (~0.7 s CPU for the shipped 21 E0 files, paid at start instead; not in a background
    thread, which would slow every page served meanwhile by holding the GIL). A strategy on
    another league still draws, parsing its seasons on its first view."""
    settings = get_settings()
    started = time.thread_time()
    try:
        matches = parse_csv_files({*settings.discovery_leagues, *DEFAULT_LEAGUES}, settings.data_dir)
    except (OSError, csv.Error) as exc:  # no data dir, an unreadable file: the page says so when asked
        log.warning("season files not parsed at start: %s", exc)
        return
    log.info("parsed %d matches of the season files in %.2f s CPU", matches, time.thread_time() - started)


@click.command("web")
@click.option("--host", default=None, help="bind address; default: EDGELOOP_WEB_BIND_HOST (127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="default: EDGELOOP_WEB_PORT (8080)")
@json_option
def command(host: str | None, port: int | None, as_json: bool) -> None:
    """Serve the read-only web pages of the loop until SIGTERM/SIGINT."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = host or settings.web_bind_host
    parse_seasons()
    server = WebServer(make_site(), host, settings.web_port if port is None else port).start()
    url = f"http://{host}:{server.port}/"
    if as_json:  # one line once it listens, for a supervisor to read the port from
        emit_json({"url": url, "auth": bool(settings.ml_auth_token)})
    else:
        click.echo(f"edgeloop web: {url} (auth {'on' if settings.ml_auth_token else 'off'})", err=True)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    server.stop()
