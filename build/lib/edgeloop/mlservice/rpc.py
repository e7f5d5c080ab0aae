"""How every RPC handler reports: metrics, and errors mapped to gRPC status codes.

A handler raises edgeloop errors; this decorator turns them into statuses so the service keeps
serving: ``InvalidRequest`` → INVALID_ARGUMENT, ``NotFound`` → NOT_FOUND, a transient error
or an unreachable database → UNAVAILABLE, anything unexpected → INTERNAL (logged with its traceback, the caller sees only
its class, never internals). Handlers raise; they never call ``context.abort`` themselves.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Callable

import grpc
from sqlalchemy.exc import OperationalError

from edgeloop.core.errors import InvalidRequest, NotFound, PermanentError, TransientError
from edgeloop.mlservice import metrics

log = logging.getLogger("edgeloop.mlservice")


def _status_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, OperationalError):
        return grpc.StatusCode.UNAVAILABLE  # the database is unreachable: a client may retry
    if isinstance(exc, InvalidRequest):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, TransientError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, PermanentError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def rpc(handler: Callable) -> Callable:
    name = handler.__name__

    @functools.wraps(handler)
    def wrapper(self, request, context: grpc.ServicerContext):
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return handler(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status below
            code = _status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("%s failed", name)
                message = f"internal error ({type(exc).__name__}); see the service log"
            else:
                message = str(exc)
            context.abort(code, message)
        finally:
            metrics.RPC_SECONDS.labels(name).observe(time.perf_counter() - started)
            metrics.RPC_TOTAL.labels(name, code.name).inc()

    return wrapper
