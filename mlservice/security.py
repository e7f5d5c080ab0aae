"""Optional transport security and bearer-token authentication for the ML service.

Both are off by default (the embedded, single-machine set-up binds to 127.0.0.1). Set
``EDGELOOP_ML_AUTH_TOKEN`` to require ``authorization: Bearer <token>`` on every MLService
call and every HTTP API call; set ``EDGELOOP_ML_TLS_CERT_FILE`` and ``…_KEY_FILE`` to serve
TLS, plus ``…_CA_FILE`` to also require client certificates signed by that CA (mutual TLS).
The standard health service and ``GET /health`` stay open so that load balancers and
orchestrators can probe without the secret; they reveal nothing but up or down (the HTTP
``/health`` adds its details for a caller with the token). ``GET /metrics`` needs the token
unless ``EDGELOOP_ML_METRICS_PUBLIC=true``. TLS handshakes happen in the HTTP API's handler
threads, under the connection timeout (``http_server.py``), never in its accept loop.
"""

from __future__ import annotations

import hmac
import ssl
from pathlib import Path

import grpc

from edgeloop.core.errors import ConfigurationError
from edgeloop.core.settings import Settings

OPEN_GRPC_PREFIXES = ("/grpc.health.v1.Health/",)


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time comparison of an ``authorization`` header with the expected token."""
    expected = f"Bearer {token}"
    return header is not None and hmac.compare_digest(header.encode(), expected.encode())


class BearerTokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token (metadata 'authorization')")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(OPEN_GRPC_PREFIXES):
            return continuation(handler_call_details)
        header = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        if token_matches(header, self._token):
            return continuation(handler_call_details)
        return self._deny


def interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
    return [BearerTokenInterceptor(settings.ml_auth_token)] if settings.ml_auth_token else []


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path!r}: {exc}") from None


def _cert_and_key(settings: Settings) -> tuple[str, str] | None:
    """The server's certificate and key files when TLS is on; None when both are unset."""
    cert, key = settings.ml_tls_cert_file, settings.ml_tls_key_file
    if not cert and not key:
        return None
    if not (cert and key):
        raise ConfigurationError("TLS needs both EDGELOOP_ML_TLS_CERT_FILE and EDGELOOP_ML_TLS_KEY_FILE")
    return cert, key


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate and key are configured, else None (plaintext)."""
    pair = _cert_and_key(settings)
    if pair is None:
        return None
    cert, key = pair
    ca = _read(settings.ml_tls_ca_file, "TLS CA file") if settings.ml_tls_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(key, "TLS key file"), _read(cert, "TLS certificate file"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def http_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The same certificate, key and optional client CA for the HTTP API."""
    pair = _cert_and_key(settings)
    if pair is None:
        return None
    cert, key = pair
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if settings.ml_tls_ca_file:
        context.load_verify_locations(settings.ml_tls_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
