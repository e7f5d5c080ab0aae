"""No client can block the ML service's HTTP API: one that connects to the HTTPS port and sends
nothing, one that sends half a request, more slow clients than handler threads."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.request
from contextlib import ExitStack, contextmanager

import pytest

from edgeloop.core.settings import settings_with
from edgeloop.mlservice.http_api import HttpApi
from edgeloop.mlservice.http_server import QUEUED_PER_THREAD
from edgeloop.mlservice.server import create_server
from tests.integration.mlclient.support import metric

pytestmark = pytest.mark.integration


@contextmanager
def https_api(ml_settings, certificate, **overrides):
    """The real ML service with its HTTP API on TLS; yields (port, a client SSL context)."""
    cert, key = certificate
    settings = settings_with(**{**ml_settings.model_dump(), "ml_tls_cert_file": str(cert),
                                "ml_tls_key_file": str(key), **overrides})
    server, _ = create_server("127.0.0.1:0", settings)
    server.start()
    api = HttpApi(server.servicer, "127.0.0.1", 0).start()
    try:
        yield api.port, ssl.create_default_context(cafile=str(cert))
    finally:
        api.stop()
        server.stop(0).wait()


def health(port: int, context: ssl.SSLContext, timeout: float = 10.0) -> tuple[int, dict, float]:
    """GET /health: status, body and how long it took."""
    started = time.monotonic()
    with urllib.request.urlopen(f"https://localhost:{port}/health", context=context, timeout=timeout) as r:
        return r.status, json.loads(r.read()), time.monotonic() - started


def silent(stack: ExitStack, port: int) -> socket.socket:
    """A TCP client that connects and sends nothing (not even a TLS hello)."""
    return stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))


def test_a_silent_client_and_a_half_request_do_not_block_health(ml_settings, certificate):
    with https_api(ml_settings, certificate, ml_http_threads=4, ml_http_timeout_s=30) as (port, context), \
            ExitStack() as stack:
        # Given a client that connected and sent nothing, and one that sent half a request
        silent(stack, port)
        half = stack.enter_context(context.wrap_socket(silent(stack, port), server_hostname="localhost"))
        half.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # no blank line: never ends
        # When another client asks for /health, Then it is answered at once, long before they time out
        status, body, took = health(port, context)
        assert status == 200 and body["status"] == "up" and took < 2.0


def test_more_slow_clients_than_threads_wait_their_turn_and_the_surplus_is_refused(ml_settings, certificate):
    timeout_s = 0.75
    with https_api(ml_settings, certificate, ml_http_threads=1, ml_http_timeout_s=timeout_s) as (port, context), \
            ExitStack() as stack:
        # Given a silent client holding the one handler thread, and more filling its queue
        silent(stack, port)
        time.sleep(0.15)  # taken by the thread
        for _ in range(QUEUED_PER_THREAD):
            silent(stack, port)
        time.sleep(0.15)  # accepted and queued (well within the timeout)
        refused = metric("edgeloop_ml_http_connections_refused_total")
        # When one more connects, Then it is closed at once rather than left hanging
        surplus = silent(stack, port)
        started = time.monotonic()
        try:
            assert surplus.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < timeout_s / 2
        assert metric("edgeloop_ml_http_connections_refused_total") == refused + 1
        # And once the first slow client timed out, /health queues and is answered after the others time out
        time.sleep(timeout_s + 0.2)
        status, body, took = health(port, context)
        assert status == 200 and body["status"] == "up"
        assert took < (QUEUED_PER_THREAD + 1) * timeout_s + 2.0
