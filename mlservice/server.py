"""The gRPC server of the ML service: ``create_server(address) -> (server, port)``.

Tests bind ``"127.0.0.1:0"`` and read the chosen port. The returned server owns the
service's per-process resources (database engine, training threads): ``stop(grace)`` first
reports NOT_SERVING on the standard health service, lets calls in flight finish within the
grace period, then releases them.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edgeloop.core.errors import ConfigurationError
from edgeloop.core.settings import Settings, get_settings
from edgeloop.mlservice import rate_limit, security
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.servicer import MLServicer
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc

log = logging.getLogger("edgeloop.mlservice")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MLService"].full_name


class MLServer(grpc.Server):
    """A ``grpc.Server`` that also closes the service's resources when it stops."""

    def __init__(self, server: grpc.Server, ctx: ServiceContext, health_servicer: health.HealthServicer,
                 servicer: MLServicer) -> None:
        self._server = server
        self.context = ctx
        self.health = health_servicer
        self.servicer = servicer
        self._closed = threading.Event()

    # Delegation of the grpc.Server interface.
    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        return self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        return self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address):
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address, server_credentials):
        return self._server.add_secure_port(address, server_credentials)

    def start(self):
        return self._server.start()

    def wait_for_termination(self, timeout=None):
        return self._server.wait_for_termination(timeout)

    def stop(self, grace):
        # Tell probes first so a load balancer drains us while in-flight calls finish.
        self.health.enter_graceful_shutdown()
        event = self._server.stop(grace)
        if not self._closed.is_set():
            self._closed.set()
            closer = threading.Thread(target=self._close_after, args=(event,), daemon=True)
            closer.start()
        return event

    def _close_after(self, stopped: threading.Event) -> None:
        stopped.wait()
        self.servicer.close()
        self.context.close()


def create_server(address: str, settings: Settings | None = None) -> tuple[MLServer, int]:
    """Build (not start) the ML service's gRPC server bound to ``address``; return it and its port."""
    settings = settings or get_settings()
    ctx = ServiceContext.open(settings)
    servicer: MLServicer | None = None
    try:
        options = [
            ("grpc.max_receive_message_length", settings.ml_max_message_bytes),
            ("grpc.max_send_message_length", settings.ml_max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ]
        raw = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.ml_server_threads, thread_name_prefix="ml-rpc"),
            # Authentication first: a caller without the token does not spend anyone's bucket.
            interceptors=[*security.interceptors(settings), *rate_limit.interceptors(settings)],
            options=options,
        )
        servicer = MLServicer(ctx)
        pb_grpc.add_MLServiceServicer_to_server(servicer, raw)

        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, raw)
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), raw)

        credentials = security.server_credentials(settings)
        port = raw.add_secure_port(address, credentials) if credentials else raw.add_insecure_port(address)
        if port == 0:
            raise ConfigurationError(f"cannot bind the ML service to {address}")
    except Exception:
        if servicer is not None:
            servicer.close()  # its training thread
        ctx.close()
        raise
    return MLServer(raw, ctx, health_servicer, servicer), port
