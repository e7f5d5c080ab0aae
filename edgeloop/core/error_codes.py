"""How an edgeloop error crosses the wire: one table, read by the ML service and its client.

Each row names an error class, the gRPC status code the service ends a call with, the reason
code it sends beside it in the trailing metadata key ``edgeloop-reason``, and the HTTP status of
the service's JSON API. The service (``edgeloop.mlservice.rpc``) answers with the row of the
nearest class in the raised error's MRO; the client (``edgeloop.mlclient.client.error_for``)
raises that row's class again, so a caller catches ``NotFound`` or ``ModelNotTrained`` and
never reads a message. A status that arrives without a reason (from gRPC itself, a proxy, or a
server that does not send one) is mapped by its code alone when exactly one row has that code.

Status codes are the names of ``grpc.StatusCode`` members, so the core layer imports no gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable

from dataclasses import dataclass
from http import HTTPStatus

from edgeloop.core.errors import (
    EdgeloopError,
    InvalidRequest,
    ModelNotTrained,
    NotFound,
    PermanentError,
    ServiceUnavailable,
    TransientError,
)

REASON_KEY = "edgeloop-reason"  # trailing metadata keys are lower case ASCII
# Beside RESOURCE_EXHAUSTED from a rate limit: milliseconds until the client may call again.
RETRY_AFTER_KEY = "retry-after-ms"
# Request metadata naming the calling process, the unit of the service's rate limits.
CLIENT_KEY = "edgeloop-client"


@dataclass(frozen=True)
class WireError:
    error: type[EdgeloopError]
    status: str  # a grpc.StatusCode member's name
    reason: str
    http: HTTPStatus


# The generic branches answer for a subclass without a row of its own (the nearest class in its MRO).
TABLE: tuple[WireError, ...] = (
    WireError(InvalidRequest, "INVALID_ARGUMENT", "INVALID_REQUEST", HTTPStatus.BAD_REQUEST),
    WireError(NotFound, "NOT_FOUND", "NOT_FOUND", HTTPStatus.NOT_FOUND),
    WireError(ModelNotTrained, "FAILED_PRECONDITION", "MODEL_NOT_TRAINED", HTTPStatus.CONFLICT),
    WireError(PermanentError, "FAILED_PRECONDITION", "PERMANENT", HTTPStatus.CONFLICT),
    WireError(ServiceUnavailable, "UNAVAILABLE", "SERVICE_UNAVAILABLE", HTTPStatus.SERVICE_UNAVAILABLE),
    WireError(TransientError, "UNAVAILABLE", "TRANSIENT", HTTPStatus.SERVICE_UNAVAILABLE),
)

_BY_CLASS: dict[type, WireError] = {row.error: row for row in TABLE}
_BY_REASON = {row.reason: row for row in TABLE}
_STATUSES = [row.status for row in TABLE]
_BY_STATUS = {row.status: row for row in TABLE if _STATUSES.count(row.status) == 1}


def row_for_class(error: type[BaseException]) -> WireError | None:
    """The row of the nearest class in ``error``'s MRO that has one; None for an unexpected error."""
    for cls in error.__mro__:
        row = _BY_CLASS.get(cls)
        if row is not None:
            return row
    return None


def row_for_status(status: str, reason: str | None) -> WireError | None:
    """The row a failed call's status and reason stand for: by reason when the reason is known
    and agrees with the status, else by the status alone when only one row has it."""
    row = _BY_REASON.get(reason or "")
    if row is not None and row.status == status:
        return row
    return _BY_STATUS.get(status)


def _value(metadata: Iterable[tuple[str, str | bytes]] | None, wanted: str) -> str | None:
    for key, value in metadata or ():
        if key == wanted:
            return value if isinstance(value, str) else value.decode("ascii", "replace")
    return None


def reason_in(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The reason in a call's trailing metadata (pairs of key and value), if any."""
    return _value(metadata, REASON_KEY)


def retry_after_in(metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    """Seconds a rate-limited call asks the client to wait (``retry-after-ms``), if it says."""
    text = _value(metadata, RETRY_AFTER_KEY)
    if text is None or not text.isdigit():
        return None
    return int(text) / 1000
