"""The ML service's small HTTP JSON API, beside gRPC, plus health and metrics.

    GET  /health                          {"status": "up"|"down"} (200|503) for anyone; with the
                                          token (or none configured) also "details": the HealthCheck
    GET  /metrics                         Prometheus exposition; needs the token when one is set,
                                          unless ml_metrics_public
    POST /api/v1/models/train             {"model_name": "outcome"|"strategy"|"", "force": bool}
    GET  /api/v1/models/training/{id}     a training job's status
    GET  /api/v1/models/{name}/metrics    the serving (or ?version=) version's metrics
    GET  /api/v1/models                   every version (?model_name=)

Each API route calls the same servicer method as gRPC, so the two cannot drift apart; an
error becomes the HTTP status of its row in ``edgeloop.core.error_codes`` (400, 404, 409, 503),
501 for an RPC not implemented, 500 for anything else, with ``{"error": message}``. The stdlib HTTP server keeps this dependency-free (the heavy traffic
goes over gRPC), run by ``http_server.BoundedHTTPServer`` so that no client can block it.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import grpc
from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgeloop.core import error_codes
from edgeloop.mlservice import security
from edgeloop.mlservice.http_server import BackgroundServer, BoundedHTTPServer
from edgeloop.mlservice.servicer import MLServicer
from edgeloop.proto import ml_service_pb2 as pb

log = logging.getLogger("edgeloop.mlservice.http")

class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, reason: str | None = None) -> None:
        super().__init__(details)
        self.code, self.details, self.reason = code, details, reason

    @property
    def http_status(self) -> HTTPStatus:
        row = error_codes.row_for_status(self.code.name, self.reason)
        if row is not None:
            return row.http
        if self.code == grpc.StatusCode.UNIMPLEMENTED:
            return HTTPStatus.NOT_IMPLEMENTED
        return HTTPStatus.INTERNAL_SERVER_ERROR


class _CallContext:
    """Just enough of ``grpc.ServicerContext`` for the servicer's handlers."""

    reason: str | None = None

    def set_trailing_metadata(self, metadata) -> None:
        self.reason = error_codes.reason_in(metadata)

    def abort(self, code: grpc.StatusCode, details: str):
        raise _Aborted(code, details, self.reason)

    def set_code(self, code: grpc.StatusCode) -> None:  # used by the generated UNIMPLEMENTED stubs
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def invocation_metadata(self):
        return ()


def _call(servicer: MLServicer, method: str, request) -> dict[str, Any]:
    handler = getattr(servicer, method)
    try:
        response = handler(request, _CallContext())
    except NotImplementedError:
        raise _Aborted(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet") from None
    return json_format.MessageToDict(response, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


Route = tuple[str, re.Pattern[str], Callable[..., dict[str, Any]]]


def _routes(servicer: MLServicer) -> list[Route]:
    def train(body, query, match):
        req = pb.TrainModelsRequest()
        try:
            json_format.ParseDict(body, req)
        except json_format.ParseError as exc:
            raise _Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"bad training request: {exc}") from None
        return _call(servicer, "TrainModels", req)

    def status(body, query, match):
        return _call(servicer, "GetTrainingStatus", pb.TrainingStatusRequest(job_id=match["job_id"]))

    def model_metrics(body, query, match):
        version = (query.get("version") or [""])[0]
        return _call(servicer, "GetModelMetrics", pb.ModelMetricsRequest(model_name=match["name"], version=version))

    def list_models(body, query, match):
        return _call(servicer, "ListModels", pb.ListModelsRequest(model_name=(query.get("model_name") or [""])[0]))

    return [
        ("POST", re.compile(r"^/api/v1/models/train$"), train),
        ("GET", re.compile(r"^/api/v1/models/training/(?P<job_id>[\w.-]{1,64})$"), status),
        ("GET", re.compile(r"^/api/v1/models/(?P<name>[\w.-]{1,32})/metrics$"), model_metrics),
        ("GET", re.compile(r"^/api/v1/models$"), list_models),
    ]


def make_handler(servicer: MLServicer) -> type[BaseHTTPRequestHandler]:
    settings = servicer.ctx.settings
    routes = _routes(servicer)

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeloop-ml"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # route access logs through logging, at debug level
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode())

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": message})

        def _body(self) -> dict[str, Any]:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:  # a negative length would make read() wait for the client to hang up
                raise _Aborted(grpc.StatusCode.INVALID_ARGUMENT, "Content-Length must be a non-negative integer")
            if length > settings.ml_max_http_body_bytes:
                raise _Aborted(grpc.StatusCode.INVALID_ARGUMENT,
                               f"body of {length} bytes exceeds {settings.ml_max_http_body_bytes}")
            raw = self.rfile.read(length) if length else b""
            if not raw.strip():
                return {}
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise _Aborted(grpc.StatusCode.INVALID_ARGUMENT, f"body is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise _Aborted(grpc.StatusCode.INVALID_ARGUMENT, "body must be a JSON object")
            return body

        def _health(self, authorized: bool) -> None:
            """Up or down for anyone (load balancers, orchestrators); the details only with the
            token, since versions, models and counts tell an outsider what runs here."""
            try:
                details = _call(servicer, "HealthCheck", pb.HealthCheckRequest())
            except Exception as exc:  # noqa: BLE001 - the database down is "down", not a 500
                log.warning("health check failed: %s", exc)
                return self._json(503, {"status": "down", **({"error": str(exc)} if authorized else {})})
            up = details.get("status") == "SERVING"
            return self._json(200 if up else 503, {"status": "up" if up else "down",
                                                   **({"details": details} if authorized else {})})

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            authorized = not settings.ml_auth_token or security.token_matches(
                self.headers.get("Authorization"), settings.ml_auth_token)
            try:
                if method == "GET" and url.path == "/health":
                    return self._health(authorized)
                if method == "GET" and url.path == "/metrics" and (authorized or settings.ml_metrics_public):
                    return self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                if not authorized:
                    return self._error(401, "missing or wrong bearer token (header Authorization)")
                for verb, pattern, action in routes:
                    match = pattern.match(url.path)
                    if match:
                        if verb != method:
                            return self._error(405, f"{url.path} accepts {verb}")
                        body = self._body() if method == "POST" else {}
                        return self._json(200, action(body, parse_qs(url.query), match))
                return self._error(404, f"no route {method} {url.path}")
            except _Aborted as exc:
                return self._error(exc.http_status, exc.details)
            except Exception:  # noqa: BLE001 - one bad request must not take the API down
                log.exception("HTTP %s %s failed", method, url.path)
                return self._error(500, "internal error; see the service log")

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

    return Handler


class HttpApi(BackgroundServer):
    """The HTTP API on a daemon thread; ``port`` is the bound one (0 picks a free port)."""

    def __init__(self, servicer: MLServicer, host: str, port: int) -> None:
        settings = servicer.ctx.settings
        super().__init__(BoundedHTTPServer((host, port), make_handler(servicer), threads=settings.ml_http_threads,
                                           timeout_s=settings.ml_http_timeout_s,
                                           tls=security.http_tls_context(settings)), "ml-http")
