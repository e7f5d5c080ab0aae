"""The HTTP API's server: a fixed pool of handler threads that no client can block.

stdlib ``ThreadingHTTPServer`` starts one thread per connection, without bound, and with its
listening socket wrapped for TLS the handshake runs inside ``accept()``: one client that
connects and sends nothing stops the accept loop, and with it every other client. Here:

* the accept loop only accepts and queues; it never reads from a client. A connection that
  finds the queue full (``4 × threads`` waiting) is closed at once, and counted;
* ``threads`` handler threads take connections from the queue, and each does its
  connection's TLS handshake itself;
* every read and write of a connection, the handshake included, times out after
  ``timeout_s``: a client that sends nothing or half a request holds a thread that long, no
  longer, and an idle keep-alive connection is closed after it too.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Self

from edgeloop.mlservice import metrics

log = logging.getLogger("edgeloop.mlservice.http")

QUEUED_PER_THREAD = 4


class BoundedHTTPServer(HTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        threads: int,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(address, handler)
        self.connection_timeout_s = timeout_s
        self._tls = tls
        self._waiting: queue.Queue[tuple[socket.socket, tuple] | None] = queue.Queue(QUEUED_PER_THREAD * threads)
        self._threads = [threading.Thread(target=self._serve_connections, name=f"ml-http-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    # A TCP server's request is its socket (the base class's type also covers UDP's (data, socket)).
    def process_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        """Called by the accept loop: hand the connection to a handler thread, never wait."""
        try:
            self._waiting.put_nowait((request, client_address))
        except queue.Full:
            metrics.HTTP_CONNECTIONS_REFUSED.inc()
            self.shutdown_request(request)

    def _serve_connections(self) -> None:
        while (item := self._waiting.get()) is not None:
            request, client_address = item
            try:
                request.settimeout(self.connection_timeout_s)
                if self._tls is not None:
                    request = self._tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
                    request.do_handshake()
                self.finish_request(request, client_address)
            except Exception as exc:  # noqa: BLE001 - one connection's failure is its own
                self._log_failure(client_address, exc)
            finally:
                self.shutdown_request(request)

    def _log_failure(self, client_address: tuple, exc: Exception) -> None:
        # A timeout, a reset or a failed handshake is the client's doing: not worth a traceback.
        if isinstance(exc, (OSError, ssl.SSLError)):
            log.debug("HTTP connection from %s ended: %s", client_address[0], exc)
        else:
            log.exception("HTTP connection from %s failed", client_address[0])

    def server_close(self) -> None:
        super().server_close()
        while True:  # close connections nobody will serve
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._threads:
            self._waiting.put(None)


class BackgroundServer:
    """A ``BoundedHTTPServer`` accepting on a daemon thread of its own; ``port`` is the bound
    one (0 picks a free port)."""

    def __init__(self, httpd: BoundedHTTPServer, name: str) -> None:
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
