"""How every RPC handler reports: metrics, and errors mapped to gRPC statuses.

A handler raises edgeloop errors; this decorator ends the call with the status code and reason
of the error's row in ``edgeloop.core.error_codes`` (the reason in the trailing metadata key
``edgeloop-reason``), so the client raises the same class. An unreachable database counts as
``ServiceUnavailable`` (a client may retry); anything unexpected is INTERNAL without a reason,
logged with its traceback, and the caller sees only its class, never internals. Handlers raise;
they never call ``context.abort`` themselves.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable

import grpc
from sqlalchemy.exc import OperationalError

from edgeloop.core import error_codes
from edgeloop.core.errors import ServiceUnavailable
from edgeloop.core.metrics import rpc_latency
from edgeloop.mlservice import metrics

log = logging.getLogger("edgeloop.mlservice")


def wire_error(exc: BaseException) -> error_codes.WireError | None:
    """The table row a handler's exception is answered with; None for an unexpected one."""
    return error_codes.row_for_class(ServiceUnavailable if isinstance(exc, OperationalError) else type(exc))


@functools.cache
def _rpc_total(name: str, code: grpc.StatusCode) -> Any:
    """``RPC_TOTAL`` of one RPC and status, looked up once (as ``rpc_latency``)."""
    return metrics.RPC_TOTAL.labels(name, code.name)


def rpc(handler: Callable) -> Callable:
    name = handler.__name__

    @functools.wraps(handler)
    def wrapper(self, request, context: grpc.ServicerContext):
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return handler(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status below
            row = wire_error(exc)
            if row is None:
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", name)
                message = f"internal error ({type(exc).__name__}); see the service log"
            else:
                code = grpc.StatusCode[row.status]
                message = str(exc)
                context.set_trailing_metadata(((error_codes.REASON_KEY, row.reason),))
            context.abort(code, message)
        finally:
            rpc_latency("server", name).observe(time.perf_counter() - started)
            _rpc_total(name, code).inc()

    return wrapper
