"""How the client's gRPC channel is made: retry policy, keepalive, TLS and the bearer token.

Retries live in the gRPC *service config* rather than in a Python loop so that gRPC itself
retries (with jittered exponential backoff, within the call's deadline) and only for
UNAVAILABLE: a call that reached the server and failed otherwise (DEADLINE_EXCEEDED,
INVALID_ARGUMENT…) may have had an effect or will fail again, so it is not replayed.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import grpc

from edgeloop.core.error_codes import CLIENT_KEY
from edgeloop.core.errors import ConfigurationError
from edgeloop.core.settings import Settings

ML_SERVICE = "edgeloop.ml.v1.MLService"
HEALTH_SERVICE = "grpc.health.v1.Health"

RETRY_POLICY = {
    "maxAttempts": 4,  # the first attempt + 3 retries
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config() -> str:
    """The JSON gRPC service config: retry UNAVAILABLE on every method of both services."""
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": ML_SERVICE}, {"service": HEALTH_SERVICE}],
                    "retryPolicy": RETRY_POLICY,
                }
            ]
        }
    )


def channel_options() -> list[tuple[str, object]]:
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config()),
        # A channel idle behind a NAT or load balancer is silently dropped; pings notice it.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read TLS file {path}: {exc}") from exc


def make_channel(target: str, settings: Settings) -> grpc.Channel:
    """A TLS channel when a CA (or the server's self-signed certificate) is configured, else
    plaintext; with a client certificate and key too, mutual TLS."""
    root = _read(settings.ml_tls_ca_file or settings.ml_tls_cert_file)
    if root is None:
        return grpc.insecure_channel(target, options=channel_options())
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=_read(settings.ml_tls_client_key_file),
        certificate_chain=_read(settings.ml_tls_client_cert_file),
    )
    return grpc.secure_channel(target, credentials, options=channel_options())


def call_metadata(settings: Settings) -> tuple[tuple[str, str], ...]:
    """Metadata sent with every call: this process's name (the unit of the service's rate
    limits) and the bearer token, when one is configured."""
    name = ((CLIENT_KEY, f"{socket.gethostname()}:{os.getpid()}"),)
    if settings.ml_auth_token:
        return (*name, ("authorization", f"Bearer {settings.ml_auth_token}"))
    return name
