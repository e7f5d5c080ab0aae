"""Per-client rate limits of the ML service: a token bucket per client, in a gRPC interceptor.

A client may make ``ml_rate_limit_burst`` calls at once and ``ml_rate_limit_per_s`` a second
on average (0: no limit; docker-compose turns it on). A call over the limit ends at once with
RESOURCE_EXHAUSTED, the message ``rate limit …`` (never gRPC's "larger than max" wording, which
clients read as "message too large") and ``retry-after-ms`` in the trailing metadata: when the
client's bucket will hold a token again. ``edgeloop.mlclient.client`` waits that long and
retries within its deadline; the feedback flusher, which sees any other RESOURCE_EXHAUSTED as
"back off", backs off.

Who is a client: the ``edgeloop-client`` metadata every edgeloop client sends (host and pid),
else the peer's address. A process is the unit because a noisy worker process is what the
limit is for; the name is not a credential (the bearer token is), so a client that rotates
names escapes its bucket, which is fine for protection from mistakes, not from attackers. The
health and reflection services are never limited: probes must see an overloaded service.

Buckets live in the replica's memory (a limit per replica, not per fleet); the least recently
seen are dropped past ``MAX_CLIENTS``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable

import grpc

from edgeloop.core.error_codes import CLIENT_KEY, RETRY_AFTER_KEY
from edgeloop.core.settings import Settings
from edgeloop.mlservice import metrics

MAX_CLIENTS = 10_000
UNLIMITED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class TokenBuckets:
    """One bucket per client: ``take`` a token now, or learn how long until one is there."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """0 if the call may go ahead (a token is taken), else the seconds until one is there."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return wait


def client_of(metadata: dict[str, str], peer: str) -> str:
    """The client a call counts against: its ``edgeloop-client`` name, else its address (no port)."""
    name = metadata.get(CLIENT_KEY)
    if name:
        return name[:128]
    host, _, _ = peer.rpartition(":")  # "ipv4:127.0.0.1:52614" -> "ipv4:127.0.0.1"
    return host or peer


class RateLimitInterceptor(grpc.ServerInterceptor):
    def __init__(self, buckets: TokenBuckets) -> None:
        self.buckets = buckets

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(UNLIMITED_PREFIXES):
            return handler
        metadata = {k: v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)}
        inner = handler.unary_unary
        rpc_name = method.rsplit("/", 1)[-1]

        def limited(request, context: grpc.ServicerContext):
            client = client_of(metadata, context.peer())
            wait = self.buckets.take(client)
            if wait > 0:
                retry_ms = max(1, math.ceil(wait * 1000))
                metrics.RATE_LIMITED.labels(rpc_name).inc()
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(retry_ms)),))
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"rate limit: client {client} is over {self.buckets.rate:g} calls/s; "
                              f"retry after {retry_ms} ms")
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            limited, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
    if settings.ml_rate_limit_per_s <= 0:
        return []
    return [RateLimitInterceptor(TokenBuckets(settings.ml_rate_limit_per_s, settings.ml_rate_limit_burst))]
