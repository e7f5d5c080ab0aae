"""The web pages' HTTP server: routes, the token, static files.

Authentication is the ML service's (``ml_auth_token``): a script sends ``Authorization:
Bearer <token>``, a browser answers the basic-auth prompt with any user name and the token as
its password. Without a token the pages are open, and then the server binds only to a
loopback address (``ConfigurationError`` otherwise), as the ML service's default does.

It runs on the ML service's ``BoundedHTTPServer``: a fixed pool of handler threads, every read
and write under a timeout, so no client can block it.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from edgeloop.core.errors import ConfigurationError, NotFound
from edgeloop.mlservice.http_server import BackgroundServer, BoundedHTTPServer
from edgeloop.web import pages
from edgeloop.web.html import esc, frame

log = logging.getLogger("edgeloop.web")

STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
STATIC_NAMES = re.compile(r"^/static/(?P<name>[\w.-]+\.(js|css))$")


def authorized(header: str | None, token: str | None) -> bool:
    """Bearer ``token``, or basic auth whose password is ``token``; anything when no token is set."""
    if not token:
        return True
    if header is None:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return False


def require_safe_bind(host: str, token: str | None) -> None:
    """Open pages only on a loopback address."""
    if token:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigurationError(f"the web pages bind {host} without a token: set EDGELOOP_ML_AUTH_TOKEN "
                                 "or bind 127.0.0.1")


@dataclass(frozen=True)
class Static:
    """The shipped files under ``static/``, read once."""

    files: dict[str, bytes]

    @classmethod
    def load(cls) -> "Static":
        root = resources.files("edgeloop.web") / "static"
        return cls({f.name: f.read_bytes() for f in root.iterdir() if f.name.endswith((".js", ".css"))})


Route = tuple[re.Pattern[str], Callable[[pages.Site, re.Match[str], dict[str, list[str]]], str]]

ROUTES: list[Route] = [
    (re.compile(r"^/strategies/?$"), lambda site, m, q: pages.strategies_page(site, q)),
    (re.compile(r"^/strategies/(?P<id>[^/]{1,512})$"), lambda site, m, q: pages.strategy_page(site, unquote(m["id"]))),
    (re.compile(r"^/discovery/?$"), lambda site, m, q: pages.discovery_page(site, q)),
    (re.compile(r"^/models/?$"), lambda site, m, q: pages.models_page(site, q)),
    (re.compile(r"^/pipeline/?$"), lambda site, m, q: pages.pipeline_page(site, q)),
]


def make_handler(site: pages.Site, static: Static) -> type[BaseHTTPRequestHandler]:
    token = site.settings.ml_auth_token

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeloop-web"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # access logs through logging, at debug level
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _html(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
            self._send(status, text.encode(), "text/html; charset=utf-8",
                       {"Cache-Control": "no-store", **(headers or {})})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if not authorized(self.headers.get("Authorization"), token):
                return self._html(401, frame("Sign in", "<p>This page needs the service token (as the "
                                                        "password; any user name).</p>"),
                                  {"WWW-Authenticate": 'Basic realm="edgeloop", charset="UTF-8"'})
            if url.path == "/":
                return self._send(302, b"", "text/plain", {"Location": "/strategies"})
            static_match = STATIC_NAMES.match(url.path)
            if static_match and static_match["name"] in static.files:
                name = static_match["name"]
                return self._send(200, static.files[name], STATIC_TYPES[name[name.rindex("."):]],
                                  {"Cache-Control": "max-age=3600"})
            query = parse_qs(url.query)
            try:
                for pattern, page in ROUTES:
                    match = pattern.match(url.path)
                    if match:
                        return self._html(200, page(site, match, query))
                return self._html(404, frame("Not found", f"<p>No page {esc(url.path)}.</p>"))
            except NotFound as exc:
                return self._html(404, frame("Not found", f"<p>{esc(exc)}</p>"))
            except Exception:  # noqa: BLE001 - one bad page must not take the server down
                log.exception("GET %s failed", url.path)
                return self._html(500, frame("Error", "<p>This page failed; see the server's log.</p>"))

        do_HEAD = do_GET

    return Handler


class WebServer(BackgroundServer):
    """The pages on a daemon thread; ``port`` is the bound one (0 picks a free port)."""

    def __init__(self, site: pages.Site, host: str, port: int) -> None:
        require_safe_bind(host, site.settings.ml_auth_token)
        super().__init__(BoundedHTTPServer((host, port), make_handler(site, Static.load()),
                                           threads=site.settings.ml_http_threads,
                                           timeout_s=site.settings.ml_http_timeout_s), "web")
