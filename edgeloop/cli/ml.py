"""`edgeloop ml …`: run the ML service and manage its models."""

from __future__ import annotations

import logging
import signal
import threading

import click

from edgeloop.settings import get_settings


@click.group("ml")
def ml() -> None:
    """The ML service."""


@ml.command("serve")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None, help="default: EDGELOOP_ML_GRPC_PORT (50051)")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None, help="default: EDGELOOP_ML_HTTP_PORT (8000)")
@click.option("--host", default=None, help="bind address; default: EDGELOOP_ML_BIND_HOST (127.0.0.1)")
def serve_cmd(grpc_port: int | None, http_port: int | None, host: str | None) -> None:
    """Serve gRPC (MLService, grpc.health.v1, reflection) and the HTTP API until SIGTERM/SIGINT."""
    from mlservice.http_api import HttpApi
    from mlservice.server import create_server

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = host or settings.ml_bind_host
    server, port = create_server(f"{host}:{settings.ml_grpc_port if grpc_port is None else grpc_port}", settings)
    http = HttpApi(server.servicer, host, settings.ml_http_port if http_port is None else http_port)
    server.start()
    http.start()
    click.echo(f"ML service: gRPC on {host}:{port}, HTTP on {host}:{http.port} "
               f"(auth {'on' if settings.ml_auth_token else 'off'}, "
               f"TLS {'on' if settings.ml_tls_cert_file else 'off'})")

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    click.echo("ML service: stopping")
    http.stop()
    server.stop(settings.ml_stop_grace_s).wait()


def register(group: click.Group) -> None:
    group.add_command(ml)
